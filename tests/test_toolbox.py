"""Dropout, batch norm, noise, max-norm, early stopping, deeper nets and user penalties."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import load, with_seed
from circlereg.data import load_split
from circlereg.engine.fit import train_fit
from circlereg.engine.model import build_model
from circlereg.engine.train import CURVES

from .conftest import CONFIGS, ROOT

runner = CliRunner()


def config(name, *overrides):
    return load(CONFIGS / f"{name}.yaml", list(overrides))


@pytest.mark.parametrize("override, message", [
    ("model.dropout.0.rate=1.0", "model.dropout.0.rate: must be in [0, 1), got 1"),
    ("model.noise.0.stddev=-0.1", "model.noise.0.stddev: must be in [0, 1], got -0.1"),
    ("early_stopping.patience=-1", "early_stopping.patience: must be an integer in [0, 1000000]"),
    ("early_stopping.monitor=val_auc", "early_stopping.monitor: must be one of val_loss, "
                                       "val_accuracy, loss, accuracy"),
    ("model.batch_norm.0.position=middle", "must be one of before_activation, after_activation"),
    ("model.max_norm.0.layer=0", "model.max_norm.0.value: is required"),
    ("model.dropout.0.layer=2,model.dropout.0.rate=0.1",
     "model.dropout.0.layer: must be a hidden layer index in [0, 0]"),
])
def test_bad_toolbox_values_exit_2(override, message):
    sets = [arg for text in override.split(",") for arg in ("--set", text)]
    result = runner.invoke(app, ["validate", str(CONFIGS / "baseline.yaml"), *sets])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_layers_are_built_in_the_documented_order():
    built = build_model(load(CONFIGS / "baseline.yaml", [
        "model.hidden=[8,4]", "model.noise.0.stddev=0.1", "model.noise.1.layer=1",
        "model.noise.1.stddev=0.05", "model.dropout.0.rate=0.2", "model.batch_norm.0.layer=1",
        "model.max_norm.0.value=2", "model.regularizers.0.target=activity",
        "model.regularizers.0.placement=pre_activation"]))
    assert [layer.name for layer in built.model.layers] == [
        "input_noise", "hidden_0_linear", "hidden_0", "hidden_0_dropout", "hidden_1_linear",
        "hidden_1_norm", "hidden_1", "hidden_1_noise", "output"]
    kernel = built.model.get_layer("hidden_0_linear").kernel
    assert kernel.constraint.get_config()["max_value"] == 2


def relative(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ("model.max_norm.0.value=0.5",),
    ("early_stopping.enabled=true", "early_stopping.monitor=val_accuracy",
     "early_stopping.patience=20", "early_stopping.restore_best_weights=true"),
])
def test_compiled_engine_matches_fit_with_constraints_and_early_stopping(overrides, executor):
    cfg = config("l1_pre_relu", "train.epochs=150", *overrides)
    split = load_split(cfg["data"])
    ours, reference = executor.train_all([cfg])[0], train_fit(cfg, split)
    assert ours.stopped_epoch == reference.stopped_epoch
    assert len(ours.history["loss"]) == len(reference.history["loss"])
    for curve in CURVES:
        assert relative(ours.history[curve], reference.history[curve]) < 1e-4, curve
    assert ours.final["test_accuracy"] == pytest.approx(reference.final["test_accuracy"])


@pytest.mark.slow
def test_batch_norm_trains_like_fit(executor):
    cfg = config("batchnorm", "train.epochs=20")
    split = load_split(cfg["data"])
    ours, reference = executor.train_all([cfg])[0], train_fit(cfg, split)
    assert relative(ours.history["loss"], reference.history["loss"]) < 1e-5
    assert relative(ours.history["val_loss"], reference.history["val_loss"]) < 1e-4


def test_each_replica_stops_on_its_own_in_a_batch(executor):
    cfg = config("l1_pre_relu", "train.epochs=300", "early_stopping.enabled=true",
                 "early_stopping.monitor=val_accuracy", "early_stopping.patience=20")
    replicas = [with_seed(cfg, s) for s in (1, 2, 3)]
    together = executor.train_all(replicas)
    stops = [r.stopped_epoch for r in together]
    assert len(set(stops)) > 1 and all(s is not None and s < 300 for s in stops)
    for replica, result in zip(replicas, together):
        alone = executor.train_all([replica])[0]
        assert result.stopped_epoch == alone.stopped_epoch
        assert len(result.history["loss"]) == result.stopped_epoch  # nothing padded after
        for curve in CURVES:
            assert np.array_equal(result.history[curve], alone.history[curve])


def test_dropout_and_noise_are_deterministic_per_seed(executor):
    cfg = config("dropout", "train.epochs=200", "model.noise.0.stddev=0.05", "model.hidden=[64]")
    first, again = (executor.train_all([cfg])[0] for _ in range(2))
    for curve in CURVES:
        assert np.array_equal(first.history[curve], again.history[curve])
    batch = executor.train_all([with_seed(cfg, 1), with_seed(cfg, 2)])
    for curve in CURVES:
        assert np.array_equal(batch[0].history[curve], first.history[curve])
    assert not np.allclose(batch[0].history["loss"], batch[1].history["loss"])
    # dropout is on while training: the train loss is noisier than without it
    plain = executor.train_all([config("baseline", "train.epochs=200", "model.hidden=[64]")])[0]
    assert np.std(np.diff(first.history["loss"])) > np.std(np.diff(plain.history["loss"]))


def test_dropout_rates_and_noise_stddevs_share_one_compiled_trainer(executor, tmp_path):
    """A rate or stddev is mapped per lane like a penalty strength: replicas of different
    rates train in one batch, each exactly as it trains alone; and model.keras keeps each
    replica's own rate."""
    from circlereg.config import structure_key

    def cfg(rate, stddev):
        return config("dropout", "train.epochs=60", "model.hidden=[16]",
                      f"model.dropout.0.rate={rate}", f"model.noise.0.stddev={stddev}")

    mixed = [cfg(0.1, 0.05), cfg(0.5, 0.2), cfg(0.3, 0.0)]
    assert structure_key(mixed[0]) == structure_key(mixed[1]) != structure_key(mixed[2])
    together = executor.train_all(mixed)
    for alone_cfg, result in zip(mixed, together):
        alone = executor.train_all([alone_cfg])[0]
        for curve in CURVES:
            assert np.array_equal(result.history[curve], alone.history[curve])
    assert not np.array_equal(together[0].history["loss"], together[1].history["loss"])

    import keras

    result = runner.invoke(app, ["sweep", str(CONFIGS / "dropout.yaml"), "--set",
                                 "train.epochs=20", "--set", "model.hidden=[8]",
                                 "model.dropout.0.rate=0.2,0.6", "--no-run-figures", "--quiet",
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = sorted(tmp_path.glob("*/*/p*/seed_1/model.keras"))
    assert [keras.saving.load_model(path).get_layer("hidden_0_dropout").rate
            for path in saved] == [0.2, 0.6]


def test_deeper_net_with_per_layer_penalties_runs(tmp_path):
    result = runner.invoke(app, ["run", str(CONFIGS / "l2_kernel_deep.yaml"), "--set",
                                 "train.epochs=50", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "l2_kernel_deep").iterdir()
    metrics = json.loads((path / "metrics.json").read_text())
    assert [layer["layer"] for layer in metrics["hidden_layers"]] == [0, 1]


def test_custom_penalties_on_every_target_run_sweep_and_reload(tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(ROOT)  # `examples` is importable from the project folder
    overrides = ["--set", "train.epochs=30", "--set", "model.regularizers.2.target=bias",
                 "--set", "model.regularizers.2.kind=examples.penalties:group_lasso"]
    result = runner.invoke(app, ["run", str(CONFIGS / "custom_penalties.yaml"), *overrides,
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "custom_penalties").iterdir()
    model = keras.saving.load_model(path / "model.keras")
    layer = model.get_layer("hidden_0_linear")
    assert layer.kernel_regularizer.kind == "examples.penalties:group_lasso"
    assert layer.activity_regularizer.kind == "examples.penalties:HoyerSparsity"
    assert layer.bias_regularizer is not None
    result = runner.invoke(app, ["sweep", str(CONFIGS / "custom_penalties.yaml"), *overrides,
                                 "--repeats", "2", "--quiet", "--no-run-figures",
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]  # the table: point, n, train, test
    assert dict(zip(header.split()[:2], row.split()[:2])) == {"point": "p000", "n": "2"}
