"""The `circlereg` command: parses arguments, calls library functions, maps errors to exit codes.

Bad input exits 2 with one line naming the file, the key and what is allowed; Ctrl-C exits 130.
TensorFlow is imported only by commands that train.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from circlereg import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
from circlereg.config import ConfigError, load

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run, sweep and reproduce regularization experiments on the "
                       "concentric-circles overfitting study.")

SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config key, e.g. --set model.regularizers.0.l1=1e-3 "
                  "(repeatable; list items by index).")]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"circlereg {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
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
    "--run-figures/--no-run-figures", help="Per-run PNGs in every sub-run (slow for big grids).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _seed_override(seed: int | None) -> list[str]:
    if seed is not None and seed < 0:
        raise ConfigError("--seed", "train.seed", f"must be an integer >= 0, got {seed}")
    return [] if seed is None else [f"train.seed={seed}"]


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/l1_pre_relu.yaml")],
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    run_figures: FiguresOption = True,
    quiet: QuietOption = False,
) -> None:
    """Train one config and write its run directory (with --repeats/--seeds: one per seed
    and a summary)."""
    if repeats is not None or seeds is not None:
        _run_sweep([config], [], set_, seed, repeats, seeds, runs_dir, None, False, run_figures,
                   quiet, 16)
        return
    try:
        resolved = load(config, (set_ or []) + _seed_override(seed))
        typer.echo(f"{resolved['name']}: training {resolved['train']['epochs']} epochs, "
                   f"seed {resolved['train']['seed']}, engine {resolved['train']['engine']}",
                   err=True)
        from circlereg.run import train_and_write

        path, metrics = train_and_write(resolved, runs_dir, str(config))
    except ConfigError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; no run directory was written", code=130)
    typer.echo(f"Train: {metrics['train_accuracy']:.3f}, Test: {metrics['test_accuracy']:.3f}")
    typer.echo(f"run: {path}  ({metrics['wall_seconds']:.1f} s)")


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Base YAML config.")],
    axes: Annotated[list[str] | None, typer.Argument(
        help="Swept keys: key=v1,v2 | key=range(a,b[,step]) | key=logspace(a,b,n) | "
             "key=linspace(a,b,n); several form the Cartesian product.")] = None,
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str | None, typer.Option(
        help="Sweep folder name under runs/ (default: <config name>-sweep).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the newest folder of this same sweep: train only missing sub-runs.")]
    = False,
    run_figures: FiguresOption = True,
    quiet: QuietOption = False,
    chunk: Annotated[int, typer.Option(
        help="Replicas per compiled graph; two graphs train at once.")] = 16,
    backend: Annotated[str, typer.Option(
        help="local (this machine) or ray (each chunk a Ray task; needs circlereg[ray]).")]
    = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address HOST:PORT; default: start a local Ray on 127.0.0.1.")] = None,
) -> None:
    """Grid-search keys with repeated seeds; every replica of one model shape trains in one
    batched graph."""
    _run_sweep([config], axes or [], set_, seed, repeats, seeds, runs_dir, name, resume,
               run_figures, quiet, chunk, backend, address)


def _run_sweep(configs, axes, set_, seed, repeats, seeds, runs_dir, name, resume, run_figures,
               quiet, chunk, backend="local", address=None) -> None:
    from circlereg.sweep import choose_seeds, run_sweep

    try:
        overrides = (set_ or []) + _seed_override(seed)
        base = load(configs[0], overrides)
        chosen = choose_seeds(base["train"]["seed"], repeats, seeds)
        if chunk < 1:
            raise ConfigError("--chunk", "", f"must be an integer >= 1, got {chunk}")
        if backend not in ("local", "ray"):
            raise ConfigError("--backend", "", f"must be local or ray, got {backend!r}")
        if backend == "ray":
            from circlereg.cluster import check_available

            check_available(address)
        elif address is not None:
            raise ConfigError("--address", "", "applies to --backend ray only")
        with _progress(quiet) as advance:
            folder, rows = run_sweep(configs, axes, overrides, chosen, runs_dir,
                                     name=name, resume=resume, figures=run_figures,
                                     chunk=chunk, progress=advance, backend=backend,
                                     address=address)
    except ConfigError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; finished sub-runs are kept: run `circlereg sweep` with the same "
             "arguments and --resume to complete", code=130)
    for row in rows:
        typer.echo(format_row(row))
    typer.echo(f"sweep: {folder}")


def format_row(row: dict) -> str:
    from circlereg.sweep import STATISTICS, SUMMARY_FIXED

    params = " ".join(f"{k}={v}" for k, v in row.items() if k not in SUMMARY_FIXED
                          and not k.startswith(tuple(f"{s}_" for s in STATISTICS)))
    diverged = f" diverged={row['n_diverged']}" if row["n_diverged"] else ""
    return (f"{row['point']} {params} n={row['n']} "
            f"train {row['train_accuracy_mean']:.3f}±{row['train_accuracy_std']:.3f} "
            f"test {row['test_accuracy_mean']:.3f}±{row['test_accuracy_std']:.3f}{diverged}")


@app.command()
def compare(
    configs: Annotated[list[Path], typer.Argument(help="Configs to put side by side.")],
    set_: SetOption = None,
    seed: SeedOption = None,
    repeats: RepeatsOption = None,
    seeds: SeedsOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    name: Annotated[str, typer.Option(help="Folder name under runs/.")] = "compare",
    resume: Annotated[bool, typer.Option(help="Continue the newest folder of this comparison.")]
    = False,
    run_figures: FiguresOption = False,
    quiet: QuietOption = False,
) -> None:
    """Train several configs with the same seeds and compare their final accuracies (a sweep
    whose grid points are the configs)."""
    _run_sweep(configs, [], set_, seed, repeats, seeds, runs_dir, name, resume, run_figures,
               quiet, 16)


@contextmanager
def _progress(quiet: bool):
    """A rich progress bar over replica-epochs (its ETA covers the whole sweep), or nothing."""
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("train", total=None)

        def advance(replica_epochs: int, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            else:
                bar.advance(task, replica_epochs)

        yield advance


@app.command()
def reproduce(
    spec: Annotated[Path, typer.Option(help="Reproduction spec (YAML).")]
    = Path("configs/reproduce/study.yaml"),
    seeds: Annotated[int | None, typer.Option(help="Seeds per model (default: the spec's).")]
    = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the spec's).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    quiet: QuietOption = False,
) -> None:
    """Reproduce the study's published train/test figures; exit 0 when every figure and claim
    reproduces under the study's convention, 1 otherwise."""
    from circlereg.reproduce import failing_rows, load_spec
    from circlereg.reproduce import reproduce as run_reproduction

    try:
        loaded = load_spec(spec, seeds, epochs)
        with _progress(quiet) as advance:
            if advance is not None:
                advance(0, total=_reproduction_work(loaded))
            folder, verdict = run_reproduction(loaded, runs_dir, progress=advance)
    except ConfigError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; no report was written", code=130)
    typer.echo((folder / "reproduction.md").read_text())
    typer.echo(f"report: {folder}")
    failures = failing_rows(verdict)
    for row in failures:
        typer.echo(f"FAILED: {row}", err=True)
    raise typer.Exit(1 if failures else 0)


def _reproduction_work(spec: dict) -> int:
    from circlereg.config import config_hash
    from circlereg.reproduce import CONVENTIONS, under_convention

    distinct = {config_hash(under_convention(m["config"], c))
                for c in CONVENTIONS for m in spec["models"].values()}
    return len(distinct) * spec["seeds"] * spec["epochs"]


@app.command()
def validate(
    configs: Annotated[list[Path], typer.Argument(help="YAML configs to check.")],
    set_: SetOption = None,
) -> None:
    """Check configs without training (and without importing TensorFlow)."""
    bad = 0
    for path in configs:
        try:
            resolved = load(path, set_ or [])
        except ConfigError as err:
            typer.echo(f"error: {err}", err=True)
            bad += 1
            continue
        typer.echo(f"ok: {path} ({resolved['name']})")
    if bad:
        raise typer.Exit(2)


if __name__ == "__main__":
    sys.exit(app())
