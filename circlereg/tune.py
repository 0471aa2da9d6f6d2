"""Stage 6, beyond grids: `circlereg tune` searches a space of config values with Optuna.

    runs/<tune name>/<UTC timestamp>-<identity hash>/
        manifest.json  tune.yaml  study.db  trials.csv  tune.md  best.yaml
        optimization_history.png  parallel_coordinate.png  param_importances.png
        t0000/seed_1/ ...   (each sub-run holds the files of a run)

Trials are asked from Optuna in batches; each batch is one plan for `executor.execute`, every
trial over the same seeds, so trials of one model structure train side by side in the
compiled lanes exactly as a sweep's points do. A trial's objective is the mean over its seeds;
a trial with a diverged seed is told as failed and the search goes on.

The study lives in `study.db` (SQLite) and sub-runs are written atomically, so a killed tune
loses nothing: `--resume` first finishes the trials that were asked (Optuna holds their
parameters; only their missing sub-runs train), then asks for the rest, until `--trials`
trials are finished.
"""

from __future__ import annotations

import base64
import functools
import math
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from circlereg import manifest, report, rundir
from circlereg.config import (
    LANES,
    ConfigError,
    check_value,
    dump,
    load,
    n_tested,
    positive_int,
    quote,
    setting,
    with_seed,
)
from circlereg.constraints import Interval, OneOf, check_option
from circlereg.executor import Executor, execute
from circlereg.grammar import (
    GRID_FUNCTIONS,
    format_value,
    parse_axis_values,
    parse_call,
    parse_value,
)
from circlereg.options import Searching, Work
from circlereg.plan import Outputs, Plan, Replica
from circlereg.report import markdown_table
from circlereg.rundir import atomic_write, csv_cell, run_state, write_csv
from circlereg.spec import choose_seeds
from circlereg.sweep import (
    MAX_RUNS,
    STATISTICS,
    Point,
    point_metrics,
    summarize_point,
    sweep_folder,
)

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
MIN_FOR_IMPORTANCE = 8  # completed trials before parameter importances mean anything
# A batch holds at least this many rounds of lanes for every worker, so the workers stay busy
# and the pause between batches (the last lanes, then ask and tell) is a small part of it.
ROUNDS = 2
STUDY = "tune"  # the study's name inside study.db


def require_optuna():
    """Optuna, or one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("tune", "", "needs Optuna, an optional extra: "
                                      "pip install 'circlereg[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no per-trial chatter on stderr
    return optuna


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


def batch_size(n_seeds: int, lanes: int, workers: int) -> int:
    """Trials per batch: whole rounds of lanes (trials x seeds a multiple of lanes x
    workers, so no worker idles at the end of a batch of one structure) and at least
    ROUNDS of them.

    >>> batch_size(5, 4, 2), batch_size(3, 4, 2), batch_size(1, 4, 2), batch_size(2, 4, 2)
    (8, 8, 16, 8)
    """
    round_ = lanes * workers
    unit = round_ // math.gcd(n_seeds, round_)
    return unit * max(1, -(-ROUNDS * round_ // (unit * n_seeds)))


def trial_folder(number: int) -> str:
    return f"t{number:04d}"


class TrialPoint(Point):
    """A trial as the sweep's summary sees a grid point: `t0012/seed_N` sub-runs."""

    @property
    def folder(self) -> str:
        return trial_folder(self.index)


@dataclass
class Tune:
    """What a tune found: its folder, one row per trial, the report, and timings."""

    folder: Path
    rows: list[dict]
    report: str
    best: dict | None  # the best trial's row
    objective: str = "val_accuracy"
    sampler_seconds: float = 0.0  # in the sampler and the study: ask, tell, SQLite


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


def run_tune(config_path: Path, space: list[str], searching: Searching, work: Work, *,
             executor=None, progress=None, notice: Callable[[str], None] | None = None,
             on_plan: Callable[[int], None] | None = None,
             on_batch: Callable[[str], None] | None = None) -> Tune:
    """Search `space` (`key=uniform(a,b)`, ...) as `searching` says, training what `work`
    says; returns what was found. `on_plan(replica_epochs)` is told the work left (at most),
    `on_batch(line)` each batch's progress, `notice(line)` what the user should know."""

    overrides, trials, runs_dir, name = work.settings(), searching.trials, work.runs_dir, work.name
    objective, sampler, batch = searching.objective, searching.sampler, searching.batch
    optuna = require_optuna()
    notice = notice or (lambda message: None)
    search, trials = check_search(config_path, space, overrides, trials, work.repeats,
                                  work.seeds, objective, searching.direction, sampler,
                                  searching.sampler_seed, notice)
    check_option("--batch", positive_int, batch)
    name = name or f"{search.base['name']}-tune"
    check_value("--name", "", "name", name)
    where, on_test = measured_on(objective, search.base)
    if on_test:
        notice(f"notice: the objective {objective} is measured on {where}: this tunes on the "
               "test set; set data.n_validation (e.g. --set data.n_validation=70) to keep "
               "them apart")
    folder = sweep_folder(runs_dir, name, search.identity(), work.resume, notice)
    Plan([Replica(search.base, folder, str(config_path))]).check()  # user penalties import
    own = executor is None
    executor = executor or Executor()

    batch = batch or batch_size(len(search.seeds), LANES, executor.count)
    spec = {"config": str(config_path), "set": list(overrides), "space": list(space),
            "seeds": search.seeds, "trials": trials, "objective": objective,
            "direction": search.direction, "sampler": sampler,
            "sampler_seed": searching.sampler_seed,
            "batch": batch, "name": name}
    try:
        with rundir.locked(folder):
            atomic_write(folder / "tune.yaml", yaml.safe_dump(spec, sort_keys=False))
            study = optuna.create_study(
                storage=study_storage(optuna, folder / "study.db"), study_name=STUDY,
                sampler=_sampler(optuna, search), direction=search.direction,
                load_if_exists=True)
            restore_sampler(study, search, notice)
            write_manifest(folder, study, search, spec, trials)
            states = optuna.trial.TrialState
            finished = len(study.get_trials(deepcopy=False,
                                            states=(states.COMPLETE, states.FAIL)))
            if work.resume and finished >= trials:
                notice(f"--resume: {folder} is complete: {finished} trials finished; "
                       "nothing to train")
            timer = Timer()
            counts = {"reused": 0, "trained": 0}

            def train(replicas: list) -> None:
                for key, n in executor_run(replicas, executor, progress, work.figures,
                                           runs_dir, work.retrain, notice).items():
                    counts[key] += n

            def asked() -> None:
                write_manifest(folder, study, search, spec, trials)

            try:
                search_loop(optuna, study, search, folder, trials, batch, timer, train,
                            notice, on_plan, on_batch, asked)
                if counts["reused"]:
                    notice(f"{counts['reused']} reused, {counts['trained']} trained")
            finally:  # an interrupted tune still reports what it finished, and says so
                rows = write_trials(folder, study, search)
                result = _report(folder, study, rows, spec, search, where, on_test, trials,
                                 timer.seconds)
            _plot(folder, study, search.dimensions, result)
    finally:
        if own:
            executor.close()
    failed = sum(row["state"] == "FAIL" for row in rows)
    if failed:
        notice(f"warning: {failed} of {len(rows)} trials failed (a diverged seed: training "
               "loss not finite); told to Optuna as failed, the search went on")
    return result


class Timer:
    """Seconds spent in `with timer:` blocks (the sampler's and the study's share)."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


def executor_run(replicas: list, executor, progress, figures: bool, runs_dir: Path | None = None,
                 retrain: bool = False, notice=None) -> dict[str, int]:
    """Train the replicas (sub-runs not on disk yet), or reuse those already trained under
    `runs_dir`, and write their run directories; returns how many were reused and trained."""

    plan = Plan(replicas, Outputs(figures=figures), runs_dir=runs_dir, retrain=retrain)
    plan.check()
    if not plan.replicas:
        return {}
    # Its own count, not a line per batch: the tune says it once, at the end.
    written = execute(plan, executor, progress,
                      notice=lambda m: None if m.endswith(" trained") else notice(m))
    reused = sum(w.history is None for w in written)
    return {"reused": reused, "trained": len(written) - reused}


def search_loop(optuna, study, search: Search, folder: Path, trials: int, batch: int,
                timer: Timer, train: Callable[[list], None], notice, on_plan, on_batch,
                on_ask: Callable[[], None] = lambda: None) -> None:
    """Ask, train, tell, batch after batch, until `trials` trials are finished. Trials asked
    before an interruption (RUNNING in the study) come first, with the values they hold."""

    states = optuna.trial.TrialState
    finished = (states.COMPLETE, states.FAIL)
    pending = [optuna.Trial(study, t._trial_id)
               for t in study.get_trials(deepcopy=False, states=(states.RUNNING,))]
    if pending:
        notice(f"--resume: finishing {len(pending)} trials asked before the interruption")
    done = len(study.get_trials(deepcopy=False, states=finished))
    if on_plan is not None:
        on_plan(max(trials - done, len(pending)) * len(search.seeds)
                * search.base["train"]["epochs"])
    while True:
        with timer:
            asked = pending + [study.ask() for _ in range(min(batch - len(pending),
                                                              trials - done - len(pending)))]
            drawn = [(trial, {d.key: d.draw(trial) for d in search.dimensions})
                     for trial in asked]
            if len(asked) > len(pending):
                save_sampler(study)
                on_ask()  # the manifest lists each trial's values once drawn
        if not asked:
            return
        pending, points = [], []
        for trial, params in drawn:
            try:
                config = search.config(params)
            except ConfigError as err:  # a draw the corners did not rule out
                notice(f"{trial_folder(trial.number)}: {err}; told as failed")
                study.tell(trial, state=states.FAIL)
                continue
            points.append((TrialPoint(trial.number, params, config, str(search.config_path),
                                      tuple(search.seeds)), trial))
        train([Replica(with_seed(point.config, s), run, point.source)
               for point, _ in points for s, run in point.runs(folder)
               if run_state(run) is not None])  # finished sub-runs are kept, never retrained
        with timer:
            for point, trial in points:
                value = _objective(folder, point, search.objective)
                if value is None:
                    study.tell(trial, state=states.FAIL)
                else:
                    study.tell(trial, value)
        done = len(study.get_trials(deepcopy=False, states=finished))
        if on_batch is not None:
            on_batch(_progress_line(study, done, trials, search.objective))


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


def study_storage(optuna, path: Path):
    """The study's SQLite file, written ahead (WAL) and synced at checkpoints only: a killed
    process loses no committed trial (only a power cut could), and each of the study's
    commits costs microseconds instead of a disk sync (about 10 ms each here, ten per trial).
    """
    import sqlite3

    class Connection(sqlite3.Connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.execute("PRAGMA journal_mode=WAL")
            self.execute("PRAGMA synchronous=NORMAL")

    return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}",
                                      engine_kwargs={"connect_args": {"factory": Connection}})


SAMPLER_STATE = "circlereg.sampler"  # the study's user attribute holding the sampler


def save_sampler(study) -> None:
    """Keep the sampler (its random state included) in the study, with the number of trials
    asked so far: a resumed tune goes on drawing where this one stopped, instead of drawing
    its first trials' values again from a sampler made afresh with the same seed."""
    state = base64.b64encode(pickle.dumps(study.sampler)).decode()
    study.set_user_attr(SAMPLER_STATE, {"trials": len(study.trials), "state": state})


def restore_sampler(study, search: Search, notice: Callable[[str], None]) -> None:
    """On resume, the sampler saved with the study's last asked trials. A study without one
    that matches (written by an earlier circlereg, or cut between two asks) gets a sampler
    seeded apart from the first, so its draws do not repeat the trials already asked."""
    asked = len(study.trials)
    if not asked:
        return
    saved = study.user_attrs.get(SAMPLER_STATE)
    if isinstance(saved, dict) and saved.get("trials") == asked:
        study.sampler = pickle.loads(base64.b64decode(saved["state"]))
        return
    import optuna

    reseeded = replace(search, sampler_seed=search.sampler_seed + 1_000_003 * asked)
    study.sampler = _sampler(optuna, reseeded)
    notice(f"--resume: the study holds no saved sampler for its {asked} trials; its next "
           "draws come from a sampler seeded apart")


@functools.cache
def _grid_sampler() -> type:
    """Optuna's grid sampler without Study.stop() on the last grid point, which works inside
    Study.optimize only: the tune stops after its trials, at most the grid. Made on first use
    (Optuna is an extra) and found again as `circlereg.tune.GridSampler`, so it pickles."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def after_trial(self, *args) -> None:
            pass

    GridSampler.__module__, GridSampler.__qualname__ = __name__, "GridSampler"
    return GridSampler


def __getattr__(name: str):
    if name == "GridSampler":  # for unpickling a study's saved grid sampler
        return _grid_sampler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sampler(optuna, search: Search):
    name, seed, dimensions = search.sampler, search.sampler_seed, search.dimensions
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _grid_sampler()({d.key: d.grid() for d in dimensions}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)  # batches: spread out


def _objective(folder: Path, point: TrialPoint, objective: str) -> float | None:
    """The mean of `objective` over the trial's seeds; None (failed) when a seed diverged
    or is missing, or the mean is not finite."""
    metrics = point_metrics(folder, point)
    if len(metrics) < len(point.seeds) or any(m["diverged"] for m in metrics):
        return None
    value = float(np.mean([metric(m, objective) for m in metrics]))
    return value if math.isfinite(value) else None


def _progress_line(study, done: int, trials: int, objective: str) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return f"trials {done}/{trials}: none completed yet"
    return (f"trials {done}/{trials}: best {objective} {best.value:.4f} "
            f"({trial_folder(best.number)})")


def write_manifest(folder: Path, study, search: Search, spec: dict, trials: int) -> None:
    """The tune's manifest: every planned trial's runs, each asked trial with its drawn
    values (a trial not asked yet has none); made once, rewritten as trials are asked."""

    drawn = {t.number: {d.key: d.value(t.params[d.key]) for d in search.dimensions
                        if d.key in t.params} for t in study.get_trials(deepcopy=False)}
    numbers = max(trials, len(drawn))  # trial numbers are 0, 1, 2, ...
    runs = [{"run": f"{trial_folder(n)}/seed_{s}", "point": trial_folder(n), "seed": s,
             "params": drawn.get(n)} for n in range(numbers) for s in search.seeds]
    try:
        earlier = manifest.read(folder) if (folder / manifest.MANIFEST).is_file() else None
    except ValueError:
        earlier = None
    manifest.write(folder, manifest.Manifest(
        "tune", runs, [{"key": d.key, "values": d.text()} for d in search.dimensions],
        list(search.seeds), spec, earlier.command if earlier else None,
        earlier.created if earlier else None, search.identity()["points"]))


def write_trials(folder: Path, study, search: Search) -> list[dict]:
    """trials.csv, one row per trial from the study and the sub-runs on disk: number, state,
    the drawn values, the objective (mean over seeds), and each statistic's mean."""
    rows = []
    for frozen in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        params = {d.key: d.value(frozen.params[d.key]) for d in search.dimensions
                  if d.key in frozen.params}
        point = TrialPoint(frozen.number, params, {}, "", tuple(search.seeds))
        summary = summarize_point(point, point_metrics(folder, point))
        rows.append({"trial": point.folder, "state": frozen.state.name,
                     **{d.key: params.get(d.key) for d in search.dimensions},
                     search.objective: frozen.value,
                     **{k: summary[k] for k in ("n", "n_diverged", "n_missing")},
                     **{f"{s}_mean": summary[f"{s}_mean"] for s in STATISTICS}})
    write_csv(folder / "trials.csv", list(rows[0]) if rows else ["trial", "state"], rows,
              _trial_cell)
    return rows


def _trial_cell(value) -> str:
    """Empty for no value; lists and mappings in the grammar's spelling ([8, 4])."""
    if value is None:
        return ""
    return csv_cell(value if isinstance(value, (int, float, str)) else format_value(value))


def _report(folder: Path, study, rows: list[dict], spec: dict, search: Search, where: str,
            on_test: bool, trials: int, sampler_seconds: float) -> Tune:
    """tune.md and best.yaml (the best trial's resolved config, for `circlereg run`)."""

    found = manifest.read(folder)
    objective, dimensions = search.objective, search.dimensions
    finished = [r for r in rows if r["state"] in ("COMPLETE", "FAIL")]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    status = "complete" if len(finished) >= trials else "incomplete"
    lines = [f"# Tune {spec['name']}: {status}", "",
             f"- command: {report.command(found)}",
             f"- base config: `{spec['config']}`"
             + "".join(f" `--set {s}`" for s in spec["set"]),
             f"- searched: {', '.join(f'`{d.key}={d.text()}`' for d in dimensions)}",
             f"- seeds: {', '.join(map(str, spec['seeds']))} (every trial)",
             f"- sampler: {spec['sampler']} (seed {spec['sampler_seed']}), batches of "
             f"{spec['batch']} trials",
             f"- objective: {spec['direction']} `{objective}`, the mean over the seeds, "
             f"measured on {where}",
             f"- trials: {len(finished)} of {trials} finished: {len(complete)} complete, "
             f"{len(finished) - len(complete)} failed (a seed diverged)",
             f"- time in the sampler and study (ask, tell, SQLite): {sampler_seconds:.1f} s"]
    if on_test:
        lines += ["", "**The objective was measured on the test points**: the best trial's "
                      "figure is tuned on the test set and flatters it. Set "
                      "`data.n_validation` to search on validation points instead."]
    if status == "incomplete":
        lines += ["", "Interrupted: run `circlereg tune` with the same arguments and "
                      "`--resume` to finish."]
    best = None
    if complete:
        best_trial = study.best_trial
        best = next(r for r in rows if r["trial"] == trial_folder(best_trial.number))
        params = {d.key: d.value(best_trial.params[d.key]) for d in dimensions}
        config = search.config(params)
        (folder / "best.yaml").write_text(
            f"# The best trial of {folder}: {best['trial']}, {objective} "
            f"{best_trial.value:.6g} (mean over seeds {', '.join(map(str, spec['seeds']))}).\n"
            f"# Train it again with: circlereg run best.yaml --seeds ...\n" + dump(config))
        lines += ["", f"## Best trial: {best['trial']}", "",
                  *(f"- `{k}` = {format_value(v)}" for k, v in params.items()),
                  f"- {objective}: {best_trial.value:.4f} (on {where.split(' (')[0]})",
                  f"- train accuracy: {best['train_accuracy_mean']:.4f}"]
        if on_test:
            lines.append("- on points the search never saw: none were kept from it (the "
                         "objective reads the test points)")
        else:
            lines.append(f"- **test accuracy on the {_n_test(search.base)} test points, which the "
                         f"search never saw: {best['test_accuracy_mean']:.4f}** (mean over "
                         f"{best['n']} seeds)")
        lines += ["", "## Top trials", "", _table(rows, dimensions, objective, spec)]
    lines += ["", "Every trial: `trials.csv`; its runs: `tNNNN/seed_N/`; the study: "
                  "`study.db` (Optuna, SQLite).", "", *report.environment_section(folder, found)]
    text = report.write(folder / "tune.md", lines)
    return Tune(folder, rows, text, best, objective, sampler_seconds)


def _n_test(config: dict) -> int:
    return n_tested(config["data"])


def _table(rows: list[dict], dimensions: list[Dimension], objective: str, spec: dict,
           top: int = 10) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    complete.sort(key=lambda r: r[objective], reverse=spec["direction"] == "maximize")
    keys = [d.key for d in dimensions]

    header = ["trial", *(f"`{k}`" for k in keys), objective, "train acc", "test acc"]
    return "\n".join(markdown_table(header, [
        [row["trial"], *(_short(row[k]) for k in keys), f"{row[objective]:.4f}",
         f"{row['train_accuracy_mean']:.4f}", f"{row['test_accuracy_mean']:.4f}"]
        for row in complete[:top]]))


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else format_value(value)


def _plot(folder: Path, study, dimensions: list[Dimension], result: Tune) -> None:
    """Optuna's optimisation history, parallel coordinates and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    completed = [r for r in result.rows if r["state"] == "COMPLETE"]
    figures = [("optimization_history.png", vis.plot_optimization_history, 1),
               ("parallel_coordinate.png", vis.plot_parallel_coordinate, 1),
               ("param_importances.png", vis.plot_param_importances, MIN_FOR_IMPORTANCE)]
    skipped = []
    for filename, plot, needed in figures:
        if len(completed) < needed or (plot is vis.plot_param_importances
                                       and len(dimensions) < 2):
            skipped.append(f"{filename} (needs {needed} completed trials"
                           + (" and two searched keys)" if needed > 1 else ")"))
            continue
        # Optuna's plots switch matplotlib to its ggplot style for the whole process: kept
        # to these figures, so every figure drawn after them (a run's, a sweep's) is the same.
        with warnings.catch_warnings(), plt.rc_context():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = plot(study, target_name=result.objective)
            figure = np.ravel(axes)[0].figure
            figure.set_size_inches(max(7.0, 2.2 * len(dimensions) + 3), 4.8)
            figure.tight_layout()
            figure.savefig(folder / filename, dpi=100)
            plt.close(figure)

    figures = report.figure_links(folder)
    note = [f"Not drawn: {', '.join(skipped)}."] if skipped else []
    if figures or note:
        result.report = report.write(folder / "tune.md", [result.report, "## Figures", "",
                                                          *figures, "", *note])
