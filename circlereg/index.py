"""One index of every run under a runs directory, and what makes two runs the same replica.

The index is a SQLite file, `<runs dir>/.index.sqlite` (hidden, so never taken for a run), with
a row per complete run: its folder, its collection and kind, its point, seed and varied
parameters (from the collection's manifest), its final metrics, where it was reused from,
and its replica identity. The folders stay the truth: every command that opens the index
first brings it up to date with them, and an index that is missing, damaged (not a
database, another schema) or older than the folders is rebuilt from them with a one-line
notice. Each row is a function of its folder's files alone, so a rebuilt index equals the
one it replaces.

The command's own process inserts the rows of the runs its workers wrote, as each job
finishes; several commands may write one runs directory at once: SQLite's write-ahead log
and a busy timeout serialise their short transactions, and a row is only ever replaced by
the same row, so none is lost.

A replica's identity is everything its bits depend on: its resolved config without the
presentation-only `name` (the folder it is written to is not in the config either), its seed
(in the config), the installed Keras' activity-penalty convention, and the software and
machine the numbers come from (Python, TensorFlow, Keras, NumPy, scikit-learn, machine,
CPU). It is computed without importing TensorFlow: versions from the installed packages'
metadata, and the convention, which needs a Keras probe, from the environment.json of a run
trained with the same software (none: then no run can be reused, as none matches).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import sys
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path

import yaml

from circlereg import manifest as manifests
from circlereg.config import NUMBERS_REVISION, ConfigError
from circlereg.provenance import cpu_model
from circlereg.rundir import run_state

INDEX = ".index.sqlite"
SCHEMA_VERSION = 1
BUSY_SECONDS = 60  # how long a writer waits for another command's transaction
# The facts of environment.json a replica's numbers depend on, by their names there.
SOFTWARE = ("python", "tensorflow", "keras", "numpy", "scikit_learn", "machine", "cpu",
            "numbers_revision")
CONVENTION = "keras_activity_penalty"
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos",
                                "tensorflow-intel", "tf-nightly"),
                 "keras": ("keras",), "numpy": ("numpy",), "scikit_learn": ("scikit-learn",)}
COLUMNS = ("folder", "collection", "kind", "point", "seed", "params", "identity", "software",
           "train_accuracy", "test_accuracy", "gap", "diverged", "metrics", "reused_from",
           "stamp")


@cache
def software() -> dict:
    """This process's software and machine, as environment.json records them, without
    importing TensorFlow (the convention is not here: see `Index.convention`)."""

    facts = {"python": sys.version.split()[0], "machine": platform.machine(),
             "cpu": cpu_model(), "numbers_revision": NUMBERS_REVISION}
    for name, candidates in DISTRIBUTIONS.items():
        facts[name] = next((_version(d) for d in candidates if _version(d)), None)
    return {key: facts[key] for key in SOFTWARE}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def recorded(environment: dict) -> dict:
    """The identity facts of a run's environment.json, the convention included."""
    # a run from before circlereg recorded its numbers' revision has the first
    return {key: environment.get(key, 1 if key == "numbers_revision" else None)
            for key in (*SOFTWARE, CONVENTION)}


def identity(config: dict, facts: dict) -> str:
    """The replica's identity: its config without its name, and the facts (software,
    machine, convention) its numbers come from."""
    content = {"config": {k: v for k, v in config.items() if k != "name"}, "facts": facts}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def row(folder: Path, runs_dir: Path, collection: Path, found: manifests.Manifest,
        config: dict | None = None) -> dict:
    """The index row of the complete run in `folder` (of the collection in `collection`,
    whose manifest is `found`): read from its files alone. `config`: its config.yaml,
    already parsed."""
    metrics_path = folder / "metrics.json"
    stat = metrics_path.stat()
    metrics = json.loads(metrics_path.read_text())
    environment = json.loads((folder / "environment.json").read_text()) \
        if (folder / "environment.json").is_file() else {}
    if config is None:
        config = yaml.safe_load((folder / "config.yaml").read_text())
    facts = recorded(environment)
    relative = folder.relative_to(collection).as_posix()
    entry = found.entry(relative) or {}
    reused = folder / "reused.json"
    return {
        "folder": _relative(folder, runs_dir), "collection": _relative(collection, runs_dir),
        "kind": found.kind, "point": entry.get("point"),
        "seed": metrics.get("seed", config["train"]["seed"]),
        "params": json.dumps(entry.get("params") or {}, sort_keys=True),
        "identity": identity(config, facts),
        "software": json.dumps(facts, sort_keys=True),
        "train_accuracy": metrics.get("train_accuracy"),
        "test_accuracy": metrics.get("test_accuracy"), "gap": metrics.get("gap"),
        "diverged": int(bool(metrics.get("diverged"))),
        "metrics": json.dumps({k: v for k, v in metrics.items() if not k.endswith("_seconds")},
                              sort_keys=True),
        "reused_from": json.loads(reused.read_text()).get("from") if reused.is_file() else None,
        "stamp": f"{stat.st_mtime_ns}:{stat.st_size}",
    }


def _relative(path: Path, runs_dir: Path) -> str:
    return os.path.relpath(path, runs_dir).replace(os.sep, "/")


def scan(runs_dir: Path) -> dict[str, tuple[Path, Path, manifests.Manifest]]:
    """Every complete run under runs_dir: its index folder -> (run folder, collection
    folder, the collection's manifest)."""

    found = {}
    for collection, manifest, _ in manifests.collections(Path(runs_dir)):
        if manifest is None or collection == Path(runs_dir):
            continue
        for entry in manifest.runs:
            folder = collection / entry["run"] if entry["run"] != "." else collection
            if run_state(folder) is None:
                found[_relative(folder, runs_dir)] = (folder, collection, manifest)
    return found


@contextmanager
def transaction(db: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the writer's lock from the start, so two
    commands' transactions queue (busy timeout) instead of failing half way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Index:
    """The index of one runs directory, brought up to date with its folders when opened."""

    def __init__(self, runs_dir: Path, notice: Callable[[str], None] | None = None):
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / INDEX
        self.notice = notice or (lambda message: None)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        problem = None if self.path.exists() else "was missing"
        try:
            self.db = self._connect()
            self.sync(problem)
        except sqlite3.DatabaseError as err:  # not a database, or a damaged one
            if getattr(self, "db", None) is not None:
                self.db.close()
            self._remove()
            self.db = self._connect()
            self.sync(f"was damaged ({err})")

    # -- the database ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, not {SCHEMA_VERSION}")
            with transaction(db):
                db.execute(f"CREATE TABLE IF NOT EXISTS runs ({COLUMNS[0]} TEXT PRIMARY KEY, "
                           + ", ".join(COLUMNS[1:]) + ")")
                db.execute("CREATE INDEX IF NOT EXISTS by_identity ON runs (identity)")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- keeping it true to the folders ----------------------------------------------------

    def sync(self, problem: str | None = None) -> None:
        """Add the complete runs the index lacks (or holds an older version of), drop the
        rows of runs no longer there; say so in one line when it was missing, damaged or
        behind the folders."""
        on_disk = scan(self.runs_dir)
        held = {folder: rest for folder, *rest in self.db.execute(
            "SELECT folder, stamp, kind, point, params FROM runs")}
        stale = []
        for name, (folder, collection, found) in on_disk.items():
            try:
                stat = (folder / "metrics.json").stat()
            except OSError:
                continue
            # A run rewritten, or its manifest's record of it changed (a folder of an
            # earlier version given a manifest when resumed), is read again.
            entry = found.entry(folder.relative_to(collection).as_posix()) or {}
            if held.get(name) != [f"{stat.st_mtime_ns}:{stat.st_size}", found.kind,
                                  entry.get("point"),
                                  json.dumps(entry.get("params") or {}, sort_keys=True)]:
                stale.append(name)
        gone = [name for name in held if name not in on_disk]
        if stale or gone:
            self._write([(*on_disk[name], None) for name in stale], gone)
        if problem is not None and on_disk:
            self.notice(f"index: {self.path} {problem}; rebuilt from the {len(on_disk)} runs "
                        "in the folders")
        elif problem is None and (stale or gone):
            self.notice(f"index: {self.path} was older than the folders ({len(stale)} runs "
                        f"new or changed, {len(gone)} gone); brought up to date")

    def _write(self, runs: list[tuple[Path, Path, manifests.Manifest, dict | None]],
               gone: list[str] = ()) -> None:
        """Insert (or replace) the rows of `runs` (run folder, collection folder, its
        manifest, the run's config if known) and delete those of `gone`, in one transaction."""
        rows = []
        for folder, collection, found, config in runs:
            try:
                rows.append(row(folder, self.runs_dir, collection, found, config))
            except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
                continue  # replaced or removed while we read it: the next sync sees it
        with transaction(self.db):
            self.db.executemany(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(COLUMNS))})",
                                [tuple(r[c] for c in COLUMNS) for r in rows])
            for name in gone:  # only if still gone: another command may have just made it
                if not (self.runs_dir / name / "metrics.json").is_file():
                    self.db.execute("DELETE FROM runs WHERE folder = ?", (name,))

    def add(self, written: list[tuple[Path, dict]]) -> None:
        """Insert the rows of runs just written: (run folder, its config)."""
        runs = []
        cache: dict[Path, manifests.Manifest | None] = {}
        root = self.runs_dir.absolute()
        for folder, config in written:
            folder = self.runs_dir / os.path.relpath(Path(folder).absolute(), root)
            collection, found = self._collection(folder, cache)
            if found is not None:
                runs.append((folder, collection, found, config))
        if runs:
            self._write(runs)

    def _collection(self, folder: Path, cache: dict) -> tuple[Path, manifests.Manifest | None]:
        """The collection a run folder belongs to: the nearest folder above it with a
        manifest (or an earlier version's plan.json), else the run itself (a lone run)."""
        root, folder = self.runs_dir.absolute(), folder.absolute()
        for candidate in folder.parents:
            if candidate == root or root not in candidate.parents:
                break
            if (candidate / manifests.MANIFEST).is_file() or (candidate / "plan.json").is_file():
                if candidate not in cache:
                    try:
                        cache[candidate] = manifests.read(candidate)
                    except ValueError:
                        cache[candidate] = None
                if cache[candidate] is not None:
                    return self.runs_dir / os.path.relpath(candidate, root), cache[candidate]
        try:
            return self.runs_dir / os.path.relpath(folder, root), manifests.read(folder)
        except ValueError:
            return folder, None

    # -- what it answers -------------------------------------------------------------------

    def rows(self) -> list[dict]:
        cursor = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY folder")
        return [dict(zip(COLUMNS, values)) for values in cursor]

    def convention(self, facts: dict) -> str | None:
        """The activity-penalty convention of the Keras these facts name, as a run trained
        with them recorded it; None when no such run is here."""
        for (text,) in self.db.execute("SELECT DISTINCT software FROM runs"):
            recorded_facts = json.loads(text)
            if {k: recorded_facts.get(k) for k in SOFTWARE} == facts:
                return recorded_facts.get(CONVENTION)
        return None

    def facts(self) -> dict | None:
        """This process's identity facts, the convention included; None when unknown."""
        current = software()
        convention = self.convention(current)
        return None if convention is None else {**current, CONVENTION: convention}

    def sources(self, replica_identity: str) -> list[Path]:
        """Run folders holding this replica, oldest path first."""
        return [self.runs_dir / folder for (folder,) in self.db.execute(
            "SELECT folder FROM runs WHERE identity = ? ORDER BY folder", (replica_identity,))]

    def identity_of(self, folder: Path) -> str | None:
        found = self.db.execute("SELECT identity FROM runs WHERE folder = ?",
                                (_relative(folder, self.runs_dir),)).fetchone()
        return found[0] if found else None


def open_index(runs_dir: Path, notice: Callable[[str], None] | None = None) -> Index:
    """The runs directory's index, up to date; a ConfigError when it cannot be opened."""
    try:
        return Index(runs_dir, notice)
    except sqlite3.Error as err:
        raise ConfigError(str(Path(runs_dir) / INDEX), "", f"cannot open the index: {err}") \
            from None
