"""Stage 5: the writer. Everything a run writes, and how its metrics are computed, in one place.

    runs/<config name>/<UTC timestamp>-<config hash>/     (or a sweep's p000/seed_1/ ...)
        config.yaml  metrics.json  history.csv  environment.json  [model.keras]
        [accuracy.png  loss.png  decision_boundary.png]

A run is written into a hidden `.partial-*` folder beside its final place and renamed only
when every file is there, so an interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from circlereg.config import ConfigError, config_hash, quote
from circlereg.plan import Replica

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class Result:
    """One replica, from the engine that trained it to the command that asked: one type all
    the way. The engine fills its curves, final figures and weights; the worker's writer
    (`Writer.write`) its metrics, as written to its run directory, dropping the weights
    that directory now holds; the worker its place in the job (`index`); the executor its
    replica. A replica kept or reused from disk (`on_disk`) has its metrics and no curves:
    they are in its history.csv."""

    seed: int
    history: dict[str, np.ndarray] | None  # each CURVES name -> (epochs run,); None: on disk
    final: dict[str, float] = field(default_factory=dict)  # train_loss, train_accuracy, ...
    weights: list[np.ndarray] | None = None  # in model.get_weights() order, until written
    train_seconds: float = 0.0
    stopped_epoch: int | None = None  # 1-based epoch early stopping ended the run at
    shape: dict = field(default_factory=dict)  # the compiled shape that trained it
    metrics: dict | None = None  # metrics.json, once written
    index: int | None = None  # its place in its job's plan (`worker.Job.indices`)
    replica: Replica | None = None

    @classmethod
    def on_disk(cls, replica: Replica) -> Result:
        """A replica already written: its metrics, read from its run directory."""
        metrics = json.loads((Path(replica.destination) / "metrics.json").read_text())
        return cls(replica.config["train"]["seed"], None, metrics=metrics, replica=replica)


def utc_stamp() -> str:
    """The run and sweep folders' time prefix; sorts in time order."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def run_path(runs_dir: Path, config: dict) -> Path:
    return inside(runs_dir, Path(config["name"]) / f"{utc_stamp()}-{config_hash(config)}")


def inside(runs_dir: Path, relative: Path) -> Path:
    """runs_dir / relative, refusing any path that would leave runs_dir (names are checked
    where they are read; this is the last line of defence)."""
    root = Path(runs_dir).resolve()
    path = (root / relative).resolve()
    if path == root or root not in path.parents:
        raise ConfigError("--runs-dir", "", f"{quote(str(relative))} would be written "
                                            f"outside {runs_dir}")
    return Path(runs_dir) / relative


def check_runs_dir(runs_dir: Path) -> None:
    """Before any training: --runs-dir is a folder, or can become one, that we can write."""
    path = Path(runs_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError("--runs-dir", "", f"{existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("--runs-dir", "", f"{existing} is not writable")


def begin_dir(final: Path) -> Path:
    """A fresh, empty scratch folder beside `final`, under a name no listing counts."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed process; never complete
    partial.mkdir()
    return partial


def commit_dir(partial: Path, final: Path) -> None:
    """Put a complete scratch folder in place, in one rename."""
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


@contextmanager
def locked(folder: Path):
    """Hold `folder`'s lock while training into it: a second process on the same folder
    refuses at once, in one line, rather than colliding with the first."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(str(folder), "", "another circlereg process is training into "
                                               "this folder; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_state(run: Path) -> str | None:
    """None when `run` holds a complete run; else what is wrong with it."""
    if not run.is_dir():
        return "missing"
    for name in ("metrics.json", "history.csv", "config.yaml"):
        if not (run / name).is_file():
            return f"{name} is missing"
    try:
        json.loads((run / "metrics.json").read_text())
    except (ValueError, OSError):
        return "metrics.json is unreadable"
    return None


def write_history(path: Path, history: dict) -> None:
    # %.9g round-trips float32 exactly, so equal histories give byte-identical files. One
    # format per row, not per value: a sweep writes hundreds of these files.
    columns = [range(1, len(history["loss"]) + 1),
               *(np.asarray(history[k], float).tolist() for k in HISTORY_COLUMNS[1:])]
    row = "%d" + ",%.9g" * (len(HISTORY_COLUMNS) - 1)
    path.write_text("\n".join([",".join(HISTORY_COLUMNS),
                               *map(row.__mod__, zip(*columns))]) + "\n")


def read_history(path: Path) -> dict[str, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {name: rows[:, i] for i, name in enumerate(HISTORY_COLUMNS)}


def atomic_write(path: Path, text: str) -> None:
    """Write a file whole or not at all: a reader never sees half of it."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def write_json(path: Path, data) -> None:
    """Strict JSON (parsers reject NaN): a non-finite number is written as null."""
    path.write_text(json.dumps(strict(data), indent=2, allow_nan=False) + "\n")


def strict(data):
    if isinstance(data, float) and not np.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: strict(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict(v) for v in data]
    return data


def write_csv(path: Path, columns: list[str], rows: list[dict],
              cell: Callable[[object], str] | None = None) -> None:
    """A header of `columns`, then one line per row, each value through `cell`."""
    cell = cell or csv_cell
    lines = [",".join(columns), *(",".join(cell(row[c]) for c in columns) for row in rows)]
    atomic_write(path, "\n".join(lines) + "\n")


def csv_cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return f'"{text}"' if "," in text else text


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
