"""`circlereg run`: one config, one replica, one run directory."""

from __future__ import annotations

from pathlib import Path

from circlereg import rundir
from circlereg.plan import Outputs, Plan, Replica


def run_one(config: dict, runs_dir: Path, source: str = "<config>", figures: bool = True,
            executor=None, progress=None) -> tuple[Path, dict]:
    """Train `config` and write its run directory; returns (its path, metrics)."""
    from circlereg.executor import execute

    replica = Replica(config, rundir.run_path(runs_dir, config), source)
    (written,) = execute(Plan([replica], Outputs(figures=figures)), executor, progress)
    return replica.destination, written.metrics
