"""A command's options as objects, passed by keyword: what it trains (`Work`), where
(`Execution`) and, for tune, how it searches (`Searching`). cli.py fills them from the command
line, api.py from Python's arguments; commands.py runs them. Nothing but data and its checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from circlereg.config import check_value


@dataclass(frozen=True)
class Execution:
    """Where and how a command trains; none of it changes a run's numbers. `workers`: jobs
    at once (default: one per CPU this machine lets the process use); `backend` local or ray
    (at `address`); `chunk`: replicas a worker takes at a time; `quiet`: no progress bar;
    `programs`: train in this process on these compiled programs (None: on workers; not
    given: PROGRAMS decides)."""

    workers: int | None = None
    chunk: int | None = None
    backend: str = "local"
    address: str | None = None
    quiet: bool = False
    programs: object = ...


@dataclass(frozen=True)
class Work:
    """What a command trains and where it writes: `overrides` (--set) and `seed` on every
    config; `repeats` or `seeds`; the folder's `name` under `runs_dir`; `resume` the newest
    folder of the same work; per-run `figures`; `retrain` replicas already trained; the
    `reference` point and the `metrics` every point is judged on; a sweep's `spec_file`."""

    runs_dir: Path = Path("runs")
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    repeats: int | None = None
    seeds: str | None = None
    name: str | None = None
    resume: bool = False
    figures: bool = True
    retrain: bool = False
    reference: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    spec_file: Path | None = None

    def settings(self) -> list[str]:
        """--set overrides, then --seed's (checked as train.seed, naming --seed)."""
        check_value("--seed", "train.seed", "train.seed", self.seed, unless_none=True)
        return [*self.overrides, *([] if self.seed is None else [f"train.seed={self.seed}"])]


@dataclass(frozen=True)
class Searching:
    """How `tune` searches: `trials` to finish, the `objective` each scores (its mean over
    the seeds) and its `direction`, the Optuna `sampler` and its seed, and `batch` trials
    asked and trained together (default: enough to fill every worker's lanes twice)."""

    trials: int = 100
    objective: str = "val_accuracy"
    direction: str | None = None
    sampler: str = "tpe"
    sampler_seed: int = 0
    batch: int | None = None
