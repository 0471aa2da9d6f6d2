"""The study as circlereg ships it: its configs and its reproduction spec, package data.

The repository keeps them in its top-level configs/ folder, and pyproject.toml installs that
folder as the package `circlereg.configs`: one copy, read here with importlib.resources, so an
installed circlereg runs `circlereg run l1_pre_relu` and `circlereg reproduce` from any
folder. In an editable install (`make run`) the package is the repository's configs/ itself.
No TensorFlow here: `circlereg validate` and `circlereg configs` stay fast.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from circlereg.config import ConfigError

PACKAGE = "circlereg.configs"
SPEC = "reproduce/study.yaml"  # the reproduction spec, relative to the package
SWEEPS = "sweeps"  # sweep specs (`circlereg sweep --spec learning_curve`), in the package


def folder() -> Path:
    """Where the shipped files are. A wheel installs as files, and the spec's relative
    config paths (`../baseline.yaml`) need real ones, so this is a path, not a zip entry."""
    return Path(str(resources.files(PACKAGE)))


def configs() -> dict[str, Path]:
    """Every shipped config by name (its file's stem), in name order."""
    return {path.stem: path for path in sorted(folder().glob("*.yaml"))}


def sweep_specs() -> dict[str, Path]:
    """Every shipped sweep spec by name (its file's stem), in name order."""
    return {path.stem: path for path in sorted((folder() / SWEEPS).glob("*.yaml"))}


def files() -> list[Path]:
    """Every shipped file relative to the package: the configs, the reproduction spec and the
    sweep specs."""
    return sorted(path.relative_to(folder()) for path in folder().rglob("*.yaml"))


def schema_text() -> str:
    """The config file's JSON Schema as shipped (circlereg/config.schema.json)."""
    return resources.files("circlereg").joinpath("config.schema.json").read_text()


def reproduction_spec() -> Path:
    """The study's reproduction spec: `circlereg reproduce`'s default."""
    return folder() / SPEC


def description(path: Path) -> str:
    """A config's one-line description: the first sentence of the comment at its top.

    >>> description(configs()["l1_pre_relu"])
    "The study's L1 activity penalty on the linear Dense output, ReLU as a separate layer after it."
    """
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    first, stop, _ = text.partition(". ")
    return first + stop.strip()


def config_file(argument: str | Path) -> Path:
    """The config file a command-line argument names: the file at that path when there is
    one, else the shipped config of that name (`l1_pre_relu`). A folder never hides a shipped
    name; one that is not a shipped name is returned, for the loader to refuse."""
    path = Path(argument)
    if path.is_file():
        return path
    shipped = configs()
    if str(argument) in shipped:
        return shipped[str(argument)]
    if path.exists():
        return path
    close = difflib.get_close_matches(path.stem, list(shipped), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(str(argument), "", f"no such config file, nor a shipped config{hint}; "
                                         f"shipped: {', '.join(shipped)}")


def spec_file(argument: str | Path) -> Path:
    """The sweep spec a `--spec` argument names: the file at that path when there is one,
    else the shipped spec of that name (`learning_curve`). A bare name that is neither is
    refused with the shipped names; a path is returned, for `spec.read_spec` to refuse."""
    path, specs = Path(argument), sweep_specs()
    if path.exists():
        return path
    if str(argument) in specs:
        return specs[str(argument)]
    if path.suffix or len(path.parts) > 1:  # a path: read_spec says it is missing
        return path
    close = difflib.get_close_matches(str(argument), list(specs), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(str(argument), "", f"no such sweep spec, nor a shipped one{hint}; "
                                         f"shipped: {', '.join(specs)}")


def copy_to(destination: Path) -> list[Path]:
    """Write every shipped file into `destination` to edit (the spec as reproduce/study.yaml,
    so its relative config paths still hold); returns the files written. Nothing is written
    when any of them is already there: a user's edits are never overwritten."""
    if destination.exists() and not destination.is_dir():
        raise ConfigError(str(destination), "", "not a folder; --copy writes the shipped "
                                                "configs into a folder")
    targets = [(folder() / name, destination / name) for name in files()]
    there = [target for _, target in targets if target.exists() or target.is_symlink()]
    if there:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise ConfigError(str(there[0]), "", f"already exists{more}; --copy never overwrites "
                                             "a file: give a new or empty folder")
    for source, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return [target for _, target in targets]
