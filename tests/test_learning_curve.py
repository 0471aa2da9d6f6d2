"""Learning curves: data.n_test keeps one test set while n_train varies, a sweep over
data.n_train draws accuracy against the training-set size, the shipped `learning_curve` spec;
and what a reader sees: sub-runs titled with what their point varies, stars that do not hide
each other."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from circlereg import plots, shipped
from circlereg.cli import app
from circlereg.config import config_hash, load, resolve
from circlereg.data import load_split
from circlereg.spec import read_spec
from circlereg.sweep import Point, curve_test_set, expand, same_test_set

from .conftest import CONFIGS

runner = CliRunner()
DATA = {"n_samples": 100, "noise": 0.1, "factor": 0.8, "seed": 1}


@pytest.mark.parametrize("sets, message", [
    (["data.n_test=71"], "data.n_test: must fit beside the 30 training rows in data.n_samples "
                         "(100): at most 70, got 71"),
    (["data.n_train=60", "data.n_test=50"], "data.n_test: must fit beside the 60 training "
                                            "rows in data.n_samples (100): at most 40, got 50"),
    (["data.n_test=0"], "data.n_test: must be an integer >= 1, got 0"),
    (["data.n_test=ten"], "data.n_test: must be an integer, got 'ten'"),
])
def test_a_test_set_that_does_not_fit_is_one_line_naming_the_key(sets, message):
    result = runner.invoke(app, ["validate", "baseline",
                                 *(arg for text in sets for arg in ("--set", text))])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("error: ") and line.endswith(message)


def test_n_test_at_its_default_leaves_every_config_as_it_was():
    """Left out of config.yaml, the hash and the split: the rows after n_train test."""
    baseline = load(CONFIGS / "baseline.yaml")
    assert "n_test" not in baseline["data"]
    assert resolve({"data": {"n_test": None}}) == resolve({})
    assert config_hash(load(CONFIGS / "baseline.yaml", ["data.n_test=null"])) \
        == config_hash(baseline)
    split = load_split({**DATA, "n_train": 30})
    assert split.test_x.shape == (70, 2)


def test_n_train_varies_over_the_same_test_rows():
    """n_test fixed: every n_train tests on the identical last rows, and each training set
    holds the smaller ones; without it each n_train tests on other rows."""
    splits = [load_split({**DATA, "n_train": n, "n_test": 40}) for n in (10, 30, 60)]
    for split in splits:
        assert split.test_x.shape == (40, 2)
        assert np.array_equal(split.test_x, splits[0].test_x)
        assert np.array_equal(split.test_y, splits[0].test_y)
    assert np.array_equal(splits[2].train_x[:30], splits[1].train_x)
    # Held out the same way when a validation set is drawn apart.
    apart = load_split({**DATA, "n_train": 10, "n_test": 40, "n_validation": 20})
    assert np.array_equal(apart.held_out_x, splits[0].test_x)
    assert not np.array_equal(load_split({**DATA, "n_train": 10}).test_x[-60:-40],
                              load_split({**DATA, "n_train": 30}).test_x[:20])


def test_the_shipped_learning_curve_spec_tests_every_point_on_one_set():
    spec = read_spec(shipped.spec_file("learning_curve"))
    points = expand(list(spec.bases), list(spec.overrides),
                    [(key, values) for key, values in spec.axes])
    assert [p.params["config"] for p in points[::5]] == ["baseline", "l1_pre_relu", "l2_kernel"]
    sizes = [p.config["data"]["n_train"] for p in points]
    assert min(sizes) == 30 and max(sizes) >= 3000
    assert same_test_set(points) and points[0].config["data"]["n_test"] == 1000
    assert not same_test_set([Point(0, {}, resolve({}), ""),
                              Point(1, {}, resolve({"data": {"n_train": 40}}), "")])


def test_an_unknown_spec_name_lists_the_shipped_ones(tmp_path):
    result = runner.invoke(app, ["sweep", "--spec", "learning_curv", "--runs-dir",
                                 str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: learning_curv: no such sweep spec, nor a shipped one (did you mean "
        "learning_curve?); shipped: learning_curve"]


def test_a_sweep_over_n_train_draws_a_learning_curve_and_titles_its_sub_runs(tmp_path):
    result = runner.invoke(app, [
        "sweep", "baseline", "data.n_train=10,20", "--set", "data.n_samples=60",
        "--set", "data.n_test=30", "--set", "train.epochs=5", "--set", "model.hidden=[8]",
        "--seeds", "1,2", "--quiet", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "data.n_test is not set" not in result.output
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    assert {p.name for p in folder.glob("*.png")} == {"learning_curve.png", "curves.png"}
    assert Image.open(folder / "learning_curve.png").size == (750, 480)
    titles = {figure: Image.open(folder / "p001" / "seed_2" / f"{figure}.png").text["Title"]
              for figure in ("accuracy", "loss", "decision_boundary")}
    assert titles == {"accuracy": "n_train=20, seed 2: accuracy",
                      "loss": "n_train=20, seed 2: loss",
                      "decision_boundary": "n_train=20, seed 2: decision boundary"}


def test_a_sweep_over_n_train_without_n_test_says_its_test_set_moves(tmp_path):
    result = runner.invoke(app, [
        "sweep", "baseline", "data.n_train=10,20", "--set", "data.n_samples=40",
        "--set", "train.epochs=2", "--set", "model.hidden=[4]", "--no-run-figures", "--quiet",
        "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "notice: data.n_train varies but data.n_test is not set, so each point tests on the "
        "rows after its training rows")
    (folder,) = (tmp_path / "baseline-sweep").iterdir()
    assert (folder / "learning_curve.png").is_file()
    moving = [Point(0, {}, resolve({"data": {"n_train": n}}), "") for n in (10, 20)]
    assert curve_test_set(moving) == "the test set differs by point: set data.n_test to fix it"


def test_a_lone_run_keeps_its_config_name_as_title(tmp_path):
    result = runner.invoke(app, ["run", "baseline", "--set", "train.epochs=2", "--set",
                                 "model.hidden=[4]", "--quiet", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "baseline").iterdir()
    assert Image.open(run / "accuracy.png").text["Title"] == "baseline: accuracy"


def row(config, n_train, train, test, spread=0.01):
    return {"config": config, "data.n_train": n_train,
            **{f"{split}_accuracy_{k}": v for split, mean in (("train", train), ("test", test))
               for k, v in (("mean", mean), ("ci95_low", mean - spread),
                            ("ci95_high", mean + spread))}}


def test_the_learning_curve_draws_a_line_and_a_band_per_config_and_split(tmp_path):
    rows = [row(config, n, 1.0, test + n / 100_000) for config, test in
            (("baseline", 0.78), ("l1_pre_relu", 0.82)) for n in (30, 300, 3000)]
    fig = plots.learning_curve(rows, "data.n_train", ["config"], tmp_path / "lc.png", "lc",
                               "tested on 1000 points")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"config=baseline test", "config=baseline train",
                          "config=l1_pre_relu test", "config=l1_pre_relu train"}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["30", "300", "3000"]
    assert lines["config=l1_pre_relu test"].get_ydata().tolist() == pytest.approx(
        [0.8203, 0.823, 0.85])
    assert len(ax.collections) == 4  # a 95% band under each line, clipped to [0, 1]
    assert max(band.get_paths()[0].vertices[:, 1].max() for band in ax.collections) == 1.0
    # Lines that meet (both train at 1.0) keep both visible: hollow markers of two shapes.
    assert lines["config=baseline train"].get_marker() != \
        lines["config=l1_pre_relu train"].get_marker()
    assert lines["config=baseline train"].get_markerfacecolor() == "none"
    assert "tested on 1000 points" in ax.get_title()
    assert (tmp_path / "lc.png").is_file()


def test_test_peak_stars_on_one_point_both_stay_visible(tmp_path):
    """Two lines peaking at the same point: the second star sits beside the first, at the
    same height, not on it."""
    def peaks(first):  # each placement's test accuracy at l1 = 1e-6, 1e-5, 1e-4
        return [{**row(None, 0, 1.0, test), "placement": placement,
                 "model.regularizers.0.l1": l1}
                for placement, top in (("pre_activation", first), ("post_activation", 0.5))
                for l1, test in ((1e-6, top), (1e-5, 0.82), (1e-4, 0.75))]

    fig = plots.accuracy_against(peaks(0.5), "model.regularizers.0.l1", ["placement"],
                                 tmp_path / "a.png", "t")
    stars = [line for line in fig.axes[0].lines if line.get_marker() == "*"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in stars] == [(1e-5, 0.82)] * 2
    first, second = stars
    assert second.get_color() != first.get_color()
    shown = [star.get_transform().transform((star.get_xdata()[0], star.get_ydata()[0]))
             for star in stars]  # in pixels, as drawn
    width = first.get_markersize() * fig.dpi / 72
    assert shown[1][0] - shown[0][0] >= 0.75 * width and shown[1][1] == shown[0][1]
    # Stars at other points stay where they are.
    alone = [line for line in plots.accuracy_against(
        peaks(0.9), "model.regularizers.0.l1", ["placement"], tmp_path / "b.png", "t"
    ).axes[0].lines if line.get_marker() == "*"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in alone] == [(1e-6, 0.9), (1e-5, 0.82)]
    assert alone[1].get_transform().transform((1e-5, 0.82))[0] == pytest.approx(
        alone[1].axes.transData.transform((1e-5, 0.82))[0])
