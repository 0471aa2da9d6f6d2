"""`circlereg run`: one config, one replica, one run directory."""

from __future__ import annotations

from pathlib import Path

from circlereg import manifest, rundir
from circlereg.executor import execute
from circlereg.plan import Outputs, Plan, Replica


def run_one(config: dict, runs_dir: Path, source: str = "<config>", figures: bool = True,
            executor=None, progress=None, on_plan=None, notice=None, retrain: bool = False
            ) -> tuple[Path, dict]:
    """Train `config` and write its run directory, or reuse the same replica already trained
    under `runs_dir` (unless `retrain`); returns (its path, metrics). `on_plan(replica_epochs)`
    is told the work once the plan is checked, when there is any to train."""

    replica = Replica(config, rundir.run_path(runs_dir, config), source)
    plan = Plan([replica], Outputs(figures=figures), runs_dir=runs_dir, retrain=retrain)
    plan.check()
    (written,) = execute(plan, executor, progress, on_plan=on_plan, notice=notice)
    seed = config["train"]["seed"]
    manifest.write(replica.destination, manifest.Manifest(
        "run", [{"run": ".", "point": None, "seed": seed, "params": {}}], seeds=[seed],
        spec={"config": source}))
    return replica.destination, written.metrics
