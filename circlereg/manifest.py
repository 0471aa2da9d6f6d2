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
`legacy.read`, the one place that knows the old files.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

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
    from circlereg.sweep import atomic_write

    manifest.command = manifest.command if manifest.command is not None else command_line()
    manifest.created = manifest.created or made(folder)
    atomic_write(folder / MANIFEST, json.dumps(manifest.document(), indent=1) + "\n")


def read(folder: Path) -> Manifest | None:
    """The folder's manifest; for a folder an earlier version wrote, what its old files say;
    None when the folder is not a collection or a run. ValueError when a manifest is there
    but unreadable."""
    path = folder / MANIFEST
    if not path.is_file():
        from circlereg import legacy

        return legacy.read(folder)
    try:
        body = json.loads(path.read_text())
        if body.get("manifest") != FORMAT or body.get("kind") not in KINDS:
            raise ValueError(f"not a format-{FORMAT} manifest")
        return Manifest(**{k: v for k, v in body.items() if k != "manifest"})
    except (OSError, TypeError, AttributeError, ValueError) as err:
        raise ValueError(f"{path} is unreadable: {err}") from None


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
    from circlereg.rundir import run_state

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
    from circlereg.rundir import run_state

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
