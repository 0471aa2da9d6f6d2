"""`circlereg export`: run and sweep folders read back through a real TensorBoard server's HTTP
API and through MLflow's client, checked against history.csv and metrics.json; exporting twice
adds nothing, and a sweep that grew (resumed) adds only its new run."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.export import final_metrics
from circlereg.rundir import read_history
from tests.conftest import CONFIGS, ROOT

EPOCHS = 20
TINY = ["--set", f"train.epochs={EPOCHS}", "--set", "data.n_samples=60", "--quiet",
        "--no-run-figures"]
SWEEP = ["sweep", str(CONFIGS / "l1_pre_relu.yaml"), "model.regularizers.0.l1=1e-4,1e-3",
         "--repeats", "2", *TINY]
MISSING = "p001/seed_2"  # the run an interrupted sweep had not finished


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A runs folder with a lone run and a sweep (2 points x 2 seeds) one run short."""
    runs = tmp_path_factory.mktemp("runs")
    cli("run", CONFIGS / "l1_pre_relu.yaml", *TINY, "--runs-dir", runs)
    cli(*SWEEP, "--runs-dir", runs)
    (sweep,) = (runs / "l1_pre_relu-sweep").iterdir()
    shutil.rmtree(sweep / MISSING)
    return runs


@pytest.fixture
def runs(interrupted, tmp_path):
    """A copy of `interrupted` for one test, and the sweep folder in it."""
    copy = tmp_path / "runs"
    shutil.copytree(interrupted, copy)
    (sweep,) = (copy / "l1_pre_relu-sweep").iterdir()
    return copy, sweep


def resume(runs: Path) -> None:
    """The sweep, resumed: it trains the missing run into the same folder."""
    cli(*SWEEP, "--runs-dir", runs, "--resume")


def run_folders(runs: Path) -> list[Path]:
    return sorted(p.parent for p in runs.rglob("metrics.json")
                  if not any(part.startswith(".") for part in p.relative_to(runs).parts))


# ---- TensorBoard -----------------------------------------------------------------------------

@pytest.fixture
def tensorboard():
    """Start `tensorboard --logdir LOGDIR` on a free 127.0.0.1 port; returns its URL."""
    servers = []

    def start(logdir: Path) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        executable = Path(sys.executable).parent / "tensorboard"
        servers.append(subprocess.Popen(
            [str(executable), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_runs(url: str, expected: set[str], limit: float = 120) -> None:
    """Until the server answers and has loaded every expected run's scalars."""
    deadline = time.monotonic() + limit
    while True:
        try:
            tags = get(f"{url}/data/plugin/scalars/tags")
            if set(tags) >= expected and all("final/test_accuracy" in tags[r] for r in expected):
                return
        except OSError:  # not listening yet
            pass
        assert time.monotonic() < deadline, f"tensorboard did not load {sorted(expected)}"
        time.sleep(0.5)


@pytest.mark.slow  # a TensorBoard server (it imports TensorFlow): 10-20 s on 2 busy cores
def test_tensorboard_export_reads_back_through_the_server(runs, tensorboard):
    runs, sweep = runs
    first = cli("export", "tensorboard", runs)
    assert first.startswith("4 runs exported, 0 already there")
    resume(runs)
    assert cli("export", "tensorboard", runs).startswith("1 runs exported, 4 already there")
    assert cli("export", "tensorboard", runs).startswith("0 runs exported, 5 already there")
    logdir = runs / ".tensorboard"
    folders = run_folders(runs)
    names = {p.relative_to(runs).as_posix() for p in folders}
    assert len(names) == 5 and f"{sweep.relative_to(runs).as_posix()}/{MISSING}" in names
    for name in names:  # one event file per run, however often it was exported
        assert len(list((logdir / name).glob("events.out.tfevents.*"))) == 1

    url = tensorboard(logdir)
    wait_for_runs(url, names)
    for folder in folders:
        name = folder.relative_to(runs).as_posix()
        history = read_history(folder / "history.csv")
        for tag in ("loss", "accuracy", "val_loss", "val_accuracy"):
            points = get(f"{url}/data/plugin/scalars/scalars?run={name}&tag={tag}")
            assert [step for _, step, _ in points] == list(range(1, EPOCHS + 1))
            np.testing.assert_allclose([v for _, _, v in points], history[tag], rtol=1e-6)
        metrics = json.loads((folder / "metrics.json").read_text())
        for key, value in final_metrics(metrics).items():
            ((_, step, exported),) = get(
                f"{url}/data/plugin/scalars/scalars?run={name}&tag=final/{key}")
            assert step == EPOCHS and exported == pytest.approx(value, rel=1e-6)

    experiment = get(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
    assert [h["name"] for h in experiment["hparamInfos"]] == ["model.regularizers.0.l1"]
    metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/test_accuracy", "final/train_accuracy", "final/gap"} <= metric_tags
    groups = get(f"{url}/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 100,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                            "STATUS_RUNNING"],
        "colParams": [], "aggregationType": "AGGREGATION_AVG"})["sessionGroups"]
    # One group per grid point, its two seeds the sessions; the lone run is no session.
    assert len(groups) == 2
    for group in groups:
        point = group["name"].rsplit("/", 1)[-1]
        expected = yaml.safe_load((sweep / "sweep.yaml").read_text())["points"]
        (spec,) = [p for p in expected if p["point"] == point]
        assert group["hparams"] == {"model.regularizers.0.l1":
                                    spec["model.regularizers.0.l1"]}
        assert sorted(s["name"].rsplit("/", 1)[-1] for s in group["sessions"]) == \
            ["seed_1", "seed_2"]
        assert all(s["status"] == "STATUS_SUCCESS" for s in group["sessions"])
        seeds = [json.loads((sweep / point / f"seed_{s}" / "metrics.json").read_text())
                 for s in (1, 2)]
        (test,) = [m["value"] for m in group["metricValues"]
                   if m["name"]["tag"] == "final/test_accuracy"]
        assert test == pytest.approx(np.mean([m["test_accuracy"] for m in seeds]), rel=1e-6)


def test_export_of_one_sweep_folder_to_a_chosen_logdir(runs, tmp_path):
    _, sweep = runs
    logdir = tmp_path / "tb"
    assert cli("export", "tensorboard", sweep, "--logdir", logdir).startswith(
        "3 runs exported")
    exported = sorted(p.parent.relative_to(logdir).as_posix()
                      for p in logdir.rglob("events.out.tfevents.*"))
    assert exported == [f"{sweep.name}/{run}" for run in ("p000/seed_1", "p000/seed_2",
                                                          "p001/seed_1")]


def test_a_run_exported_partway_is_written_again(runs):
    runs, sweep = runs
    cli("export", "tensorboard", runs)
    logdir = runs / ".tensorboard"
    manifest = json.loads((logdir / "circlereg-export.json").read_text())
    cut = str((sweep / "p000" / "seed_1").resolve())
    del manifest[cut]  # as if the export had been killed before recording it
    (logdir / "circlereg-export.json").write_text(json.dumps(manifest))
    assert cli("export", "tensorboard", runs).startswith("1 runs exported, 3 already there")
    assert len(list((logdir / sweep.relative_to(runs) / "p000" / "seed_1").glob(
        "events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("command, extra", [("tensorboard", "tensorboard"),
                                            ("mlflow", "mlflow")])
def test_without_the_extra_one_line_says_how_to_install_it(tmp_path, monkeypatch, command,
                                                           extra):
    monkeypatch.setitem(sys.modules, extra, None)  # import fails as if not installed
    result = CliRunner().invoke(app, ["export", command, str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: export {command}: needs the {extra} extra: pip install 'circlereg[{extra}]'"]


@pytest.mark.parametrize("command", ["tensorboard", pytest.param("mlflow", marks=pytest.mark.slow)])
def test_export_imports_no_tensorflow_and_keeps_stderr_clean(interrupted, tmp_path, command):
    argv = ["export", command, str(interrupted)]
    argv += ["--logdir", str(tmp_path / "tb")] if command == "tensorboard" else []
    code = (f"import sys\nfrom circlereg.cli import app\ntry:\n    app({argv!r})\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT),  # cwd: where MLflow puts ./mlruns
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("4 runs exported, 0 already there")
    view = f"view them: tensorboard --logdir {tmp_path / 'tb'}\n"
    assert done.stderr == (view if command == "tensorboard" else "")


def test_a_folder_without_runs_is_one_line_exit_2(tmp_path):
    for folder in (tmp_path, tmp_path / "nowhere"):
        result = CliRunner().invoke(app, ["export", "tensorboard", str(folder)])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert str(folder) in result.stderr


# ---- MLflow ----------------------------------------------------------------------------------

@pytest.mark.slow  # MLflow creates its SQLite schema, logs 5 runs 3 times: 10-20 s
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # MLflow's SQL store
def test_mlflow_export_reads_back_through_the_client(runs, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    runs, sweep = runs
    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli("export", "mlflow", runs).startswith("4 runs exported, 0 already there")
    resume(runs)
    assert cli("export", "mlflow", runs).startswith("1 runs exported, 4 already there")
    assert cli("export", "mlflow", runs).startswith("0 runs exported, 5 already there")

    client = MlflowClient(uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("l1_pre_relu-sweep").experiment_id],
        filter_string="tags.`circlereg.kind` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["axes.model.regularizers.0.l1"] == "1e-4,1e-3"
    assert parent.data.params["config.name"] == "l1_pre_relu"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "summary.csv", "summary.json", "sweep.yaml", "manifest.json"}
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == [
        "p000/seed_1", "p000/seed_2", "p001/seed_1", "p001/seed_2"]
    (lone,) = client.search_runs([client.get_experiment_by_name("l1_pre_relu").experiment_id])
    assert "mlflow.parentRunId" not in lone.data.tags

    for run in [*children, lone]:
        folder = Path(run.data.tags["circlereg.path"])
        assert run.info.status == "FINISHED"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        params = run.data.params
        assert float(params["model.regularizers.0.l1"]) == \
            config["model"]["regularizers"][0]["l1"]
        assert params["train.seed"] == str(config["train"]["seed"])
        assert params["model.hidden"] == "[500]" and params["train.epochs"] == str(EPOCHS)
        history = read_history(folder / "history.csv")
        for tag in ("loss", "val_accuracy"):
            points = sorted(client.get_metric_history(run.info.run_id, tag),
                            key=lambda m: m.step)
            assert [m.step for m in points] == list(range(1, EPOCHS + 1))
            np.testing.assert_allclose([m.value for m in points], history[tag], rtol=1e-6)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
        assert run.data.metrics["hidden_0/zero_fraction"] == pytest.approx(
            metrics["hidden_layers"][0]["zero_fraction"])
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
            p.name for p in folder.iterdir()}
