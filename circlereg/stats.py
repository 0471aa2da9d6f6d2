"""The statistics of every command: a summary of one point's seeds, a point judged against a
reference point over the seeds both share, Holm's correction, and the one-sided tests of
`reproduce`. SciPy is imported inside the functions that need it, so a command's `--help`
and its validation stay light.

How a point is judged against its reference (`compare`, every sweep):

- The replicas of both points are paired by seed: a seed trains the same data and the same
  initial weights at both points, so the paired difference removes the seed's own luck,
  which on 70 test points is as large as most effects (sd ~0.01-0.02).
- The difference is the mean over the shared seeds of (point - reference), with a 95%
  Student t interval: the mean of ~10 bounded differences is close enough to normal for the
  interval, and it is in the metric's own units.
- The p-value is the two-sided Wilcoxon signed-rank test on the same differences, computed
  *exactly* from its permutation distribution (each difference's sign flipped, mid-ranks for
  tied |differences|, zero differences dropped as Wilcoxon did). Test accuracy moves in
  steps of 1/n_test, so ties are the rule, and with ties SciPy 1.17's `wilcoxon` counts
  exactly only up to 13 differences and otherwise uses the normal approximation (older
  SciPy versions choose differently again), which at ~10 seeds claims more than the data
  hold (five seeds that all gain the same one point get p = 0.025 from it, where no
  assignment of signs gives less than 2/32 = 0.0625). Counted here up to EXACT_UP_TO
  differences, the p-value is the same whichever SciPy is installed. The rank test needs
  no normality and is not moved by one wild seed.
- The p-values of the points against one reference are Holm-corrected, one family per
  metric (the points that have a verdict).
- Verdict at ALPHA = 0.05 on the corrected p: `better` or `worse` by the sign of the mean
  difference (for accuracies higher is better, for losses and the gap lower is; a metric with
  no better direction reads `higher` or `lower`), else `within noise`. A point sharing fewer
  than MIN_SHARED = 6 seeds with the reference reads `too few shared seeds`: with 5 the exact
  test cannot go below 0.0625 even when every seed moves the same way, so "within noise"
  would be a guess.
- Zero variance: differences all equal and nonzero have the interval [d, d] and the exact
  p-value 2 / 2^n (every seed moved the same way); differences all zero (the same config
  under two names: same seed, same bytes) have the interval [0, 0], p = 1, `within noise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
MIN_SHARED = 6  # the fewest shared seeds whose exact signed-rank p can fall below ALPHA
DECIMALS = 9  # differences are rounded to this many decimals before they are ranked
EXACT_UP_TO = 400  # nonzero differences the exact distribution is counted for; then normal
HIGHER_IS_BETTER = {"train_accuracy": True, "test_accuracy": True, "val_accuracy": True,
                    "best_test_accuracy": True, "best_val_accuracy": True,
                    "train_loss": False, "test_loss": False, "val_loss": False, "gap": False}
VERDICTS = ("better", "worse", "higher", "lower", "within noise", "too few shared seeds",
            "reference")
TEST = "Wilcoxon signed-rank (exact), two-sided"


def summary(values) -> dict:
    """Mean, sample standard deviation, range and the 95% Student t interval of the mean.

    >>> {k: round(v, 4) for k, v in summary([0.7, 0.8, 0.9]).items()}
    {'mean': 0.8, 'std': 0.1, 'min': 0.7, 'max': 0.9, 'ci95_low': 0.5516, 'ci95_high': 1.0484}
    """
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan,
                "ci95_low": math.nan, "ci95_high": math.nan}
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if n > 1 else 0.0
    half = _t_half_width(std, n) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": float(data.min()), "max": float(data.max()),
            "ci95_low": mean - half, "ci95_high": mean + half}


def _t_half_width(std: float, n: int) -> float:
    from scipy.special import stdtrit  # what scipy.stats.t.ppf calls, for a third the import

    return float(stdtrit(n - 1, 0.975) * std / math.sqrt(n))


def mid_ranks(values) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (scipy.stats.rankdata's `average`).

    >>> mid_ranks([0.2, 0.1, 0.2, 0.3]).tolist()
    [2.5, 1.0, 2.5, 4.0]
    """
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[order[end + 1]] == values[order[start]]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def signed_rank_p(differences) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of `differences` (zeros dropped),
    exact under sign flips with mid-ranks for ties; the normal approximation (tie-corrected,
    no continuity correction) beyond EXACT_UP_TO nonzero differences. 1.0 when every
    difference is zero.

    >>> signed_rank_p([0.1, 0.1, 0.1, 0.1, 0.1])  # no signs can do better than these
    0.0625
    >>> round(signed_rank_p([0.03, -0.01, 0.02, 0.04, 0.05, 0.06, 0.01]), 4)
    0.0469
    """
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    doubled = np.rint(2 * mid_ranks(np.abs(d))).astype(np.int64)  # mid-ranks are halves
    total = int(doubled.sum())
    observed = int(doubled[d > 0].sum())
    deviation = abs(2 * observed - total)  # |T+ - T-| in doubled ranks
    if len(d) > EXACT_UP_TO:
        from scipy.special import ndtr

        variance = float((doubled.astype(float) ** 2).sum())  # of T+ - T-, in doubled ranks
        return float(min(1.0, 2 * ndtr(-deviation / math.sqrt(variance))))
    # The distribution of T+ (the doubled ranks whose sign is +), one rank at a time.
    probability = np.zeros(total + 1)
    probability[0] = 1.0
    for rank in doubled:
        shifted = np.zeros_like(probability)
        shifted[rank:] = probability[:-rank]
        probability = 0.5 * (probability + shifted)
    sums = np.arange(total + 1)
    return float(min(1.0, probability[np.abs(2 * sums - total) >= deviation].sum()))


@dataclass(frozen=True)
class Paired:
    """A point's difference from its reference on one metric, over their shared seeds."""

    n: int  # shared seeds
    diff: float  # mean of point - reference
    low: float  # 95% Student t interval of that mean
    high: float
    p: float  # two-sided signed-rank p-value, before correction


def paired(point: dict[int, float], reference: dict[int, float]) -> Paired:
    """The paired difference of two points' values (seed -> value) over the seeds both have,
    ignoring values that are not finite.

    >>> r = paired({1: 0.80, 2: 0.82, 3: 0.79}, {1: 0.78, 2: 0.80, 3: 0.77, 4: 0.9})
    >>> r.n, r.diff, r.low, r.high, r.p
    (3, 0.02, 0.02, 0.02, 0.25)
    """
    seeds = sorted(s for s in point.keys() & reference.keys()
                   if math.isfinite(point[s]) and math.isfinite(reference[s]))
    # Rounded: 0.82 - 0.80 and 0.80 - 0.78 are one difference (a tie, no spread), as the
    # accuracies k/n_test they stand for are.
    d = np.round([point[s] - reference[s] for s in seeds], DECIMALS)
    if len(d) == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if len(d) == 1:
        return Paired(1, mean, math.nan, math.nan, signed_rank_p(d))
    half = 0.0 if np.ptp(d) == 0 else _t_half_width(float(d.std(ddof=1)), len(d))
    return Paired(len(d), mean, mean - half, mean + half, signed_rank_p(d))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given; a NaN (no test) stays NaN and
    is not counted among the tests.

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    >>> holm([0.01, float("nan"), 0.04])
    [0.02, nan, 0.04]
    """
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    order = sorted(tested, key=lambda i: p_values[i])
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(result: Paired, p_holm: float, metric: str) -> str:
    """better / worse (or higher / lower for a metric with no better direction), within noise,
    or too few shared seeds."""
    if result.n < MIN_SHARED or math.isnan(p_holm):
        return "too few shared seeds"
    if p_holm >= ALPHA or result.diff == 0:
        return "within noise"
    higher = result.diff > 0
    better = HIGHER_IS_BETTER.get(metric)
    if better is None:
        return "higher" if higher else "lower"
    return "better" if higher == better else "worse"


def against_reference(values: list[dict[int, float]], reference: int, metric: str
                      ) -> list[dict]:
    """Every point's values (seed -> value) judged against the point at index `reference`:
    per point {n_shared, diff, diff_ci95_low, diff_ci95_high, p, p_holm, verdict}, Holm over
    the points with a verdict. The reference's own entry has verdict `reference`."""
    results = [paired(v, values[reference]) for v in values]
    family = [r.p if i != reference and r.n >= MIN_SHARED else math.nan
              for i, r in enumerate(results)]
    adjusted = holm(family)
    rows = []
    for i, (result, p_holm) in enumerate(zip(results, adjusted)):
        rows.append({"n_shared": result.n, "diff": result.diff, "diff_ci95_low": result.low,
                     "diff_ci95_high": result.high, "p": result.p, "p_holm": p_holm,
                     "verdict": "reference" if i == reference
                     else verdict(result, p_holm, metric)})
    return rows


def wilcoxon_greater(a, b) -> float:
    """One-sided p that paired `a` exceeds `b` (SciPy's Wilcoxon signed-rank); 1.0 when they
    never differ. `reproduce` tests a peak above its final accuracy with it."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.all(a - b == 0):
        return 1.0
    return float(stats.wilcoxon(a, b, alternative="greater").pvalue)


def mann_whitney_greater(a, b) -> float:
    """One-sided p that `a` exceeds `b`, unpaired (SciPy's Mann-Whitney U)."""
    from scipy import stats

    return float(stats.mannwhitneyu(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                    alternative="greater").pvalue)
