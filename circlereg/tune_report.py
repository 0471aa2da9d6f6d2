"""What a tune writes as it goes and at its end: the manifest, trials.csv, tune.md and best.yaml
(the best trial's config), and Optuna's figures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circlereg import manifest, report
from circlereg.config import dump, n_tested
from circlereg.grammar import format_value
from circlereg.report import markdown_table
from circlereg.rundir import csv_cell, write_csv
from circlereg.space import Dimension, Search, TrialPoint, trial_folder
from circlereg.sweep import STATISTICS, point_metrics, summarize_point

MIN_FOR_IMPORTANCE = 8  # completed trials before parameter importances mean anything


@dataclass
class Tune:
    """What a tune found: its folder, one row per trial, the report, and timings."""

    folder: Path
    rows: list[dict]
    report: str
    best: dict | None  # the best trial's row
    objective: str = "val_accuracy"
    sampler_seconds: float = 0.0  # in the sampler and the study: ask, tell, SQLite


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


def write_report(folder: Path, study, rows: list[dict], spec: dict, search: Search, where: str,
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


def draw_figures(folder: Path, study, dimensions: list[Dimension], result: Tune) -> None:
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
