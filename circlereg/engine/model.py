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
import threading
from dataclasses import dataclass

from circlereg.config import LANES
from circlereg.engine.backend import keras, tf
from circlereg.engine.regularizers import Penalty, penalty_from_config
from circlereg.lanes import dropout_name, noise_name

layers = keras.layers
# TensorFlow numbers traced functions and variables from one process-wide counter, and those
# numbers reach the key of a compiled program in the compile cache (backend.compile_cache).
# Whatever builds Keras objects or traces a program holds this lock, so a program's names
# follow from what was built before it in program order, not from another thread's timing.
BUILDING = threading.RLock()


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
    with BUILDING:
        stack, penalties, hidden_outputs = _layers(config)
        # Built once with every layer: Sequential.add would rebuild the model after each one.
        dtype = config["train"]["dtype"]
        return BuiltModel(keras.Sequential([keras.Input((2,), dtype=dtype), *stack]),
                          penalties, hidden_outputs)


def initial_state(config: dict) -> tuple[list, list]:
    """The (trainable, non-trainable) values `build_model(config)` starts from, as NumPy
    arrays. A third cheaper: the layers are built on their input shape alone, without a
    symbolic model (the values depend only on the seeded construction)."""
    trainable, non_trainable, shape = [], [], (None, 2)
    with BUILDING:
        stack, _, _ = _layers(config)
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

    def noise(item: dict) -> layers.GaussianNoise:
        # Keras draws a seed only for a layer that adds noise (stddev > 0, rate > 0).
        seed = seeds.next() if item["stddev"] > 0 else None
        return layers.GaussianNoise(item["stddev"], seed=seed, name=noise_name(item["layer"]),
                                    dtype=dtype)

    stack: list[keras.layers.Layer] = []
    if None in by_layer["noise"]:
        stack.append(noise(by_layer["noise"][None]))
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
            stack.append(noise(by_layer["noise"][index]))
        if index in by_layer["dropout"]:
            rate = by_layer["dropout"][index]["rate"]
            stack.append(layers.Dropout(rate, seed=seeds.next() if rate > 0 else None,
                                        name=dropout_name(index), dtype=dtype))
    stack.append(layers.Dense(1, activation="sigmoid", name="output", dtype=dtype,
                              kernel_initializer=keras.initializers.GlorotUniform(
                                  seed=seeds.next())))
    return stack, penalties, hidden_outputs


def make_optimizer(train: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.get({"class_name": train["optimizer"],
                                 "config": {"learning_rate": train["learning_rate"]}})


def stateless_optimizer(train: dict) -> keras.optimizers.Optimizer:
    """The config's Keras optimizer, whose `lane_apply` takes its state, the weights and each
    lane's learning rate as tensors and returns the new weights and state. Keras' TensorFlow
    optimizers refuse `stateless_apply` (tf.distribute wants real variables); the update
    rules themselves (`update_step`) are backend-neutral, so this subclass takes the few
    methods that write variables from Keras' own backend-neutral base, which writes into a
    StatelessScope, and applies them with a learning rate per lane (`LaneRates`)."""
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    optimizer = make_optimizer(train)
    neutral = {name: getattr(BaseOptimizer, name) for name in (
        "stateless_apply", "assign", "assign_add", "assign_sub", "_var_key")}
    stateless = type(f"Stateless{type(optimizer).__name__}", (LaneRates, type(optimizer)),
                     neutral)
    return stateless.from_config(optimizer.get_config())


class LaneRates:
    """An optimizer's update with a learning rate per lane (`train.Lanes`, in the
    dtype of the optimizer's own learning-rate variable, which the update casts as it casts
    that): each stacked variable's update takes its lane's rate, shaped to broadcast over
    the lane's values. Elementwise, the same operations as with one learning rate for every
    lane: a lane's numbers do not depend on its batch-mates' rates. (The optimizer's own
    learning-rate variable stays in its state, unread.)"""

    _rates = None  # while `lane_apply` traces

    def lane_apply(self, optimizer_variables, grads, weights, rates):
        """`stateless_apply` with `rates`, each lane's learning rate."""
        self._rates = rates
        try:
            return self.stateless_apply(optimizer_variables, grads, weights)
        finally:
            self._rates = None

    def _lane_rate(self, variable):
        return tf.reshape(self._rates, [LANES] + [1] * (len(variable.shape) - 1))

    # BaseOptimizer's two readers of the learning rate, with the lane's rate. As before
    # lane rates, BaseOptimizer's loop over the variables stands in for the class's own
    # `_backend_update_step`; Nadam's, which also advances its u_product, is not taken.
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        for grad, variable in zip(grads, trainable_variables):
            self.update_step(grad, variable, self._lane_rate(variable))

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = keras.ops.cast(self._lane_rate(variable), variable.dtype)
                wd = keras.ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)


# The compiled engine's random layers. Keras draws Dropout masks and GaussianNoise through
# Philox stateless ops, which XLA on CPU runs some ten times slower than the rest of an epoch
# (inside vectorized_map, per lane). The compiled engine draws them instead from a counter
# hash: every number is a pure function of (train.seed, epoch, step, layer, position in the
# batch), so a replica's draws never depend on its lane or batch-mates. (`model.fit`, the
# reference engine, keeps Keras' own stream: the two engines agree on dropout configs in
# distribution, not bit for bit.)

def random_layers(model: keras.Sequential) -> list[keras.layers.Layer]:
    """The layers training draws random numbers for, in order: each Dropout and
    GaussianNoise that does something (rate > 0, stddev > 0)."""
    return [layer for layer in model.layers
            if isinstance(layer, layers.Dropout) and layer.rate > 0
            or isinstance(layer, layers.GaussianNoise) and layer.stddev > 0]


def draw_key(seed, epoch, step):
    """A replica's uint32 key for one training step: train.seed, epoch and the step within
    the epoch (int32 tensors or ints)."""
    key = _mix(_xor(tf.bitcast(tf.cast(seed, tf.int32), tf.uint32), 0x2545F491))
    key = _mix(key + tf.bitcast(tf.cast(epoch, tf.int32), tf.uint32))
    return _mix(key + tf.bitcast(tf.cast(step, tf.int32), tf.uint32))


def train_call(model: keras.Sequential, x, key, rates, amounts):
    """model(x, training=True), with Dropout's masks and GaussianNoise's noise drawn from
    `key` (`draw_key`) rather than from the layers' seed generators, at this replica's
    `rates` and `amounts` (float32 and the model's dtype: `lanes.RANDOM`): so replicas
    of different rates or stddevs share one compiled program. Same formulas as Keras:
    Dropout keeps a unit when u >= rate and scales it by 1 / (1 - rate); GaussianNoise adds
    N(0, stddev^2)."""
    slot = 0
    for index, layer in enumerate(model.layers):
        if isinstance(layer, layers.Dropout) and layer.rate > 0:
            keep = uniform(key, index, x.shape) >= rates[slot]
            x = x * tf.cast(keep, x.dtype) * amounts[slot]
            slot += 1
        elif isinstance(layer, layers.GaussianNoise) and layer.stddev > 0:
            x = x + tf.cast(normal(key, index, x.shape), x.dtype) * amounts[slot]
            slot += 1
        else:
            x = layer(x, training=True)
    return x


def uniform(key, stream: int, shape) -> tf.Tensor:
    """Float32 uniforms in [0, 1) on a 24-bit grid, one per element of `shape`: the
    lowbias32 mixer over the element's index xor the stream's key.

    >>> u = uniform(draw_key(1, 0, 0), 3, (1000, 100))
    >>> round(float(tf.reduce_mean(u)), 2), round(float(tf.math.reduce_std(u)), 2)
    (0.5, 0.29)
    """
    return _unit(_bits(key, stream, shape))


def normal(key, stream: int, shape) -> tf.Tensor:
    """Standard normal float32 draws by Box-Muller on two uniforms of the stream.

    >>> z = normal(draw_key(1, 0, 0), 3, (1000, 100))
    >>> abs(float(tf.reduce_mean(z))) < 0.005, round(float(tf.math.reduce_std(z)), 2)
    (True, 1.0)
    """
    bits = _bits(key, stream, shape)
    radius = 1.0 - _unit(bits)  # (0, 1]: its log is finite
    angle = _unit(_mix(_xor(bits, 0x68E31DA4)))
    return tf.sqrt(-2.0 * tf.math.log(radius)) * tf.cos(2 * 3.14159265358979 * angle)


def _bits(key, stream: int, shape) -> tf.Tensor:
    size = 1
    for dim in shape:
        size *= dim
    index = tf.bitcast(tf.reshape(tf.range(size, dtype=tf.int32), shape), tf.uint32)
    key = _mix(_xor(key, stream * 0x9E3779B9 % 2**32))
    # One round: the drawing is fused into both the forward and the backward pass, so each
    # round costs ~0.1 s of a 4000-epoch, 4-lane dropout run (0.43 s without dropout).
    return _mix(_xor(index, key))


def _unit(bits):
    """uint32 -> float32 in [0, 1) from the top 24 bits (exact in float32)."""
    return tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * 2.0**-24


def _xor(x, y):
    return tf.bitwise.bitwise_xor(x, tf.cast(y, tf.uint32))


def _mix(x):
    """lowbias32 (C. Wellons, hash-prospector): a bijection on uint32 with strong avalanche."""
    for shift, factor in ((16, 0x21F0AAAD), (15, 0x735A2D97)):
        x = _xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint32)))
        x = x * tf.constant(factor, tf.uint32)
    return _xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
