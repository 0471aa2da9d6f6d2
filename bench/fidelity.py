#!/usr/bin/env python3
"""`make fidelity`: does the compiled engine spread over seeds as `train.engine: fit` does?

The compiled engine is meant to be a faster model.fit, and every interval and verdict over
seeds rests on its spread. This trains seeds 1..50 with `fit` and 1..250 with the compiled
engine, under each pinned minibatch order (`train.shuffle`: each_epoch and once), on the
baseline, dropout and batch norm configs, with minibatches and a short last batch, and
compares the two engines' final train loss, test loss and test accuracy:

- the mean (Welch's t-test), the distribution (two-sample Kolmogorov-Smirnov) and the spread
  (Brown-Forsythe: Levene's test about the median);
- p-values corrected with Holm's method for the number of tests in the table;
- the ratio of the sds, compiled over fit. (Compiled runs cost little, so the compiled
  engine's sd is measured on 5 times the seeds: the ratio's own noise is then mostly fit's,
  about 11% at 50 seeds, and [0.7, 1.4] lies 3 of those from 1.)

Exit 1 when a corrected p-value falls below 0.01 or an sd ratio leaves [0.7, 1.4]. The seeds
are fixed, so the verdict is the same on every run on one machine. The last table is the
trap itself: each engine's spread under `once` over its spread under `each_epoch`.

    python bench/fidelity.py [--seeds 50] [--compiled-seeds 250] [--workers N] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circlereg.stats import holm  # noqa: E402  (after the path that finds circlereg)

CONFIGS = ("baseline", "dropout", "batchnorm")
SHUFFLES = ("each_epoch", "once")
ENGINES = ("compiled", "fit")
METRICS = ("train_loss", "test_loss", "test_accuracy")
# 2000 training points in batches of 32: 62 full batches and a short one of 16 per epoch,
# 630 steps (batch norm's moving statistics need ~600 to settle); 100 test points.
SHAPE = ["data.n_samples=2100", "data.n_train=2000", "train.batch_size=32", "train.epochs=10"]
ALPHA = 0.01
SD_RATIO = (0.7, 1.4)


def plan(seeds: dict[str, int]) -> list[dict]:
    """Every run: each config, order and engine, over that engine's seeds."""
    from circlereg.config import load, with_seed

    configs = []
    for name in CONFIGS:
        for shuffle in SHUFFLES:
            for engine in ENGINES:
                base = load(ROOT / "configs" / f"{name}.yaml",
                            [*SHAPE, f"train.shuffle={shuffle}", f"train.engine={engine}"])
                configs += [with_seed(base, seed) for seed in range(1, seeds[engine] + 1)]
    return configs


def compare(configs: list[dict], results: list) -> list[dict]:
    """One row per config, shuffle and metric: both engines' mean and sd, the tests."""
    from scipy import stats

    from circlereg.config import setting

    values: dict[tuple, list[float]] = {}
    for config, result in zip(configs, results):
        for metric in METRICS:
            key = (config["name"], setting(config, "train.shuffle"), metric,
                   config["train"]["engine"])
            values.setdefault(key, []).append(result.final[metric])
    rows = []
    for name in CONFIGS:
        for shuffle in SHUFFLES:
            for metric in METRICS:
                ours, fit = (np.array(values[(name, shuffle, metric, e)]) for e in ENGINES)
                rows.append({
                    "config": name, "shuffle": shuffle, "metric": metric,
                    "compiled_mean": ours.mean(), "compiled_sd": ours.std(ddof=1),
                    "fit_mean": fit.mean(), "fit_sd": fit.std(ddof=1),
                    "sd_ratio": ours.std(ddof=1) / fit.std(ddof=1),
                    "welch_p": stats.ttest_ind(ours, fit, equal_var=False).pvalue,
                    "ks_p": stats.ks_2samp(ours, fit).pvalue,
                    "brown_forsythe_p": stats.levene(ours, fit, center="median").pvalue})
    tests = ("welch_p", "ks_p", "brown_forsythe_p")
    adjusted = holm([row[t] for row in rows for t in tests])
    for i, row in enumerate(rows):
        for j, test in enumerate(tests):
            row[f"{test}_holm"] = adjusted[i * len(tests) + j]
        row["fails"] = [t.removesuffix("_p") for t in tests if row[f"{t}_holm"] < ALPHA]
        if not SD_RATIO[0] <= row["sd_ratio"] <= SD_RATIO[1]:
            row["fails"].append("sd ratio")
    return rows


def table(rows: list[dict], seeds: dict[str, int]) -> str:
    lines = [f"compiled ({seeds['compiled']} seeds) against fit ({seeds['fit']} seeds); "
             f"p-values Holm-corrected over "
             f"{3 * len(rows)} tests; fails below {ALPHA} or outside sd ratio {SD_RATIO}",
             f"{'config':<10} {'shuffle':<10} {'metric':<13} {'compiled mean ± sd':>19} "
             f"{'fit mean ± sd':>19} {'sd ratio':>8} {'Welch':>6} {'KS':>6} {'B-F':>6}  verdict"]
    for r in rows:
        lines.append(
            f"{r['config']:<10} {r['shuffle']:<10} {r['metric']:<13} "
            f"{r['compiled_mean']:>9.4f} ± {r['compiled_sd']:.4f} "
            f"{r['fit_mean']:>9.4f} ± {r['fit_sd']:.4f} {r['sd_ratio']:>8.2f} "
            f"{r['welch_p_holm']:>6.2f} {r['ks_p_holm']:>6.2f} {r['brown_forsythe_p_holm']:>6.2f}"
            f"  {'FAIL: ' + ', '.join(r['fails']) if r['fails'] else 'ok'}")
    return "\n".join(lines)


def trap(rows: list[dict]) -> str:
    """The spread each engine shows under `once` over the spread under `each_epoch`."""
    lines = ["", "the shuffle trap: sd under once / sd under each_epoch",
             f"{'config':<10} {'metric':<13} {'compiled':>9} {'fit':>9}"]
    by = {(r["config"], r["shuffle"], r["metric"]): r for r in rows}
    for name in CONFIGS:
        for metric in METRICS:
            once, each = by[(name, "once", metric)], by[(name, "each_epoch", metric)]
            lines.append(f"{name:<10} {metric:<13} "
                         f"{once['compiled_sd'] / each['compiled_sd']:>9.2f} "
                         f"{once['fit_sd'] / each['fit_sd']:>9.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="fit's seeds per cell")
    parser.add_argument("--compiled-seeds", type=int, default=250,
                        help="the compiled engine's seeds per cell")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    args = parser.parse_args()

    from circlereg.executor import Executor

    seeds = {"compiled": args.compiled_seeds, "fit": args.seeds}
    configs = plan(seeds)
    start = time.perf_counter()
    print(f"fidelity: training {len(configs)} runs ({', '.join(CONFIGS)}; "
          f"{' '.join(SHAPE)})", file=sys.stderr, flush=True)
    with Executor(workers=args.workers) as executor:
        results = executor.train_all(configs)
    rows = compare(configs, results)
    print(table(rows, seeds))
    print(trap(rows))
    failed = [r for r in rows if r["fails"]]
    print(f"\nfidelity: {len(rows) - len(failed)} rows agree, {len(failed)} differ "
          f"({len(configs)} runs, {time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
