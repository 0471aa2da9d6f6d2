"""The penalty values, and the activity batch convention under both Keras conventions."""

import keras
import numpy as np
import pytest
from keras import ops

from circlereg.config import ConfigError, resolve
from circlereg.engine.regularizers import (
    Penalty,
    check_custom_regularizers,
    keras_divides_activity_penalty,
)

TWOS = np.full((2, 2), 2.0, dtype="float32")  # Dense(3, ones) on it: six outputs of 4


def test_probe_matches_the_installed_keras_release():
    major, minor = (int(p) for p in keras.__version__.split(".")[:2])
    assert keras_divides_activity_penalty() == ((major, minor) >= (3, 14))


def added_loss(penalty):
    layer = keras.layers.Dense(3, kernel_initializer="ones", activity_regularizer=penalty)
    layer(TWOS)
    return float(ops.sum(layer.losses))


@pytest.mark.parametrize("reduction, expected", [("sum", 12.0), ("mean", 6.0)])
def test_activity_penalty_on_the_installed_keras(reduction, expected):
    # 0.5 * sum(|x|) over six 4s = 12 for the whole batch of 2, 6 per sample.
    assert added_loss(Penalty("l1", l1=0.5, batch_reduction=reduction)) == expected


@pytest.mark.parametrize("keras_divides", [True, False])
@pytest.mark.parametrize("reduction, expected", [("sum", 12.0), ("mean", 6.0)])
def test_activity_penalty_under_either_keras_convention(keras_divides, reduction, expected):
    """What a Keras of either convention would add, given what Penalty hands it."""
    penalty = Penalty("l1", l1=0.5, batch_reduction=reduction)
    penalty._keras_divides = keras_divides  # as if the other Keras release were installed
    outputs = ops.convert_to_tensor(np.full((2, 3), 4.0, dtype="float32"))
    handed = float(penalty(outputs))
    added = handed / 2 if keras_divides else handed
    assert added == expected


@pytest.mark.parametrize("kind, ours, theirs", [
    ("l1", {"l1": 0.3}, keras.regularizers.L1(0.3)),
    ("l2", {"l2": 0.3}, keras.regularizers.L2(0.3)),
    ("l1_l2", {"l1": 0.2, "l2": 0.05}, keras.regularizers.L1L2(l1=0.2, l2=0.05)),
])
def test_weight_penalties_equal_keras_regularizers(kind, ours, theirs):
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=(5, 7)).astype("float32"))
    assert float(Penalty(kind, **ours)(x)) == pytest.approx(float(theirs(x)), rel=1e-6)


def test_penalty_round_trips_through_its_config():
    penalty = Penalty("l1_l2", l1=0.1, l2=0.2, batch_reduction="sum")
    clone = Penalty.from_config(penalty.get_config())
    assert clone.get_config() == penalty.get_config()


def custom_config(kind):
    return resolve({"model": {"regularizers": [{"target": "kernel", "kind": kind}]}})


def test_custom_regularizer_that_cannot_be_imported():
    with pytest.raises(ConfigError) as err:
        check_custom_regularizers(custom_config("no_such_pkg.penalties:fn"), "c.yaml")
    assert err.value.key == "model.regularizers.0.kind"
    assert "cannot import module 'no_such_pkg.penalties'" in err.value.message


def test_custom_regularizer_that_is_missing_from_its_module():
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        check_custom_regularizers(custom_config("math:nope"), "c.yaml")


def test_custom_regularizer_must_return_a_scalar():
    with pytest.raises(ConfigError, match="must return a scalar, got shape"):
        check_custom_regularizers(custom_config("keras.ops:abs"), "c.yaml")


def test_custom_regularizer_that_returns_a_scalar_is_accepted():
    check_custom_regularizers(custom_config("keras.ops:sum"), "c.yaml")
