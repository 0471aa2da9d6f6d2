"""Lane settings are declared once (circlereg.lanes); the structure key derives from it."""

import pytest

from circlereg.config import KEYS, load, structure_key
from circlereg.lanes import INPUTS, SETTINGS

from .conftest import CONFIGS


def test_every_lane_setting_is_a_config_key_feeding_named_inputs():
    keys = [key for setting in SETTINGS for key in setting.keys]
    assert set(keys) <= set(KEYS) and len(keys) == len(set(keys))
    assert "train.learning_rate" in keys
    assert len({i.name for i in INPUTS}) == len(INPUTS)


@pytest.mark.parametrize("override, same", [
    ("train.seed=9", True),
    ("train.learning_rate=0.05", True),
    ("model.regularizers.0.l1=0.5", True),
    ("model.dropout.0.rate=0.4", True),
    ("model.noise.0.stddev=0.3", True),
    ("model.dropout.0.rate=0", False),  # whether a layer acts at all is structure
    ("model.noise.0.stddev=0", False),
    ("train.optimizer=sgd", False),
    ("model.hidden=[16]", False),
    ("train.epochs=7", False),
])
def test_the_structure_is_everything_but_the_lane_settings(override, same):
    base = ["model.noise=[{layer: 0, stddev: 0.1}]", "model.dropout=[{layer: 0, rate: 0.2}]"]
    config = load(CONFIGS / "l1_pre_relu.yaml", base)
    changed = load(CONFIGS / "l1_pre_relu.yaml", [*base, override])
    assert (structure_key(changed) == structure_key(config)) is same
    assert structure_key({**config, "name": "other"}) == structure_key(config)
