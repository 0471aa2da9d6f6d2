"""The results layer through the CLI: every folder's manifest, the runs directory's index, and
replicas trained once (reused wherever they are already trained, byte for byte)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.index import INDEX, open_index, recorded, software
from circlereg.manifest import MANIFEST

from .conftest import CONFIGS, ROOT

runner = CliRunner()
CONFIG = str(CONFIGS / "l1_pre_relu.yaml")
L1, PLACEMENT = "model.regularizers.0.l1", "model.regularizers.0.placement"
TINY = ["--set", "data.n_samples=40", "--set", "data.n_train=12", "--set", "train.epochs=20",
        "--set", "model.hidden=[8]", "--quiet", "--no-run-figures"]
AXES = [f"{L1}=1e-4,1e-2", f"{PLACEMENT}=pre_activation,post_activation"]


def invoke(runs, *args) -> str:
    result = runner.invoke(app, [*map(str, args), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    return result.output


def newest(folder: Path) -> Path:
    return sorted(folder.iterdir())[-1]


def sub_runs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("p*/seed_*/metrics.json"))


def timeless(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}


def index_rows(runs: Path) -> list[dict]:
    with open_index(runs) as index:
        return index.rows()


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A 2x2 sweep with 3 seeds, then the same with a fourth, into one runs directory."""
    runs = tmp_path_factory.mktemp("runs")
    invoke(runs, "sweep", CONFIG, *AXES, "--repeats", 3, *TINY)
    first = newest(runs / "l1_pre_relu-sweep")
    output = invoke(runs, "sweep", CONFIG, *AXES, "--repeats", 4, *TINY)
    second = newest(runs / "l1_pre_relu-sweep")
    assert first != second
    return runs, first, second, output


def test_a_sweep_grown_by_a_seed_trains_only_the_new_replicas(grown, tmp_path):
    runs, first, second, output = grown
    assert "12 reused, 4 trained" in output
    trained = [run for run in sub_runs(second) if not (run / "reused.json").is_file()]
    assert [run.name for run in trained] == ["seed_4"] * 4
    for run in sub_runs(second):  # each reused run is the first sweep's, byte for byte
        record = run / "reused.json"
        if record.is_file():
            source = runs / json.loads(record.read_text())["from"]
            assert source == first / run.relative_to(second)
            for name in ("config.yaml", "metrics.json", "history.csv", "environment.json"):
                assert (run / name).read_bytes() == (source / name).read_bytes()
    # ... and byte for byte what training it afresh gives.
    invoke(tmp_path, "sweep", CONFIG, *AXES, "--repeats", 4, *TINY)
    fresh = newest(tmp_path / "l1_pre_relu-sweep")
    assert not list(fresh.rglob("reused.json"))
    assert len(sub_runs(second)) == len(sub_runs(fresh)) == 16
    for run in sub_runs(second):
        again = fresh / run.relative_to(second)
        assert (run / "history.csv").read_bytes() == (again / "history.csv").read_bytes()
        assert timeless(run) == timeless(again)
    assert (second / "summary.csv").read_bytes() == (fresh / "summary.csv").read_bytes()


def test_retrain_trains_every_replica_again(grown, tmp_path):
    runs, _, _, _ = grown
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    output = invoke(copy, "sweep", CONFIG, *AXES, "--repeats", 3, *TINY, "--retrain")
    assert "0 reused, 12 trained" in output
    assert not list(newest(copy / "l1_pre_relu-sweep").rglob("reused.json"))


def test_a_run_of_a_config_inside_a_sweep_trains_nothing(grown):
    runs, first, _, _ = grown
    output = invoke(runs, "run", CONFIG, *TINY, "--set", f"{L1}=0.01", "--set",
                    f"{PLACEMENT}=post_activation", "--seed", 2)
    assert "reused, not trained again" in output and "training" not in output
    run = newest(runs / "l1_pre_relu")
    source = first / "p003" / "seed_2"
    assert json.loads((run / "reused.json").read_text())["from"] == \
        str(source.relative_to(runs))
    assert (run / "metrics.json").read_bytes() == (source / "metrics.json").read_bytes()
    assert json.loads((run / MANIFEST).read_text())["kind"] == "run"


def test_a_run_from_before_the_numbers_changed_is_not_reused(tmp_path):
    """A replica's identity includes the revision of circlereg's numbers (environment.json's
    numbers_revision; none recorded: the first): a run trained before a change that moved
    numbers is trained again, not reused."""
    first = invoke(tmp_path, "run", CONFIG, *TINY, "--seed", 4)
    assert "training" in first
    (run,) = (tmp_path / "l1_pre_relu").iterdir()
    environment = json.loads((run / "environment.json").read_text())
    assert environment["numbers_revision"] >= 2
    del environment["numbers_revision"]  # as an earlier version wrote it
    (run / "environment.json").write_text(json.dumps(environment))
    (tmp_path / INDEX).unlink()
    again = invoke(tmp_path, "run", CONFIG, *TINY, "--seed", 4)
    assert "training" in again and "reused" not in again
    assert len(list((tmp_path / "l1_pre_relu").iterdir())) == 2


def test_every_folder_says_what_it_is_and_list_shows_it(grown):
    runs, first, second, _ = grown
    manifest = json.loads((second / MANIFEST).read_text())
    assert manifest["kind"] == "sweep" and manifest["seeds"] == [1, 2, 3, 4]
    assert manifest["varies"] == [{"key": L1, "values": [1e-4, 1e-2]},
                                  {"key": PLACEMENT,
                                   "values": ["pre_activation", "post_activation"]}]
    assert manifest["runs"][-1] == {"run": "p003/seed_4", "point": "p003", "seed": 4,
                                    "params": {L1: 0.01, PLACEMENT: "post_activation"}}
    listed = runner.invoke(app, ["list", str(runs)]).output.splitlines()
    line = next(line for line in listed if str(second) in line)
    assert line.startswith("complete") and " sweep " in line and "16/16 runs" in line
    assert line.endswith(f"{L1} x 2, {PLACEMENT} x 2, seeds 1-4")
    each = runner.invoke(app, ["list", str(runs), "--runs"]).output.splitlines()
    assert sum(str(second) in line for line in each) == 16


def test_list_of_a_missing_runs_directory_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["list", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")


def test_the_index_is_rebuilt_from_the_folders(grown, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(grown[0], runs)
    invoke(runs, "run", CONFIG, *TINY)  # a lone run too (reused: nothing trains)
    before = index_rows(runs)
    assert len(before) == len(list(runs.glob("*/*/p*/seed_*/metrics.json"))) \
        + len(list(runs.glob("l1_pre_relu/*/metrics.json"))) >= 12 + 16 + 1
    assert {row["kind"] for row in before} == {"sweep", "run"}
    (runs / INDEX).unlink()
    notices = []
    with open_index(runs, notices.append) as index:
        assert index.rows() == before
    assert len(notices) == 1 and "was missing; rebuilt" in notices[0]
    (runs / INDEX).write_bytes(os.urandom(3000))
    notices.clear()
    with open_index(runs, notices.append) as index:
        assert index.rows() == before
    assert len(notices) == 1 and "was damaged" in notices[0]
    shutil.rmtree(newest(runs / "l1_pre_relu"))  # older than the folders: one run less
    notices.clear()
    with open_index(runs, notices.append) as index:
        assert len(index.rows()) == len(before) - 1
    assert len(notices) == 1 and "older than the folders (0 runs new or changed, 1 gone)" \
        in notices[0]
    sweep = newest(runs / "l1_pre_relu-sweep")  # a manifest that says more of a run
    manifest = json.loads((sweep / MANIFEST).read_text())
    manifest["runs"][0]["params"]["note"] = "relabelled"
    (sweep / MANIFEST).write_text(json.dumps(manifest))
    notices.clear()
    with open_index(runs, notices.append) as index:
        (first,) = [r for r in index.rows() if r["folder"].endswith(f"{sweep.name}/p000/seed_1")]
    assert json.loads(first["params"])["note"] == "relabelled"
    assert len(notices) == 1 and "(1 runs new or changed, 0 gone)" in notices[0]


def test_identity_facts_need_no_tensorflow_and_match_what_runs_record(grown):
    """The command computes identities from package metadata; a worker records the versions
    TensorFlow reports: they agree, or nothing would ever be reused."""
    runs, first, _, _ = grown
    environment = json.loads((first / "p000" / "seed_1" / "environment.json").read_text())
    facts = recorded(environment)
    assert {k: v for k, v in facts.items() if k != "keras_activity_penalty"} == software()
    assert facts["keras_activity_penalty"] in ("sum", "mean")
    code = ("import sys; from circlereg.index import software; software(); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow  # two command processes
def test_two_sweeps_at_once_into_one_runs_directory_leave_a_complete_index(tmp_path):
    base = [sys.executable, "-m", "circlereg.cli", "sweep", CONFIG, *TINY, "--workers", "1",
            "--repeats", "4", "--runs-dir", str(tmp_path)]
    processes = [subprocess.Popen([*base, f"{L1}=1e-4,1e-3", "--name", name], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for name in ("one", "two")]
    for process in processes:
        assert process.wait(300) == 0, process.stderr.read()
    folders = {str(p.parent.relative_to(tmp_path))
               for p in tmp_path.glob("*/*/p*/seed_*/metrics.json")}
    assert len(folders) == 16
    notices = []
    with open_index(tmp_path, notices.append) as index:
        rows = index.rows()
    assert {row["folder"] for row in rows} == folders
    assert notices == []  # the two commands inserted every row: nothing was left to rebuild


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # MLflow's SQL store
def test_a_tune_exports_its_tuned_values_and_kind(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs = tmp_path / "runs"
    invoke(runs, "tune", CONFIG, f"{L1}=loguniform(1e-5,1e-2)", *TINY, "--trials", 3,
           "--seeds", "1,2")
    tune = newest(runs / "l1_pre_relu-tune")
    trials = {r["point"]: r["params"][L1]
              for r in json.loads((tune / MANIFEST).read_text())["runs"]}
    assert len(trials) == 3 and all(isinstance(v, float) for v in trials.values())
    result = runner.invoke(app, ["export", "tensorboard", str(runs)])
    assert result.exit_code == 0, result.output
    seen = {}
    for events in (runs / ".tensorboard").rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        hparams = data.session_start_info.hparams
                        seen[events.parent.parent.name] = hparams[L1].number_value
    assert seen == trials
    listed = runner.invoke(app, ["list", str(runs)]).output
    assert "damaged" not in listed and ".tensorboard" not in listed

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = runner.invoke(app, ["export", "mlflow", str(runs)])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("l1_pre_relu-tune").experiment_id],
        filter_string="tags.`circlereg.kind` = 'tune'")
    assert json.loads(parent.data.params["space"]) == [f"{L1}=loguniform(1e-5,1e-2)"]
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 6
    for child in children:
        trial = child.info.run_name.split("/")[0]
        assert float(child.data.params[L1]) == trials[trial]
    # The same tune again (the same sampler seed draws the same trials): nothing trains.
    output = invoke(runs, "tune", CONFIG, f"{L1}=loguniform(1e-5,1e-2)", *TINY, "--trials", 3,
                    "--seeds", "1,2", "--name", "again")
    assert "6 reused, 0 trained" in output


def test_an_earlier_versions_folders_still_list_export_and_index(grown, tmp_path):
    """A sweep as an earlier circlereg wrote it: plan.json, no manifest."""
    runs = tmp_path / "runs"
    shutil.copytree(grown[0], runs)
    (runs / INDEX).unlink()
    old = newest(runs / "l1_pre_relu-sweep")
    manifest = json.loads((old / MANIFEST).read_text())
    (old / "plan.json").write_text(json.dumps(
        {"points": manifest["points"], "runs": [r["run"] for r in manifest["runs"]]}))
    (old / MANIFEST).unlink()
    listed = runner.invoke(app, ["list", str(runs)]).output
    line = next(line for line in listed.splitlines() if str(old) in line)
    assert line.startswith("complete") and " sweep " in line and "16/16 runs" in line
    assert line.endswith(f"{L1} x 2, {PLACEMENT} x 2, seeds 1-4")
    rows = [r for r in index_rows(runs) if r["collection"] == str(old.relative_to(runs))]
    assert len(rows) == 16 and all(r["kind"] == "sweep" for r in rows)
    assert json.loads(rows[-1]["params"]) == {L1: 0.01, PLACEMENT: "post_activation"}
    from circlereg.export import find

    collections, _ = find(old)
    assert collections[0].kind == "sweep" and len(collections[0].runs) == 16
    assert yaml.safe_load((old / "sweep.yaml").read_text())["axes"]


def test_resuming_a_complete_sweep_says_so_at_once_and_trains_nothing(grown):
    runs, _, second, _ = grown
    output = invoke(runs, "sweep", CONFIG, *AXES, "--repeats", 4, *TINY, "--resume")
    lines = output.splitlines()
    assert lines[0] == (f"--resume: {second} is complete: its 16 runs are all there; "
                        "nothing to train")
    assert "0 reused, 0 trained, 16 already in place" in lines
