"""Sweeps as files: the YAML spec that says what a sweep trains (docs/grammar.md).

    config: ../configs/l1_pre_relu.yaml     # a path (from this file's folder), a list of
                                            # them (a comparison), or the config itself inline
    set: [train.epochs=400]                 # --set overrides, in order
    axes:                                   # key: the axis grammar, or a YAML list of values
      model.regularizers.0.l1: logspace(-6,-1,11)
      model.regularizers.0.placement: [pre_activation, post_activation]
    repeats: 5                              # or seeds: [1, 2, 3]
    name: l1-strength                       # the folder under --runs-dir

`circlereg sweep --spec FILE` runs one. Every sweep folder holds its own as `sweep.yaml`, with
the base config(s) written inline (the document as read, its name filled in), so the folder
reruns the same sweep wherever it is copied and whatever happens to the config files since.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from circlereg.config import (
    MAX_SEED,
    ConfigError,
    _unknown,
    check_value,
    non_negative_int,
    positive_int,
    quote,
    stem_name,
)
from circlereg.document import read_document, read_yaml
from circlereg.grammar import (
    AXIS_FORMS,
    format_value,
    parse_axis_values,
    shorten,
    split_assignment,
)

SPEC_KEYS = ["config", "set", "axes", "repeats", "seeds", "name", "points"]
MAX_REPEATS = 100_000
HEADER = ("# A circlereg sweep spec: `circlereg sweep --spec sweep.yaml` trains this sweep again "
          "(docs/grammar.md).\n# config: the base config(s) as read; points: what the axes "
          "gave (delete it after editing the axes).\n")


@dataclass(frozen=True)
class Base:
    """One base config of a sweep: the YAML document before overrides, where it came from,
    and the name it takes unless it sets one (a file's stem)."""

    raw: dict
    source: str
    default_name: str = "config"

    @classmethod
    def read(cls, path: str | Path) -> Base:
        return cls(read_document(path), str(path), stem_name(path))

    def inline(self) -> dict:
        """The document as a spec writes it: named, so it needs no file stem."""
        rest = {key: value for key, value in self.raw.items() if key != "name"}
        return {"name": self.raw.get("name") or self.default_name, **rest}


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: every base config times the grid of its axes, each point with its seeds."""

    bases: tuple[Base, ...]
    overrides: tuple[str, ...] = ()
    axes: tuple[tuple[str, Any], ...] = ()  # (key, its values as given: text or a list)
    repeats: int | None = None
    seeds: tuple[int, ...] | None = None
    name: str | None = None
    source: str = "sweep"  # the spec file, for errors
    points: list | None = None  # a folder's record of what its axes gave, checked when read

    def seeds_text(self) -> str | None:
        return None if self.seeds is None else ",".join(map(str, self.seeds))

    def document(self, name: str, points: list[dict]) -> str:
        """This sweep as a spec file: sweep.yaml in its folder."""
        configs = [base.inline() for base in self.bases]
        spec = {"config": configs[0] if len(configs) == 1 else configs,
                "set": list(self.overrides), "axes": dict(self.axes)}
        if self.repeats is not None:
            spec["repeats"] = self.repeats
        if self.seeds is not None:
            spec["seeds"] = list(self.seeds)
        spec.update(name=name, points=points)
        return HEADER + yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False,
                                  allow_unicode=True)


class _SpecDumper(yaml.SafeDumper):
    """Mappings in block style, lists of values in flow style: `seeds: [1, 2]`."""

    def represent_list(self, data):
        flow = not any(isinstance(item, dict) for item in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _SpecDumper.represent_list)


def read_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec; ConfigError `<file>: <key>: <what is allowed>` otherwise.
    Config paths in it are relative to its folder."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(source, "", "no such sweep spec" if not path.exists()
                          else "not a file; give a YAML sweep spec")
    raw = read_yaml(path, source)
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "must be a YAML mapping with keys "
                                      f"{', '.join(SPEC_KEYS)}, got {type(raw).__name__}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise _unknown(source, "", str(key), SPEC_KEYS)
    if raw.get("config") is None:
        raise ConfigError(source, "config", "is required: a config path (relative to this "
                                            "file), a list of them, or a config mapping")
    configs = raw["config"] if isinstance(raw["config"], list) else [raw["config"]]
    if not configs:
        raise ConfigError(source, "config", "must name at least one config")
    bases = tuple(_base(source, path.parent, f"config.{i}" if len(configs) > 1 else "config",
                        entry) for i, entry in enumerate(configs))
    seeds = _seeds(source, raw)
    name = raw.get("name")
    if name is not None:
        check_value(source, "name", "name", name)
    points = raw.get("points")
    if points is not None and not isinstance(points, list):
        raise ConfigError(source, "points", f"must be a list, got {quote(points)}")
    return SweepSpec(bases, _overrides(source, raw.get("set")), _axes(source, raw.get("axes")),
                     raw.get("repeats"), seeds, name, source, points)


def from_command_line(configs: list[Path], axes: list[str], overrides: list[str],
                      repeats: int | None, seeds: str | None, name: str | None,
                      spec_file: Path | None = None) -> SweepSpec:
    """The sweep a command line describes: its spec file with the options on top (`--set`
    after the file's set, an axis replacing the file's axis of that key, --repeats / --seeds
    and --name replacing the file's), or the options alone."""
    parsed = tuple(split_axis(text) for text in axes)
    chosen = None if seeds is None else tuple(_chosen(repeats, seeds))
    if spec_file is None:
        return SweepSpec(tuple(Base.read(path) for path in configs), tuple(overrides), parsed,
                         repeats, chosen, name)
    spec = read_spec(spec_file)
    if not (axes or overrides or repeats is not None or seeds is not None or name):
        return spec
    keys = {key for key, _ in parsed}
    if repeats is not None or seeds is not None:
        spec = replace(spec, repeats=repeats, seeds=chosen)
    # `points` records what the file's own axes gave; options on top make another sweep.
    return replace(spec, overrides=spec.overrides + tuple(overrides), name=name or spec.name,
                   axes=tuple(a for a in spec.axes if a[0] not in keys) + parsed, points=None)


def _base(source: str, folder: Path, where: str, entry: Any) -> Base:
    if isinstance(entry, dict):
        return Base(entry, f"{source}: {where}")
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(source, where, "must be a config path (relative to this file) or a "
                                         f"config mapping, got {quote(entry)}")
    path = folder / Path(entry).expanduser()
    if not path.is_file():
        raise ConfigError(source, where, f"{entry}: no such config file (looked for {path}; "
                                         "paths are relative to the spec's folder)")
    return Base.read(path)


def _overrides(source: str, given: Any) -> tuple[str, ...]:
    """`set:` as a list of `key.path=value` texts (the --set grammar) or a mapping."""
    if given is None:
        return ()
    if isinstance(given, dict):
        return tuple(f"{key}={format_value(value)}" for key, value in given.items())
    if not isinstance(given, list) or not all(isinstance(text, str) for text in given):
        raise ConfigError(source, "set", "must be a list of key.path=value texts (as --set "
                                         f"takes) or a mapping key.path: value; got "
                                         f"{quote(given)}")
    for text in given:
        try:
            split_assignment(text, "key.path=value")
        except ValueError as err:
            raise ConfigError(source, "set", f"{quote(text)} {err}") from None
    return tuple(given)


def _axes(source: str, given: Any) -> tuple[tuple[str, Any], ...]:
    """`axes:` as a mapping key -> grammar text or YAML list, or a list of `key=values` texts
    (as the command line takes them)."""
    if given is None:
        return ()
    try:
        if isinstance(given, list) and all(isinstance(text, str) for text in given):
            return tuple(split_axis(text) for text in given)
        if not isinstance(given, dict):
            raise ConfigError("sweep", "", f"must be a mapping key.path: values, got "
                                           f"{quote(given)}")
        for key, values in given.items():
            axis_values(str(key), values)
    except ConfigError as err:
        raise ConfigError(source, "axes" + (f".{err.key}" if err.key else ""),
                          err.message) from None
    return tuple((str(key), values) for key, values in given.items())


def split_axis(text: str) -> tuple[str, str]:
    """A command line's `key=values` as (key, values text), the text checked by the grammar."""
    try:
        key, values = split_assignment(text, f"key.path=values; an axis is {AXIS_FORMS}")
    except ValueError as err:
        raise ConfigError("sweep", shorten(text), str(err)) from None
    axis_values(key, values)
    return key, values


def axis_values(key: str, values: str | list | int | float) -> list:
    """An axis' values from its text (`logspace(-6,-1,11)`) or, in a spec file, a YAML list
    (or one number)."""
    try:
        if isinstance(values, str):
            parsed = parse_axis_values(values)
        elif isinstance(values, list):
            parsed = values
        elif isinstance(values, (int, float)):
            parsed = [values]
        else:
            raise ValueError(f"must be a list of values or text in the axis grammar; got "
                             f"{quote(values)}")
    except ValueError as err:
        raise ConfigError("sweep", key, str(err)) from None
    if not parsed:
        raise ConfigError("sweep", key, f"needs one or more values; an axis is {AXIS_FORMS}")
    return parsed


def _seeds(source: str, raw: dict) -> tuple[int, ...] | None:
    """`repeats: N` is checked here, `seeds: [..]` returned; the rules are choose_seeds'."""
    repeats, seeds = raw.get("repeats"), raw.get("seeds")
    key = "seeds" if seeds is not None else "repeats"
    try:
        if repeats is not None and seeds is not None:
            raise ValueError("give either repeats or seeds, not both")
        if repeats is not None:
            _chosen(positive_int(repeats), None)
        if seeds is None:
            return None
        listed = seeds if isinstance(seeds, list) else [seeds]
        return tuple(_chosen(None, ",".join(str(non_negative_int(s)) for s in listed)))
    except ValueError as err:  # a ConfigError from choose_seeds is one too
        raise ConfigError(source, key, getattr(err, "message", str(err))) from None


def choose_seeds(base: int, repeats: int | None, seeds: str | None) -> list[int]:
    """The seeds a point whose train.seed is `base` trains with."""
    if repeats is not None and seeds is not None:
        raise ConfigError("--seeds", "", "give either --repeats or --seeds, not both")
    if seeds is not None:
        try:
            chosen = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ConfigError("--seeds", "", "must be comma-separated integers, got "
                                             f"{quote(seeds)}") from None
        if not chosen or min(chosen) < 0 or max(chosen) > MAX_SEED \
                or len(set(chosen)) != len(chosen):
            raise ConfigError("--seeds", "", f"must be distinct integers in [0, {MAX_SEED}], "
                                             f"got {quote(seeds)}")
        return chosen
    repeats = 1 if repeats is None else repeats
    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError("--repeats", "", f"must be an integer in [1, {MAX_REPEATS}], "
                                           f"got {repeats}")
    if base + repeats - 1 > MAX_SEED:
        raise ConfigError("--repeats", "", f"seeds {base}..{base + repeats - 1} pass the "
                                           f"largest seed, {MAX_SEED}")
    return list(range(base, base + repeats))


def _chosen(repeats: int | None, seeds: str | None) -> list[int]:
    return choose_seeds(0, repeats, seeds)
