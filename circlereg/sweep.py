"""Stage 6: sweeps and repeats. A grid of overrides times a list of seeds, every replica of
one model shape trained together in one compiled graph, then summaries and plots.

    runs/<sweep name>/<UTC timestamp>-<spec hash>/
        manifest.json  sweep.yaml  summary.csv  summary.json  accuracy_vs_<key>.png  curves.png
        p000/seed_1/ ...   (each sub-run holds the files of a run)

sweep.yaml is the sweep as a spec file (spec.py): `circlereg sweep --spec` on it trains the same
sweep again; manifest.json says what the folder is (manifest.py).

The sweep builds a plan (every point x seed) for `executor.execute`, which keeps the sub-runs
already on disk and reuses replicas trained elsewhere under the runs directory (reuse.py). Sub-runs
are written atomically as their batch finishes, and the summary is written (by rename) at the
end or on interruption, so an interrupted sweep keeps every finished sub-run and never a torn
summary; `--resume` trains only what is missing.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circlereg import manifest, report, rundir, stats
from circlereg.config import (
    ConfigError,
    check_value,
    config_hash,
    load_document,
    n_tested,
    quote,
    with_seed,
)
from circlereg.executor import execute, warm_up_idle
from circlereg.grammar import format_value, parse_value
from circlereg.manifest import MANIFEST
from circlereg.plan import Outputs, Plan, Replica
from circlereg.rundir import (
    atomic_write,
    inside,
    read_history,
    run_state,
    strict,
    utc_stamp,
    write_csv,
)
from circlereg.spec import Base, SweepSpec, axis_values, choose_seeds, split_axis
from circlereg.stats import against_reference, summary

STATISTICS = ("train_accuracy", "test_accuracy", "gap", "zero_fraction", "mean_activation")
SUMMARY_FIXED = ("point", "n", "n_diverged", "n_missing")  # besides params and statistics
# Axes whose 0 is "no regularization": a sweep including it is judged against that point.
STRENGTH = re.compile(r"model\.(regularizers\.\d+\.(l1|l2)|dropout\.\d+\.rate|"
                      r"noise\.\d+\.stddev)")
LEGACY_IDENTITY = "plan.json"  # an earlier version's record of what a folder trains
MAX_POINTS = 10_000
MAX_RUNS = 100_000


@dataclass(frozen=True)
class Point:
    index: int
    params: dict  # swept key -> value
    config: dict  # resolved, with its own train.seed (swept or not)
    source: str  # the config file it came from
    seeds: tuple[int, ...] = ()  # the seeds it trains with

    @property
    def folder(self) -> str:
        return f"p{self.index:03d}"

    def runs(self, folder: Path) -> list[tuple[int, Path]]:
        return [(seed, folder / self.folder / f"seed_{seed}") for seed in self.seeds]


def parse_axis(text: str) -> tuple[str, list]:
    """`key=values`: the values in grammar.parse_axis_values' forms (a list, choice, range,
    logspace, linspace); a ConfigError naming the axis and the forms allowed otherwise.

    >>> parse_axis("model.regularizers.0.l1=logspace(-6,-4,3)")
    ('model.regularizers.0.l1', [1e-06, 1e-05, 0.0001])
    >>> parse_axis("model.hidden=[8,4],[16]")
    ('model.hidden', [[8, 4], [16]])
    """
    key, values = split_axis(text)
    return key, axis_values(key, values)


def expand(bases: list[Base | Path], overrides: list[str],
           axes: list[tuple[str, list]]) -> list[Point]:
    """Every grid point of every base config (a Base, or a config file's path), each
    validated as its own config before anything trains. With several configs, each point's
    params start with `config` (its name)."""
    bases = [base if isinstance(base, Base) else Base.read(base) for base in bases]
    points = []
    for base in bases:
        for combo in itertools.product(*(values for _, values in axes)):
            params = {key: value for (key, _), value in zip(axes, combo)}
            sets = [*overrides, *(f"{key}={format_value(value)}" for key, value in params.items())]
            config = load_document(base.raw, base.source, sets, base.default_name)
            if len(bases) > 1:
                params = {"config": config["name"], **params}
            points.append(Point(len(points), params, config, base.source))
    return points


def sweep_folder(runs_dir: Path, name: str, identity: dict, resume: bool,
                 notice: Callable[[str], None] | None = None) -> Path:
    """The folder of this sweep: a new one, or with `resume` the one that trains exactly
    this work. `resume` refuses, naming the first difference, when the newest folder of
    this name trained something else."""

    parent = inside(runs_dir, Path(name))
    digest = config_hash(identity)
    if resume:
        same = sorted(parent.glob(f"*-{digest}")) if parent.is_dir() else []
        if same:
            return same[-1]
        others = sorted({p.parent for name in (MANIFEST, LEGACY_IDENTITY)
                         for p in parent.glob(f"*/{name}")}) if parent.is_dir() else []
        if others:
            try:
                found = manifest.read(others[-1])
                earlier = {"points": found.points} if found is not None else {}
            except ValueError:
                earlier = {}
            changed = manifest.difference(earlier, identity)
            raise ConfigError("--resume", "", f"{others[-1]} trained other work ({changed}); "
                                              "run without --resume to start a new folder")
        if notice is not None:
            notice(f"--resume: nothing to resume under {parent}; starting a new folder")
    return parent / f"{utc_stamp()}-{digest}"


def identity(points: list[Point]) -> dict:
    """What a sweep folder trains; also lists its runs, so `circlereg list` can count them."""
    return {"points": [{"point": p.folder, "seeds": list(p.seeds), "config": p.config}
                       for p in points],
            "runs": [f"{p.folder}/seed_{s}" for p in points for s in p.seeds]}


def run_sweep(spec: SweepSpec, runs_dir: Path, *, resume: bool = False, figures: bool = True,
              executor=None, progress=None, notice: Callable[[str], None] | None = None,
              on_plan: Callable[[int], None] | None = None, retrain: bool = False,
              kind: str | None = None, reference: list[str] | None = None,
              metrics: list[str] | None = None) -> tuple[Path, list[dict]]:
    """Train every grid point (of every base config) and seed; returns (sweep folder, rows).

    Every point is judged against the `reference` point (choose_reference) on test accuracy
    and each of `metrics` (compare_points); the rows, summary.csv/json and report.md carry it.

    Each point trains with the spec's seeds, or `repeats` seeds from its own train.seed
    (swept or not), or its train.seed alone. Replicas already trained under `runs_dir` are
    reused, not trained (unless `retrain`). `on_plan(replica_epochs)` is told the work left
    to do. `kind`: what the manifest calls the folder (default: sweep, or comparison with
    several configs)."""

    notice = notice or (lambda message: None)
    parsed = [(key, axis_values(key, values)) for key, values in spec.axes]
    keys = [key for key, _ in parsed]
    if len(set(keys)) != len(keys):
        raise ConfigError("sweep", keys[0], "each key may be swept once")
    size = len(spec.bases) * math.prod(len(values) for _, values in parsed)
    if size > MAX_POINTS:  # before validating each point, which takes time and memory
        raise ConfigError("sweep", "", f"{size} grid points; at most {MAX_POINTS}")
    points = [Point(p.index, p.params, p.config, p.source,
                    tuple(choose_seeds(p.config["train"]["seed"], spec.repeats,
                                       spec.seeds_text())))
              for p in expand(spec.bases, spec.overrides, parsed)]
    runs = sum(len(p.seeds) for p in points)
    if runs > MAX_RUNS:
        raise ConfigError("sweep", "", f"{runs} runs; at most {MAX_RUNS}")
    keys = list(points[0].params)  # `config` first when several configs are compared
    against = choose_reference(points, reference or [])
    compared = check_metrics(metrics or [])
    if len({p.config["data"]["n_train"] for p in points}) > 1 \
            and not all("n_test" in p.config["data"] for p in points):
        notice(f"notice: {TRAINING_SIZE} varies but data.n_test is not set, so each point "
               "tests on the rows after its training rows, a test set of its own; set "
               "data.n_test to test every point on the same last rows")
    base = points[0].config
    name = spec.name or (f"{base['name']}-sweep" if len(spec.bases) == 1 else "compare")
    check_value("--name", "", "name", name)
    grid = [{"point": p.folder, **p.params, "seeds": list(p.seeds)} for p in points]
    _check_points(spec, grid)
    # The folder is named by what it trains, not by the paths that described it.
    what = identity(points)
    folder = sweep_folder(runs_dir, name, what, resume, notice)
    replicas = [Replica(with_seed(p.config, s), run, p.source, p.params)
                for p in points for s, run in p.runs(folder)]
    plan = Plan(replicas, Outputs(figures=figures), runs_dir=runs_dir, retrain=retrain)
    plan.check()
    if resume and not retrain and all(rundir.run_state(r.destination) is None
                                      for r in replicas):
        notice(f"--resume: {folder} is complete: its {len(replicas)} runs are all there; "
               "nothing to train")
    with rundir.locked(folder):
        if not (folder / MANIFEST).is_file():
            kind = kind or ("comparison" if len(spec.bases) > 1 else "sweep")
            manifest.write(folder, sweep_manifest(kind, spec.document(name, grid), points,
                                                  what))
        atomic_write(folder / "sweep.yaml", spec.document(name, grid))
        trained: dict[Path, dict] = {}  # sub-run folder -> history, to plot without reading
        warming = warm_up_idle(lambda: importlib.import_module("scipy.special"),
                               lambda: importlib.import_module("circlereg.plots").warm_up())
        try:
            trained = {w.replica.destination: w.history
                       for w in execute(plan, executor, progress, on_plan, notice)
                       if w.history is not None}
        finally:  # an interrupted sweep still summarises what it finished, and says so
            # Not while the warm-up still imports them: a plan all reused ends at once, and
            # two threads importing matplotlib at the same time break it.
            warming.join()
            rows = write_summary(folder, points, against, compared)
    plot_sweep(folder, points, keys, rows, trained)

    report.write_collection(folder)
    diverged = sum(row["n_diverged"] for row in rows)
    if diverged:
        notice(f"warning: {diverged} of {len(replicas)} runs diverged (training loss not "
               "finite); they are counted in n_diverged and left out of the statistics")
    return folder, rows


def choose_reference(points: list[Point], given: list[str]) -> int:
    """The index of the point the others are judged against: the one `given` names (a point
    folder such as p003, a compared config's name, or KEY=VALUE of swept keys, each narrowing
    the choice); by default the first point that is 0 on every strength axis (STRENGTH)
    holding 0, else the first point. A ConfigError naming --reference when `given` names no
    point or several."""

    if not given:
        zero_axes = [k for k in points[0].params if STRENGTH.fullmatch(k)
                     and any(p.params[k] == 0 for p in points)]
        return next((p.index for p in points if zero_axes
                     and all(p.params[k] == 0 for k in zero_axes)), 0)
    matching = list(points)
    for text in given:
        if "=" in text:
            key, _, value = text.partition("=")
            if key not in points[0].params:
                swept = ", ".join(points[0].params) or "none"
                raise ConfigError("--reference", key, f"is not swept (swept: {swept}); give "
                                  "KEY=VALUE of a swept key, a point (p000) or a config name")
            wanted = format_value(parse_value(value))
            matching = [p for p in matching if format_value(p.params[key]) == wanted]
        else:
            matching = [p for p in matching if text in (p.folder, p.params.get("config"))]
    if len(matching) != 1:
        found = (f"matches {len(matching)} points ({', '.join(p.folder for p in matching)}); "
                 "add KEY=VALUE of another swept key") if matching else \
            f"matches no point (points p000-{points[-1].folder})"
        raise ConfigError("--reference", "", f"{quote(' '.join(given))} {found}")
    return matching[0].index


def check_metrics(names: list[str]) -> tuple[str, ...]:
    """The metrics points are compared on: test accuracy, then each --metric once."""
    for name in names:
        if name not in METRICS:
            raise ConfigError("--metric", "", f"must be one of {', '.join(METRICS)}; got "
                                              f"{quote(name)}")
    return tuple(dict.fromkeys(["test_accuracy", *names]))


def sweep_manifest(kind: str, document: str, points: list[Point], what: dict
                   ) -> manifest.Manifest:
    """The manifest of a sweep, comparison or repeats folder: `document` is its sweep.yaml."""
    import yaml

    keys = list(points[0].params)
    varies = [{"key": key, "values": list({format_value(p.params[key]): p.params[key]
                                           for p in points}.values())} for key in keys]
    runs = [{"run": f"{p.folder}/seed_{s}", "point": p.folder, "seed": s, "params": p.params}
            for p in points for s in p.seeds]
    spec = {k: v for k, v in yaml.safe_load(document).items() if k != "points"}
    return manifest.Manifest(kind, runs, varies, sorted({s for p in points for s in p.seeds}),
                             spec, points=what["points"])


def _check_points(spec: SweepSpec, grid: list[dict]) -> None:
    """A spec read from a sweep folder lists the points its axes gave: refuse to run when
    the two disagree (someone edited one of them), naming the first difference."""
    if spec.points is None or spec.points == grid:
        return
    if len(spec.points) != len(grid):
        found = f"lists {len(spec.points)} points but config, axes and seeds give {len(grid)}"
    else:
        listed, given = next((a, b) for a, b in zip(spec.points, grid) if a != b)
        found = (f"{given['point']} is listed as {quote(_without_point(listed), 80)} but "
                 f"config, axes and seeds give {quote(_without_point(given), 80)}")
    raise ConfigError(spec.source, "points", f"{found}; points records what a sweep trained: "
                                             "delete it to run the spec as it is now")


def _without_point(entry) -> dict | object:
    return {k: v for k, v in entry.items() if k != "point"} if isinstance(entry, dict) else entry


def summarize_point(point: Point, metrics: list[dict], extra: tuple[str, ...] = ()) -> dict:
    """A point's summary row: its params, then the statistics of STATISTICS and of `extra`
    metrics over its finished seeds that did not diverge."""

    finite = [m for m in metrics if not m["diverged"]]
    row = {"point": point.folder, **point.params, "n": len(finite),
           "n_diverged": len(metrics) - len(finite),
           "n_missing": len(point.seeds) - len(metrics)}
    for statistic in (*STATISTICS, *(m for m in extra if m not in STATISTICS)):
        values = [metric_value(m, statistic) for m in finite]
        # 6 decimals (accuracy moves in steps of 1/70): a resumed sweep, whose replicas may
        # batch differently, writes the same summary as one that ran straight through.
        row.update({f"{statistic}_{k}": round(v, 6) for k, v in summary(values).items()})
    return row


def metric_value(metrics: dict, name: str) -> float:
    """A metric of a run's metrics.json; zero_fraction and mean_activation averaged over the
    hidden layers; NaN when the run has none of that name."""
    if name in ("zero_fraction", "mean_activation"):
        return float(np.mean([layer[name] for layer in metrics["hidden_layers"]]))
    value = metrics.get(name)
    return float(value) if isinstance(value, (int, float)) else math.nan


# What a comparison column holds, for each compared metric M: M_diff, M_diff_ci95_low, ...
COMPARED = ("diff", "diff_ci95_low", "diff_ci95_high", "p", "p_holm", "verdict")
# Metrics --metric may name: metrics.json's numbers that depend on config and seed alone.
METRICS = ("test_accuracy", "train_accuracy", "gap", "test_loss", "train_loss",
           "val_accuracy", "val_loss", "best_test_accuracy", "best_test_epoch",
           "best_val_accuracy", "best_val_epoch", "epochs", "zero_fraction", "mean_activation")


def compare_points(rows: list[dict], finished: list[list[dict]], reference: int,
                   compared: tuple[str, ...]) -> None:
    """Add to each row its paired comparison with the row at `reference` on each compared
    metric (stats.against_reference): `n_shared`, then M_diff ... M_verdict. A lone point
    (`run --repeats`) has nothing to be compared with."""

    for metric in compared if len(rows) > 1 else ():
        values = [{m["seed"]: metric_value(m, metric) for m in metrics if not m["diverged"]}
                  for metrics in finished]
        for row, judged in zip(rows, against_reference(values, reference, metric)):
            row["n_shared"] = judged["n_shared"]
            for column in COMPARED:
                value = judged[column]
                if isinstance(value, float) and math.isfinite(value):
                    value = float(f"{value:.6g}") if column.startswith("p") else round(value, 6)
                row[f"{metric}_{column}"] = value


TRAINING_SIZE = "data.n_train"  # swept, it draws a learning curve


def same_test_set(points: list[Point]) -> bool:
    """Whether every point tests on the same points: data.n_test set, and the data drawn alike.

    >>> from circlereg.config import resolve
    >>> def point(n_train, **data):
    ...     return Point(0, {}, resolve({"data": {"n_samples": 90, "n_train": n_train, **data}}),
    ...                  "")
    >>> same_test_set([point(10, n_test=50), point(40, n_test=50)])
    True
    >>> same_test_set([point(10), point(40)]), same_test_set([point(10, n_test=50)] * 2 + [
    ...     point(10, n_test=50, noise=0.2)])
    (False, False)
    """
    drawn = [{k: v for k, v in p.config["data"].items() if k != "n_train"} for p in points]
    return "n_test" in drawn[0] and all(d == drawn[0] for d in drawn)


def curve_test_set(points: list[Point]) -> str:
    """What a learning curve's test accuracies are measured on, for its title."""
    if same_test_set(points):
        return f"every point tested on the same {n_tested(points[0].config['data'])} points"
    if all("n_test" in p.config["data"] for p in points):
        return "each point tested on the last data.n_test rows of its own data"
    return "the test set differs by point: set data.n_test to fix it"


def write_summary(folder: Path, points: list[Point], reference: int = 0,
                  compared: tuple[str, ...] = ("test_accuracy",)) -> list[dict]:
    """summary.csv / summary.json from the sub-runs on disk (so resumed == straight through),
    each point judged against the point at index `reference` on the `compared` metrics.
    summary.json says whether every planned run is there (`status`); so do the `n_missing`
    columns."""

    finished = [point_metrics(folder, point) for point in points]
    rows = [summarize_point(point, metrics, compared)
            for point, metrics in zip(points, finished)]
    compare_points(rows, finished, reference, compared)
    missing = sum(row["n_missing"] for row in rows)
    planned = sum(len(p.seeds) for p in points)
    write_csv(folder / "summary.csv", list(rows[0]), rows)
    atomic_write(folder / "summary.json", json.dumps(strict({
        "status": "incomplete" if missing else "complete", "runs_planned": planned,
        "runs_finished": planned - missing, "reference": points[reference].folder,
        "compared": list(compared), "test": stats.TEST, "correction": "holm",
        "alpha": stats.ALPHA, "min_shared_seeds": stats.MIN_SHARED, "points": rows}),
        indent=2) + "\n")
    return rows


def point_metrics(folder: Path, point: Point) -> list[dict]:
    """metrics.json of each of the point's sub-runs that is finished on disk."""
    return [json.loads((run / "metrics.json").read_text())
            for _, run in point.runs(folder) if run_state(run) is None]


def plot_sweep(folder: Path, points: list[Point], keys: list[str], rows: list[dict],
               trained: dict[Path, dict] | None = None) -> None:
    """The sweep's plots, titled with its name; `trained` holds histories already in memory,
    by sub-run folder."""
    from circlereg import plots  # matplotlib loads only when a figure is drawn

    title = folder.parent.name
    if "config" in keys:
        plots.technique_bars(rows, folder / "test_accuracy_by_config.png", title)
    for key in keys:
        if not plots.is_numeric([p.params[key] for p in points]):
            continue
        others = [k for k in keys if k != key]
        if key == TRAINING_SIZE:
            plots.learning_curve(rows, key, others, folder / "learning_curve.png", title,
                                 curve_test_set(points))
        else:
            plots.accuracy_against(rows, key, others, folder / f"accuracy_vs_{key}.png", title)
    curves = []
    for point in points:
        histories = [(trained or {}).get(run) or read_history(run / "history.csv")
                     for _, run in point.runs(folder) if (run / "history.csv").is_file()]
        if histories:
            label = plots.labelled(point.params, keys)
            curves.append((label or point.folder, point.params, histories))
    plots.mean_curves(curves, keys, folder / "curves.png", title)
