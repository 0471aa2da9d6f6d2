"""`circlereg run`: one config, one replica, one run directory."""

from __future__ import annotations

from pathlib import Path

from circlereg import rundir
from circlereg.plan import Outputs, Plan, Replica


def run_one(config: dict, runs_dir: Path, source: str = "<config>", figures: bool = True,
            executor=None, progress=None, on_plan=None) -> tuple[Path, dict]:
    """Train `config` and write its run directory; returns (its path, metrics).
    `on_plan(replica_epochs)` is told the work once the plan is checked."""
    from circlereg.executor import execute

    replica = Replica(config, rundir.run_path(runs_dir, config), source)
    plan = Plan([replica], Outputs(figures=figures))
    plan.check()
    if on_plan is not None:
        on_plan(plan.epochs())
    (written,) = execute(plan, executor, progress)
    return replica.destination, written.metrics
