"""The `circlereg` command: parses arguments, calls library functions, maps errors to exit codes.

Bad input exits 2 with one line naming the file, the key and what is allowed; Ctrl-C exits 130.
TensorFlow is imported only by commands that train.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from circlereg import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
from circlereg.config import ConfigError, load, with_seed

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


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/l1_pre_relu.yaml")],
    set_: SetOption = None,
    seed: Annotated[int | None, typer.Option(help="Training seed (overrides train.seed).")]
    = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
) -> None:
    """Train one config and write its run directory."""
    try:
        resolved = load(config, set_ or [])
        if seed is not None:
            if seed < 0:
                raise ConfigError("--seed", "train.seed", f"must be an integer >= 0, got {seed}")
            resolved = with_seed(resolved, seed)
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
