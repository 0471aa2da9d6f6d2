"""The `circlereg` command: parses arguments, calls library functions, maps errors to exit codes.

Bad input exits 2 with one line naming the file, the key and what is allowed; Ctrl-C exits 130.
TensorFlow is imported only by commands that train.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from circlereg import __version__, commands, export, shipped
from circlereg.commands import notice
from circlereg.config import ConfigError, load
from circlereg.executor import WorkerLost
from circlereg.index import open_index
from circlereg.manifest import listing
from circlereg.options import Execution, Searching, Work
from circlereg.report import cell, summary_table
from circlereg.reproduce import failing_rows, load_spec
from circlereg.show import diff as folder_differences
from circlereg.show import show as what_folder_is


class _Argument(typer.core.TyperArgument):
    """An argument as click writes one: NAME|PATH, [PATH], KEY=VALUES... Typer 0.29 writes a
    required one as {NAME|PATH} and adds its Python type (<list[Path]>) beside the metavar."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    _rich_display_name = _usage_display_name

    def display_type_rich(self, ctx) -> None:
        return None


# typer builds every argument from this name; the help text is the only thing that changes
typer.main.TyperArgument = _Argument

# rich_markup_mode=None: click's own layout, which gives the help text half of an 80-column
# terminal where rich's panels squeezed it into a column of 21
app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  help="Run, sweep and reproduce regularization experiments on the "
                       "concentric-circles overfitting study.")

CONFIG_HELP = ("A YAML config file, or the name of a shipped config (circlereg configs lists "
               "them), e.g. l1_pre_relu.")
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
             help="Override a config key, e.g. --set train.epochs=100 (repeatable; list "
                  "items by index: model.hidden.0=8).")]


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


SeedOption = Annotated[int | None, typer.Option(
    metavar="N", help="Training seed (overrides train.seed); with --repeats, the first seed.")]
RepeatsOption = Annotated[int | None, typer.Option(
    metavar="N", help="Train N seeds: seed .. seed+N-1, all in one batched graph.")]
SeedsOption = Annotated[str | None, typer.Option(metavar="N,N,...",
    help="Explicit seeds, e.g. 1,5,9.")]
RunsDirOption = Annotated[Path, typer.Option(metavar="PATH", help="Where run directories go.")]
FiguresOption = Annotated[bool, typer.Option(
    "--run-figures/--no-run-figures", help="Per-run PNGs in every run directory.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue the newest folder of this same work: train only missing runs.")]
WorkersOption = Annotated[int | None, typer.Option(
    metavar="N",
    help="Worker processes training at once (default: one per CPU this process may use, "
         "as many as memory holds; one Ray actor per CPU with --backend ray). Never changes "
         "a run's numbers.")]
ChunkOption = Annotated[int | None, typer.Option(
    metavar="N",
    help="Replicas a worker or Ray task takes at a time (whole batches of 4 lanes). Never "
         "changes a run's numbers.")]
BackendOption = Annotated[str, typer.Option(
    metavar="local|ray",
    help="local (this machine) or ray (each task on a Ray actor; needs Ray, the ray extra).")]
AddressOption = Annotated[str | None, typer.Option(
    metavar="HOST:PORT",
    help="Ray cluster address HOST:PORT; default: start a local Ray on 127.0.0.1.")]
ReferenceOption = Annotated[list[str] | None, typer.Option(
    "--reference", metavar="POINT",
    help="The point every other is judged against: a point (p003), a compared config's name, "
         "or KEY=VALUE of a swept key (repeatable, each narrowing it). Default: compare's "
         "first config; a sweep's first point, or its 0 point on a strength axis that holds "
         "0.")]
MetricOption = Annotated[list[str] | None, typer.Option(
    "--metric", metavar="METRIC",
    help="Judge the points on this metric of metrics.json too, besides test accuracy "
         "(repeatable): e.g. test_loss, gap, zero_fraction.")]
RetrainOption = Annotated[bool, typer.Option(
    help="Train every replica, even one already trained under --runs-dir (by default it is "
         "reused: its files placed in the new folder, never trained twice).")]


@app.command()
def run(
    config: Annotated[Path, typer.Argument(metavar="NAME|PATH", help=CONFIG_HELP)],
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    run_figures: FiguresOption = True,
    resume: Annotated[bool, typer.Option(
        help="With --repeats/--seeds: continue the newest folder of these same runs.")]
    = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
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
    config: Annotated[str | None, typer.Argument(
        metavar="NAME|PATH",
        help="Base config: a YAML file or a shipped config's name (none with --spec: the spec "
             "names it).", show_default=False)]
    = None,
    axes: Annotated[list[str] | None, typer.Argument(
        metavar="KEY=VALUES",
        help="Swept keys: key=v1,v2 | key=choice(v1,v2) | key=range(a,b[,step]) | "
             "key=logspace(a,b,n) | key=linspace(a,b,n); values are YAML ([8,4],[16] is two "
             "lists); several form the Cartesian product (docs/grammar.md).")] = None,
    spec: Annotated[Path | None, typer.Option(
        "--spec", metavar="NAME|PATH",
        help="A sweep kept in a file (YAML: config, set, axes, repeats/seeds, name), or a "
             "shipped spec's name (learning_curve); every sweep folder's sweep.yaml is one. "
             "Options given with it apply on top: --set after its set, an axis replaces its "
             "axis of that key, --repeats/--seeds/--name replace its own.")] = None,
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str | None, typer.Option(
        metavar="NAME",
        help="Sweep folder name under runs/ (default: <config name>-sweep).")] = None,
    resume: ResumeOption = False,
    run_figures: FiguresOption = True,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
    reference: ReferenceOption = None,
    metric: MetricOption = None,
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
    for line in format_table(rows):
        typer.echo(line)
    typer.echo(f"sweep: {folder}")


def format_table(rows: list[dict]) -> list[str]:
    """Summary rows as an aligned table (report.summary_cells: the point, its swept values,
    n, train and test accuracy as mean ± sd, each compared metric's paired difference from
    the reference with its 95% CI, Holm-corrected p and verdict), then a line saying what the
    comparison columns are.

    A summary written before comparisons existed prints without their columns:

    >>> print("\\n".join(format_table([
    ...     {"point": "p000", "model.regularizers.0.l1": 1e-06, "n": 10, "n_diverged": 0,
    ...      "train_accuracy_mean": 1.0, "train_accuracy_std": 0.0,
    ...      "test_accuracy_mean": 0.78, "test_accuracy_std": 0.0123},
    ...     {"point": "p001", "model.regularizers.0.l1": 0.000316227766017, "n": 10,
    ...      "n_diverged": 0, "train_accuracy_mean": 0.9667, "train_accuracy_std": 0.0,
    ...      "test_accuracy_mean": 0.7914, "test_accuracy_std": 0.035}])))
    point         l1   n  train (mean ± sd)  test (mean ± sd)
    p000       1e-06  10  1.000 ± 0.000      0.780 ± 0.012
    p001   0.0003162  10  0.967 ± 0.000      0.791 ± 0.035
    """
    return summary_table(rows)


@app.command()
def compare(
    configs: Annotated[list[Path], typer.Argument(
        metavar="NAME|PATH",
        help="Configs to put side by side: YAML files or shipped configs' names.")],
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str, typer.Option(metavar="NAME", help="Folder name under runs/.")] = "compare",
    resume: ResumeOption = False,
    run_figures: FiguresOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
    reference: ReferenceOption = None,
    metric: MetricOption = None,
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
    spec: Annotated[Path | None, typer.Option(
        metavar="PATH",
        help="Reproduction spec (YAML); default: the study's, shipped with circlereg.",
        show_default=False)] = None,
    seeds: Annotated[int | None, typer.Option(metavar="N",
        help="Seeds per model (default: the spec's).")]
    = None,
    epochs: Annotated[int | None, typer.Option(metavar="N",
        help="Epochs (default: the spec's).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
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
    runs_dir: Annotated[Path, typer.Argument(metavar="PATH",
        help="Folder to list.")] = Path("runs"),
    runs: Annotated[bool, typer.Option(
        "--runs", help="One line per run (from the runs directory's index) instead of one "
                       "per folder.")] = False,
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
    import json

    with user_errors(), open_index(runs_dir, notice) as index:
        rows = index.rows()
    if not rows:
        notice(f"no complete run under {runs_dir}")
    for row in rows:
        params = ", ".join(f"{k}={cell(v)}" for k, v in json.loads(row["params"]).items())
        where = " ".join(x for x in (row["kind"], row["point"] or "", params) if x)
        test = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.3f}"
        train = "-" if row["train_accuracy"] is None else f"{row['train_accuracy']:.3f}"
        reused = f"  (reused from {row['reused_from']})" if row["reused_from"] else ""
        typer.echo(f"{Path(runs_dir) / row['folder']}  {where}  seed {row['seed']}  "
                   f"train {train}  test {test}{reused}")


@app.command()
def show(
    path: Annotated[Path, typer.Argument(
        metavar="PATH", help="A run or collection folder (sweep, comparison, repeats, tune, "
                             "reproduction).")],
) -> None:
    """What a run or collection is: its kind, the command that made it, what it varies, its
    summary table and where its runs came from (trained or reused)."""
    with user_errors():
        lines = what_folder_is(path)
    for line in lines:
        typer.echo(line)


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(metavar="A", help="A run or collection folder.")],
    b: Annotated[Path, typer.Argument(
        metavar="B", help="Another of the same sort (run or collection).")],
) -> None:
    """The config keys and metrics that differ between two runs or two collections (points
    paired by what they vary)."""
    with user_errors():
        lines = folder_differences(a, b)
    for line in lines:
        typer.echo(line)


@app.command()
def validate(
    configs: Annotated[list[Path], typer.Argument(
        metavar="NAME|PATH", help="Configs to check: YAML files or shipped configs' names.")],
    set_: SetOption = None,
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
    copy: Annotated[Path | None, typer.Option(
        "--copy", metavar="DIR", show_default=False,
        help="Write the shipped configs into DIR to edit, the reproduction spec as "
             "DIR/reproduce/study.yaml; never overwrites a file.")] = None,
    schema: Annotated[bool, typer.Option(
        "--schema", help="Print the config file's JSON Schema, for editors that check YAML "
                         "as it is typed (docs/config.md).")] = False,
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
app.add_typer(export_app, name="export")
ExportFolder = Annotated[Path, typer.Argument(
    metavar="PATH",
    help="A runs folder (every run and sweep in it), a sweep, comparison or reproduction "
         "folder, or one run directory.")]


@export_app.command("tensorboard")
def export_tensorboard(
    folder: ExportFolder = Path("runs"),
    logdir: Annotated[Path | None, typer.Option(
        metavar="PATH", help="Where the event files go (default: FOLDER/.tensorboard).")] = None,
) -> None:
    """Write TensorBoard event files (runs exported before are skipped).

    Each run: its curves per epoch and final metrics. Each sweep, comparison or reproduction:
    its runs as HParams sessions, the swept keys as hyperparameters."""
    _export(lambda: export.to_tensorboard(folder, logdir, notice=notice),
            view="tensorboard --logdir")


@export_app.command("mlflow")
def export_mlflow(
    folder: ExportFolder = Path("runs"),
    experiment: Annotated[str | None, typer.Option(
        metavar="NAME",
        help="MLflow experiment (default: the folder each sweep or run is in, i.e. its sweep "
             "or config name).")] = None,
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
    config: Annotated[Path, typer.Argument(
        metavar="NAME|PATH", help="Base config: a YAML file or a shipped config's name.")],
    space: Annotated[list[str] | None, typer.Argument(
        metavar="KEY=SPACE",
        help="Searched keys: key=uniform(a,b) | loguniform(a,b) | interval(a,b) | int(a,b) | "
             "intlog(a,b) | range(a,b[,step]) | choice(v1,v2,...) (values are YAML, e.g. "
             "[100,100]); key=value fixes a value.")] = None,
    trials: Annotated[int, typer.Option(
        metavar="N", help="Trials to finish (with --resume: in all, so a larger number extends the "
             "study).")] = 100,
    objective: Annotated[str, typer.Option(
        metavar="METRIC",
        help="What a trial scores, the mean over its seeds: val_accuracy, val_loss, "
             "test_accuracy, test_loss, train_accuracy, train_loss or gap. val_* are on "
             "the validation points with data.n_validation, else on the test points.")]
    = "val_accuracy",
    direction: Annotated[str | None, typer.Option(
        metavar="maximize|minimize",
        help="maximize or minimize (default: maximize accuracies, minimize losses and gap).")]
    = None,
    sampler: Annotated[str, typer.Option(metavar="tpe|random|grid",
        help="tpe, random or grid.")] = "tpe",
    sampler_seed: Annotated[int, typer.Option(
        metavar="N", help="Seed of the sampler: the same tune draws the same trials.")] = 0,
    batch: Annotated[int | None, typer.Option(
        metavar="N",
        help="Trials asked and trained together (default: enough to fill every worker's "
             "lanes twice).")] = None,
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str | None, typer.Option(
        metavar="NAME", help="Tune folder name under runs/ (default: <config name>-tune).")]
    = None,
    resume: ResumeOption = False,
    run_figures: FiguresOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
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
    """Each command's help is its docstring with every paragraph on one line: rich keeps a
    docstring's line breaks in the command list and in later paragraphs, where sentences then
    broke at the source's lines instead of the terminal's width."""
    for group in groups:
        for command in group.registered_commands:
            paragraphs = inspect.cleandoc(command.callback.__doc__).split("\n\n")
            command.help = "\n\n".join(" ".join(text.split()) for text in paragraphs)


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
