"""The `circlereg` command: parses arguments, calls library functions, maps errors to exit codes.

Bad input exits 2 with one line naming the file, the key and what is allowed; Ctrl-C exits 130.
TensorFlow is imported only by commands that train.
"""

from __future__ import annotations

import atexit
import inspect
import os
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from circlereg import __version__, commands, export, shipped
from circlereg import arguments as arg
from circlereg.commands import notice
from circlereg.config import ConfigError, load
from circlereg.index import open_index
from circlereg.manifest import listing
from circlereg.options import Execution, Searching, Work
from circlereg.processes import WorkerLost
from circlereg.report import summary_table
from circlereg.reproduce import failing_rows, load_spec
from circlereg.show import diff as folder_differences
from circlereg.show import run_lines
from circlereg.show import show as what_folder_is

# rich_markup_mode=None: click's own layout, which gives the help text half of an 80-column
# terminal where rich's panels squeezed it into a column of 21
app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  help="Run, sweep and reproduce regularization experiments on the "
                       "concentric-circles overfitting study.")

DIVERGED = 3  # exit code of a lone run whose training loss stopped being finite


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def write_failed(err: OSError) -> str:
    """A file system error (disk full, permissions) as one line."""
    if isinstance(err, WorkerLost):
        return str(err)
    where = f"{err.filename}: " if err.filename else ""
    return f"cannot write {where}{err.strerror or err}"


@contextmanager
def user_errors(kept: str = ""):
    """The one error path: bad input (ConfigError) exits 2 with its one line; a file system
    error or a lost worker exits 2, Ctrl-C exits 130, each saying what was `kept`."""
    after = f"; {kept}" if kept else ""
    try:
        yield
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err) + after)
    except KeyboardInterrupt:
        fail(f"interrupted{after}", code=130)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"circlereg {__version__}")
        raise typer.Exit()


@app.callback()
def circlereg(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
        = False) -> None:
    """Run, sweep and reproduce regularization experiments on make_circles."""


@app.command()
def run(
    config: arg.RunConfigArgument,
    set_: arg.SetOption = None,
    seed: arg.SeedOption = None,
    repeats: arg.RepeatsOption = None,
    seeds: arg.SeedsOption = None,
    runs_dir: arg.RunsDirOption = Path("runs"),
    run_figures: arg.FiguresOption = True,
    resume: arg.RunResumeOption = False,
    quiet: arg.QuietOption = False,
    workers: arg.WorkersOption = None,
    backend: arg.BackendOption = "local",
    address: arg.AddressOption = None,
    retrain: arg.RetrainOption = False,
) -> None:
    """Train one config and write its run directory (with --repeats/--seeds: one per seed
    and a summary)."""
    work = Work(runs_dir=runs_dir, overrides=tuple(set_ or ()), seed=seed, repeats=repeats,
                seeds=seeds, resume=resume, figures=run_figures, retrain=retrain)
    execution = Execution(workers=workers, backend=backend, address=address, quiet=quiet)
    if repeats is not None or seeds is not None:
        _run_sweep("run", [config], [], work, execution)
        return
    with user_errors("no run directory was written"):
        path, metrics = commands.run(config, work, execution)
    typer.echo(f"Train: {metrics['train_accuracy']:.3f}, Test: {metrics['test_accuracy']:.3f}")
    typer.echo(f"run: {path}")
    if metrics["diverged"]:
        typer.echo(f"warning: the run diverged (training loss not finite by epoch "
                   f"{metrics['epochs']}); exit code {DIVERGED}", err=True)
        raise typer.Exit(DIVERGED)


@app.command()
def sweep(
    config: arg.SweepConfigArgument = None,
    axes: arg.SweepAxesArgument = None,
    spec: arg.SweepSpecOption = None,
    set_: arg.SetOption = None,
    seed: arg.SeedOption = None,
    repeats: arg.RepeatsOption = None,
    seeds: arg.SeedsOption = None,
    runs_dir: arg.RunsDirOption = Path("runs"),
    name: arg.SweepNameOption = None,
    resume: arg.ResumeOption = False,
    run_figures: arg.FiguresOption = True,
    quiet: arg.QuietOption = False,
    workers: arg.WorkersOption = None,
    chunk: arg.ChunkOption = None,
    backend: arg.BackendOption = "local",
    address: arg.AddressOption = None,
    retrain: arg.RetrainOption = False,
    reference: arg.ReferenceOption = None,
    metric: arg.MetricOption = None,
) -> None:
    """Grid-search keys with repeated seeds; every replica of one model shape trains in
    batched graphs. Every point is judged against a reference point, paired by seed."""
    with user_errors():
        configs, axes = commands.sweep_arguments(config, axes, spec)
    _run_sweep("sweep", configs, axes,
               Work(runs_dir=runs_dir, overrides=tuple(set_ or ()), seed=seed, repeats=repeats,
                    seeds=seeds, name=name, resume=resume, figures=run_figures,
                    retrain=retrain, reference=tuple(reference or ()),
                    metrics=tuple(metric or ()), spec_file=spec),
               Execution(workers=workers, chunk=chunk, backend=backend, address=address,
                         quiet=quiet))


def _run_sweep(command: str, configs: list[Path], axes: list[str], work: Work,
               execution: Execution) -> None:
    kept = (f"finished runs are kept: run `circlereg {command}` with the same arguments and "
            "--resume to complete")
    with user_errors(kept):
        folder, rows = commands.sweep(command, configs, axes, work, execution)
    for line in summary_table(rows):
        typer.echo(line)
    typer.echo(f"sweep: {folder}")


@app.command()
def compare(
    configs: arg.CompareConfigsArgument,
    set_: arg.SetOption = None,
    seed: arg.SeedOption = None,
    repeats: arg.RepeatsOption = None,
    seeds: arg.SeedsOption = None,
    runs_dir: arg.RunsDirOption = Path("runs"),
    name: arg.CompareNameOption = "compare",
    resume: arg.ResumeOption = False,
    run_figures: arg.FiguresOption = False,
    quiet: arg.QuietOption = False,
    workers: arg.WorkersOption = None,
    chunk: arg.ChunkOption = None,
    backend: arg.BackendOption = "local",
    address: arg.AddressOption = None,
    retrain: arg.RetrainOption = False,
    reference: arg.ReferenceOption = None,
    metric: arg.MetricOption = None,
) -> None:
    """Train several configs with the same seeds and compare their final accuracies (a sweep
    whose grid points are the configs), each judged against the first config, paired by
    seed."""
    _run_sweep("compare", configs, [],
               Work(runs_dir=runs_dir, overrides=tuple(set_ or ()), seed=seed, repeats=repeats,
                    seeds=seeds, name=name, resume=resume, figures=run_figures,
                    retrain=retrain, reference=tuple(reference or ()),
                    metrics=tuple(metric or ())),
               Execution(workers=workers, chunk=chunk, backend=backend, address=address,
                         quiet=quiet))


@app.command()
def reproduce(
    spec: arg.ReproduceSpecOption = None,
    seeds: arg.ReproduceSeedsOption = None,
    epochs: arg.ReproduceEpochsOption = None,
    runs_dir: arg.RunsDirOption = Path("runs"),
    quiet: arg.QuietOption = False,
    workers: arg.WorkersOption = None,
    chunk: arg.ChunkOption = None,
    backend: arg.BackendOption = "local",
    address: arg.AddressOption = None,
    retrain: arg.RetrainOption = False,
) -> None:
    """Reproduce the study's published train/test figures; exit 0 when every figure and claim
    reproduces under the study's convention, 1 otherwise."""
    with user_errors("no report was written (finished runs are kept)"):
        loaded = load_spec(spec or shipped.reproduction_spec(), seeds, epochs)
        folder, verdict = commands.reproduce(
            loaded, Work(runs_dir=runs_dir, retrain=retrain),
            Execution(workers=workers, chunk=chunk, backend=backend, address=address,
                      quiet=quiet))
    typer.echo((folder / "reproduction.md").read_text())
    typer.echo(f"report: {folder}")
    failures = failing_rows(verdict)
    for row in failures:
        typer.echo(f"FAILED: {row}", err=True)
    raise typer.Exit(1 if failures else 0)


@app.command("list")
def list_runs(
    runs_dir: arg.ListFolderArgument = Path("runs"),
    runs: arg.ListEachRunOption = False,
) -> None:
    """List runs, sweeps, comparisons, tunes and reproductions: what each is, what it varies,
    its runs done and planned, and when it was made."""
    if not runs_dir.is_dir():
        fail(f"{runs_dir}: no such folder (--runs-dir of the commands that wrote runs)")
    if runs:
        _list_each_run(runs_dir)
        return
    found = listing(runs_dir)
    if not found:
        notice(f"nothing under {runs_dir}")
    lines = [[f.status, f.kind, f"{f.done}/{f.planned} runs", f.created, str(f.folder),
              f.varies] for f in found]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(5)]
    for line in lines:
        typer.echo("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths)), line[5]])
                   .rstrip())


def _list_each_run(runs_dir: Path) -> None:
    with user_errors(), open_index(runs_dir, notice) as index:
        rows = index.rows()
    if not rows:
        notice(f"no complete run under {runs_dir}")
    for line in run_lines(runs_dir, rows):
        typer.echo(line)


@app.command()
def show(
    path: arg.ShowPathArgument,
) -> None:
    """What a run or collection is: its kind, the command that made it, what it varies, its
    summary table and where its runs came from (trained or reused)."""
    with user_errors():
        lines = what_folder_is(path)
    for line in lines:
        typer.echo(line)


@app.command()
def diff(
    a: arg.DiffAArgument,
    b: arg.DiffBArgument,
) -> None:
    """The config keys and metrics that differ between two runs or two collections (points
    paired by what they vary)."""
    with user_errors():
        lines = folder_differences(a, b)
    for line in lines:
        typer.echo(line)


@app.command()
def validate(
    configs: arg.ValidateConfigsArgument,
    set_: arg.SetOption = None,
) -> None:
    """Check configs without training (and without importing TensorFlow)."""
    bad = 0
    for path in configs:
        try:
            resolved = load(shipped.config_file(path), set_ or [])
        except ConfigError as err:
            typer.echo(f"error: {err}", err=True)
            bad += 1
            continue
        typer.echo(f"ok: {path} ({resolved['name']})")
    if bad:
        raise typer.Exit(2)


@app.command("configs")
def shipped_configs(
    copy: arg.ConfigsCopyOption = None,
    schema: arg.ConfigsSchemaOption = False,
) -> None:
    """List the configs shipped with circlereg, each with its description (run one by its
    name: circlereg run l1_pre_relu); --copy DIR writes them out to edit."""
    if schema:
        typer.echo(shipped.schema_text(), nl=False)
        return
    if copy is None:
        found = shipped.configs()
        width = max(len(name) for name in found)
        for name, path in found.items():
            typer.echo(f"{name:<{width}}  {shipped.description(path)}")
        return
    with user_errors():
        written = shipped.copy_to(copy)
    others = [str(path.relative_to(copy)) for path in written if path.parent != copy]
    typer.echo(f"copied {len(written) - len(others)} configs and {', '.join(others)} into "
               f"{copy}")


export_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Export runs, sweeps, comparisons and reproductions to "
                              "TensorBoard or MLflow (nothing is trained).")
app.add_typer(export_app, name="export",
              short_help="Export runs and collections to TensorBoard or MLflow")


@export_app.command("tensorboard")
def export_tensorboard(
    folder: arg.ExportFolder = Path("runs"),
    logdir: arg.ExportTensorboardLogdirOption = None,
) -> None:
    """Write TensorBoard event files (runs exported before are skipped).

    Each run: its curves per epoch and final metrics. Each sweep, comparison or reproduction:
    its runs as HParams sessions, the swept keys as hyperparameters."""
    _export(lambda: export.to_tensorboard(folder, logdir, notice=notice),
            view="tensorboard --logdir")


@export_app.command("mlflow")
def export_mlflow(
    folder: arg.ExportFolder = Path("runs"),
    experiment: arg.ExportMlflowExperimentOption = None,
) -> None:
    """Log runs to MLflow at $MLFLOW_TRACKING_URI (runs logged before are skipped).

    A sweep, comparison or reproduction becomes a parent run with one child per run: its
    config as params, curves by epoch, final metrics, and its files as artifacts."""
    _export(lambda: export.to_mlflow(folder, experiment, notice=notice))


def _export(export, view: str | None = None) -> None:
    with user_errors("runs exported so far are kept: export again to add the rest"):
        exported = export()
    typer.echo(f"{exported.new} runs exported, {exported.present} already there: "
               f"{exported.where}")
    if view:
        notice(f"view them: {view} {exported.where}")


@app.command()
def tune(
    config: arg.TuneConfigArgument,
    space: arg.TuneSpaceArgument = None,
    trials: arg.TuneTrialsOption = 100,
    objective: arg.TuneObjectiveOption = "val_accuracy",
    direction: arg.TuneDirectionOption = None,
    sampler: arg.TuneSamplerOption = "tpe",
    sampler_seed: arg.TuneSamplerSeedOption = 0,
    batch: arg.TuneBatchOption = None,
    set_: arg.SetOption = None,
    seed: arg.SeedOption = None,
    repeats: arg.RepeatsOption = None,
    seeds: arg.SeedsOption = None,
    runs_dir: arg.RunsDirOption = Path("runs"),
    name: arg.TuneNameOption = None,
    resume: arg.ResumeOption = False,
    run_figures: arg.FiguresOption = False,
    quiet: arg.QuietOption = False,
    workers: arg.WorkersOption = None,
    chunk: arg.ChunkOption = None,
    backend: arg.BackendOption = "local",
    address: arg.AddressOption = None,
    retrain: arg.RetrainOption = False,
) -> None:
    """Search config values with Optuna (the tune extra); trials train in batches, side by
    side, each over the same seeds."""
    with user_errors("finished trials are kept: run `circlereg tune` with the same arguments "
                     "and --resume to complete"):
        found = commands.tune(
            config, space or [],
            Searching(trials=trials, objective=objective, direction=direction,
                      sampler=sampler, sampler_seed=sampler_seed, batch=batch),
            Work(runs_dir=runs_dir, overrides=tuple(set_ or ()), seed=seed, repeats=repeats,
                 seeds=seeds, name=name, resume=resume, figures=run_figures, retrain=retrain),
            Execution(workers=workers, chunk=chunk, backend=backend, address=address,
                      quiet=quiet))
    typer.echo(found.report, nl=False)
    typer.echo(f"tune: {found.folder}")


def _one_line_paragraphs(*groups: typer.Typer) -> None:
    """Each command's help is its docstring with every paragraph on one line, for the terminal
    to wrap; in the command list, its first clause (click would cut the sentence short)."""
    for group in groups:
        for command in group.registered_commands:
            paragraphs = inspect.cleandoc(command.callback.__doc__).split("\n\n")
            command.help = "\n\n".join(" ".join(text.split()) for text in paragraphs)
            command.short_help = re.split(r"[;:(]| \(|\. ", command.help)[0].strip(" .")


_one_line_paragraphs(app, export_app)


def main() -> None:
    """The console script: run the command, then leave without tearing TensorFlow down.

    Python's own shutdown spends ~0.6 s destroying TensorFlow's modules, freeing memory the
    operating system reclaims anyway. Once the command is done and no thread of ours is
    left, the exit handlers (the compile cache's, Ray's, multiprocessing's) run, the streams
    are flushed, and the process ends there."""
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if "tensorflow" not in sys.modules or others or not isinstance(code, (int, type(None))):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`circlereg ... | head`)
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    main()
