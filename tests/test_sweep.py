"""Sweeps: grid syntax, bad input, summaries, and resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import ConfigError
from circlereg.rundir import read_summary, run_state
from circlereg.spec import choose_seeds

from .conftest import CONFIGS, ROOT, globbed
from .test_invariant import fingerprint

runner = CliRunner()
L1 = "model.regularizers.0.l1"


def test_seed_choice():
    assert choose_seeds(3, 4, None) == [3, 4, 5, 6]
    assert choose_seeds(1, None, "1,5,9") == [1, 5, 9]
    assert choose_seeds(7, None, None) == [7]
    with pytest.raises(ConfigError, match=r"must be an integer in \[1, 100000\]"):
        choose_seeds(1, 0, None)


@pytest.mark.parametrize("args, message", [
    (["model.regularizers.0.placment=pre_activation"], "unknown key; did you mean 'placement'"),
    ([f"{L1}=-1,1e-4"], "model.regularizers.0.l1: must be >= 0"),
    (["model.regularizers.0.placement=inside"], "must be one of pre_activation"),
    ([f"{L1}=logspace(-6,-1)"], "logspace takes"),
    (["--repeats", "0"], "--repeats: must be an integer in [1, 100000]"),
])
def test_bad_sweep_input_exits_2_and_trains_nothing(tmp_path, args, message):
    result = runner.invoke(app, ["sweep", str(CONFIGS / "l1_pre_relu.yaml"), *args,
                                 "--runs-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line
    assert not list(tmp_path.rglob("metrics.json"))


SWEEP = ["sweep", str(CONFIGS / "l1_pre_relu.yaml"), f"{L1}=1e-4,1e-3",
         "model.regularizers.0.placement=pre_activation,post_activation",
         "--set", "train.epochs=60", "--repeats", "2", "--chunk", "2", "--no-run-figures",
         "--quiet"]
# 4 batches of 4 lanes: on one worker they finish one after the other, so a kill after the
# first is written lands mid-sweep. The straight run uses two workers: same bytes.
KILLED = [*SWEEP[:3], "model.regularizers.0.placement=pre_activation,post_activation",
          "--set", "train.epochs=2000", "--repeats", "4", "--no-run-figures", "--quiet"]


def sweep_cli(runs_dir, *extra):
    return [sys.executable, "-m", "circlereg.cli", *KILLED, "--runs-dir", str(runs_dir), *extra]


def test_sweep_writes_summary_plots_and_sub_runs(tmp_path):
    result = runner.invoke(app, SWEEP[:-1] + ["--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "l1_pre_relu-sweep").iterdir()
    rows = read_summary(folder / "summary.csv")
    assert [r[L1] for r in rows] == ["0.0001", "0.0001", "0.001", "0.001"]
    assert all(r["n"] == "2" for r in rows)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["runs_finished"] == 8
    assert summary["points"][0]["point"] == "p000"
    assert all(row["n_missing"] == "0" for row in rows)
    assert {p.name for p in folder.glob("*.png")} == {f"accuracy_vs_{L1}.png", "curves.png"}
    report = (folder / "report.md").read_text()
    assert "![curves](curves.png)" in report and "| p001 | 0.0001 | post_activation |" in report
    sub_run = folder / "p003" / "seed_2"
    assert {p.name for p in sub_run.iterdir()} == {
        "config.yaml", "metrics.json", "history.csv", "environment.json", "model.keras"}
    for row in rows:
        assert float(row["test_accuracy_min"]) <= float(row["test_accuracy_mean"]) \
            <= float(row["test_accuracy_max"])
    # stdout: a table (header once, columns aligned) of the summary's rows, then the folder
    *table, last = result.stdout.splitlines()
    assert last == f"sweep: {folder}"
    assert table[0].split() == ["point", "l1", "placement", "n", "train", "(mean", "±", "sd)",
                                "test", "(mean", "±", "sd)", "vs", "p000", "[95%", "CI]", "p",
                                "(Holm)", "verdict"]
    table, note = table[:len(rows) + 1], " ".join(table[len(rows) + 1:])
    assert note.startswith("vs p000: test accuracy minus the reference's") and "Holm" in note
    assert len({line.index("±") for line in table[1:]}) == 1
    for line, row in zip(table[1:], rows, strict=True):
        point, l1, placement, n, train, _, _, test, _, test_std, *judged = line.split()
        # 2 seeds are too few for a verdict; the reference says it is one
        assert " ".join(judged[3:] if judged != ["reference"] else judged) == \
            ("reference" if point == "p000" else "- too few shared seeds")
        assert (point, float(l1), placement, n) == (row["point"], float(row[L1]),
                                                    row["model.regularizers.0.placement"], "2")
        assert (train, test, test_std) == (f"{float(row['train_accuracy_mean']):.3f}",
                                           f"{float(row['test_accuracy_mean']):.3f}",
                                           f"{float(row['test_accuracy_std']):.3f}")
    # Sub-runs of one model shape share a probe model; each model.keras keeps its own strength.
    import keras

    import circlereg.engine.regularizers  # noqa: F401  (registers Penalty for loading)
    for point, l1 in (("p000", 1e-4), ("p002", 1e-3)):
        model = keras.saving.load_model(folder / point / "seed_2" / "model.keras")
        (penalty,) = [layer.activity_regularizer for layer in model.layers
                      if layer.activity_regularizer is not None]
        assert penalty.get_config()["l1"] == pytest.approx(l1)


@pytest.mark.slow
def test_sweep_killed_then_resumed_matches_a_straight_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(sweep_cli(straight), check=True, cwd=ROOT, capture_output=True)
    process = subprocess.Popen(sweep_cli(resumed, "--workers", "1"), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not globbed(resumed, "seed_*/metrics.json") and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = list(resumed.rglob("seed_*/metrics.json"))
    assert 0 < len(finished) < 16, "the kill must land mid-sweep"
    assert not list(resumed.rglob(".partial-*/metrics.json"))
    subprocess.run(sweep_cli(resumed, "--resume"), check=True, cwd=ROOT, capture_output=True)
    (a,) = (straight / "l1_pre_relu-sweep").iterdir()
    (b,) = (resumed / "l1_pre_relu-sweep").iterdir()
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    assert len(list(b.rglob("seed_*/metrics.json"))) == 16
    for run in a.glob("p*/seed_*"):  # the invariant: every sub-run, byte for byte
        assert fingerprint(run) == fingerprint(b / run.parent.name / run.name)


@pytest.mark.slow
def test_ctrl_c_mid_sweep_with_run_figures_exits_130_keeping_only_whole_runs(tmp_path):
    """The console path (cli.main) with two worker processes training and writing run
    folders, figures included: Ctrl-C exits 130 with one line, every folder there is
    complete, no worker process outlives it, and --resume finishes the sweep."""
    args = [a for a in KILLED if a != "--no-run-figures"]
    command = [sys.executable, "-m", "circlereg.cli", *args, "--runs-dir", str(tmp_path),
               "--workers", "2"]
    # Ctrl-C acts as in a terminal even when these tests run as a background job, which a
    # non-interactive shell starts with SIGINT ignored (and its children inherit that).
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not globbed(tmp_path, "seed_*/metrics.json") and time.time() < deadline:
        time.sleep(0.05)
    children = _children(process.pid)
    assert len(children) == 2, "the worker processes are running"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err, len(list(tmp_path.rglob("seed_*"))))
    assert err.strip().splitlines()[-1].startswith("error: interrupted; finished runs are kept")
    runs = list(tmp_path.rglob("seed_*"))
    assert 0 < len(runs) < 16, "the interrupt must land mid-sweep"
    assert all(run_state(run) is None for run in runs)
    assert not list(tmp_path.rglob(".partial-*"))
    time.sleep(1)
    assert not [child for child in children if _state(child) not in (None, "Z")]
    subprocess.run([*command, "--resume"], check=True, cwd=ROOT, capture_output=True)
    assert len(list(tmp_path.rglob("seed_*/decision_boundary.png"))) == 16


def _state(pid: int) -> str | None:
    """A process's state letter from /proc (Z: a zombie), None once it is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found


def test_run_repeats_summarises_the_seeds(tmp_path):
    result = runner.invoke(app, ["run", str(CONFIGS / "baseline.yaml"), "--repeats", "3",
                                 "--set", "train.epochs=60", "--runs-dir", str(tmp_path),
                                 "--quiet", "--no-run-figures"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    (row,) = read_summary(folder / "summary.csv")
    assert row["n"] == "3"
    assert sorted(p.name for p in (folder / "p000").iterdir()) == ["seed_1", "seed_2", "seed_3"]
