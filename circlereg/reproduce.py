"""Stage 7: reproduce the study's published figures, with statistics over seeds.

A spec (configs/reproduce/study.yaml) names the models, their published train/test accuracy
(percent, truncated, as published) and the claims. Every model trains with N seeds in batched
graphs under three activity-penalty conventions:

    sum          penalty summed over the batch: the study's Keras, the published convention
    mean         divided by the batch size (Keras >= 3.14's default) with the same lambda
    mean_scaled  divided by the batch size, lambda multiplied by the batch size: the lambda
                 that matches the published one under today's convention

Only `sum` decides the exit code; the others show whether, and why, lambda = 0.0001 does or
does not reproduce under today's convention.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np

from circlereg import manifest, report, rundir
from circlereg.config import (
    CONVENTIONS,
    MAX_EPOCHS,
    ConfigError,
    check_value,
    config_hash,
    load,
    n_tested,
    with_seed,
)
from circlereg.constraints import Interval, checked
from circlereg.document import read_yaml
from circlereg.executor import execute
from circlereg.plan import Outputs, Plan, Replica
from circlereg.report import command, run_environment, software
from circlereg.rundir import read_history, write_json
from circlereg.stats import mann_whitney_greater, summary, wilcoxon_greater

CHECKED = "sum"
FIGURES = ("train_accuracy", "test_accuracy")
CLAIM_TESTS = ("greater", "not_greater", "overfits")
CLAIM_METRICS = ("train_accuracy", "test_accuracy", "gap", "zero_fraction")
SPEC_KEYS = ("name", "seeds", "epochs", "alpha", "tolerance_points", "models", "claims")
SPEC_VALUES = {"seeds": Interval(True, 1, 10_000), "epochs": Interval(True, 1, MAX_EPOCHS),
               "alpha": Interval(False, 0, 1, "neither", noun="a number"),
               "tolerance_points": Interval(False, 0, None, "left", noun="a number")}
PERCENTAGE = Interval(False, 0, 100, noun="a percentage")


def load_spec(path: Path, seeds: int | None = None, epochs: int | None = None) -> dict:
    """Read and validate a reproduction spec; model configs are loaded (and validated) too."""
    source = str(path)
    if not Path(path).is_file():
        raise ConfigError(source, "", "no such reproduction spec")
    raw = read_yaml(Path(path), source)
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "must be a YAML mapping")
    for key in raw:
        if key not in SPEC_KEYS:
            raise ConfigError(source, str(key), f"unknown key; allowed: {', '.join(SPEC_KEYS)}")
    spec = {"name": raw.get("name", Path(path).stem), "seeds": raw.get("seeds", 30),
            "epochs": raw.get("epochs", 4000), "alpha": raw.get("alpha", 0.05),
            "tolerance_points": raw.get("tolerance_points", 1)}
    check_value(source, "name", "name", spec["name"])
    if seeds is not None:
        spec["seeds"] = seeds
    if epochs is not None:
        spec["epochs"] = epochs
    for key, constraint in SPEC_VALUES.items():
        spec[key] = checked(source, key, constraint, spec[key])
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(source, "models", "must be a mapping of model name -> "
                                            "{config, published}")
    spec["models"] = {name: _load_model(source, Path(path).parent, name, body, spec["epochs"])
                      for name, body in models.items()}
    claims = raw.get("claims") or []
    if not isinstance(claims, list):
        raise ConfigError(source, "claims", "must be a list")
    spec["claims"] = [_check_claim(source, i, claim, spec["models"])
                      for i, claim in enumerate(claims)]
    return spec


def _load_model(source: str, folder: Path, name: str, body, epochs: int) -> dict:
    where = f"models.{name}"
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        raise ConfigError(source, where, "must be a mapping with a `config` path")
    for key in body:
        if key not in ("config", "published"):
            raise ConfigError(source, f"{where}.{key}", "unknown key; allowed: config, published")
    published = body.get("published") or {}
    if not isinstance(published, dict):
        raise ConfigError(source, f"{where}.published", "must be a mapping")
    for metric, value in published.items():
        if metric not in FIGURES:
            raise ConfigError(source, f"{where}.published.{metric}",
                              f"unknown figure; allowed: {', '.join(FIGURES)}")
        checked(source, f"{where}.published.{metric}", PERCENTAGE, value)
    config = load(folder / body["config"], [f"train.epochs={epochs}"])
    return {"config": config, "config_path": str(body["config"]), "published": published}


def _check_claim(source: str, index: int, claim, models: dict) -> dict:
    where = f"claims.{index}"
    if not isinstance(claim, dict) or claim.get("test") not in CLAIM_TESTS:
        raise ConfigError(source, f"{where}.test", f"must be one of {', '.join(CLAIM_TESTS)}")
    allowed = {"test", "model"} | ({"metric", "than"} if claim["test"] != "overfits" else set())
    for key in claim:
        if key not in allowed:
            raise ConfigError(source, f"{where}.{key}",
                              f"unknown key; allowed: {', '.join(sorted(allowed))}")
    for key in sorted(allowed - {"test"}):
        if key not in claim:
            raise ConfigError(source, f"{where}.{key}", "is required")
    for key in ("model", "than"):
        if key in claim and claim[key] not in models:
            raise ConfigError(source, f"{where}.{key}",
                              f"must name a model: {', '.join(models)}; got {claim[key]!r}")
    if "metric" in claim and claim["metric"] not in CLAIM_METRICS:
        raise ConfigError(source, f"{where}.metric",
                          f"must be one of {', '.join(CLAIM_METRICS)}; got {claim['metric']!r}")
    return dict(claim)


def under_convention(config: dict, convention: str) -> dict:
    """The config with every activity penalty in the given convention."""
    config = copy.deepcopy(config)
    batch = min(config["train"]["batch_size"], config["data"]["n_train"])
    for reg in config["model"]["regularizers"]:
        if reg["target"] != "activity":
            continue
        reg["batch_reduction"] = "sum" if convention == "sum" else "mean"
        if convention == "mean_scaled":
            reg["l1"], reg["l2"] = reg["l1"] * batch, reg["l2"] * batch
    return config


def plan(spec: dict, folder: Path):
    """Every distinct config x seed as a replica under `folder`/runs/<label>/seed_<n>, and
    the label each (convention, model) reads its replicas from. A config that no convention
    changes (no activity penalty) trains once, labelled with the model's name."""

    seeds = list(range(1, spec["seeds"] + 1))
    placed: dict[str, dict[str, str]] = {c: {} for c in CONVENTIONS}
    replicas, labels = [], set()
    for name, model in spec["models"].items():
        variants = {c: under_convention(model["config"], c) for c in CONVENTIONS}
        shared = len({config_hash(v) for v in variants.values()}) == 1
        for convention, config in variants.items():
            label = placed[convention][name] = name if shared else f"{name}-{convention}"
            if label not in labels:
                labels.add(label)
                replicas += [Replica(with_seed(config, seed), folder / "runs" / label /
                                     f"seed_{seed}", model["config_path"]) for seed in seeds]
    return Plan(replicas, Outputs(figures=False, model=False)), placed


def measure(work, placed: dict, executor=None, progress=None, on_plan=None,
            notice=None) -> dict:
    """Train the plan of `plan()` (reusing what is trained already): {convention: {model:
    measurement}}."""
    from circlereg import plots  # matplotlib loads only when a figure is drawn

    by_label: dict[str, list] = {}
    for written in execute(work, executor, progress, on_plan, notice):
        by_label.setdefault(written.replica.destination.parent.name, []).append(written)
    measured = {}
    for label, group in by_label.items():
        config = group[0].replica.config
        histories = [w.history if w.history is not None
                     else read_history(w.replica.destination / "history.csv") for w in group]
        measured[label] = {
            "metrics": [w.metrics for w in group],
            "curves": {c: plots.padded([h[c] for h in histories])
                       for c in ("accuracy", "val_accuracy")},
            "lambda": [r["l1"] for r in config["model"]["regularizers"]
                       if r["target"] == "activity"],
        }
    return {c: {name: measured[label] for name, label in placed[c].items()}
            for c in CONVENTIONS}


def _values(measurement: dict, metric: str) -> np.ndarray:
    if metric == "zero_fraction":
        return np.array([np.mean([h["zero_fraction"] for h in m["hidden_layers"]])
                         for m in measurement["metrics"]])
    return np.array([m[metric] for m in measurement["metrics"]], dtype=float)


def judge(spec: dict, measured: dict) -> dict:
    """Figures and claims with their verdicts, for every convention."""

    figures, claims = [], []
    for convention, models in measured.items():
        for name, model in spec["models"].items():
            n_points = {"train_accuracy": model["config"]["data"]["n_train"],
                        "test_accuracy": n_tested(model["config"]["data"])}
            for metric in FIGURES:
                spread = summary(_values(models[name], metric))
                row = {"convention": convention, "model": name, "metric": metric,
                       "published": model["published"].get(metric), **spread,
                       "measured_percent": math.floor(spread["mean"] * 100 + 1e-9)}
                if row["published"] is not None:
                    widen = spec["tolerance_points"] / n_points[metric]
                    low, high = spread["ci95_low"] - widen, spread["ci95_high"] + widen
                    # a truncated percentage p stands for [p, p+1) percent
                    published_low = row["published"] / 100
                    published_high = min((row["published"] + 1) / 100, 1.0)
                    row["verdict"] = "reproduces" if published_low <= high and \
                        published_high >= low else "differs"
                    row["interval"] = [low, high]
                figures.append(row)
        for claim in spec["claims"]:
            claims.append({"convention": convention, **claim,
                           **_claim(claim, models, spec)})
    verdicts = [r["verdict"] for r in figures if r["convention"] == CHECKED and "verdict" in r]
    verdicts += [c["verdict"] for c in claims if c["convention"] == CHECKED]
    return {"figures": figures, "claims": claims,
            "reproduces": all(v == "reproduces" for v in verdicts)}


def _claim(claim: dict, models: dict, spec: dict) -> dict:

    alpha = spec["alpha"]
    if claim["test"] == "overfits":
        model = models[claim["model"]]
        peak = np.array([m["best_test_accuracy"] for m in model["metrics"]])
        final = _values(model, "test_accuracy")
        mean_curve = np.nanmean(model["curves"]["val_accuracy"], axis=0)
        peak_epoch = int(np.argmax(mean_curve)) + 1
        drop = peak - final
        p = wilcoxon_greater(peak, final)
        holds = p < alpha and peak_epoch <= 0.75 * len(mean_curve)
        return {"statement": f"{claim['model']} overfits: mean test accuracy peaks at epoch "
                             f"{peak_epoch} of {len(mean_curve)} and ends "
                             f"{drop.mean():.3f} lower (Wilcoxon, peak > final)",
                "p_value": p, "verdict": "reproduces" if holds else "differs"}
    a = _values(models[claim["model"]], claim["metric"])
    b = _values(models[claim["than"]], claim["metric"])
    p = mann_whitney_greater(a, b)
    if claim["test"] == "greater":
        holds, word = p < alpha, "exceeds"
    else:
        holds, word = p >= alpha, "does not exceed"
    return {"statement": f"{claim['model']} {word} {claim['than']} on {claim['metric']} "
                         f"(means {a.mean():.3f} vs {b.mean():.3f}; Mann-Whitney U, one-sided)",
            "p_value": p, "verdict": "reproduces" if holds else "differs"}


def report_markdown(spec: dict, verdict: dict, environment: dict, seconds: float,
                    found=None, figures: list[str] = ()) -> list[str]:
    """reproduction.md's lines: the command (of the manifest `found`), the figures and
    claims with their verdicts per convention, the sparsity, the figures, the environment."""

    lines = [f"# Reproduction: {spec['name']}", "",
             *([f"Command: {command(found)}", ""] if found is not None else []),
             f"{spec['seeds']} seeds per model, {spec['epochs']} epochs; published figures are "
             f"percent, truncated; a figure reproduces when it lies in the 95% CI widened by "
             f"{spec['tolerance_points']} point(s). Claims: one-sided tests at alpha = "
             f"{spec['alpha']}. Verdicts under `{CHECKED}` decide the exit code.", ""]
    for convention in CONVENTIONS:
        lines += [f"## Convention `{convention}`", "",
                  "| model | figure | published | measured mean [95% CI] | min-max | verdict |",
                  "|---|---|---|---|---|---|"]
        for row in verdict["figures"]:
            if row["convention"] != convention:
                continue
            published = "-" if row["published"] is None else f"{row['published']}%"
            lines.append(f"| {row['model']} | {row['metric']} | {published} | "
                         f"{row['mean']:.3f} [{row['ci95_low']:.3f}, {row['ci95_high']:.3f}] | "
                         f"{row['min']:.3f}-{row['max']:.3f} | {row.get('verdict', '-')} |")
        lines += ["", "| claim | p-value | verdict |", "|---|---|---|"]
        for claim in verdict["claims"]:
            if claim["convention"] == convention:
                lines.append(f"| {claim['statement']} | {claim['p_value']:.2g} | "
                             f"{claim['verdict']} |")
        lines.append("")
    lines += ["## Sparsity of the hidden layer (test set, mean over seeds)", "",
              "| convention | model | mean activation | fraction of exact zeros |",
              "|---|---|---|---|"]
    for row in verdict["sparsity"]:
        lines.append(f"| {row['convention']} | {row['model']} | "
                     f"{row['mean_activation']:.4f} | {row['zero_fraction']:.3f} |")
    if figures:
        lines += ["", "## Figures", "", *figures]
    lines += ["", "## Environment", "",
              f"{software(environment)}. The installed Keras adds activity penalties "
              f"as a batch `{environment['keras_activity_penalty']}`; circlereg compensates. "
              f"A seeded model.fit there shuffles "
              f"`{environment['keras_seeded_fit_shuffle']}`; every run here shuffles as its "
              f"train.shuffle says. "
              f"Wall time {seconds:.0f} s.", ""]
    return lines


def sparsity(spec: dict, measured: dict) -> list[dict]:
    return [{"convention": convention, "model": name,
             "mean_activation": float(np.mean([np.mean([h["mean_activation"]
                                                         for h in m["hidden_layers"]])
                                                for m in models[name]["metrics"]])),
             "zero_fraction": float(_values(models[name], "zero_fraction").mean())}
            for convention, models in measured.items() for name in spec["models"]]


def write_report(folder: Path, spec: dict, measured: dict, verdict: dict, environment: dict,
                 seconds: float) -> None:
    from circlereg import plots  # matplotlib loads only when a figure is drawn

    public_spec = {**spec, "models": {n: {"config": m["config_path"], "published": m["published"]}
                                      for n, m in spec["models"].items()}}
    write_json(folder / "reproduction.json", {"spec": public_spec, **verdict,
                                              "environment": environment,
                                              "wall_seconds": round(seconds, 1)})
    plots.model_curves({name: measured[CHECKED][name]["curves"] for name in spec["models"]},
                       folder / "accuracy_curves.png", f"convention {CHECKED}")
    plots.final_bars(verdict["figures"], list(spec["models"]), CONVENTIONS,
                     folder / "final_accuracy.png",
                     f"reproduce-{spec['name']}: final accuracy over {spec['seeds']} seeds")
    # Last: a folder with reproduction.md holds the whole report (`circlereg list`).
    report.write(folder / "reproduction.md",
                 report_markdown(spec, verdict, environment, seconds, manifest.read(folder),
                                 report.figure_links(folder)))


def reproduce(spec: dict, runs_dir: Path, executor=None, progress=None,
              on_plan=None, notice=None, retrain: bool = False) -> tuple[Path, dict]:
    """Train, judge and write the report folder; returns (folder, verdict).

    The folder holds every replica's run directory under runs/ as it trains; the report
    (reproduction.md and .json, the figures) is written last, so a folder without it is an
    interrupted reproduction."""
    import time

    start = time.perf_counter()
    # Named by what it trains (the resolved model configs and seeds), not by the spec's paths.
    digest = config_hash({"models": {n: m["config"] for n, m in spec["models"].items()},
                          "seeds": spec["seeds"]})
    folder = rundir.inside(runs_dir, Path(f"reproduce-{spec['name']}") /
                           f"{rundir.utc_stamp()}-{digest}")
    work, placed = plan(spec, folder)
    work.runs_dir, work.retrain = runs_dir, retrain
    work.check()  # before the folder exists
    folder.mkdir(parents=True)
    manifest.write(folder, reproduction_manifest(spec, work, folder))
    measured = measure(work, placed, executor, progress, on_plan, notice)
    verdict = judge(spec, measured)
    verdict["sparsity"] = sparsity(spec, measured)
    environment = run_environment(work.replicas[0].destination)
    write_report(folder, spec, measured, verdict, environment, time.perf_counter() - start)
    return folder, verdict


def reproduction_manifest(spec: dict, work, folder: Path):
    """Its runs: runs/<label>/seed_<n>, each with its model and convention (none when every
    convention trains the same config)."""
    runs, labels = [], {}
    for replica in work.replicas:
        run = replica.destination.relative_to(folder)
        label = run.parent.name
        model, _, convention = next(
            ((name, "-", label[len(name) + 1:]) for name in spec["models"]
             if label.startswith(f"{name}-") and label[len(name) + 1:] in CONVENTIONS),
            (label, "", None))
        params = {"model": model, **({"convention": convention} if convention else {})}
        labels.setdefault(label, params)
        runs.append({"run": run.as_posix(), "point": label, "seed": replica.seed,
                     "params": params})
    models = list(spec["models"])
    conventions = [c for c in CONVENTIONS if any(p.get("convention") == c
                                                 for p in labels.values())]
    varies = [{"key": "model", "values": models}]
    if conventions:
        varies.append({"key": "convention", "values": conventions})
    public = {**spec, "models": {n: {"config": m["config_path"], "published": m["published"]}
                                 for n, m in spec["models"].items()}}
    return manifest.Manifest("reproduction", runs, varies,
                             list(range(1, spec["seeds"] + 1)), public)


def failing_rows(verdict: dict) -> list[str]:
    rows = [f"{r['model']} {r['metric']}: published {r['published']}%, measured "
            f"{r['mean']:.3f} [{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]"
            for r in verdict["figures"]
            if r["convention"] == CHECKED and r.get("verdict") == "differs"]
    rows += [f"{c['statement']}: p = {c['p_value']:.2g}" for c in verdict["claims"]
             if c["convention"] == CHECKED and c["verdict"] == "differs"]
    return rows
