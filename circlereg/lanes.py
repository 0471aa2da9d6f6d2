"""Lane settings: what may differ between the replicas (lanes) of one compiled program.

`SETTINGS` is the one list. Each setting names its config keys (the schema's notation, `[]`
for every item of a list), what of them the program's structure keeps (nothing, or whether a
random layer acts at all), the program's inputs it feeds (`train.Lanes`, one value per lane,
read from each lane's config) and how the writer's probe model holds it (`hold`; a setting
the probe model has no use for holds nothing). From it:

- `structure`: what `config.structure_key` hashes, every setting blanked;
- `train.Lanes` and `LaneProgram._inputs`: one input per `Input`, in this order;
- `hold`: `engine.writer.ActivationProbe.hold` gives a model of the structure a replica's settings.

A new lane setting is one entry here, plus its use in the program (`train.LaneProgram`).
No TensorFlow here: `structure_key` runs in the command's process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def noise_name(layer: int | None) -> str:
    return "input_noise" if layer is None else f"hidden_{layer}_noise"


def dropout_name(layer: int) -> str:
    return f"hidden_{layer}_dropout"


@dataclass(frozen=True)
class Input:
    """One input of the compiled program, a value or a list of values per lane.

    `read(config, drawn)`: one lane's value, `drawn` being the names of the structure's
    random layers in model order (`model.random_layers`); `dtype`: 'int32', 'float32',
    'model' (the config's train.dtype) or 'optimizer' (the dtype of the Keras optimizer's own
    learning-rate variable, Keras' floatx); `items`: None for one value per lane, else the
    shape of each item of the lane's list (which may be empty)."""

    name: str
    dtype: str
    read: Callable[[dict, list[str]], object]
    items: tuple[int, ...] | None = None


@dataclass(frozen=True)
class LaneSetting:
    keys: tuple[str, ...]  # config keys, as the schema writes them
    inputs: tuple[Input, ...]  # what the program takes of it, per lane
    kept: Callable[[object], object] = lambda value: None  # what the structure keeps
    hold: Callable[[object, dict], None] | None = None  # (model.BuiltModel, config)


def _strengths(config: dict, drawn: list[str]) -> list[list[float]]:
    return [[r["l1"], r["l2"]] for r in config["model"]["regularizers"]]


def _hold_strengths(built, config: dict) -> None:
    for penalty, reg in zip(built.penalties, config["model"]["regularizers"]):
        penalty.strengths.assign([reg["l1"], reg["l2"]])


def random_settings(config: dict) -> dict[str, tuple[str, float]]:
    """Each Dropout's rate and GaussianNoise's stddev, as (attribute, value) by the name of
    its layer."""
    spec = config["model"]
    return {**{noise_name(item["layer"]): ("stddev", item["stddev"]) for item in spec["noise"]},
            **{dropout_name(item["layer"]): ("rate", item["rate"]) for item in spec["dropout"]}}


def _rates(config: dict, drawn: list[str]) -> list[float]:
    """Per random layer drawn: a Dropout's rate (float32, as the uniforms it is compared
    with); 0 for a GaussianNoise (unused)."""
    settings = random_settings(config)
    return [value if attribute == "rate" else 0.0
            for attribute, value in map(settings.__getitem__, drawn)]


def _amounts(config: dict, drawn: list[str]) -> list[float]:
    """Per random layer drawn: a Dropout's scale 1 / (1 - rate), computed in Python as Keras
    does; a GaussianNoise's stddev."""
    settings = random_settings(config)
    return [1 / (1 - value) if attribute == "rate" else value
            for attribute, value in map(settings.__getitem__, drawn)]


def _hold_random(built, config: dict) -> None:
    for name, (attribute, value) in random_settings(config).items():
        setattr(built.model.get_layer(name), attribute, value)


def _acts(value: float) -> bool:
    return value > 0


RANDOM = (Input("rates", "float32", _rates, ()), Input("amounts", "model", _amounts, ()))
SETTINGS = (
    LaneSetting(("model.regularizers[].l1", "model.regularizers[].l2"),
                (Input("strengths", "model", _strengths, (2,)),), hold=_hold_strengths),
    LaneSetting(("train.seed",),
                (Input("seeds", "int32", lambda config, drawn: config["train"]["seed"]),)),
    # Whether a dropout or noise layer acts at all (rate, stddev > 0) is structure.
    LaneSetting(("model.dropout[].rate", "model.noise[].stddev"), RANDOM, kept=_acts,
                hold=_hold_random),
    LaneSetting(("train.learning_rate",),
                (Input("learning_rates", "optimizer",
                       lambda config, drawn: config["train"]["learning_rate"]),)),
)
INPUTS = tuple(i for setting in SETTINGS for i in setting.inputs)


def structure(config: dict) -> dict:
    """`config` with every lane setting replaced by what the structure keeps of it, and no
    name: configs with equal structures train as lanes of one program."""
    shape = {**config, "name": None}
    for setting in SETTINGS:
        for key in setting.keys:
            shape = _replaced(shape, key.replace("[]", ".[]").split("."), setting.kept)
    return shape


def _replaced(tree, path: list[str], kept: Callable):
    """A copy of `tree` with the value at `path` ('[]': every item of a list) replaced by
    `kept(value)`; what it does not change is shared."""
    head, *rest = path
    if head == "[]":
        return [_replaced(item, rest, kept) for item in tree]
    return {**tree, head: _replaced(tree[head], rest, kept) if rest else kept(tree[head])}


def hold(built, config: dict) -> None:
    """Give a model of the config's structure (`model.BuiltModel`) the config's own lane
    settings, those the model itself holds (strengths, rates, stddevs)."""
    for setting in SETTINGS:
        if setting.hold is not None:
            setting.hold(built, config)
