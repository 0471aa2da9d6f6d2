"""A replica is trained once: before a plan trains, each replica already complete anywhere under
the runs directory (the index finds it by its identity, `index.identity`) is placed in its
destination instead, its files hard-linked (copied where links cannot be made), with a
`reused.json` saying where it came from. A replica whose destination already holds it (a
resumed folder) is kept as it is. `--retrain` (`Plan.retrain`) trains every replica anyway.

This is the one place that decides what a plan reuses; `executor.execute` calls it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from circlereg.index import identity
from circlereg.manifest import RUN_FILES
from circlereg.plan import Outputs, Plan
from circlereg.rundir import begin_dir, commit_dir, run_state, write_json

REUSED = "reused.json"
FIGURES = ("accuracy.png", "loss.png", "decision_boundary.png")
MODEL = "model.keras"


@dataclass
class Placed:
    """What reuse made of a plan: replicas kept in place and replicas reused, by index."""

    kept: dict[int, Path] = field(default_factory=dict)
    reused: dict[int, Path] = field(default_factory=dict)  # index -> the run it came from

    def __contains__(self, index: int) -> bool:
        return index in self.kept or index in self.reused


def run_files(outputs: Outputs) -> tuple[str, ...]:
    """The files a run of a plan with these outputs holds (besides reused.json)."""
    return (*RUN_FILES, *(FIGURES if outputs.figures else ()), *((MODEL,) if outputs.model
                                                                  else ()))


def place(plan: Plan, index, notice: Callable[[str], None]) -> Placed:
    """Keep or reuse every replica of `plan` that is already trained; returns which."""

    placed = Placed()
    facts = index.facts()
    needed = run_files(plan.outputs)
    for i, replica in enumerate(plan.replicas):
        destination = Path(replica.destination)
        wanted = identity(replica.config, facts) if facts is not None else None
        state = run_state(destination)
        if state is None and not plan.retrain:
            if wanted is not None and index.identity_of(destination) == wanted:
                placed.kept[i] = destination
                continue
            notice(f"{destination}: trained with other software; training it again")
        elif state not in (None, "missing"):
            notice(f"{destination}: {state}; training it again")
        if plan.retrain or wanted is None:
            continue
        source = next((s for s in index.sources(wanted)
                       if s.absolute() != destination.absolute() and run_state(s) is None
                       and _holds(s, needed)), None)
        if source is not None:
            try:
                link_run(source, destination, needed, index.runs_dir)
            except FileNotFoundError:  # the source was removed since it was found: train
                continue
            placed.reused[i] = source
    return placed


def _holds(run: Path, files: tuple[str, ...]) -> bool:
    return all((run / name).is_file() for name in files)


def link_run(source: Path, destination: Path, files: tuple[str, ...], runs_dir: Path) -> None:
    """Put the run in `source` at `destination`, as the writer puts a run: whole, in one
    rename. Its files are hard links to the source's (byte-identical, no space), or copies."""

    scratch = begin_dir(destination)
    try:
        for name in files:
            try:
                os.link(source / name, scratch / name)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(source / name, scratch / name)
        write_json(scratch / REUSED, {
            "from": os.path.relpath(source.absolute(), Path(runs_dir).absolute()),
            "note": "this run was not trained again: its files are those of the run it "
                    "came from (the same replica: config, seed, software and machine)"})
        commit_dir(scratch, destination)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def reused_from(run: Path) -> str | None:
    """Where a reused run came from (relative to its runs directory); None if trained."""
    try:
        return json.loads((run / REUSED).read_text()).get("from")
    except (OSError, ValueError, AttributeError):
        return None
