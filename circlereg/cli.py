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

from circlereg import __version__, shipped
from circlereg.config import ConfigError, load

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="Run, sweep and reproduce regularization experiments on the "
                       "concentric-circles overfitting study.")

CONFIG_HELP = ("A YAML config file, or the name of a shipped config (circlereg configs lists "
               "them), e.g. l1_pre_relu.")
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config key, e.g. --set train.epochs=100 (repeatable; list "
                  "items by index: model.hidden.0=8).")]


DIVERGED = 3  # exit code of a lone run whose training loss stopped being finite


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def write_failed(err: OSError) -> str:
    """A file system error (disk full, permissions) as one line."""
    from circlereg.executor import WorkerLost

    if isinstance(err, WorkerLost):
        return str(err)
    where = f"{err.filename}: " if err.filename else ""
    return f"cannot write {where}{err.strerror or err}"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"circlereg {__version__}")
        raise typer.Exit()


@app.callback()
def commands(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
        = False) -> None:
    """Run, sweep and reproduce regularization experiments on make_circles."""


SeedOption = Annotated[int | None, typer.Option(
    help="Training seed (overrides train.seed); with --repeats, the first seed.")]
RepeatsOption = Annotated[int | None, typer.Option(
    help="Train N seeds: seed .. seed+N-1, all in one batched graph.")]
SeedsOption = Annotated[str | None, typer.Option(help="Explicit seeds, e.g. 1,5,9.")]
RunsDirOption = Annotated[Path, typer.Option(help="Where run directories go.")]
FiguresOption = Annotated[bool, typer.Option(
    "--run-figures/--no-run-figures", help="Per-run PNGs in every run directory.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue the newest folder of this same work: train only missing runs.")]
WorkersOption = Annotated[int | None, typer.Option(
    help="Worker processes training at once (default: one per CPU this process may use, "
         "as many as memory holds; one Ray actor per CPU with --backend ray). Never changes "
         "a run's numbers.")]
ChunkOption = Annotated[int | None, typer.Option(
    help="Replicas a worker or Ray task takes at a time (whole batches of 4 lanes). Never "
         "changes a run's numbers.")]
BackendOption = Annotated[str, typer.Option(
    help="local (this machine) or ray (each task on a Ray actor; needs Ray, the ray extra).")]
AddressOption = Annotated[str | None, typer.Option(
    help="Ray cluster address HOST:PORT; default: start a local Ray on 127.0.0.1.")]
RetrainOption = Annotated[bool, typer.Option(
    help="Train every replica, even one already trained under --runs-dir (by default it is "
         "reused: its files placed in the new folder, never trained twice).")]


def _seed_override(seed: int | None) -> list[str]:
    if seed is not None and seed < 0:
        raise ConfigError("--seed", "train.seed", f"must be an integer >= 0, got {seed}")
    return [] if seed is None else [f"train.seed={seed}"]


def _executor(workers: int | None, chunk: int | None, backend: str, address: str | None,
              runs_dir: Path):
    """The one executor a command trains its plan on, and where it writes; both checked
    before anything trains. Its first worker process starts loading TensorFlow now, while
    the command builds its plan; the others start once the plan says how many it needs (a
    3-run plan on a 64-core machine starts one, not 64)."""
    from circlereg.rundir import check_runs_dir

    check_runs_dir(runs_dir)
    if workers is not None and workers < 1:
        raise ConfigError("--workers", "", f"must be an integer >= 1, got {workers}")
    if chunk is not None and chunk < 1:
        raise ConfigError("--chunk", "", f"must be an integer >= 1, got {chunk}")
    if backend not in ("local", "ray"):
        raise ConfigError("--backend", "", f"must be local or ray, got {backend!r}")
    if backend == "ray":
        from circlereg.cluster import check_available

        check_available(address)
    elif address is not None:
        raise ConfigError("--address", "", "applies to --backend ray only")
    from circlereg.executor import Executor

    executor = Executor(workers=workers, backend=backend, address=address, chunk=chunk,
                        programs=PROGRAMS)
    executor.start(1)
    return executor


# None: each command trains on worker processes (the CLI runs one command per process). Tests
# set a worker.Programs cache they own: the commands they invoke then train in this process,
# on compiled programs shared across commands.
PROGRAMS = None


def _notice(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help=CONFIG_HELP)],
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
    if repeats is not None or seeds is not None:
        _run_sweep("run", [config], [], set_, seed, repeats, seeds, runs_dir, None, resume,
                   run_figures, quiet, workers, None, backend, address, retrain=retrain)
        return
    try:
        if resume:
            raise ConfigError("--resume", "", "applies with --repeats or --seeds only")
        config = shipped.config_file(config)
        resolved = load(config, (set_ or []) + _seed_override(seed))
        executor = _executor(workers, None, backend, address, runs_dir)
        from circlereg.run import run_one

        def announce(replica_epochs: int) -> None:
            _notice(f"{resolved['name']}: training {resolved['train']['epochs']} epochs, "
                    f"seed {resolved['train']['seed']}, engine {resolved['train']['engine']}")
            progress.total(replica_epochs)

        with executor, _progress(quiet) as progress:
            path, metrics = run_one(resolved, runs_dir, str(config), figures=run_figures,
                                    executor=executor, progress=progress.advance,
                                    on_plan=announce, notice=_notice, retrain=retrain)
        from circlereg.reuse import reused_from

        if reused_from(path) is not None:
            _notice(f"{resolved['name']}: seed {resolved['train']['seed']} is already trained "
                    f"({reused_from(path)}): reused, not trained again (--retrain trains it)")
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err) + "; no run directory was written")
    except KeyboardInterrupt:
        fail("interrupted; no run directory was written", code=130)
    typer.echo(f"Train: {metrics['train_accuracy']:.3f}, Test: {metrics['test_accuracy']:.3f}")
    typer.echo(f"run: {path}")
    if metrics["diverged"]:
        typer.echo(f"warning: the run diverged (training loss not finite by epoch "
                   f"{metrics['epochs']}); exit code {DIVERGED}", err=True)
        raise typer.Exit(DIVERGED)


@app.command()
def sweep(
    config: Annotated[str | None, typer.Argument(
        help="Base config: a YAML file or a shipped config's name (none with --spec: the spec "
             "names it).", show_default=False)]
    = None,
    axes: Annotated[list[str] | None, typer.Argument(
        help="Swept keys: key=v1,v2 | key=choice(v1,v2) | key=range(a,b[,step]) | "
             "key=logspace(a,b,n) | key=linspace(a,b,n); values are YAML ([8,4],[16] is two "
             "lists); several form the Cartesian product (docs/grammar.md).")] = None,
    spec: Annotated[Path | None, typer.Option(
        "--spec", help="A sweep kept in a file (YAML: config, set, axes, repeats/seeds, name), "
                       "or a shipped spec's name (learning_curve); every sweep folder's "
                       "sweep.yaml is one. Options given with it apply on "
                       "top: --set after its set, an axis replaces its axis of that key, "
                       "--repeats/--seeds/--name replace its own.")] = None,
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str | None, typer.Option(
        help="Sweep folder name under runs/ (default: <config name>-sweep).")] = None,
    resume: ResumeOption = False,
    run_figures: FiguresOption = True,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
) -> None:
    """Grid-search keys with repeated seeds; every replica of one model shape trains in
    batched graphs."""
    axes = axes or []
    if spec is not None and config is not None:  # with --spec every argument is an axis
        if "=" not in config:
            fail(f"--spec: {config}: the spec names the base config; give no config "
                 "argument with --spec (arguments with --spec are axes, key=values)")
        axes = [config, *axes]
    elif spec is None and config is None:
        fail("sweep: give a base config (circlereg sweep CONFIG key=values ...) or --spec FILE")
    _run_sweep("sweep", [] if config is None or spec is not None else [Path(config)], axes,
               set_, seed, repeats, seeds, runs_dir, name, resume, run_figures, quiet, workers,
               chunk, backend, address, spec, retrain=retrain)


def _run_sweep(command, configs, axes, set_, seed, repeats, seeds, runs_dir, name, resume,
               run_figures, quiet, workers, chunk, backend="local", address=None,
               spec_file=None, retrain=False) -> None:
    from circlereg.spec import from_command_line
    from circlereg.sweep import run_sweep

    try:
        configs = [shipped.config_file(config) for config in configs]
        spec_file = None if spec_file is None else shipped.spec_file(spec_file)
        spec = from_command_line(configs, axes, (set_ or []) + _seed_override(seed), repeats,
                                 seeds, name, spec_file)
        executor = _executor(workers, chunk, backend, address, runs_dir)
        with executor, _progress(quiet) as progress:
            folder, rows = run_sweep(spec, runs_dir, resume=resume, figures=run_figures,
                                     executor=executor, progress=progress.advance,
                                     notice=_notice, on_plan=progress.total, retrain=retrain,
                                     kind="repeats" if command == "run" else None)
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err) + f"; finished runs are kept: run `circlereg {command}` with "
             "the same arguments and --resume to complete")
    except KeyboardInterrupt:
        fail(f"interrupted; finished runs are kept: run `circlereg {command}` with the same "
             "arguments and --resume to complete", code=130)
    for line in format_table(rows):
        typer.echo(line)
    typer.echo(f"sweep: {folder}")


def format_table(rows: list[dict]) -> list[str]:
    """Summary rows as an aligned table: the point, its swept values (each headed by the
    shortest unambiguous end of its key), the finished seeds, and train and test accuracy as
    mean ± standard deviation over them; a `diverged` column only when a run diverged.

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
    from circlereg.sweep import STATISTICS, SUMMARY_FIXED

    keys = [k for k in rows[0] if k not in SUMMARY_FIXED
            and not k.startswith(tuple(f"{s}_" for s in STATISTICS))]
    header = ["point", *_short_names(keys), "n", "train (mean ± sd)", "test (mean ± sd)"]
    body = [[row["point"], *(_cell(row[k]) for k in keys), str(row["n"]),
             _spread(row, "train_accuracy"), _spread(row, "test_accuracy")] for row in rows]
    if any(row["n_diverged"] for row in rows):
        header.append("diverged")
        body = [cells + [str(row["n_diverged"])] for cells, row in zip(body, rows)]
    numeric = [False, *(all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool)
                            for r in rows) for k in keys), True,
               False, False, True]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) if right else cell.ljust(w)
                      for cell, w, right in zip(line, widths, numeric)).rstrip()
            for line in [header, *body]]


def _short_names(keys: list[str]) -> list[str]:
    """The shortest dotted ends that tell the keys apart: model.dropout.0.rate -> rate."""
    for depth in range(1, max((k.count(".") + 1 for k in keys), default=1) + 1):
        names = [".".join(k.split(".")[-depth:]) for k in keys]
        if len(set(names)) == len(names):
            return names
    return keys


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _spread(row: dict, statistic: str) -> str:
    mean, std = row[f"{statistic}_mean"], row[f"{statistic}_std"]
    return "-" if mean != mean else f"{mean:.3f} ± {std:.3f}"  # no finished run: NaN


@app.command()
def compare(
    configs: Annotated[list[Path], typer.Argument(
        help="Configs to put side by side: YAML files or shipped configs' names.")],
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str, typer.Option(help="Folder name under runs/.")] = "compare",
    resume: ResumeOption = False,
    run_figures: FiguresOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    chunk: ChunkOption = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    retrain: RetrainOption = False,
) -> None:
    """Train several configs with the same seeds and compare their final accuracies (a sweep
    whose grid points are the configs)."""
    _run_sweep("compare", configs, [], set_, seed, repeats, seeds, runs_dir, name, resume,
               run_figures, quiet, workers, chunk, backend, address, retrain=retrain)


class _Bar:
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
def _progress(quiet: bool):
    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield _Bar()
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
        yield _Bar(progress)
    finally:
        progress.stop()


@app.command()
def reproduce(
    spec: Annotated[Path | None, typer.Option(
        help="Reproduction spec (YAML); default: the study's, shipped with circlereg.",
        show_default=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds per model (default: the spec's).")]
    = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the spec's).")] = None,
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
    from circlereg.reproduce import failing_rows, load_spec
    from circlereg.reproduce import reproduce as run_reproduction
    try:
        loaded = load_spec(spec or shipped.reproduction_spec(), seeds, epochs)
        executor = _executor(workers, chunk, backend, address, runs_dir)
        with executor, _progress(quiet) as progress:
            folder, verdict = run_reproduction(loaded, runs_dir, executor=executor,
                                               progress=progress.advance,
                                               on_plan=progress.total, notice=_notice,
                                               retrain=retrain)
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err) + "; no report was written")
    except KeyboardInterrupt:
        fail("interrupted; no report was written (finished runs are kept)", code=130)
    typer.echo((folder / "reproduction.md").read_text())
    typer.echo(f"report: {folder}")
    failures = failing_rows(verdict)
    for row in failures:
        typer.echo(f"FAILED: {row}", err=True)
    raise typer.Exit(1 if failures else 0)


@app.command("list")
def list_runs(
    runs_dir: Annotated[Path, typer.Argument(help="Folder to list.")] = Path("runs"),
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
    from circlereg.manifest import listing

    found = listing(runs_dir)
    if not found:
        _notice(f"nothing under {runs_dir}")
    lines = [[f.status, f.kind, f"{f.done}/{f.planned} runs", f.created, str(f.folder),
              f.varies] for f in found]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(5)]
    for line in lines:
        typer.echo("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths)), line[5]])
                   .rstrip())


def _list_each_run(runs_dir: Path) -> None:
    import json

    from circlereg.index import open_index

    try:
        with open_index(runs_dir, _notice) as index:
            rows = index.rows()
    except ConfigError as err:
        fail(str(err))
    if not rows:
        _notice(f"no complete run under {runs_dir}")
    for row in rows:
        params = ", ".join(f"{k}={_cell(v)}" for k, v in json.loads(row["params"]).items())
        where = " ".join(x for x in (row["kind"], row["point"] or "", params) if x)
        test = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.3f}"
        train = "-" if row["train_accuracy"] is None else f"{row['train_accuracy']:.3f}"
        reused = f"  (reused from {row['reused_from']})" if row["reused_from"] else ""
        typer.echo(f"{Path(runs_dir) / row['folder']}  {where}  seed {row['seed']}  "
                   f"train {train}  test {test}{reused}")


@app.command()
def validate(
    configs: Annotated[list[Path], typer.Argument(
        help="Configs to check: YAML files or shipped configs' names.")],
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
) -> None:
    """List the configs shipped with circlereg, each with its description (run one by its
    name: circlereg run l1_pre_relu); --copy DIR writes them out to edit."""
    if copy is None:
        found = shipped.configs()
        width = max(len(name) for name in found)
        for name, path in found.items():
            typer.echo(f"{name:<{width}}  {shipped.description(path)}")
        return
    try:
        written = shipped.copy_to(copy)
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err))
    others = [str(path.relative_to(copy)) for path in written if path.parent != copy]
    typer.echo(f"copied {len(written) - len(others)} configs and {', '.join(others)} into "
               f"{copy}")


export_app = typer.Typer(no_args_is_help=True, help="Export runs, sweeps, comparisons and "
                         "reproductions to TensorBoard or MLflow (nothing is trained).")
app.add_typer(export_app, name="export")
ExportFolder = Annotated[Path, typer.Argument(
    help="A runs folder (every run and sweep in it), a sweep, comparison or reproduction "
         "folder, or one run directory.")]


@export_app.command("tensorboard")
def export_tensorboard(
    folder: ExportFolder = Path("runs"),
    logdir: Annotated[Path | None, typer.Option(
        help="Where the event files go (default: FOLDER/.tensorboard).")] = None,
) -> None:
    """Write TensorBoard event files (runs exported before are skipped).

    Each run: its curves per epoch and final metrics. Each sweep, comparison or reproduction:
    its runs as HParams sessions, the swept keys as hyperparameters."""
    from circlereg.export import to_tensorboard

    _export(lambda: to_tensorboard(folder, logdir, notice=_notice), view="tensorboard --logdir")


@export_app.command("mlflow")
def export_mlflow(
    folder: ExportFolder = Path("runs"),
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment (default: the folder each sweep or run is in, i.e. its sweep "
             "or config name).")] = None,
) -> None:
    """Log runs to MLflow at $MLFLOW_TRACKING_URI (runs logged before are skipped).

    A sweep, comparison or reproduction becomes a parent run with one child per run: its
    config as params, curves by epoch, final metrics, and its files as artifacts."""
    from circlereg.export import to_mlflow

    _export(lambda: to_mlflow(folder, experiment, notice=_notice))


def _export(export, view: str | None = None) -> None:
    try:
        exported = export()
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err))
    except KeyboardInterrupt:
        fail("interrupted; runs exported so far are kept: export again to add the rest",
             code=130)
    typer.echo(f"{exported.new} runs exported, {exported.present} already there: "
               f"{exported.where}")
    if view:
        _notice(f"view them: {view} {exported.where}")


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(
        help="Base config: a YAML file or a shipped config's name.")],
    space: Annotated[list[str] | None, typer.Argument(
        help="Searched keys: key=uniform(a,b) | loguniform(a,b) | interval(a,b) | int(a,b) | "
             "intlog(a,b) | range(a,b[,step]) | choice(v1,v2,...) (values are YAML, e.g. "
             "[100,100]); key=value fixes a value.")] = None,
    trials: Annotated[int, typer.Option(
        help="Trials to finish (with --resume: in all, so a larger number extends the "
             "study).")] = 100,
    objective: Annotated[str, typer.Option(
        help="What a trial scores, the mean over its seeds: val_accuracy, val_loss, "
             "test_accuracy, test_loss, train_accuracy, train_loss or gap. val_* are on "
             "the validation points with data.n_validation, else on the test points.")]
    = "val_accuracy",
    direction: Annotated[str | None, typer.Option(
        help="maximize or minimize (default: maximize accuracies, minimize losses and gap).")]
    = None,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    sampler_seed: Annotated[int, typer.Option(
        help="Seed of the sampler: the same tune draws the same trials.")] = 0,
    batch: Annotated[int | None, typer.Option(
        help="Trials asked and trained together (default: enough to fill every worker's "
             "lanes twice).")] = None,
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str | None, typer.Option(
        help="Tune folder name under runs/ (default: <config name>-tune).")] = None,
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
    from circlereg.tune import require_optuna, run_tune

    try:
        require_optuna()
        config = shipped.config_file(config)
        executor = _executor(workers, chunk, backend, address, runs_dir)
        with executor, _progress(quiet) as progress:
            found = run_tune(config, space or [], (set_ or []) + _seed_override(seed), trials,
                             repeats, seeds, runs_dir, objective=objective,
                             direction=direction, sampler=sampler, sampler_seed=sampler_seed,
                             batch=batch, name=name, resume=resume, figures=run_figures,
                             executor=executor, progress=progress.advance, notice=_notice,
                             on_plan=progress.total, on_batch=None if quiet else _notice,
                             retrain=retrain)
    except ConfigError as err:
        fail(str(err))
    except OSError as err:
        fail(write_failed(err) + "; finished trials are kept: run `circlereg tune` with the "
             "same arguments and --resume to complete")
    except KeyboardInterrupt:
        fail("interrupted; finished trials are kept: run `circlereg tune` with the same "
             "arguments and --resume to complete", code=130)
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
