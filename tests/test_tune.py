"""`circlereg tune`: the search space, a small tune end to end, failed trials, refusals, and
resuming after an interruption (Ctrl-C in process; SIGKILL of a subprocess, slow)."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import ConfigError
from circlereg.options import Searching, Work
from circlereg.space import Dimension, parse_dimension, parse_space

from .conftest import CONFIGS, ROOT, globbed

pytest.importorskip("optuna")
runner = CliRunner()
L1 = "model.regularizers.0.l1"
RATE = "model.dropout.0.rate"
# Tiny data and a tiny net: every test here shares these structures' compiled trainers.
TINY = ["--set", "data.n_samples=40", "--set", "data.n_train=12", "--set", "data.n_validation=20",
        "--set", "train.epochs=20", "--set", "model.hidden=[8]", "--quiet"]
SPACE = [f"{L1}=loguniform(1e-5,1e-2)", f"{RATE}=uniform(0,0.5)"]


def tune(runs_dir, *args):
    return runner.invoke(app, ["tune", str(CONFIGS / "l1_pre_relu.yaml"), *map(str, args),
                               *TINY, "--runs-dir", str(runs_dir)])


def read_trials(folder):
    import csv

    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("text, expected", [
    (f"{L1}=loguniform(1e-6,1e-2)", Dimension(L1, "float", 1e-6, 1e-2, log=True)),
    (f"{RATE}=uniform(0,0.6)", Dimension(RATE, "float", 0.0, 0.6)),
    (f"{RATE}=interval(0.1,0.5)", Dimension(RATE, "float", 0.1, 0.5)),
    ("train.epochs=int(10,40)", Dimension("train.epochs", "int", 10, 40, step=1)),
    ("train.epochs=intlog(10,1000)", Dimension("train.epochs", "int", 10, 1000, log=True,
                                               step=1)),
    ("train.epochs=range(10,40,10)", Dimension("train.epochs", "int", 10, 30, step=10)),
    ("model.hidden=choice([500],[100,100])", Dimension("model.hidden", "choice",
                                                       values=([500], [100, 100]))),
    ("model.hidden=[8,4],[16]", Dimension("model.hidden", "choice", values=([8, 4], [16]))),
    ("train.optimizer=adam", "train.optimizer=adam"),  # one value: fixed
])
def test_space_grammar(text, expected):
    assert parse_dimension(text) == expected


@pytest.mark.parametrize("texts, message", [
    ([f"{L1}=uniform(1)"], "uniform takes two numbers"),
    ([f"{L1}=loguniform(0,1)"], "loguniform needs low > 0"),
    ([f"{L1}=normal(0,1)"], "unknown distribution 'normal'"),
    (["train.epochs=int(1.5,3)"], "int takes two integers"),
    ([f"{L1}=uniform(0,[1)"], "cannot parse"),
    (["train.seed=int(1,9)"], "the seeds are set with --seed"),
    ([f"{L1}=uniform(0,1)", f"{L1}=1e-3"], "each key may appear once"),
    (["train.optimizer=adam"], "give at least one searched key"),
    (["no_equals"], "must look like key.path=DISTRIBUTION"),
])
def test_bad_space(texts, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_space(texts)


@pytest.mark.parametrize("args, message", [
    ([f"{RATE}=uniform(0,1)"], f"{RATE}: must be in [0, 1), got 1"),
    ([f"{L1}=uniform(0,1)", "--objective", "accuracy"], "--objective: must be one of"),
    ([f"{L1}=uniform(0,1)", "--sampler", "grid"], "grid needs choice(...)"),
    ([f"{L1}=uniform(0,1)", "--trials", "0"], "--trials: must be an integer in [1, 10000]"),
    ([f"{L1}=uniform(0,1)", "--objective", "test_loss"],
     "test_loss is not measured on held-out test points"),
])
def test_bad_tune_input_exits_2_and_trains_nothing(tmp_path, args, message):
    result = tune(tmp_path, *args)
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line
    assert not list(tmp_path.rglob("metrics.json"))


def test_without_optuna_one_line_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    result = tune(tmp_path, *SPACE)
    assert result.exit_code == 2
    assert result.output.strip() == ("error: tune: needs Optuna, an optional extra: "
                                     "pip install 'circlereg[tune]'")


@pytest.fixture(scope="module")
def small_tune(tmp_path_factory):
    """8 trials x 2 seeds on validation points kept apart from the test points."""
    runs = tmp_path_factory.mktemp("tune")
    result = tune(runs, *SPACE, "--trials", 8, "--repeats", 2)
    assert result.exit_code == 0, result.output
    (folder,) = (runs / "l1_pre_relu-tune").iterdir()
    return runs, folder, result.output


def test_small_tune_writes_trials_best_config_and_plots(small_tune, tmp_path):
    runs, folder, output = small_tune
    rows = read_trials(folder)
    assert [r["trial"] for r in rows] == [f"t{n:04d}" for n in range(8)]
    assert all(r["state"] == "COMPLETE" and r["n"] == "2" for r in rows)
    assert len({r[L1] for r in rows}) == 8  # eight different draws
    assert {p.name for p in folder.glob("*.png")} == {
        "optimization_history.png", "parallel_coordinate.png", "param_importances.png"}
    # A trial's objective is the mean over its seeds of what its sub-runs recorded.
    row = rows[3]
    metrics = [json.loads((folder / "t0003" / f"seed_{s}" / "metrics.json").read_text())
               for s in (1, 2)]
    assert float(row["val_accuracy"]) == pytest.approx(
        sum(m["val_accuracy"] for m in metrics) / 2)
    # Validation points apart: val_* are on them, test_accuracy on the held-out test points.
    assert {"val_loss", "val_accuracy", "test_accuracy", "best_val_epoch"} <= set(metrics[0])
    report = (folder / "tune.md").read_text()
    assert "measured on the 20 validation points" in report
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert f"## Best trial: {best['trial']}" in report
    assert (f"test accuracy on the 28 test points, which the search never saw: "
            f"{float(best['test_accuracy_mean']):.4f}") in report
    assert "tunes on the test set" not in output
    # best.yaml is the best trial's resolved config, and `circlereg run` trains it.
    config = yaml.safe_load((folder / "best.yaml").read_text())
    trained = yaml.safe_load((folder / best["trial"] / "seed_1" / "config.yaml").read_text())
    assert config == trained
    result = runner.invoke(app, ["run", str(folder / "best.yaml"), "--runs-dir", str(tmp_path),
                                 "--quiet", "--no-run-figures"])
    assert result.exit_code == 0, result.output
    (again,) = (tmp_path / "l1_pre_relu").iterdir()
    assert json.loads((again / "metrics.json").read_text())["val_accuracy"] == \
        json.loads((folder / best["trial"] / "seed_1" / "metrics.json").read_text())[
            "val_accuracy"]


def test_the_same_tune_draws_the_same_trials(small_tune, tmp_path):
    """The sampler is seeded and a trial's numbers depend on its config and seeds alone."""
    runs, folder, _ = small_tune
    result = tune(tmp_path, *SPACE, "--trials", 8, "--repeats", 2)
    assert result.exit_code == 0, result.output
    (again,) = (tmp_path / "l1_pre_relu-tune").iterdir()
    assert (again / "trials.csv").read_bytes() == (folder / "trials.csv").read_bytes()
    listed = runner.invoke(app, ["list", str(runs)]).output.splitlines()
    line = next(line for line in listed if str(folder) in line)
    assert line.split()[:3] == ["complete", "tune", "16/16"]
    assert line.endswith(f"{L1} loguniform(1e-05, 0.01), {RATE} uniform(0, 0.5), seeds 1-2")


def test_resume_with_another_space_refuses_in_one_line(small_tune):
    runs, folder, _ = small_tune
    result = tune(runs, f"{L1}=loguniform(1e-5,1e-1)", SPACE[1], "--trials", 8, "--repeats",
                  2, "--resume")
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "trained other work" in line and "loguniform(1e-05, 0.1)" in line
    assert len(list(runs.rglob("metrics.json"))) == 16


def test_diverged_trial_is_failed_and_the_search_goes_on(tmp_path):
    result = tune(tmp_path, f"{L1}=choice(1e-4,1e30,1e-3)", f"{RATE}=0.1", "--sampler", "grid",
                  "--trials", 3, "--repeats", 2, "--objective", "test_accuracy")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "l1_pre_relu-tune").iterdir()
    states = {float(r[L1]): (r["state"], r["n_diverged"]) for r in read_trials(folder)}
    assert states == {1e-4: ("COMPLETE", "0"), 1e30: ("FAIL", "2"), 1e-3: ("COMPLETE", "0")}
    assert "1 of 3 trials failed" in result.output
    # An objective read on the test points: said on stderr and in the report.
    assert "the objective test_accuracy is measured on the 28 test points: this tunes on " \
        "the test set" in result.output
    assert "none were kept from it" in (folder / "tune.md").read_text()


def mtimes(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("metrics.json")}


def test_interrupted_tune_resumes_without_training_a_trial_twice(tmp_path, programs):
    """Ctrl-C in the second batch, after two of its three trials are written: --resume
    finishes the trials asked before it with the values they were drawn with, training only
    the third, then asks for no more than were asked for."""
    from circlereg.config import load
    from circlereg.executor import Executor
    from circlereg.tune import run_tune

    config = CONFIGS / "l1_pre_relu.yaml"
    sets = [t for t in TINY if t not in ("--set", "--quiet")]
    work = Work(runs_dir=tmp_path, overrides=tuple(sets), repeats=2, figures=False)
    args = (config, SPACE, Searching(trials=6, batch=3))
    ticks = []

    def progress(replica_epochs):
        """Batch 1 is 6 replicas (2 lane batches), then batch 2's first lane batch (2 trials)
        trains; on its second lane batch, wait for the first to be written, then Ctrl-C."""
        ticks.append(replica_epochs)
        if sum(ticks) > (6 + 4) * 20:
            deadline = time.time() + 60
            while len(globbed(tmp_path, "metrics.json")) < 10 and time.time() < deadline:
                time.sleep(0.01)
            raise KeyboardInterrupt

    with Executor(workers=1, programs=programs) as executor:  # lane batches one after the other
        with pytest.raises(KeyboardInterrupt):
            run_tune(*args, work, executor=executor, progress=progress)
        (folder,) = (tmp_path / "l1_pre_relu-tune").iterdir()
        before = mtimes(folder)
        states = [r["state"] for r in read_trials(folder)]
        assert len(before) == 10 and states == ["COMPLETE"] * 3 + ["RUNNING"] * 3
        assert "incomplete" in (folder / "tune.md").read_text()
        found = run_tune(*args, replace(work, resume=True), executor=executor)
    assert found.folder == folder
    rows = read_trials(folder)
    assert [r["trial"] for r in rows] == [f"t{n:04d}" for n in range(6)]
    assert all(r["state"] == "COMPLETE" for r in rows)
    after = mtimes(folder)
    assert len(after) == 12
    assert {k: after[k] for k in before} == before  # nothing finished was trained again
    for row in rows:  # each sub-run trained its trial's drawn values
        trained = load(folder / row["trial"] / "seed_2" / "config.yaml")
        assert trained["model"]["regularizers"][0]["l1"] == float(row[L1])


@pytest.mark.slow
def test_killed_tune_resumes_to_the_trials_asked(tmp_path):
    command = [sys.executable, "-m", "circlereg.cli", "tune", str(CONFIGS / "l1_pre_relu.yaml"),
               *SPACE, *TINY, "--set", "train.epochs=3000", "--trials", 8, "--repeats", 2,
               "--batch", 2, "--workers", 1, "--runs-dir", str(tmp_path)]
    command = list(map(str, command))
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(globbed(tmp_path, "t*/seed_*/metrics.json")) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (folder,) = (tmp_path / "l1_pre_relu-tune").iterdir()
    before = mtimes(folder)
    assert 0 < len(before) < 16, "the kill must land mid-tune"
    subprocess.run([*command, "--resume"], check=True, cwd=ROOT, capture_output=True)
    rows = read_trials(folder)
    assert [r["trial"] for r in rows] == [f"t{n:04d}" for n in range(8)]
    assert all(r["state"] == "COMPLETE" for r in rows)
    after = mtimes(folder)
    assert len(after) == 16 and {k: after[k] for k in before} == before
    assert not list(folder.rglob(".partial-*"))


def test_validation_split_leaves_training_alone_and_holds_the_test_points_out(tmp_path):
    """data.n_validation changes what training is evaluated on, not what it trains: the
    curves on the training points are the same bits, and the writer's held-out
    test_accuracy is the test accuracy of the same run without the split."""
    from circlereg.rundir import read_history

    runs = {}
    for n_validation in (0, 20):
        out = tmp_path / str(n_validation)
        args = [t.replace("n_validation=20", f"n_validation={n_validation}") for t in TINY]
        result = runner.invoke(app, ["run", str(CONFIGS / "l1_pre_relu.yaml"), *args, "--set",
                                     f"{RATE}=0.1", "--runs-dir", str(out)])
        assert result.exit_code == 0, result.output
        (runs[n_validation],) = (out / "l1_pre_relu").iterdir()
    plain, split = (json.loads((runs[n] / "metrics.json").read_text()) for n in (0, 20))
    assert split["test_accuracy"] == pytest.approx(plain["test_accuracy"], abs=1e-6)
    assert split["train_accuracy"] == plain["train_accuracy"]
    assert split["val_accuracy"] != plain["test_accuracy"] and "val_accuracy" not in plain
    curves = [read_history(runs[n] / "history.csv") for n in (0, 20)]
    assert (curves[0]["loss"] == curves[1]["loss"]).all()
    assert not (curves[0]["val_loss"] == curves[1]["val_loss"]).all()


def test_without_a_validation_split_every_config_resolves_as_before():
    """data.n_validation at its default is left out: configs, hashes and config.yaml files
    of every earlier run stay the same."""
    from circlereg.config import config_hash, resolve

    plain = resolve({})
    assert "n_validation" not in plain["data"]
    assert resolve({"data": {"n_validation": 0}}) == plain
    assert config_hash(plain) == "07e51508"  # the hash before the key existed (main a685699)
    assert resolve({"data": {"n_validation": 30}})["data"]["n_validation"] == 30


@pytest.mark.slow  # two command processes
def test_a_tune_interrupted_by_ctrl_c_and_resumed_draws_what_a_straight_one_draws(tmp_path):
    """SIGINT to the command after its first batch, then --resume: the resumed tune goes on
    with the sampler where it stopped (kept in study.db), so it draws the trials a tune run
    straight through draws, and trains no parameter set twice. (Before, a fresh sampler with
    the same seed drew the first trials' values again.)"""
    args = [str(CONFIGS / "l1_pre_relu.yaml"), f"{L1}=loguniform(1e-5,1e-2)", *TINY,
            "--set", "train.epochs=3000", "--trials", "6", "--batch", "2", "--workers", "1",
            "--sampler", "random"]
    command = [sys.executable, "-m", "circlereg.cli", "tune", *args]
    interrupted = tmp_path / "interrupted"
    # Ctrl-C acts as in a terminal even when the tests run as a background job, which a
    # non-interactive shell starts with SIGINT ignored (and its children inherit that).
    process = subprocess.Popen([*command, "--runs-dir", str(interrupted)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while len(globbed(interrupted, "t*/seed_*/metrics.json")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the tune must still be running to be interrupted"
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130, process.stderr.read()
    (folder,) = (interrupted / "l1_pre_relu-tune").iterdir()
    assert 2 <= len(list(folder.glob("t*/seed_1/metrics.json"))) < 6, "Ctrl-C mid-tune"
    resumed = subprocess.run([*command, "--runs-dir", str(interrupted), "--resume"], cwd=ROOT,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = runner.invoke(app, ["tune", *args, "--runs-dir", str(tmp_path / "straight")])
    assert straight.exit_code == 0, straight.output
    (other,) = (tmp_path / "straight" / "l1_pre_relu-tune").iterdir()
    values = [float(r[L1]) for r in read_trials(folder)]
    assert len(values) == 6 and len(set(values)) == 6  # no parameter set trained twice
    assert values == [float(r[L1]) for r in read_trials(other)]
