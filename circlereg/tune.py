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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from circlereg import rundir
from circlereg.config import LANES, ConfigError, check_value, positive_int, with_seed
from circlereg.constraints import check_option
from circlereg.executor import Executor, execute
from circlereg.options import Searching, Work
from circlereg.plan import Outputs, Plan, Replica
from circlereg.rundir import atomic_write, run_state
from circlereg.space import Search, TrialPoint, check_search, measured_on, metric, trial_folder
from circlereg.sweep import point_metrics, sweep_folder
from circlereg.tune_report import Tune, draw_figures, write_manifest, write_report, write_trials

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
                result = write_report(folder, study, rows, spec, search, where, on_test, trials,
                                 timer.seconds)
            draw_figures(folder, study, search.dimensions, result)
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
