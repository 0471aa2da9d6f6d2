"""What `circlereg tune` searches, checked before anything trains: the space (`key=uniform(a,b)`,
`key=choice(...)`, ...), the objective and its direction, and the seeds every trial trains.

    >>> [d.text() for d in parse_space(["model.regularizers.0.l1=loguniform(1e-6,1e-2)",
    ...                                  "model.hidden=choice([500],[100,100])"])[0]]
    ['loguniform(1e-06, 0.01)', 'choice([500], [100, 100])']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from circlereg.config import ConfigError, load, n_tested, quote, setting
from circlereg.constraints import Interval, OneOf, check_option
from circlereg.grammar import (
    GRID_FUNCTIONS,
    format_value,
    parse_axis_values,
    parse_call,
    parse_value,
)
from circlereg.spec import choose_seeds
from circlereg.sweep import MAX_RUNS, Point

SAMPLERS = ("tpe", "random", "grid")
DIRECTIONS = OneOf(("maximize", "minimize"))
# Objectives and the direction each is best in. `val_*` are measured on training's
# validation data: the validation points with data.n_validation, else the test points.
OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize",
              "test_accuracy": "maximize", "test_loss": "minimize",
              "train_accuracy": "maximize", "train_loss": "minimize", "gap": "minimize"}
SAMPLED = ("uniform", "interval", "loguniform", "int", "intlog")  # what Optuna draws from
DISTRIBUTIONS = ("uniform(a,b), loguniform(a,b), interval(a,b), int(a,b), intlog(a,b), or "
                 "what a sweep axis lists: v1,v2,... | choice(v1,v2,...) | "
                 "range([start,]stop[,step]) | logspace(a,b,n) | linspace(a,b,n); or one "
                 "fixed value")
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class Dimension:
    """One searched key: the distribution Optuna draws it from, and its config values.

    >>> parse_dimension("model.regularizers.0.l1=loguniform(1e-6,1e-2)")
    Dimension(key='model.regularizers.0.l1', kind='float', low=1e-06, high=0.01, log=True, \
step=None, values=())
    >>> parse_dimension("model.hidden=choice([500],[100,100])").choices()
    ['[500]', '[100, 100]']
    """

    key: str
    kind: str  # float, int or choice
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int | None = None  # int only
    values: tuple = ()  # choice only: the config values

    def text(self) -> str:
        """Canonical spelling, e.g. `loguniform(1e-06, 0.01)` (part of a tune's identity)."""
        if self.kind == "choice":
            return f"choice({', '.join(format_value(v) for v in self.values)})"
        name = ("log" if self.log else "") + ("uniform" if self.kind == "float" else "int")
        step = f", step={self.step}" if self.step not in (None, 1) else ""
        return f"{name}({self.low:g}, {self.high:g}{step})"

    def choices(self) -> list:
        """What Optuna stores for each choice: scalars as they are, lists and mappings as
        their YAML text (Optuna's categorical values must be scalars)."""
        return [v if v is None or isinstance(v, (bool, int, float, str)) else format_value(v)
                for v in self.values]

    def draw(self, trial):
        """This key's value for an Optuna trial (a new draw, or the one the trial holds)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=self.step or 1, log=self.log)
        return self.value(trial.suggest_categorical(self.key, self.choices()))

    def value(self, stored):
        """The config value of what Optuna stored for this key."""
        if self.kind != "choice":
            return stored
        return self.values[self.choices().index(stored)]

    def extremes(self) -> list:
        """The values validated before anything trains: both ends, or every choice."""
        if self.kind == "choice":
            return list(self.values)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]

    def grid(self) -> list:
        if self.kind == "choice":
            return self.choices()
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        raise ConfigError("--sampler", self.key, f"grid needs choice(...), int(a,b) or "
                                                 f"range(a,b) keys, got {self.text()}")


def parse_dimension(text: str) -> Dimension | str:
    """`key=distribution(a,b)` -> a Dimension Optuna draws from; what a sweep axis lists
    (`v1,v2`, `choice(...)`, `range(...)`, `logspace(...)`, ...) -> a choice among those
    values (a whole-number `range` -> integers with its step); one value -> the override
    `key=value`, fixed."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise ConfigError("tune", text, f"must look like key.path=DISTRIBUTION, where "
                                        f"DISTRIBUTION is {DISTRIBUTIONS}")
    if key == "train.seed":
        raise ConfigError("tune", key, "the seeds are set with --seed, --repeats or --seeds, "
                                       "every trial over the same ones; not searched")
    call = parse_call(spec)
    name = call[0] if call else None
    if name is not None and name not in SAMPLED + GRID_FUNCTIONS:
        raise ConfigError("tune", key, f"unknown distribution {quote(name)}; allowed: "
                                       f"{DISTRIBUTIONS}")
    try:
        if name in SAMPLED:
            return _interval(key, name, [_number(a) for a in call[1]])
        values = parse_axis_values(spec)
        if call is None and len(values) == 1:
            return f"{key}={spec}"
        if name == "range" and all(isinstance(v, int) for v in values):
            step = values[1] - values[0] if len(values) > 1 else 1
            low, high = min(values), max(values)
            return Dimension(key, "int", low, high, step=abs(step))
        return _choice(key, values)
    except ValueError as err:
        raise ConfigError("tune", key, f"cannot parse {quote(spec)}: {err}") from None


def _number(text: str) -> float:
    value = parse_value(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{quote(text)} is not a finite number")
    return float(value)


def _choice(key: str, values: list) -> Dimension:
    if len({format_value(v) for v in values}) != len(values):
        raise ValueError("choice values must differ")
    return Dimension(key, "choice", values=tuple(values))


def _interval(key: str, name: str, args: list[float]) -> Dimension:
    if len(args) != 2 or args[0] >= args[1]:
        raise ValueError(f"{name} takes two numbers (low, high) with low < high")
    low, high = args
    log = name in ("loguniform", "intlog")
    if log and low <= 0:
        raise ValueError(f"{name} needs low > 0")
    if name in ("int", "intlog"):
        if not (low.is_integer() and high.is_integer()):
            raise ValueError(f"{name} takes two integers")
        return Dimension(key, "int", low, high, log=log, step=1)
    return Dimension(key, "float", low, high, log=log)


def parse_space(texts: list[str]) -> tuple[list[Dimension], list[str]]:
    """The searched keys, and the fixed values as `--set` overrides."""
    dimensions, fixed = [], []
    for text in texts:
        parsed = parse_dimension(text)
        (fixed if isinstance(parsed, str) else dimensions).append(parsed)
    keys = [d.key for d in dimensions] + [f.partition("=")[0].strip() for f in fixed]
    if len(set(keys)) != len(keys):
        raise ConfigError("tune", next(k for k in keys if keys.count(k) > 1),
                          "each key may appear once")
    if not dimensions:
        raise ConfigError("tune", "", f"give at least one searched key, e.g. "
                                      f"model.regularizers.0.l1=loguniform(1e-6,1e-2); "
                                      f"allowed: {DISTRIBUTIONS}")
    return dimensions, fixed


def measured_on(objective: str, config: dict) -> tuple[str, bool]:
    """Which points `objective` is measured on, and whether they are the test points.

    >>> from circlereg.config import resolve
    >>> measured_on("val_accuracy", resolve({}))
    ('the 70 test points (data.n_validation is 0, so they are the validation data)', True)
    >>> measured_on("val_accuracy", resolve({"data": {"n_validation": 50}}))[1]
    False
    """
    data = config["data"]
    n_test = n_tested(data)
    n_validation = setting(config, "data.n_validation")
    if objective.startswith("train_"):
        return f"the {data['n_train']} training points", False
    if objective.startswith("val_") and n_validation:
        return (f"the {n_validation} validation points (data.n_validation), drawn "
                "apart from the training and test points", False)
    if objective.startswith("val_"):
        return (f"the {n_test} test points (data.n_validation is 0, so they are the "
                "validation data)", True)
    return f"the {n_test} test points", True


def metric(metrics: dict, objective: str) -> float:
    """One replica's value of `objective` (`val_*` are the `test_*` figures when the test
    points were the validation data)."""
    if objective in metrics:
        return metrics[objective]
    return metrics[objective.replace("val_", "test_", 1)]


def check_objective(objective: str, direction: str | None, config: dict) -> str:
    """The direction `objective` is optimised in; ConfigError on an unknown name."""
    check_option("--objective", OneOf(tuple(OBJECTIVES)), objective)
    if objective == "test_loss" and setting(config, "data.n_validation"):
        raise ConfigError("--objective", "", "test_loss is not measured on held-out test "
                                             "points (only test_accuracy is); use val_loss")
    direction = direction or OBJECTIVES[objective]
    return check_option("--direction", DIRECTIONS, direction)


def trial_folder(number: int) -> str:
    return f"t{number:04d}"


class TrialPoint(Point):
    """A trial as the sweep's summary sees a grid point: `t0012/seed_N` sub-runs."""

    @property
    def folder(self) -> str:
        return trial_folder(self.index)


@dataclass
class Search:
    """What a tune searches, checked before anything trains: the base config (`sets`:
    `--set` overrides, then the space's fixed values), the searched keys, the seeds every
    trial trains, the objective and its direction, and the sampler."""

    config_path: Path
    sets: list[str]
    dimensions: list[Dimension]
    seeds: list[int]
    objective: str
    direction: str
    sampler: str
    sampler_seed: int
    base: dict

    def config(self, params: dict) -> dict:
        """The config a trial with these drawn values trains."""
        return resolved(self.config_path, self.sets, params)

    def identity(self) -> dict:
        """What names the tune's folder, in the shape `sweep.sweep_folder` compares."""
        return {"points": [{"point": "tune", "seeds": self.seeds, "config": {
            "base": self.base, "space": {d.key: d.text() for d in self.dimensions},
            "sampler": self.sampler, "sampler_seed": self.sampler_seed,
            "objective": self.objective, "direction": self.direction}}]}


def check_search(config_path: Path, space: list[str], overrides: list[str], trials: int,
                 repeats: int | None, seeds: str | None, objective: str,
                 direction: str | None, sampler: str, sampler_seed: int,
                 notice: Callable[[str], None]) -> tuple[Search, int]:
    """Every argument checked (ConfigError naming it); returns the search and the number of
    trials (at most the grid's size with the grid sampler)."""
    dimensions, fixed = parse_space(space)
    sets = [*overrides, *fixed]
    base = load(config_path, sets)
    direction = check_objective(objective, direction, base)
    check_option("--sampler", OneOf(tuple(SAMPLERS)), sampler)
    seed_list = choose_seeds(base["train"]["seed"], repeats, seeds)
    check_option("--trials", Interval(True, 1, MAX_TRIALS), trials)
    if trials * len(seed_list) > MAX_RUNS:
        raise ConfigError("--trials", "", f"{trials} trials x {len(seed_list)} seeds is more "
                                          f"than {MAX_RUNS} runs")
    if sampler == "grid":
        size = math.prod(len(d.grid()) for d in dimensions)
        if trials > size:
            notice(f"--sampler grid: the grid has {size} points; {size} trials, not {trials}")
            trials = size
    check_corners(config_path, sets, dimensions)
    return Search(config_path, sets, dimensions, seed_list, objective, direction, sampler,
                  sampler_seed, base), trials


def resolved(config_path: Path, sets: list[str], params: dict) -> dict:
    """The config a trial trains: the base with `sets`, then its drawn values."""
    return load(config_path, [*sets, *(f"{k}={format_value(v)}" for k, v in params.items())])


def check_corners(config_path: Path, sets: list[str], dimensions: list[Dimension]) -> None:
    """Before anything trains, validate every searched key at each of its extremes (the
    others at their first): `uniform(0,1)` for a dropout rate fails here, in one line."""
    first = {d.key: d.extremes()[0] for d in dimensions}
    for dimension in dimensions:
        for value in dimension.extremes():
            resolved(config_path, sets, {**first, dimension.key: value})
