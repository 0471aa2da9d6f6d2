"""The commands as calls: what each trains (`Work`) and where (`Execution`), passed by keyword.

cli.py reads the command line into these and prints what they return; api.py calls them from
Python. They raise (ConfigError on bad input, OSError when they cannot write,
KeyboardInterrupt) and never exit: cli.user_errors turns those into exit codes, in one place.
No TensorFlow here: the executor's workers load it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from circlereg import shipped
from circlereg.config import ConfigError, load, positive_int
from circlereg.constraints import OneOf, check_option
from circlereg.executor import Executor
from circlereg.options import Execution, Searching, Work
from circlereg.reproduce import reproduce as reproduce_spec
from circlereg.reuse import reused_from
from circlereg.run import run_one
from circlereg.rundir import check_runs_dir
from circlereg.spec import from_command_line
from circlereg.sweep import run_sweep
from circlereg.tune import require_optuna, run_tune

BACKENDS = OneOf(("local", "ray"))
# None: each command trains on worker processes (the CLI runs one command per process). Tests
# set a worker.Programs cache they own: the commands they invoke then train in this process,
# on compiled programs shared across commands.
PROGRAMS = None


def notice(message: str) -> None:
    """What the user should know, on stderr (stdout carries the command's result)."""
    print(message, file=sys.stderr, flush=True)


def start_executor(execution: Execution, runs_dir: Path) -> Executor:
    """The one executor a command trains its plan on, and where it writes; both checked
    before anything trains. Its first worker process starts loading TensorFlow now,
    while the command builds its plan; the others start once the plan says how many it
    needs (a 3-run plan on a 64-core machine starts one, not 64)."""
    check_runs_dir(runs_dir)
    check_option("--workers", positive_int, execution.workers)
    check_option("--chunk", positive_int, execution.chunk)
    check_option("--backend", BACKENDS, execution.backend)
    if execution.backend == "ray":
        from circlereg.cluster import check_available  # Ray is an extra: only with ray

        check_available(execution.address)
    elif execution.address is not None:
        raise ConfigError("--address", "", "applies to --backend ray only")
    programs = PROGRAMS if execution.programs is ... else execution.programs
    executor = Executor(workers=execution.workers, backend=execution.backend,
                        address=execution.address, chunk=execution.chunk, programs=programs)
    executor.start(1)
    return executor


def run(config: str | Path, work: Work, execution: Execution,
        notice: Callable[[str], None] = notice) -> tuple[Path, dict]:
    """`circlereg run` without --repeats/--seeds: returns (the run directory, its metrics)."""
    if work.resume:
        raise ConfigError("--resume", "", "applies with --repeats or --seeds only")
    config = shipped.config_file(config)
    resolved = load(config, work.settings())
    executor = start_executor(execution, work.runs_dir)

    def announce(replica_epochs: int) -> None:
        notice(f"{resolved['name']}: training {resolved['train']['epochs']} epochs, "
               f"seed {resolved['train']['seed']}, engine {resolved['train']['engine']}")
        progress.total(replica_epochs)

    with executor, progress_bar(execution.quiet) as progress:
        path, metrics = run_one(resolved, work.runs_dir, str(config), figures=work.figures,
                                executor=executor, progress=progress.advance,
                                on_plan=announce, notice=notice, retrain=work.retrain)
    if reused_from(path) is not None:
        notice(f"{resolved['name']}: seed {resolved['train']['seed']} is already trained "
               f"({reused_from(path)}): reused, not trained again (--retrain trains it)")
    return path, metrics


def sweep_arguments(config: str | None, axes: list[str] | None, spec: Path | None
                    ) -> tuple[list[Path], list[str]]:
    """`sweep`'s arguments as (base configs, axes): with --spec every argument is an axis."""
    axes = axes or []
    if spec is not None and config is not None:
        if "=" not in config:
            raise ConfigError("--spec", config, "the spec names the base config; give no "
                              "config argument with --spec (arguments with --spec are axes, "
                              "key=values)")
        return [], [config, *axes]
    if spec is None and config is None:
        raise ConfigError("sweep", "", "give a base config (circlereg sweep CONFIG "
                                       "key=values ...) or --spec FILE")
    return [] if config is None else [Path(config)], axes


def sweep(command: str, configs: list[Path], axes: list[str], work: Work,
          execution: Execution, notice: Callable[[str], None] = notice
          ) -> tuple[Path, list[dict]]:
    """`circlereg sweep`, `compare` and `run --repeats/--seeds` (`command`): returns (the
    folder, its summary rows)."""
    configs = [shipped.config_file(config) for config in configs]
    spec_file = None if work.spec_file is None else shipped.spec_file(work.spec_file)
    spec = from_command_line(configs, axes, work.settings(), work.repeats, work.seeds,
                             work.name, spec_file)
    executor = start_executor(execution, work.runs_dir)
    with executor, progress_bar(execution.quiet) as progress:
        return run_sweep(spec, work.runs_dir, resume=work.resume, figures=work.figures,
                         executor=executor, progress=progress.advance, notice=notice,
                         on_plan=progress.total, retrain=work.retrain,
                         kind="repeats" if command == "run" else None,
                         reference=list(work.reference), metrics=list(work.metrics))


def reproduce(spec: dict, work: Work, execution: Execution,
              notice: Callable[[str], None] = notice) -> tuple[Path, dict]:
    """`circlereg reproduce` of a loaded spec: returns (the report folder, its verdict)."""
    executor = start_executor(execution, work.runs_dir)
    with executor, progress_bar(execution.quiet) as progress:
        return reproduce_spec(spec, work.runs_dir, executor=executor,
                              progress=progress.advance, on_plan=progress.total,
                              notice=notice, retrain=work.retrain)


class Bar:
    """Progress over replica-epochs on stderr: drawn from `total(n)` (once the plan is
    checked) and moved by `advance(n)`; nothing when quiet or when stderr is not a terminal
    (logs get no half-drawn bars or blank lines)."""

    def __init__(self, progress=None):
        self.progress, self.task = progress, None

    def total(self, replica_epochs: int) -> None:
        if self.progress is not None and self.task is None and replica_epochs:
            self.progress.start()
            self.task = self.progress.add_task("train", total=replica_epochs)

    def advance(self, replica_epochs: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, replica_epochs)


@contextmanager
def progress_bar(quiet: bool):
    from rich.console import Console  # rich only when something trains: --help stays light

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Bar()
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("training"), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                        TimeRemainingColumn(), transient=True, console=console)
    try:
        yield Bar(progress)
    finally:
        progress.stop()


def tune(config: str | Path, space: list[str], searching: Searching, work: Work,
         execution: Execution, notice: Callable[[str], None] = notice):
    """`circlereg tune`: returns what the search found (tune_report.Tune)."""
    require_optuna()
    config = shipped.config_file(config)
    executor = start_executor(execution, work.runs_dir)
    with executor, progress_bar(execution.quiet) as progress:
        return run_tune(config, space, searching, work, executor=executor,
                        progress=progress.advance, notice=notice, on_plan=progress.total,
                        on_batch=None if execution.quiet else notice)
