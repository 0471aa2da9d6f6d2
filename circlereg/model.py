"""Stage 3: the model. Where every regularizer is attached, in one place.

The study's MLP: Dense hidden layers, a Dense(1, sigmoid) output. Per hidden layer, in order:
Dense (kernel/bias penalties, MaxNorm), [BatchNormalization before the activation],
activation, [BatchNormalization after it], [GaussianNoise], [Dropout]; GaussianNoise may also
sit on the input. An activity penalty with placement `pre_activation` sits on a linear Dense
whose activation follows as a separate `Activation` layer (the study's pre-activation
variant); `post_activation` sits on the activation's output (on the Dense itself when nothing
is pre-activation).

Everything a model depends on comes from its config: the dtype goes to every layer, and the
seed to every initializer and random layer explicitly. Keras, left alone, draws those seeds
from Python's global random state; `Seeds` draws the same numbers in the same order from a
private generator, so a seed gives the weights the study's `keras.utils.set_random_seed(seed)`
gives, without touching global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from circlereg.backend import keras
from circlereg.regularizers import Penalty, penalty_from_config

layers = keras.layers


@dataclass
class BuiltModel:
    model: keras.Sequential
    penalties: list[Penalty]  # aligned with config["model"]["regularizers"]
    hidden_outputs: list[str]  # the layer giving each hidden layer's activations (after the
    # activation, and after batch norm when it follows the activation)


class Seeds:
    """The seeds Keras would draw for unseeded layers after `keras.utils.set_random_seed`
    (`random.randint(1, 1e9)` per initializer or random layer, in construction order)."""

    def __init__(self, seed: int):
        self._draws = random.Random(seed)

    def next(self) -> int:
        return self._draws.randint(1, int(1e9))


def build_model(config: dict) -> BuiltModel:
    """A resolved config -> a built Keras model with its penalties, noise, dropout, batch norm
    and constraints attached, initialised from the config's seed."""
    stack, penalties, hidden_outputs = _layers(config)
    # Built once with every layer: Sequential.add would rebuild the model after each one.
    dtype = config["train"]["dtype"]
    return BuiltModel(keras.Sequential([keras.Input((2,), dtype=dtype), *stack]),
                      penalties, hidden_outputs)


def initial_state(config: dict) -> tuple[list, list]:
    """The (trainable, non-trainable) values `build_model(config)` starts from, as NumPy
    arrays. A third cheaper: the layers are built on their input shape alone, without a
    symbolic model (the values depend only on the seeded construction)."""
    stack, _, _ = _layers(config)
    trainable, non_trainable, shape = [], [], (None, 2)
    for layer in stack:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
        trainable += [v.numpy() for v in layer.trainable_variables]
        non_trainable += [v.numpy() for v in layer.non_trainable_variables]
    return trainable, non_trainable


def _slot(regularizers: list[dict], penalties: list[Penalty], target: str, layer: int,
          placement: str | None = None) -> Penalty | None:
    for reg, penalty in zip(regularizers, penalties):
        if (reg["target"], reg["layer"], reg["placement"]) == (target, layer, placement):
            return penalty
    return None


def _layers(config: dict) -> tuple[list[keras.layers.Layer], list[Penalty], list[str]]:
    spec = config["model"]
    dtype = config["train"]["dtype"]
    seeds = Seeds(config["train"]["seed"])
    regularizers = spec["regularizers"]
    penalties = [penalty_from_config(reg, dtype) for reg in regularizers]
    by_layer = {key: {item["layer"]: item for item in spec[key]}
                for key in ("dropout", "batch_norm", "noise", "max_norm")}

    def noise(item: dict, name: str) -> layers.GaussianNoise:
        # Keras draws a seed only for a layer that adds noise (stddev > 0, rate > 0).
        seed = seeds.next() if item["stddev"] > 0 else None
        return layers.GaussianNoise(item["stddev"], seed=seed, name=name, dtype=dtype)

    stack: list[keras.layers.Layer] = []
    if None in by_layer["noise"]:
        stack.append(noise(by_layer["noise"][None], "input_noise"))
    hidden_outputs = []
    for index, width in enumerate(spec["hidden"]):
        def slot(target, placement=None, index=index):
            return _slot(regularizers, penalties, target, index, placement)

        norm = by_layer["batch_norm"].get(index)
        max_norm = by_layer["max_norm"].get(index)
        dense = {"kernel_regularizer": slot("kernel"), "bias_regularizer": slot("bias"),
                 "kernel_constraint": max_norm and keras.constraints.MaxNorm(max_norm["value"]),
                 "kernel_initializer": keras.initializers.GlorotUniform(seed=seeds.next()),
                 "dtype": dtype}
        pre, post = slot("activity", "pre_activation"), slot("activity", "post_activation")
        separate = pre is not None or (norm and norm["position"] == "before_activation")
        if not separate:
            stack.append(layers.Dense(width, activation=spec["activation"],
                                      activity_regularizer=post, name=f"hidden_{index}",
                                      **dense))
        else:
            stack.append(layers.Dense(width, activation="linear", activity_regularizer=pre,
                                      name=f"hidden_{index}_linear", **dense))
            if norm:
                stack.append(layers.BatchNormalization(name=f"hidden_{index}_norm",
                                                       dtype=dtype))
            stack.append(layers.Activation(spec["activation"], activity_regularizer=post,
                                           name=f"hidden_{index}", dtype=dtype))
        if norm and norm["position"] == "after_activation":
            stack.append(layers.BatchNormalization(name=f"hidden_{index}_norm", dtype=dtype))
        hidden_outputs.append(stack[-1].name)
        if index in by_layer["noise"]:
            stack.append(noise(by_layer["noise"][index], f"hidden_{index}_noise"))
        if index in by_layer["dropout"]:
            rate = by_layer["dropout"][index]["rate"]
            stack.append(layers.Dropout(rate, seed=seeds.next() if rate > 0 else None,
                                        name=f"hidden_{index}_dropout", dtype=dtype))
    stack.append(layers.Dense(1, activation="sigmoid", name="output", dtype=dtype,
                              kernel_initializer=keras.initializers.GlorotUniform(
                                  seed=seeds.next())))
    return stack, penalties, hidden_outputs


def make_optimizer(train: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.get({"class_name": train["optimizer"],
                                 "config": {"learning_rate": train["learning_rate"]}})
