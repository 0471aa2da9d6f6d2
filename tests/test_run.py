"""What `circlereg run` writes, and how it fails on bad input."""

import csv
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from circlereg import rundir
from circlereg.cli import app

from .conftest import CONFIGS

RUN_FILES = {"config.yaml", "metrics.json", "history.csv", "accuracy.png", "loss.png",
             "decision_boundary.png", "environment.json", "model.keras", "manifest.json"}
runner = CliRunner()


@pytest.mark.slow
def test_run_directory_holds_every_file_parseable(study_run):
    path, _ = study_run
    assert {p.name for p in path.iterdir()} == RUN_FILES
    assert path.parent.name == "l1_pre_relu"
    config = yaml.safe_load((path / "config.yaml").read_text())
    assert config["model"]["regularizers"][0]["placement"] == "pre_activation"
    assert path.name.endswith(rundir.config_hash(config))
    with open(path / "history.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(rundir.HISTORY_COLUMNS)
    assert len(rows) == 4001 and rows[-1][0] == "4000"
    metrics = json.loads((path / "metrics.json").read_text())
    layer = metrics["hidden_layers"][0]
    assert 0 < layer["zero_fraction"] < 1 and layer["mean_activation"] > 0
    assert metrics["gap"] == pytest.approx(metrics["train_accuracy"] - metrics["test_accuracy"])
    history = rundir.read_history(path / "history.csv")
    assert metrics["best_test_accuracy"] == pytest.approx(history["val_accuracy"].max())
    assert history["val_accuracy"][metrics["best_test_epoch"] - 1] == \
        pytest.approx(metrics["best_test_accuracy"])
    assert metrics["test_accuracy"] == pytest.approx(history["val_accuracy"][-1])
    env = json.loads((path / "environment.json").read_text())
    assert env["keras_activity_penalty"] in ("sum", "mean") and env["tensorflow"]
    assert env["keras_seeded_fit_shuffle"] in ("once", "each_epoch")
    for png in ("accuracy.png", "loss.png", "decision_boundary.png"):
        assert matplotlib.image.imread(path / png).shape[0] > 100


@pytest.mark.slow
def test_saved_model_reloads_and_scores_as_reported(study_run):
    import keras

    import circlereg.engine.regularizers  # noqa: F401  (registers Penalty for deserialisation)
    from circlereg.data import load_split

    path, _ = study_run
    model = keras.saving.load_model(path / "model.keras")
    config = yaml.safe_load((path / "config.yaml").read_text())
    split = load_split(config["data"])
    predicted = np.asarray(model(split.test_x)) > 0.5
    accuracy = np.mean(predicted == split.test_y.astype(bool))
    metrics = json.loads((path / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_same_config_and_seed_give_byte_identical_history(tmp_path):
    for _ in range(2):
        assert run("run", CONFIGS / "l1_pre_relu.yaml", "--set", "train.epochs=60",
                   "--seed", 4, "--runs-dir", tmp_path, "--retrain").exit_code == 0
    first, second = sorted((tmp_path / "l1_pre_relu").iterdir())
    assert (first / "history.csv").read_bytes() == (second / "history.csv").read_bytes()
    assert yaml.safe_load((first / "config.yaml").read_text())["train"]["seed"] == 4


def test_fit_engine_runs_from_the_cli(tmp_path):
    result = run("run", CONFIGS / "baseline.yaml", "--set", "train.engine=fit",
                 "--set", "train.epochs=5", "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "baseline").iterdir()
    assert len(rundir.read_history(path / "history.csv")["loss"]) == 5


def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, args, expected", [
    ("train:\n  epochs: [", [], "YAML syntax error at line"),
    ("train:\n  epoch: 5\n", [], "train.epoch: unknown key; did you mean 'epochs'?"),
    ("train:\n  epochs: many\n", [], "train.epochs: must be an integer"),
    ("train:\n  epochs: 0\n", [], "train.epochs: must be an integer in [1, 1000000]"),
    ("model:\n  regularizers:\n    - {target: activity, l1: -1}\n", [],
     "model.regularizers.0.l1: must be >= 0"),
    ("model:\n  regularizers:\n    - {target: kernel, placement: pre_activation}\n", [],
     "model.regularizers.0.placement: applies to activity regularizers only"),
    ("data:\n  n_train: 100\n", [], "data.n_train: must be < data.n_samples (100)"),
    ("model:\n  regularizers:\n    - {target: kernel, layer: 3}\n", [],
     "model.regularizers.0.layer: must be a hidden layer index in [0, 0]"),
    ("model:\n  regularizers:\n    - {target: kernel, kind: nopkg.mod:fn}\n", [],
     "model.regularizers.0.kind: cannot import module 'nopkg.mod'"),
    ("{}\n", ["--set", "model.regularizers.0.kind=keras.ops:abs",
              "--set", "model.regularizers.0.target=kernel"],
     "model.regularizers.0.kind: keras.ops:abs must return a scalar"),
])
def test_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, text, args, expected):
    config = write(tmp_path, text)
    runs = tmp_path / "runs"
    result = run("run", config, *args, "--runs-dir", runs)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(f"error: {config}: ") and expected in lines[-1]
    assert "Traceback" not in result.output
    assert not runs.exists() or not any(runs.rglob("*.csv"))


def test_negative_seed(tmp_path):
    result = run("run", CONFIGS / "baseline.yaml", "--seed", -3, "--runs-dir", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --seed: train.seed: must be an integer in "
                                     "[0, 2147483647], got -3")


def test_missing_config_file(tmp_path):
    result = run("run", tmp_path / "nope.yaml", "--runs-dir", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {tmp_path / 'nope.yaml'}: no such config file, "
                                     "nor a shipped config; shipped: baseline, batchnorm, "
                                     "custom_penalties, dropout, early_stopping, gaussian_noise, "
                                     "l1_kernel, l1_l2_activity, l1_post_relu, l1_pre_relu, "
                                     "l2_kernel, l2_kernel_deep, max_norm")


def test_interrupted_run_leaves_no_folder(tmp_path, monkeypatch):
    from circlereg import run_plots

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_plots, "decision_boundary", interrupt)  # mid-way through writing
    result = run("run", CONFIGS / "baseline.yaml", "--set", "train.epochs=60",
                 "--runs-dir", tmp_path)
    assert result.exit_code == 130
    assert "interrupted; no run directory was written" in result.output
    assert list((tmp_path / "baseline").iterdir()) == []


def test_validate_reports_each_config(tmp_path):
    bad = write(tmp_path, "trian: {}\n")
    result = run("validate", CONFIGS / "baseline.yaml", CONFIGS / "l1_pre_relu.yaml", bad)
    assert result.exit_code == 2
    assert f"ok: {CONFIGS / 'baseline.yaml'} (baseline)" in result.output
    assert f"error: {bad}: trian: unknown key; did you mean 'train'?" in result.output


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["--version"], ["configs"],
                                  ["validate", str(CONFIGS / "l1_pre_relu.yaml")]])
def test_help_and_validate_do_not_import_tensorflow(argv):
    code = ("import sys\nfrom circlereg.cli import app\n"
            f"try:\n    app({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_version():
    from circlereg import __version__

    assert run("--version").output.strip() == f"circlereg {__version__}"


def test_stderr_carries_no_library_start_up_chatter(tmp_path):
    """A real process: TensorFlow's absl/oneDNN/CUDA start-up lines never reach stderr, nor
    XLA's false alarms when the second call loads every program (the trainer's and the
    decision boundary's) from the compile cache."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), CIRCLEREG_COMPILE_CACHE="1")
    for call in ("first", "second"):
        done = subprocess.run([sys.executable, "-m", "circlereg.cli", "run",
                               str(CONFIGS / "baseline.yaml"), "--set", "train.epochs=3",
                               "--quiet", "--runs-dir", str(tmp_path / call)],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines() == [
            "baseline: training 3 epochs, seed 1, engine compiled"], call


@pytest.mark.parametrize("line, chatter", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
     True),
    ("I0000 00:00:1795419521.443386    3620 port.cc:153] oneDNN custom operations are on.", True),
    ("E0000 00:00:1795418399.160035   21850 cuda_platform.cc:52] failed call to cuInit: "
     "INTERNAL: CUDA error", True),
    ("E0000 00:00:1795418399.160035   21850 xla_compiler.cc:12] a real failure", False),
    ("Traceback (most recent call last):", False),
])
def test_only_known_start_up_lines_are_dropped(line, chatter):
    from circlereg.engine.backend import CHATTER

    assert bool(CHATTER.fullmatch(line)) == chatter


@pytest.mark.slow
def test_a_million_points_train_an_epoch_in_minibatches(tmp_path):
    """The largest data set the schema takes: 500000 training points in 15625 minibatches
    and 500000 test points, one epoch, every file written (the figure shows a sample)."""
    result = runner.invoke(app, [
        "run", str(CONFIGS / "baseline.yaml"), "--set", "data.n_samples=1000000",
        "--set", "data.n_train=500000", "--set", "train.epochs=1", "--set",
        "model.hidden=[16]", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "baseline").iterdir()
    assert {p.name for p in path.iterdir()} == RUN_FILES
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_accuracy"] > 0.7
    # accuracies are counts over the 500000 points of each set
    hits = metrics["test_accuracy"] * 500000
    assert abs(hits - round(hits)) < 0.1
    assert matplotlib.image.imread(path / "decision_boundary.png").shape[:2] == (500, 640)
