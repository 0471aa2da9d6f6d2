"""What a folder is: every command writes one manifest, `manifest.json`, in the folder it makes,
in one format whatever the command. Resume, `circlereg list`, the index and both exports read
it and never guess a folder's kind from its name or its files.

    {"manifest": 1, "kind": "sweep", "command": "circlereg sweep l1_pre_relu ...",
     "created": "2026-12-06T23:40:51Z", "spec": {...the sweep as a spec...},
     "varies": [{"key": "model.regularizers.0.l1", "values": [1e-05, 0.0001]}],
     "seeds": [1, 2, 3],
     "runs": [{"run": "p000/seed_1", "point": "p000", "seed": 1,
               "params": {"model.regularizers.0.l1": 1e-05}}, ...],
     "points": [{"point": "p000", "seeds": [1, 2, 3], "config": {...resolved...}}, ...]}

Kinds: run (one run; the manifest sits in the run directory, whose run is "."), repeats
(`run --repeats/--seeds`), sweep, comparison, tune and reproduction. `runs` lists every
planned run, finished or not (a tune lists the trials it asked, with their drawn values, and
the rest of its planned trials without values yet); `points` is what the folder trains,
which `--resume` compares. Folders written before manifests existed are read by
`read_legacy`, the one place that knows the old files: an earlier circlereg marked a
collection with `plan.json` (its runs, and for sweeps and tunes the resolved configs) and left
its kind to be guessed: `tune.yaml` made a tune, `sweep.yaml` a sweep (a comparison when its
points name configs, repeats when it has no axes), neither a reproduction. A lone run was a
folder with the run's files.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml

from circlereg.config import CONVENTIONS, quote
from circlereg.grammar import flatten
from circlereg.rundir import atomic_write, run_state

MANIFEST = "manifest.json"
FORMAT = 1
KINDS = ("run", "repeats", "sweep", "comparison", "tune", "reproduction")
RUN_FILES = ("config.yaml", "metrics.json", "history.csv", "environment.json")


@dataclass
class Manifest:
    kind: str
    runs: list[dict]  # {"run": relative folder, "point": str | None, "seed": int, "params"}
    varies: list[dict] = field(default_factory=list)  # {"key", "values": a list or a text}
    seeds: list[int] = field(default_factory=list)
    spec: dict = field(default_factory=dict)
    command: str | None = None
    created: str | None = None  # UTC, ISO 8601
    points: list[dict] = field(default_factory=list)  # what it trains: resume compares it
    legacy: bool = False  # read from an earlier version's files, not from a manifest

    def document(self) -> dict:
        body = asdict(self)
        order = ("kind", "command", "created", "spec", "varies", "seeds", "runs", "points")
        return {"manifest": FORMAT, **{key: body[key] for key in order}}

    def entry(self, run: str) -> dict | None:
        if getattr(self, "_by_run", None) is None:  # a sweep may list 100,000 runs
            self._by_run = {r["run"]: r for r in self.runs}
        return self._by_run.get(run)

    def describe(self) -> str:
        """What it varies, e.g. `model.regularizers.0.l1 x 3, placement x 2, seeds 1-3`."""
        parts = []
        for axis in self.varies:
            values = axis["values"]
            parts.append(f"{axis['key']} x {len(values)}" if isinstance(values, list)
                         else f"{axis['key']} {values}")
        if self.seeds:
            parts.append(("seed " if len(self.seeds) == 1 else "seeds ")
                         + seed_ranges(self.seeds))
        return ", ".join(parts) or "-"


def seed_ranges(seeds: list[int]) -> str:
    """Seeds as runs of consecutive numbers.

    >>> seed_ranges([1, 2, 3, 5, 9, 10])
    '1-3,5,9-10'
    """
    seeds, spans = sorted(set(seeds)), []
    for seed in seeds:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def command_line() -> str | None:
    """The command that made a folder, as typed; None when made from Python (the API, the
    tests)."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("circlereg", "cli.py", "__main__.py"):
        return shlex.join(["circlereg", *sys.argv[1:]])
    return None


def made(folder: Path) -> str:
    """When a folder was made: the UTC stamp its name starts with (every command names its
    folder so), else its modification time, else now."""
    try:
        stamp = datetime.strptime(folder.name.split("-")[0], "%Y%m%dT%H%M%S.%fZ")
    except ValueError:
        try:
            stamp = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)
        except OSError:
            stamp = datetime.now(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(folder: Path, manifest: Manifest) -> None:
    """Write (or replace) the folder's manifest in one rename."""
    manifest.command = manifest.command if manifest.command is not None else command_line()
    manifest.created = manifest.created or made(folder)
    atomic_write(folder / MANIFEST, json.dumps(manifest.document(), indent=1) + "\n")


def read(folder: Path) -> Manifest | None:
    """The folder's manifest; for a folder an earlier version wrote, what its old files say;
    None when the folder is not a collection or a run. ValueError when a manifest is there
    but unreadable."""
    path = folder / MANIFEST
    if not path.is_file():
        return read_legacy(folder)
    try:
        body = json.loads(path.read_text())
        if body.get("manifest") != FORMAT or body.get("kind") not in KINDS:
            raise ValueError(f"not a format-{FORMAT} manifest")
        return Manifest(**{k: v for k, v in body.items() if k != "manifest"})
    except (OSError, TypeError, AttributeError, ValueError) as err:
        raise ValueError(f"{path} is unreadable: {err}") from None


def difference(old: dict, new: dict) -> str:
    """The first difference between two identities, e.g. `p000 model.regularizers.0.l1:
    0.0001 -> 0.01`."""
    old_points, new_points = old.get("points", []), new["points"]
    if len(old_points) != len(new_points):
        return f"{len(old_points)} grid points, now {len(new_points)}"
    for before, after in zip(old_points, new_points):
        flat_before = flatten({"seeds": before.get("seeds"), **before.get("config", {})})
        flat_after = flatten({"seeds": after["seeds"], **after["config"]})
        for key in sorted(set(flat_before) | set(flat_after)):
            if flat_before.get(key) != flat_after.get(key):
                return (f"{after['point']} {key}: {quote(flat_before.get(key))} -> "
                        f"{quote(flat_after.get(key))}")
    return "the same configs, hashed differently"


def collections(root: Path) -> Iterator[tuple[Path, Manifest | None, str | None]]:
    """(folder, its manifest, what is wrong) for every collection and lone run under `root`,
    `root` included, in path order; a folder holding run files but no complete run comes with
    its manifest None and what is wrong with it. Hidden folders (`.tensorboard`, `.partial-*`,
    anything starting with a dot) are never looked into: they are export targets and runs
    still being written."""
    try:
        found = read(root)
    except ValueError as err:
        yield root, None, str(err)
        return
    if found is not None:
        yield root, found, None
        return
    if any((root / name).is_file() for name in RUN_FILES):
        yield root, None, f"run, {run_state(root)}"
        return
    try:
        children = sorted(root.iterdir())
    except OSError:  # vanished under us (a scratch folder renamed) or unreadable
        return
    for child in children:
        if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
            yield from collections(child)


@dataclass
class Listed:
    """One line of `circlereg list`: a collection or lone run, or a damaged folder."""

    status: str  # complete, incomplete or damaged
    folder: Path
    kind: str
    varies: str
    done: int
    planned: int
    created: str


def listing(runs_dir: Path) -> list[Listed]:
    """Every collection and lone run under runs_dir, from its manifest: complete when each
    planned run is there (and a reproduction's report), else incomplete; damaged when its
    manifest or its only run is unreadable."""
    found = []
    for folder, manifest, problem in collections(Path(runs_dir)):
        if manifest is None:
            found.append(Listed("damaged", folder, "-", problem or "", 0, 0, "-"))
            continue
        planned = [folder / r["run"] if r["run"] != "." else folder for r in manifest.runs]
        states = [run_state(run) for run in planned]
        done = sum(state is None for state in states)
        complete = done == len(planned) and (manifest.kind != "reproduction"
                                             or (folder / "reproduction.md").is_file())
        status = "complete" if complete else "incomplete"
        if manifest.kind == "run" and states != [None]:
            status = "damaged"
        found.append(Listed(status, folder, manifest.kind, manifest.describe(), done,
                            len(planned), (manifest.created or "-").replace("T", " ")
                            .removesuffix("Z")))
    return found


# --- folders an earlier circlereg wrote, before manifests ---


def read_legacy(folder: Path) -> Manifest | None:
    """The manifest an earlier version's folder would have had; None when it is no
    collection and no complete run."""
    plan = folder / "plan.json"
    if not plan.is_file():
        if run_state(folder) is not None:
            return None
        seed = json.loads((folder / "metrics.json").read_text()).get("seed")
        return Manifest("run", [{"run": ".", "point": None, "seed": seed, "params": {}}],
                        seeds=[seed] if seed is not None else [], created=made(folder),
                        legacy=True)
    try:
        body = json.loads(plan.read_text())
        planned = [str(run) for run in body["runs"]]
        if (folder / "tune.yaml").is_file() or (folder / "study.db").is_file():
            found = _tune(folder, planned)
        elif (folder / "sweep.yaml").is_file():
            found = _sweep(folder, planned)
        else:
            found = _reproduction(folder, planned)
    except (OSError, ValueError, LookupError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise ValueError(f"{plan} or its companions are unreadable: {err}") from None
    found.points = body.get("points", [])
    found.created = made(folder)
    found.legacy = True
    return found


def _seed(run: str) -> int | None:
    name = PurePosixPath(run).name
    return int(name[5:]) if name.startswith("seed_") and name[5:].isdigit() else None


def _entries(planned: list[str], params: dict[str, dict]) -> list[dict]:
    return [{"run": run, "point": PurePosixPath(run).parts[0], "seed": _seed(run),
             "params": params.get(PurePosixPath(run).parts[0], {})} for run in planned]


def _seeds(planned: list[str]) -> list[int]:
    return sorted({s for s in map(_seed, planned) if s is not None})


def _varies(points: dict[str, dict]) -> list[dict]:
    keys = list(dict.fromkeys(k for params in points.values() for k in params))
    varies = []
    for key in keys:
        values = []
        for params in points.values():
            if key in params and params[key] not in values:
                values.append(params[key])
        varies.append({"key": key, "values": values})
    return varies


def _sweep(folder: Path, planned: list[str]) -> Manifest:
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    points = {p["point"]: {k: v for k, v in p.items() if k not in ("point", "seeds")}
              for p in sweep["points"]}
    if isinstance(sweep.get("config"), list):
        kind = "comparison"
    else:
        kind = "sweep" if sweep.get("axes") else "repeats"
    spec = {k: v for k, v in sweep.items() if k != "points"}
    return Manifest(kind, _entries(planned, points), _varies(points), _seeds(planned), spec)


def _tune(folder: Path, planned: list[str]) -> Manifest:
    spec = yaml.safe_load((folder / "tune.yaml").read_text()) or {}
    trials: dict[str, dict] = {}
    if (folder / "trials.csv").is_file():
        with open(folder / "trials.csv", newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        objective = spec.get("objective")
        keys = header[2:header.index(objective)] if objective in header else []
        trials = {row[0]: {k: yaml.safe_load(row[2 + i]) for i, k in enumerate(keys)
                           if row[2 + i] != ""} for row in rows[1:]}
    varies = [{"key": text.partition("=")[0].strip(), "values": text.partition("=")[2].strip()}
              for text in spec.get("space", [])]
    return Manifest("tune", _entries(planned, trials), varies, _seeds(planned), spec)


def _reproduction(folder: Path, planned: list[str]) -> Manifest:
    """runs/<model>/seed_<n>, or runs/<model>-<convention>/seed_<n>."""
    points = {}
    for run in planned:
        label = PurePosixPath(run).parent.name
        model, _, convention = label.rpartition("-")
        points[label] = {"model": model, "convention": convention} \
            if model and convention in CONVENTIONS else {"model": label}
    entries = [{"run": run, "point": PurePosixPath(run).parent.name, "seed": _seed(run),
                "params": points[PurePosixPath(run).parent.name]} for run in planned]
    spec = {}
    if (folder / "reproduction.json").is_file():
        spec = json.loads((folder / "reproduction.json").read_text()).get("spec", {})
    return Manifest("reproduction", entries, _varies(points), _seeds(planned), spec)
