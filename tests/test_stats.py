"""circlereg.stats against SciPy and hand computation on fixed inputs (ties, zero variance,
one shared seed), the reference a sweep is judged against, and `compare`'s verdict columns
on a real (tiny) comparison."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from circlereg import stats
from circlereg.cli import app
from circlereg.config import ConfigError
from circlereg.rundir import read_summary
from circlereg.sweep import Point, choose_reference

from .conftest import CONFIGS

runner = CliRunner()
# Test accuracies on 70 points differ by multiples of 1/70: ties and zeros throughout.
TIED = np.array([2, 1, 1, -1, 3, 0, 1, 2, -2, 1]) / 70


def by_hand(differences) -> float:
    """The signed-rank test by brute force: every assignment of signs to the nonzero
    |differences|, mid-ranks for ties, as likely as the observed one or less."""
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    ranks = scipy_stats.rankdata(np.abs(d))
    observed = abs(ranks[d > 0].sum() - ranks[d < 0].sum())
    flips = [abs(np.dot(signs, ranks)) for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(f >= observed - 1e-9 for f in flips) / len(flips)


@pytest.mark.parametrize("differences", [
    [0.3, -0.1, 0.7, 0.2, 0.5, -0.4, 0.9, 0.6],  # no ties: SciPy's exact distribution
    [0.05, 0.01, 0.02, 0.04, 0.03, 0.06],
    [-0.2, -0.5, 0.1],
])
def test_signed_rank_matches_scipy_exact_without_ties(differences):
    assert stats.signed_rank_p(differences) == pytest.approx(
        scipy_stats.wilcoxon(differences, method="exact").pvalue)


@pytest.mark.parametrize("differences", [TIED, TIED[:6], np.array([1, 1, 1, 1, 1, 1]) / 70,
                                         np.array([1, -1, 2, 2, -2, 3, 0, 0]) / 70])
def test_signed_rank_is_exact_with_ties_and_zeros(differences):
    assert stats.signed_rank_p(differences) == pytest.approx(by_hand(differences))
    if len(differences) <= 13:  # SciPy 1.17 counts these exactly by permutation too
        assert stats.signed_rank_p(differences) == pytest.approx(
            scipy_stats.wilcoxon(differences).pvalue)


def test_signed_rank_beyond_exact_is_scipy_normal_approximation():
    d = np.tile(TIED, 50)  # 500 differences, 450 nonzero: past EXACT_UP_TO
    assert stats.signed_rank_p(d) == pytest.approx(
        scipy_stats.wilcoxon(d, method="asymptotic", correction=False).pvalue)


def test_paired_interval_is_the_t_interval_of_the_differences():
    reference = {seed: 0.77 + 0.01 * (seed % 3) for seed in range(1, 11)}
    point = {seed: reference[seed] + TIED[seed - 1] for seed in range(1, 11)}
    point[11] = 0.5  # a seed the reference lacks: not paired
    result = stats.paired(point, reference)
    ci = scipy_stats.ttest_rel([point[s] for s in range(1, 11)],
                               [reference[s] for s in range(1, 11)]).confidence_interval()
    assert result.n == 10
    assert result.diff == pytest.approx(TIED.mean())
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high))
    assert result.p == pytest.approx(by_hand(TIED))


def test_zero_variance_and_a_single_shared_seed():
    same = {s: 0.8 for s in range(1, 9)}
    # every seed gains exactly one test point: no spread, the smallest p signs can give
    one_up = stats.paired({s: 0.8 + 1 / 70 for s in same}, same)
    assert (one_up.low, one_up.diff, one_up.high) == pytest.approx((1 / 70,) * 3)
    assert one_up.p == pytest.approx(2 / 2 ** 8)
    assert stats.verdict(one_up, one_up.p, "test_accuracy") == "better"
    assert stats.verdict(one_up, one_up.p, "test_loss") == "worse"  # a higher loss
    assert stats.verdict(one_up, one_up.p, "zero_fraction") == "higher"
    # identical replicas (the same config under two names)
    nothing = stats.paired(dict(same), same)
    assert (nothing.low, nothing.diff, nothing.high, nothing.p) == (0, 0, 0, 1.0)
    assert stats.verdict(nothing, nothing.p, "test_accuracy") == "within noise"
    # one shared seed: a difference, no interval, no verdict
    single = stats.paired({1: 0.9, 2: 0.8}, {1: 0.8, 3: 0.7})
    assert single.n == 1 and single.diff == pytest.approx(0.1)
    assert math.isnan(single.low) and math.isnan(single.high)
    assert stats.verdict(single, 0.01, "test_accuracy") == "too few shared seeds"
    assert stats.paired({1: 0.9}, {2: 0.9}).n == 0


def test_holm_against_hand_computation():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    adjusted = stats.holm([0.02, math.nan, 0.01, 0.04])  # NaN: no test, not counted
    assert math.isnan(adjusted[1])
    assert [adjusted[i] for i in (0, 2, 3)] == pytest.approx([0.04, 0.03, 0.04])


def test_many_points_against_one_reference():
    reference = {s: 0.77 for s in range(1, 11)}
    values = [reference,
              {s: 0.77 + 2 / 70 for s in range(1, 11)},  # every seed better
              {s: 0.77 - TIED[s - 1] for s in range(1, 11)},  # mostly worse, p 0.023 raw
              {s: 0.77 + TIED[s - 1] for s in range(1, 6)}]  # 5 shared seeds
    rows = stats.against_reference(values, 0, "test_accuracy")
    assert [r["verdict"] for r in rows] == ["reference", "better", "within noise",
                                            "too few shared seeds"]
    # Holm over the two points with a verdict: 2/1024 x 2, then max(that, p x 1)
    assert rows[1]["p_holm"] == pytest.approx(2 * 2 / 1024)
    assert rows[2]["p"] == pytest.approx(by_hand(TIED))
    assert rows[2]["p_holm"] == pytest.approx(max(4 / 1024, by_hand(TIED)))
    assert math.isnan(rows[3]["p_holm"]) and rows[3]["n_shared"] == 5


def test_reproduce_tests_are_scipys():
    a, b = [0.8, 0.82, 0.79, 0.81, 0.85], [0.77, 0.8, 0.8, 0.78, 0.8]
    assert stats.mann_whitney_greater(a, b) == pytest.approx(
        scipy_stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    assert stats.wilcoxon_greater(a, b) == pytest.approx(
        scipy_stats.wilcoxon(a, b, alternative="greater").pvalue)
    assert stats.wilcoxon_greater(a, a) == 1.0


def points(*params: dict) -> list[Point]:
    return [Point(i, p, {}, "-") for i, p in enumerate(params)]


def test_reference_choice():
    l1, place = "model.regularizers.0.l1", "model.regularizers.0.placement"
    grid = points(*({l1: v, place: p} for v in (1e-4, 0, 1e-3)
                    for p in ("pre_activation", "post_activation")))
    assert choose_reference(grid, []) == 2  # the 0 point of the strength axis
    assert choose_reference(points({"train.seed": 0}, {"train.seed": 1}), []) == 0
    assert choose_reference(grid, [f"{l1}=1e-3", f"{place}=post_activation"]) == 5
    assert choose_reference(grid, ["p003"]) == 3
    assert choose_reference(points({"config": "a"}, {"config": "b"}), ["b"]) == 1
    with pytest.raises(ConfigError, match="matches 2 points .p004, p005."):
        choose_reference(grid, [f"{l1}=0.001"])
    with pytest.raises(ConfigError, match="--reference: model.hidden: is not swept"):
        choose_reference(grid, ["model.hidden=[8]"])
    with pytest.raises(ConfigError, match="matches no point"):
        choose_reference(grid, ["p009"])


def test_compare_of_one_config_under_two_names_is_within_noise(tmp_path):
    again = tmp_path / "baseline_again.yaml"
    again.write_text((CONFIGS / "baseline.yaml").read_text().replace(
        "name: baseline", "name: baseline_again"))
    result = runner.invoke(app, ["compare", str(CONFIGS / "baseline.yaml"), str(again),
                                 "--repeats", "6", "--set", "train.epochs=5", "--metric",
                                 "test_loss", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    header, reference, twin, *note, last = result.stdout.splitlines()
    words = " ".join(header.split())
    assert "test (mean ± sd) vs baseline [95% CI] p (Holm) verdict" in words
    assert "test_loss (mean ± sd) test_loss vs baseline [95% CI] p (Holm) verdict" in words
    assert reference.split()[:2] == ["p000", "baseline"] and reference.count("reference") == 2
    assert twin.count("+0.000 [+0.000, +0.000]") == 2 and twin.count("within noise") == 2
    assert "Holm-corrected over 1 point" in " ".join(note)
    folder = tmp_path / "runs" / "compare"
    (folder,) = folder.iterdir()
    rows = read_summary(folder / "summary.csv")
    for metric in ("test_accuracy", "test_loss"):
        assert [r[f"{metric}_verdict"] for r in rows] == ["reference", "within noise"]
        assert rows[1][f"{metric}_diff"] == "0.0" and rows[1][f"{metric}_p"] == "1.0"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["reference"] == "p000" and summary["compared"] == ["test_accuracy",
                                                                      "test_loss"]
    assert summary["points"][1]["n_shared"] == 6
    assert summary["points"][0]["test_accuracy_p_holm"] is None  # no test: strict JSON null
    report = (folder / "report.md").read_text()
    assert "| p001 | baseline_again | 6 |" in report and "within noise" in report
    assert "## Environment" in report and "![curves](curves.png)" in report


@pytest.mark.parametrize("args, message", [
    (["--reference", "nope"], "--reference: 'nope' matches no point"),
    (["--metric", "accuracy"], "--metric: must be one of test_accuracy"),
])
def test_bad_reference_or_metric_exits_2_before_training(tmp_path, args, message):
    result = runner.invoke(app, ["compare", str(CONFIGS / "baseline.yaml"),
                                 str(CONFIGS / "l1_pre_relu.yaml"), "--runs-dir",
                                 str(tmp_path), "--quiet", *args])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: {message}"), result.stderr
    assert not any(tmp_path.rglob("metrics.json"))
