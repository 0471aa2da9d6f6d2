"""Input a hostile or careless user gives: each case ends in one line and exit 2, before any
training, with nothing written under --runs-dir (issue: nothing mixed, nothing lost)."""

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app

from .conftest import CONFIGS

runner = CliRunner()
BASELINE = str(CONFIGS / "baseline.yaml")


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def assert_refused(tmp_path, args, expected):
    runs = tmp_path / "runs"
    result = runner.invoke(app, [*map(str, args), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert len(lines[0]) < 400
    assert not runs.exists() or not any(runs.iterdir()), list(runs.rglob("*"))


@pytest.mark.parametrize("args, expected", [
    (["run", BASELINE, "--seed", 4294967296], "train.seed: must be an integer in [0, 2147483647]"),
    (["run", BASELINE, "--set", "train.epochs=1e12"], "train.epochs: must be an integer in"),
    (["run", BASELINE, "--set", "early_stopping.patience=1e40"],
     "early_stopping.patience: must be an integer in"),
    (["run", BASELINE, "--set", "data.n_samples=1e8"], "data.n_samples: must be an integer in"),
    (["run", BASELINE, "--set", "model.noise.0.stddev=2"],
     "model.noise.0.stddev: must be in [0, 1], got 2"),
    (["run", BASELINE, "--set", "train.epochs=2147483648"], "train.epochs: must be an integer"),
    (["run", BASELINE, "--set", "name=.."], "name: must be 1 to 100 letters"),
    (["run", BASELINE, "--set", "name=" + "x" * 300], "name: must be 1 to 100 letters"),
    (["sweep", BASELINE, "--name", "../../X", "--quiet"], "--name: must be 1 to 100 letters"),
    (["compare", BASELINE, BASELINE, "--name", "/abs/path", "--quiet"], "--name: must be"),
    (["run", BASELINE, "--seeds", "1,4294967296", "--quiet"],
     "--seeds: must be distinct integers in [0, 2147483647]"),
    (["run", BASELINE, "--seed", 2147483647, "--repeats", 2, "--quiet"],
     "--repeats: seeds 2147483647..2147483648 pass the largest seed"),
])
def test_values_the_engine_cannot_take(tmp_path, args, expected):
    assert_refused(tmp_path, args, expected)


def test_seed_in_the_file_is_bounded_too(tmp_path):
    config = write(tmp_path, "train:\n  seed: 99999999999\n")
    assert_refused(tmp_path, ["run", config], "train.seed: must be an integer in [0, 2147483647]")


@pytest.mark.parametrize("text, expected", [
    ("train:\n  epochs: 5\n  epochs: 6\n", "line 3, column 3: duplicate key 'epochs'"),
    ("train: {epochs: 5}\ntrain: {seed: 2}\n", "duplicate key 'train'"),
    ('a: &a ["x","x","x"]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n', "aliases (*name) are not supported"),
    (b"train:\n  epochs: \xff\xfe\n", "not readable YAML"),
])
def test_yaml_that_would_silently_win_or_explode(tmp_path, text, expected):
    assert_refused(tmp_path, ["run", write(tmp_path, text)], expected)


def test_a_config_file_named_dots_stays_inside_runs_dir(tmp_path):
    config = write(tmp_path, "train:\n  epochs: 2\n", name="...yaml")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", config, *SMALL, "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in runs.iterdir() if p.name != ".index.sqlite"] == ["config"]
    assert not (tmp_path / "config").exists()


def test_reproduce_spec_with_a_null_config_or_escaping_name(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"models": {"b": {"config": None}}}))
    assert_refused(tmp_path, ["reproduce", "--spec", spec], "models.b: must be a mapping with")
    spec.write_text(yaml.safe_dump({"name": "/../../x", "models": {"b": {"config": BASELINE}}}))
    assert_refused(tmp_path, ["reproduce", "--spec", spec], "name: must be 1 to 100 letters")


def test_penalties_that_return_a_string_or_fail_on_import(tmp_path, monkeypatch):
    (tmp_path / "bad_penalties.py").write_text(
        "def text(x):\n    return 'big'\n")
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('no GPU found')\n")
    monkeypatch.chdir(tmp_path)
    for kind, expected in (("bad_penalties:text", "must return a number"),
                           ("broken_module:fn", "cannot import module 'broken_module': "
                                                "RuntimeError: no GPU found")):
        assert_refused(tmp_path, ["run", BASELINE, "--set", "model.regularizers.0.target=kernel",
                                  "--set", f"model.regularizers.0.kind={kind}", "--repeats", 2,
                                  "--quiet"], expected)


def test_a_config_that_is_a_folder(tmp_path):
    assert_refused(tmp_path, ["run", tmp_path], "not a file; give a YAML config file")


def test_runs_dir_that_is_a_file_is_refused_before_training(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = runner.invoke(app, ["run", BASELINE, "--runs-dir", str(target / "sub")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: --runs-dir: {target} is not a folder"
    assert "training" not in result.output  # refused before the training notice


def test_a_million_point_grid_is_refused_at_once(tmp_path):
    axes = [f"model.regularizers.0.l1=linspace(0,1,{n})" for n in (1000,)] + \
        ["train.learning_rate=linspace(0.001,0.01,1000)"]
    assert_refused(tmp_path, ["sweep", BASELINE, *axes, "--quiet"],
                   "1000000 grid points; at most 10000")


# One small structure for every test here (a kernel L1 penalty whose strength sweeps vary),
# so they share one compiled graph.
SMALL = ["--set", "train.epochs=20", "--set", "data.n_samples=40", "--set", "data.n_train=12",
         "--set", "model.hidden=[8]", "--set", "model.regularizers.0.target=kernel",
         "--quiet", "--no-run-figures"]


def test_a_diverged_run_says_so_and_exits_3_with_strict_json(tmp_path):
    import json

    result = runner.invoke(app, ["run", BASELINE, *SMALL, "--set", "train.optimizer=sgd",
                                 "--set", "train.learning_rate=1e30", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "warning: the run diverged" in result.output
    (run,) = (tmp_path / "baseline").iterdir()
    text = (run / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = json.loads(text)
    assert metrics["diverged"] is True and metrics["train_loss"] is None


def sweep_args(runs, *extra):
    return ["sweep", BASELINE, "model.regularizers.0.l1=0.001,0.01", "--repeats", 2, *SMALL,
            "--runs-dir", runs, *extra]


def test_swept_seed_reaches_training(tmp_path):
    result = runner.invoke(app, ["sweep", BASELINE, "train.seed=1,2,3", *SMALL,
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    runs = [folder / f"p00{i}" / f"seed_{i + 1}" for i in range(3)]
    histories = {(run / "history.csv").read_bytes() for run in runs}
    assert len(histories) == 3
    assert [yaml.safe_load((r / "config.yaml").read_text())["train"]["seed"] for r in runs] \
        == [1, 2, 3]


def test_resume_refuses_other_work_and_names_what_changed(tmp_path):
    config = tmp_path / "edited.yaml"
    config.write_text("model:\n  regularizers:\n    - {target: kernel, l1: 0.0001}\n")
    args = ["sweep", str(config), "--repeats", 2, *SMALL, "--runs-dir", str(tmp_path / "runs")]
    assert runner.invoke(app, args).exit_code == 0
    config.write_text("model:\n  regularizers:\n    - {target: kernel, l1: 0.01}\n")
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "trained other work (p000 model.regularizers.0.l1: 0.0001 -> 0.01)" in line
    assert len(list((tmp_path / "runs" / "edited-sweep").iterdir())) == 1


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    result = runner.invoke(app, sweep_args(tmp_path, "--resume"))
    assert result.exit_code == 0, result.output
    assert "--resume: nothing to resume under" in result.output


def test_resume_retrains_damaged_runs_and_says_so(tmp_path):
    assert runner.invoke(app, sweep_args(tmp_path)).exit_code == 0
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    before = (folder / "summary.csv").read_bytes()
    history = (folder / "p001" / "seed_2" / "history.csv").read_bytes()
    (folder / "p000" / "seed_1" / "metrics.json").unlink()
    (folder / "p001" / "seed_2" / "metrics.json").write_text("{not json")
    result = runner.invoke(app, sweep_args(tmp_path, "--resume"))
    assert result.exit_code == 0, result.output
    assert "p000/seed_1: metrics.json is missing; training it again" in result.output
    assert "p001/seed_2: metrics.json is unreadable; training it again" in result.output
    assert (folder / "summary.csv").read_bytes() == before
    assert (folder / "p001" / "seed_2" / "history.csv").read_bytes() == history


def test_a_second_process_on_the_same_folder_refuses(tmp_path):
    import fcntl

    assert runner.invoke(app, sweep_args(tmp_path)).exit_code == 0
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    (folder / "p000" / "seed_1" / "metrics.json").unlink()
    with open(folder / ".lock", "a+") as lock:  # as a first process training into it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = runner.invoke(app, sweep_args(tmp_path, "--resume"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: {folder}: another circlereg process is training into this folder; "
        "wait for it to finish")
    assert not (folder / "p000" / "seed_1" / "metrics.json").exists()


def test_an_interrupted_sweep_says_it_is_incomplete(tmp_path, monkeypatch):
    import json

    from circlereg import executor
    from circlereg.executor import Executor

    real, cut = Executor.run, executor.make_jobs

    def interrupted(self, jobs, progress=None):
        for count, item in enumerate(real(self, jobs, progress)):
            if count == 1:  # the worker wrote both runs before its second job came back
                raise KeyboardInterrupt
            yield item

    # jobs of one replica each (each still trained as a batch of LANES lanes)
    monkeypatch.setattr(executor, "make_jobs", lambda replicas, outputs, chunk, lanes:
                        cut(replicas, outputs, 1, 1))
    monkeypatch.setattr(Executor, "run", interrupted)
    result = runner.invoke(app, sweep_args(tmp_path))
    assert result.exit_code == 130, result.output
    assert "run `circlereg sweep` with the same arguments and --resume" in result.output
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "incomplete"
    assert summary["runs_planned"] == 4 and summary["runs_finished"] == 2
    listed = runner.invoke(app, ["list", str(tmp_path)]).output.splitlines()
    assert next(line for line in listed if str(folder) in line).split()[:3] == [
        "incomplete", "sweep", "2/4"]
    monkeypatch.setattr(Executor, "run", real)
    assert runner.invoke(app, sweep_args(tmp_path, "--resume")).exit_code == 0
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
    listed = runner.invoke(app, ["list", str(tmp_path)]).output.splitlines()
    assert next(line for line in listed if str(folder) in line).split()[:3] == [
        "complete", "sweep", "4/4"]


def test_a_full_disk_is_one_line_and_leaves_no_run(tmp_path, monkeypatch):
    import errno

    from circlereg.engine import writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "history.csv")

    monkeypatch.setattr(writer, "write_history", full)
    result = runner.invoke(app, ["run", BASELINE, *SMALL, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: cannot write history.csv: No space left on device; no run directory was "
        "written")
    assert list((tmp_path / "baseline").iterdir()) == []


def test_reproduce_spec_that_is_not_utf8(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: \xff\xfe\n")
    assert_refused(tmp_path, ["reproduce", "--spec", spec], "not readable YAML")


@pytest.mark.parametrize("args, expected", [
    (["--set", "data.n_samples=1000000", "--set", "data.n_train=999999",
      "--set", "train.batch_size=1000000"],
     "train.batch_size: a batch of 999999 points needs about 64 GB to train 4 replicas at once, "
     "more than 50% of this machine's 24 GB: at most 187494 points fit, got 1000000"),
    # the evaluation batch counts too: 900000 test points in batches of 500000
    (["--set", "data.n_samples=1000000", "--set", "data.n_train=100000",
      "--set", "train.batch_size=500000"], "a batch of 500000 points needs about 32 GB"),
    (["--set", "model.hidden=[100000,100000]"],
     "model.hidden: 10000500001 weights need about 1600 GB to train 4 replicas at once"),
])
def test_what_cannot_train_in_memory_is_refused_before_training(tmp_path, monkeypatch, args,
                                                                 expected):
    """On a 24 GB machine; `validate` refuses it too."""
    from circlereg import config

    monkeypatch.setattr(config, "_machine_memory", lambda: 24 * 10**9)
    assert_refused(tmp_path, ["run", BASELINE, *args], expected)
    result = runner.invoke(app, ["validate", BASELINE, *args])
    assert result.exit_code == 2 and expected in result.output, result.output


def test_a_million_points_in_minibatches_train_in_memory(tmp_path, monkeypatch):
    """The largest data set the schema takes, in batches of 32, is no refusal."""
    from circlereg import config

    monkeypatch.setattr(config, "_machine_memory", lambda: 24 * 10**9)
    result = runner.invoke(app, ["validate", BASELINE, "--set", "data.n_samples=1000000",
                                 "--set", "data.n_train=500000"])
    assert result.exit_code == 0, result.output
