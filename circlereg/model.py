"""Stage 3: the model. Where every regularizer is attached, in one place.

The study's MLP: Dense hidden layers, a Dense(1, sigmoid) output. An activity penalty with
placement `pre_activation` sits on a linear Dense whose activation follows as a separate
`Activation` layer (the study's pre-activation variant); `post_activation` sits on the
activation's output (on the Dense itself when nothing is pre-activation).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from circlereg.regularizers import Penalty, penalty_from_config


@dataclass
class BuiltModel:
    model: keras.Sequential
    penalties: list[Penalty]  # aligned with config["model"]["regularizers"]
    hidden_outputs: list[str]  # name of the layer giving each hidden layer's activations


def _slot(regularizers: list[dict], penalties: list[Penalty], target: str, layer: int,
          placement: str | None = None) -> Penalty | None:
    for reg, penalty in zip(regularizers, penalties):
        if (reg["target"], reg["layer"], reg["placement"]) == (target, layer, placement):
            return penalty
    return None


def build_model(config: dict) -> BuiltModel:
    """A resolved config -> a built Keras model with its penalties attached."""
    spec = config["model"]
    regularizers = spec["regularizers"]
    penalties = [penalty_from_config(reg) for reg in regularizers]
    dtype = config["train"]["dtype"]
    model = keras.Sequential([keras.Input((2,), dtype=dtype)])
    hidden_outputs = []
    for index, width in enumerate(spec["hidden"]):
        def slot(target, placement=None, index=index):
            return _slot(regularizers, penalties, target, index, placement)

        weights = {"kernel_regularizer": slot("kernel"), "bias_regularizer": slot("bias")}
        pre, post = slot("activity", "pre_activation"), slot("activity", "post_activation")
        if pre is None:
            model.add(layers.Dense(width, activation=spec["activation"],
                                   activity_regularizer=post, name=f"hidden_{index}", dtype=dtype,
                                   **weights))
        else:
            model.add(layers.Dense(width, activation="linear", activity_regularizer=pre,
                                   name=f"hidden_{index}_linear", dtype=dtype, **weights))
            model.add(layers.Activation(spec["activation"], activity_regularizer=post,
                                        name=f"hidden_{index}", dtype=dtype))
        hidden_outputs.append(f"hidden_{index}")
    model.add(layers.Dense(1, activation="sigmoid", name="output", dtype=dtype))
    return BuiltModel(model, penalties, hidden_outputs)


def make_optimizer(train: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.get({"class_name": train["optimizer"],
                                 "config": {"learning_rate": train["learning_rate"]}})
