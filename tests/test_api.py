"""The Python API (circlereg/api.py) as a notebook drives it: frames that match the files,
training in the calling process (TensorFlow loaded once, programs traced once), the same
bytes as worker processes, and exceptions that carry the command line's error line."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import circlereg
from circlereg.cli import app
from circlereg.config import ConfigError

from .conftest import CONFIGS, ROOT
from .test_workers import comparable

CONFIG = str(CONFIGS / "l1_pre_relu.yaml")
SHORT = {"train.epochs": 20}


def test_a_notebook_session_gets_frames_that_match_the_files(tmp_path):
    swept = circlereg.sweep(CONFIG, {"model.regularizers.0.l1": [1e-4, 1e-3]}, set=SHORT,
                            seeds=[3, 5], runs_dir=tmp_path, figures=False)
    assert list(swept[["point", "model.regularizers.0.l1", "seed"]].itertuples(index=False,
                                                                                name=None)) \
        == [("p000", 1e-4, 3), ("p000", 1e-4, 5), ("p001", 1e-3, 3), ("p001", 1e-3, 5)]
    assert set(swept.kind) == {"sweep"} and swept.collection.nunique() == 1
    alone = circlereg.run(CONFIG, set=SHORT, seed=3, runs_dir=tmp_path, figures=False)
    assert (alone.kind.tolist(), alone.seed.tolist(), alone.point.tolist()) == (["run"], [3],
                                                                               [None])
    # l1_pre_relu's own l1 is 1e-4: the lone run is the sweep's p000 seed 3, reused
    assert (Path(alone.folder[0]) / "reused.json").is_file()
    assert alone.test_accuracy[0] == swept.test_accuracy[0]

    every = circlereg.runs(tmp_path)
    files = sorted(tmp_path.rglob("metrics.json"))
    assert len(every) == len(files) == 5
    assert sorted(every.folder) == sorted(str(f.parent) for f in files)
    for row in every.itertuples():
        metrics = json.loads((Path(row.folder) / "metrics.json").read_text())
        for key in ("train_accuracy", "test_accuracy", "gap", "train_loss", "test_loss",
                    "epochs", "diverged"):
            assert getattr(row, key) == metrics[key], (row.folder, key)
        assert row.seed == metrics["seed"]
        assert every.loc[row.Index, "hidden_layers.0.zero_fraction"] \
            == metrics["hidden_layers"][0]["zero_fraction"]

    curves = circlereg.history(every.iloc[0])
    assert curves.index.tolist() == list(range(1, 21))
    assert curves.val_accuracy.iloc[-1] == pytest.approx(every.test_accuracy[0], abs=1e-6)
    long = circlereg.history(swept)
    assert len(long) == 4 * 20
    assert list(long.columns[:5]) == ["collection", "kind", "point", "seed",
                                      "model.regularizers.0.l1"]


@pytest.mark.parametrize("call, command", [
    (lambda runs: circlereg.run("l1_pre_relu", set="train.epoch=5", runs_dir=runs),
     ["run", "l1_pre_relu", "--set", "train.epoch=5"]),
    (lambda runs: circlereg.run(CONFIG, seeds="1,x", runs_dir=runs),
     ["run", CONFIG, "--seeds", "1,x"]),
    (lambda runs: circlereg.sweep("l1_pre_relu", "model.regularizers.0.l1=lin(1,2)",
                                  runs_dir=runs),
     ["sweep", "l1_pre_relu", "model.regularizers.0.l1=lin(1,2)"]),
    (lambda runs: circlereg.sweep(runs_dir=runs), ["sweep"]),
    (lambda runs: circlereg.compare(["baseline", "no_such_config"], runs_dir=runs),
     ["compare", "baseline", "no_such_config"]),
])
def test_bad_input_raises_the_command_lines_error_and_trains_nothing(tmp_path, call, command):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError) as raised:
        call(runs)
    result = CliRunner().invoke(app, [*command, "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {raised.value}"
    assert not list(runs.rglob("metrics.json"))


def test_runs_of_a_missing_folder_and_history_of_a_non_run_raise(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        circlereg.runs(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="no history.csv"):
        circlereg.history(tmp_path)
    with pytest.raises(ConfigError, match="workers: must be an integer >= 0"):
        circlereg.run(CONFIG, workers=-1, runs_dir=tmp_path)


def test_import_help_and_validation_load_no_pandas_nor_tensorflow():
    code = textwrap.dedent("""
        import sys
        from typer.testing import CliRunner
        import circlereg
        from circlereg.cli import app
        assert CliRunner().invoke(app, ["--help"]).exit_code == 0
        assert CliRunner().invoke(app, ["validate", "l1_pre_relu"]).exit_code == 0
        assert callable(circlereg.run) and callable(circlereg.sweep)
        assert circlereg.sweep.run_sweep and circlereg.run.run_one  # still the modules
        print(sorted({"pandas", "tensorflow", "matplotlib"} & set(sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


TWICE = """
import json, sys
import circlereg

runs_dir, workers_dir = sys.argv[1:]
loaded, started = [], []  # imports of TensorFlow; Python processes started (not git's)
sys.addaudithook(lambda event, args: loaded.append(args[0]) if event == "import"
                 and args[0] == "tensorflow" else started.append(args[0]) if event
                 == "subprocess.Popen" and args[0] == sys.executable else None)
settings = {"train.epochs": 20}
first = circlereg.run("l1_pre_relu", set=settings, seed=3, runs_dir=runs_dir)
assert "tensorflow" in sys.modules
import circlereg.engine.train
traced = []
build = circlereg.engine.train.LaneProgram.__init__
circlereg.engine.train.LaneProgram.__init__ = lambda *a, **k: traced.append(1) or build(*a, **k)
second = circlereg.run("l1_pre_relu", set=settings, seed=4, runs_dir=runs_dir, figures=False)
found = {"tensorflow_loads": len(loaded), "processes": len(started),
         "traced_again": len(traced), "rows": [len(first), len(second)],
         "seeds": [int(first.seed[0]), int(second.seed[0])]}
there = circlereg.run("l1_pre_relu", set=settings, seed=3, runs_dir=workers_dir, workers=1)
print(json.dumps({**found, "here": first.folder[0], "there": there.folder[0],
                  "processes_with_workers": len(started)}))
"""


@pytest.mark.slow
def test_a_notebook_loads_tensorflow_once_and_workers_write_the_same_bytes(tmp_path):
    """In a fresh interpreter, as a notebook starts: two runs of one model shape load
    TensorFlow once, in this process (no worker process is started), and trace its program
    once. The same replica trained on a worker process (workers=1) writes the same files,
    figures included (wall times and how it ran aside)."""
    done = subprocess.run([sys.executable, "-c", TWICE, str(tmp_path / "here"),
                           str(tmp_path / "there")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    here, there = Path(found.pop("here")), Path(found.pop("there"))
    assert found == {"tensorflow_loads": 1, "processes": 0, "traced_again": 0,
                     "rows": [1, 1], "seeds": [3, 4], "processes_with_workers": 1}
    assert [json.loads((f / "environment.json").read_text())["execution"]["backend"]
            for f in (here, there)] == ["this process", "local"]
    files = sorted(p.name for p in here.iterdir() if p.is_file())
    assert sorted(p.name for p in there.iterdir() if p.is_file()) == files
    assert {"history.csv", "metrics.json", "config.yaml", "decision_boundary.png"} <= set(files)
    for name in files:
        assert comparable(here / name) == comparable(there / name), name


@pytest.mark.parametrize("pyplot_first", [True, False])
def test_training_here_keeps_the_callers_matplotlib_backend(pyplot_first):
    """plots.py selects Agg for the command line; a notebook's backend (here svg, as a stand-in
    for inline) stays its own, whether it drew before or after circlereg's figures load."""
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        if {pyplot_first}:
            import matplotlib.pyplot
        from circlereg import api
        api._where(0, "local")
        import matplotlib.pyplot as plt
        print("circlereg.plots" in sys.modules, matplotlib.get_backend(),
              type(plt.figure().canvas).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "svg", "FigureCanvasSVG"]


def test_a_diverged_run_is_a_row_and_a_warning_not_an_exit(tmp_path, capsys):
    """The command exits 3; the API returns the run, diverged, and warns on stderr."""
    frame = circlereg.run(CONFIGS / "baseline.yaml", runs_dir=tmp_path, figures=False, set=[
        "train.epochs=20", "data.n_samples=40", "data.n_train=12", "model.hidden=[8]",
        "model.regularizers.0.target=kernel", "train.optimizer=sgd",
        "train.learning_rate=1e30"])
    assert frame.diverged.tolist() == [True] and frame.train_loss.isna().all()
    assert "warning: the run diverged" in capsys.readouterr().err
