"""bench/fidelity.py's verdicts, on made-up results: it passes engines that draw from one
distribution and fails ones that differ in mean or in spread. (The check itself, training
480 runs, is `make fidelity`, run by CI.)"""

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "bench" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results(fidelity, fit_shift=0.0, fit_scale=1.0, seeds=None):
    """Configs and results as `compare` gets them, at make fidelity's seed counts: every
    engine's final metrics drawn from one normal distribution, fit's shifted and scaled as
    asked."""
    seeds = seeds or {"compiled": 250, "fit": 50}
    rng = np.random.default_rng(0)
    configs, finals = [], []
    for name in fidelity.CONFIGS:
        for shuffle in fidelity.SHUFFLES:
            for engine in fidelity.ENGINES:
                for _ in range(seeds[engine]):
                    configs.append({"name": name, "train": {"shuffle": shuffle, "engine": engine}})
                    shift, scale = (fit_shift, fit_scale) if engine == "fit" else (0.0, 1.0)
                    finals.append(SimpleNamespace(final={
                        metric: 0.5 + shift + 0.01 * scale * rng.standard_normal()
                        for metric in fidelity.METRICS}))
    return configs, finals


def test_holm_adjusts_in_order_and_never_decreases(fidelity):
    assert fidelity.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert fidelity.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_one_distribution_passes(fidelity):
    rows = fidelity.compare(*results(fidelity))
    assert len(rows) == 18 and not [r for r in rows if r["fails"]]
    assert all(0.7 <= r["sd_ratio"] <= 1.4 for r in rows)


def test_forty_seeds_each_are_too_few_for_the_sd_ratio(fidelity):
    """Why make fidelity measures the compiled engine on 5 times fit's seeds: with 40 seeds
    each, one distribution already leaves [0.7, 1.4] somewhere in the 18 rows."""
    rows = fidelity.compare(*results(fidelity, seeds={"compiled": 40, "fit": 40}))
    assert [r for r in rows if r["fails"] == ["sd ratio"]]


def test_a_wider_spread_fails_on_the_sd_ratio_and_brown_forsythe(fidelity):
    rows = fidelity.compare(*results(fidelity, fit_scale=3.0))
    assert all("sd ratio" in r["fails"] for r in rows)
    assert sum("brown_forsythe" in r["fails"] for r in rows) >= 15
    assert all(r["sd_ratio"] < 0.5 for r in rows)


def test_a_shifted_mean_fails_welch_and_ks(fidelity):
    rows = fidelity.compare(*results(fidelity, fit_shift=0.02))
    assert all({"welch", "ks"} <= set(r["fails"]) for r in rows)
    assert not [r for r in rows if "sd ratio" in r["fails"]]
