"""Stage 8: results where users already look. Run, sweep, comparison and reproduction folders
exported to TensorBoard event files or to an MLflow tracking server; neither needs TensorFlow.

    circlereg export tensorboard runs/     ->  runs/.tensorboard/<path of each run>/events...
    circlereg export mlflow runs/<sweep>/<folder>   ->  $MLFLOW_TRACKING_URI

A run is known by its folder's resolved path: exporting again adds only the runs not yet there
(a resumed sweep's new ones), and a run whose export was cut short is replaced, never counted
as done.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from circlereg import manifest
from circlereg.config import ConfigError, shorten
from circlereg.grammar import flatten
from circlereg.rundir import HISTORY_COLUMNS, atomic_write, read_history, run_state

CURVES = HISTORY_COLUMNS[1:]  # loss, accuracy, val_loss, val_accuracy: one point per epoch
FINAL = ("train_accuracy", "test_accuracy", "gap", "train_loss", "test_loss",
         "best_test_accuracy", "best_test_epoch")


# ---- what a folder holds ---------------------------------------------------------------------

@dataclass(frozen=True)
class RunFolder:
    """A complete run directory (config.yaml, history.csv, metrics.json)."""

    path: Path
    name: str  # its path below the exported folder, e.g. l1_pre_relu-sweep/<stamp>/p000/seed_1
    params: dict = field(default_factory=dict)  # its grid point's swept keys ({} when alone)

    @property
    def identity(self) -> str:
        return str(self.path.resolve())

    @property
    def group(self) -> str:
        """The runs of one grid point, whose seeds differ, share it."""
        return str(PurePosixPath(self.name).parent)

    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def fingerprint(self) -> str:
        """Changes when the run is trained again (a damaged run replaced by --resume)."""
        return hashlib.sha256((self.path / "metrics.json").read_bytes()).hexdigest()[:16]

    def times(self, metrics: dict, epochs: int) -> tuple[float, list[float]]:
        """(start, end of each epoch) in seconds since 1970: training ended when metrics.json
        was written, less writing's time, and took train_seconds, spread evenly over epochs."""
        end = (self.path / "metrics.json").stat().st_mtime - (metrics.get("write_seconds") or 0)
        took = metrics.get("train_seconds") or 0.0
        start = end - took
        return start, [start + took * (epoch + 1) / epochs for epoch in range(epochs)]


def final_metrics(metrics: dict) -> dict[str, float]:
    """metrics.json's final figures as named numbers, hidden layers' sparsity included:

    >>> final_metrics({"test_accuracy": 0.5, "gap": None, "hidden_layers": [
    ...     {"layer": 0, "mean_activation": 0.25, "zero_fraction": 0.75}]})
    {'test_accuracy': 0.5, 'hidden_0/zero_fraction': 0.75, 'hidden_0/mean_activation': 0.25}
    """
    found = {key: float(metrics[key]) for key in FINAL if metrics.get(key) is not None}
    for layer in metrics.get("hidden_layers", []):
        for key in ("zero_fraction", "mean_activation"):
            found[f"hidden_{layer['layer']}/{key}"] = float(layer[key])
    return found


@dataclass(frozen=True)
class Collection:
    """A folder of runs with its manifest: repeats, sweep, comparison, tune or reproduction."""

    path: Path
    name: str
    kind: str  # as its manifest says
    runs: list[RunFolder]  # its complete runs: fewer than planned while it trains
    spec: dict  # the command that made it, as its manifest records it

    @property
    def identity(self) -> str:
        return str(self.path.resolve())


def find(folder: Path, notice: Callable[[str], None] | None = None
         ) -> tuple[list[Collection], list[RunFolder]]:
    """The collections and the lone runs in `folder`: a runs dir (any depth), a collection
    folder, or one run directory, each known by its manifest (`manifest.collections`; an
    earlier version's folders through `manifest.read_legacy`). Hidden folders are never
    looked into."""

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(str(folder), "", "no such folder; give a runs folder, a sweep, "
                                           "comparison, tune or reproduction folder, or a run")
    notice = notice or (lambda message: None)
    collections, lone, base = [], [], None
    for path, found, problem in manifest.collections(folder):
        # Names start at the folder given, or at the collection or run itself when given one.
        base = base or (folder.parent if path == folder else folder)
        name = path.relative_to(base).as_posix()
        if found is None:
            if problem and "unreadable" in problem:
                notice(f"{path}: {problem}; skipped")
            continue
        if found.kind == "run":
            if run_state(path) is None:
                lone.append(RunFolder(path, name))
            continue
        runs = [RunFolder(path / r["run"], f"{name}/{r['run']}", dict(r.get("params") or {}))
                for r in found.runs if run_state(path / r["run"]) is None]
        if runs:
            collections.append(Collection(path, name, found.kind, runs, found.spec))
    if not collections and not lone:
        raise ConfigError(str(folder), "", "holds no complete run, sweep, comparison, tune or "
                                           "reproduction")
    return collections, lone


@dataclass
class Exported:
    new: int = 0  # runs written by this export
    present: int = 0  # runs already there from an earlier export
    where: str = ""  # the logdir or the tracking URI


def _require(extra: str) -> None:
    """The extra `circlereg[extra]` (whose package has the same name) is installed."""
    import importlib

    try:
        importlib.import_module(extra)
    except ImportError:
        raise ConfigError(f"export {extra}", "", f"needs the {extra} extra: "
                                                 f"pip install 'circlereg[{extra}]'") from None


# ---- TensorBoard -----------------------------------------------------------------------------

MANIFEST = "circlereg-export.json"  # in the logdir: run identity -> its exported fingerprint
EVENTS_SUFFIX = ".circlereg"  # our event files, so replacing a run never touches others'


def to_tensorboard(folder: Path, logdir: Path | None = None,
                   notice: Callable[[str], None] | None = None) -> Exported:
    """Write every complete run under `folder` as TensorBoard events in `logdir` (default
    `folder`/.tensorboard), one run each: its four curves per epoch and its final metrics
    (tags final/*). Runs of a sweep, comparison or reproduction are also HParams sessions:
    the swept keys as hyperparameters, grouped by grid point so seeds average together."""
    _require("tensorboard")
    collections, lone = find(folder, notice)
    logdir = Path(logdir) if logdir is not None else Path(folder) / ".tensorboard"
    manifest = _read_manifest(logdir / MANIFEST)
    exported = Exported(where=str(logdir))
    sessions = [(run, False) for run in lone] + [(run, True) for c in collections
                                                 for run in c.runs]
    try:
        for run, session in sessions:
            fingerprint = run.fingerprint()
            earlier = manifest.get(run.identity, {})
            if earlier.get("fingerprint") == fingerprint \
                    and any((logdir / earlier["run"]).glob(f"*{EVENTS_SUFFIX}")):
                exported.present += 1
                continue
            _write_events(logdir / run.name, _run_events(run, session))
            manifest[run.identity] = {"run": run.name, "fingerprint": fingerprint}
            exported.new += 1
    finally:  # an interrupted export keeps a record of every run it finished
        if exported.new:
            atomic_write(logdir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return exported


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: runs are written again, in place
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _run_events(run: RunFolder, session: bool) -> list:
    """The run's events: its curves, one event per epoch; its final metrics at the last epoch;
    and, when it is an HParams session, its hyperparameters and whether it diverged."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    def event(step: int, wall: float, values: dict) -> event_pb2.Event:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=v)
                                             for tag, v in values.items()])
        return event_pb2.Event(step=step, wall_time=wall, summary=summary)

    history = read_history(run.path / "history.csv")
    metrics = run.metrics()
    epochs = len(history["epoch"])
    start, ends = run.times(metrics, epochs)
    events = [event_pb2.Event(wall_time=start, file_version="brain.Event:2")]
    if session:
        events.append(event_pb2.Event(step=0, wall_time=start,
                                      summary=_session_start(run, start)))
    events += [event(int(history["epoch"][i]), ends[i],
                     {tag: float(history[tag][i]) for tag in CURVES}) for i in range(epochs)]
    events.append(event(epochs, ends[-1],
                        {f"final/{k}": v for k, v in final_metrics(metrics).items()}))
    if session:
        events.append(event_pb2.Event(step=epochs, wall_time=ends[-1],
                                      summary=_session_end(metrics)))
    return events


def _session_start(run: RunFolder, start: float):
    from tensorboard.plugins.hparams import summary_v2

    return summary_v2.hparams_pb({key: _hparam(value) for key, value in run.params.items()},
                                 trial_id=run.group, start_time_secs=start)


def _hparam(value):
    """TensorBoard takes bool, number or string hyperparameters: a list becomes its text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _session_end(metrics: dict):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = api_pb2.STATUS_FAILURE if metrics.get("diverged") else api_pb2.STATUS_SUCCESS
    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
        tensor=metadata.NULL_TENSOR)])


def _write_events(folder: Path, events: list) -> None:
    """One event file for one run, written whole under a name TensorBoard ignores and then
    renamed into place: TensorBoard never reads half a run, and a run exported again replaces
    its earlier file instead of adding a second copy of every point."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"events.out.tfevents.{int(events[0].wall_time):010d}{EVENTS_SUFFIX}"
    scratch = folder / ".events.partial"  # no "tfevents" in the name: TensorBoard skips it
    with open(scratch, "wb") as out:
        writer = RecordWriter(out)
        for event in events:
            writer.write(event.SerializeToString())
    for earlier in folder.glob(f"events.out.tfevents.*{EVENTS_SUFFIX}"):
        if earlier != final:
            earlier.unlink()
    os.replace(scratch, final)


# ---- MLflow ----------------------------------------------------------------------------------

PATH_TAG, FINGERPRINT_TAG = "circlereg.path", "circlereg.fingerprint"
BATCH = {"metrics": 1000, "params": 100}  # MLflow's limits for one log_batch call


def to_mlflow(folder: Path, experiment: str | None = None,
              notice: Callable[[str], None] | None = None) -> Exported:
    """Log every complete run under `folder` to MLflow (MLFLOW_TRACKING_URI): a sweep,
    comparison or reproduction as a parent run with a nested child per run; each run with its
    resolved config as params (model.regularizers.0.l1 style), its curves with epoch steps,
    final metrics and its files as artifacts. The experiment is `experiment`, or by default
    the folder each sweep or run sits in (its sweep or config name)."""
    _require("mlflow")
    import logging

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    collections, lone = find(folder, notice)
    for name in ("mlflow", "alembic"):  # schema creation and migration chatter on stderr
        logging.getLogger(name).setLevel(logging.WARNING)
    exported = Exported()
    try:
        client = MlflowClient()
        exported.where = client.tracking_uri
        store = _MlflowStore(client)
        for collection in collections:
            target = store.experiment(experiment or collection.path.parent.name)
            parent = store.parent(target, collection)
            new = [store.log_run(target, run, exported, parent=parent,
                                 run_name=str(PurePosixPath(run.name).relative_to(collection.name)))
                   for run in collection.runs]
            if any(new) or parent.info.status != "FINISHED":
                for child in collection.path.iterdir():  # its own files: summary, plots
                    if child.is_file() and not child.name.startswith("."):
                        client.log_artifact(parent.info.run_id, str(child))
                client.set_terminated(parent.info.run_id, "FINISHED")
        for run in lone:
            store.log_run(store.experiment(experiment or run.path.parent.name), run, exported)
    except MlflowException as err:
        raise ConfigError("MLFLOW_TRACKING_URI", "", _one_line(err.message)) from None
    return exported


def _one_line(text: str) -> str:

    return shorten(" ".join(str(text).split()), 200)


class _MlflowStore:
    """The tracking server as export sees it: experiments by name, and the runs each holds,
    by the circlereg path they were exported from."""

    def __init__(self, client):
        self.client = client
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, dict[str, object]] = {}  # experiment id -> path -> Run

    def experiment(self, name: str) -> str:
        if name not in self.experiments:
            found = self.client.get_experiment_by_name(name)
            self.experiments[name] = found.experiment_id if found is not None \
                else self.client.create_experiment(name)
        return self.experiments[name]

    def exported(self, experiment_id: str) -> dict[str, object]:
        if experiment_id not in self.runs:
            runs, token = {}, None
            while True:
                page = self.client.search_runs([experiment_id], max_results=1000,
                                               page_token=token)
                runs.update({r.data.tags[PATH_TAG]: r for r in page if PATH_TAG in r.data.tags})
                token = page.token
                if not token:
                    break
            self.runs[experiment_id] = runs
        return self.runs[experiment_id]

    def parent(self, experiment_id: str, collection: Collection):
        """The collection's parent run: the one an earlier export made, or a new one."""
        existing = self.exported(experiment_id).get(collection.identity)
        if existing is not None:
            return existing
        tags = {PATH_TAG: collection.identity, "circlereg.kind": collection.kind}
        parent = self.client.create_run(experiment_id, tags=tags, run_name=collection.name,
                                        start_time=_ms(collection.path.stat().st_mtime))
        self._log(parent.info.run_id, params=flatten(collection.spec) if collection.spec
                  else {})
        self.exported(experiment_id)[collection.identity] = parent
        return parent

    def log_run(self, experiment_id: str, run: RunFolder, exported: Exported, parent=None,
                run_name: str | None = None) -> bool:
        """Log `run` unless it is there already; a run whose earlier export was cut short,
        or which was trained again since, is replaced. True when it logged."""
        fingerprint = run.fingerprint()
        existing = self.exported(experiment_id).get(run.identity)
        if existing is not None:
            if existing.info.status == "FINISHED" \
                    and existing.data.tags.get(FINGERPRINT_TAG) == fingerprint:
                exported.present += 1
                return False
            self.client.delete_run(existing.info.run_id)
        metrics = run.metrics()
        history = read_history(run.path / "history.csv")
        epochs = len(history["epoch"])
        start, ends = run.times(metrics, epochs)
        tags = {PATH_TAG: run.identity, FINGERPRINT_TAG: fingerprint,
                "circlereg.seed": str(metrics.get("seed")),
                "circlereg.diverged": str(bool(metrics.get("diverged"))).lower()}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        created = self.client.create_run(experiment_id, start_time=_ms(start), tags=tags,
                                         run_name=run_name or run.name)
        run_id = created.info.run_id
        try:
            from mlflow.entities import Metric

            config = yaml.safe_load((run.path / "config.yaml").read_text())
            curves = [Metric(tag, float(history[tag][i]), _ms(ends[i]),
                             int(history["epoch"][i]))
                      for i in range(epochs) for tag in CURVES]
            finals = [Metric(key, value, _ms(ends[-1]), epochs)
                      for key, value in final_metrics(metrics).items()]
            self._log(run_id, params=flatten(config), metrics=curves + finals)
            self.client.log_artifacts(run_id, str(run.path))
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")  # never mistaken for a complete run
            raise
        self.client.set_terminated(run_id, "FINISHED", end_time=_ms(ends[-1]))
        exported.new += 1
        return True

    def _log(self, run_id: str, params: dict, metrics: list = ()) -> None:
        from mlflow.entities import Param

        params = [Param(key, _param(value)) for key, value in params.items()]
        for i in range(0, len(params), BATCH["params"]):
            self.client.log_batch(run_id, params=params[i:i + BATCH["params"]])
        for i in range(0, len(metrics), BATCH["metrics"]):
            self.client.log_batch(run_id, metrics=metrics[i:i + BATCH["metrics"]])


def _param(value) -> str:
    """A config value as MLflow shows it: YAML's spelling (null, true, [8, 4])."""
    return value if isinstance(value, str) else json.dumps(value)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
