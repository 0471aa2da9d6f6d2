"""Stage 3: the model. Where every regularizer is attached, in one place.

The study's MLP: Dense hidden layers, a Dense(1, sigmoid) output. Per hidden layer, in order:
Dense (kernel/bias penalties, MaxNorm), [BatchNormalization before the activation],
activation, [BatchNormalization after it], [GaussianNoise], [Dropout]; GaussianNoise may also
sit on the input. An activity penalty with
placement `pre_activation` sits on a linear Dense whose activation follows as a separate
`Activation` layer (the study's pre-activation variant); `post_activation` sits on the
activation's output (on the Dense itself when nothing is pre-activation).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import keras
from keras import layers

from circlereg.regularizers import Penalty, penalty_from_config


@dataclass
class BuiltModel:
    model: keras.Sequential
    penalties: list[Penalty]  # aligned with config["model"]["regularizers"]
    hidden_outputs: list[str]  # the layer giving each hidden layer's activations (after the
    # activation, and after batch norm when it follows the activation)


def _slot(regularizers: list[dict], penalties: list[Penalty], target: str, layer: int,
          placement: str | None = None) -> Penalty | None:
    for reg, penalty in zip(regularizers, penalties):
        if (reg["target"], reg["layer"], reg["placement"]) == (target, layer, placement):
            return penalty
    return None


# Keras draws each initializer's seed from Python's global random state when a layer is
# made, so seeding and building must not interleave with another thread's building.
BUILD_LOCK = threading.RLock()


def build_model(config: dict, seed: int | None = None) -> BuiltModel:
    """A resolved config -> a built Keras model with its penalties, noise, dropout, batch norm
    and constraints attached; with `seed`, Keras is seeded first, as the study does."""
    with BUILD_LOCK:
        if seed is not None:
            keras.utils.set_random_seed(seed)
        stack, penalties, hidden_outputs = _layers(config)
        # Built once with every layer: Sequential.add would rebuild the model after each one.
        dtype = config["train"]["dtype"]
        return BuiltModel(keras.Sequential([keras.Input((2,), dtype=dtype), *stack]),
                          penalties, hidden_outputs)


def initial_weights(config: dict) -> tuple[list, list]:
    """The (trainable, non-trainable) variables `build_model(config, seed)` would start
    from, for the config's seed. A third cheaper: the layers are built on their input shape
    alone, without a symbolic model (the values depend only on the seeded construction)."""
    with BUILD_LOCK:
        keras.utils.set_random_seed(config["train"]["seed"])
        stack, _, _ = _layers(config)
        trainable, non_trainable, shape = [], [], (None, 2)
        for layer in stack:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
            trainable += layer.trainable_variables
            non_trainable += layer.non_trainable_variables
        return trainable, non_trainable


def _layers(config: dict) -> tuple[list[keras.layers.Layer], list[Penalty], list[str]]:
    spec = config["model"]
    regularizers = spec["regularizers"]
    penalties = [penalty_from_config(reg) for reg in regularizers]
    dtype = config["train"]["dtype"]
    by_layer = {key: {item["layer"]: item for item in spec[key]}
                for key in ("dropout", "batch_norm", "noise", "max_norm")}
    stack: list[keras.layers.Layer] = []
    if None in by_layer["noise"]:
        stack.append(layers.GaussianNoise(by_layer["noise"][None]["stddev"], name="input_noise",
                                       dtype=dtype))
    hidden_outputs = []
    for index, width in enumerate(spec["hidden"]):
        def slot(target, placement=None, index=index):
            return _slot(regularizers, penalties, target, index, placement)

        norm = by_layer["batch_norm"].get(index)
        max_norm = by_layer["max_norm"].get(index)
        weights = {"kernel_regularizer": slot("kernel"), "bias_regularizer": slot("bias"),
                   "kernel_constraint": max_norm and keras.constraints.MaxNorm(max_norm["value"])}
        pre, post = slot("activity", "pre_activation"), slot("activity", "post_activation")
        separate = pre is not None or (norm and norm["position"] == "before_activation")
        if not separate:
            stack.append(layers.Dense(width, activation=spec["activation"],
                                   activity_regularizer=post, name=f"hidden_{index}", dtype=dtype,
                                   **weights))
        else:
            stack.append(layers.Dense(width, activation="linear", activity_regularizer=pre,
                                   name=f"hidden_{index}_linear", dtype=dtype, **weights))
            if norm:
                stack.append(layers.BatchNormalization(name=f"hidden_{index}_norm", dtype=dtype))
            stack.append(layers.Activation(spec["activation"], activity_regularizer=post,
                                        name=f"hidden_{index}", dtype=dtype))
        if norm and norm["position"] == "after_activation":
            stack.append(layers.BatchNormalization(name=f"hidden_{index}_norm", dtype=dtype))
        hidden_outputs.append(stack[-1].name)
        if index in by_layer["noise"]:
            stack.append(layers.GaussianNoise(by_layer["noise"][index]["stddev"],
                                           name=f"hidden_{index}_noise", dtype=dtype))
        if index in by_layer["dropout"]:
            stack.append(layers.Dropout(by_layer["dropout"][index]["rate"],
                                     name=f"hidden_{index}_dropout", dtype=dtype))
    stack.append(layers.Dense(1, activation="sigmoid", name="output", dtype=dtype))
    return stack, penalties, hidden_outputs


def make_optimizer(train: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.get({"class_name": train["optimizer"],
                                 "config": {"learning_rate": train["learning_rate"]}})
