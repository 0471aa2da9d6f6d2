"""Stage 4: training. Two engines over the same Keras model.

`compiled` runs the whole training of one or many replicas (seeds, strengths) as a single
XLA-compiled TensorFlow graph: a `tf.while_loop` over epochs, `tf.vectorized_map` over the
Keras model's `stateless_call` with the replicas' weights stacked, and the Keras optimizer
applied to the stacked weights (Adam and friends are elementwise, so each replica's update is
its own). `fit` is the reference: plain `model.fit(..., validation_data=test)`.

Both record what `model.fit` puts in History: `loss`/`accuracy` from the training forward pass
of each epoch, `val_loss`/`val_accuracy` on the test set after the update, evaluated in
batches of `batch_size` as Keras does (which matters for a summed activity penalty).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from circlereg.data import Split  # noqa: E402
from circlereg.model import BuiltModel, build_model, make_optimizer  # noqa: E402

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class Result:
    """One trained replica: its per-epoch curves, final evaluation and weights."""

    seed: int
    history: dict[str, np.ndarray]  # each CURVES name -> (epochs,)
    final: dict[str, float]  # train_loss, train_accuracy, test_loss, test_accuracy
    weights: list[np.ndarray]
    train_seconds: float


def initial_weights(config: dict) -> list[np.ndarray]:
    """The weights Keras initialises for this config's seed (the same in both engines)."""
    keras.utils.set_random_seed(config["train"]["seed"])
    return build_model(config).model.get_weights()


def structure_key(config: dict) -> str:
    """Configs with equal keys can train as replicas of one graph: everything but the
    seed and the penalty strengths."""
    from circlereg.config import config_hash

    shape = {**config, "name": None, "train": {**config["train"], "seed": None},
             "model": {**config["model"], "regularizers": [
                 {**reg, "l1": None, "l2": None} for reg in config["model"]["regularizers"]]}}
    return config_hash(shape)


@contextmanager
def floatx(dtype: str):
    """Keras' default float type for losses, metrics and optimizer slots during one run."""
    saved = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(saved)


@contextmanager
def bound_strengths(built: BuiltModel, strengths):
    """Let each penalty read its strength from a (per-replica) tensor while tracing."""
    saved = [(p.l1, p.l2) for p in built.penalties]
    try:
        for i, penalty in enumerate(built.penalties):
            penalty.l1, penalty.l2 = strengths[i, 0], strengths[i, 1]
        yield
    finally:
        for penalty, (l1, l2) in zip(built.penalties, saved):
            penalty.l1, penalty.l2 = l1, l2


def replica_map(fn, elems):
    """tf.vectorized_map over the replica axis; a lone replica is called directly, which keeps
    its graph (and its float rounding) the same as model.fit's."""
    if tf.nest.flatten(elems)[0].shape[0] == 1:
        out = fn(tf.nest.map_structure(lambda t: t[0], elems))
        return tf.nest.map_structure(lambda t: tf.expand_dims(t, 0), out)
    return tf.vectorized_map(fn, elems)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def train_compiled(configs: list[dict], split: Split, progress=None) -> list[Result]:
    """Train replicas that share a structure_key together, in one compiled graph.

    `progress(epochs)` is called after each segment of the epoch loop with the number of
    epochs it ran; the loop then runs in a few compiled calls instead of one.
    """
    with floatx(configs[0]["train"]["dtype"]):
        return _train_compiled(configs, split, progress)


def _segments(epochs: int, progress) -> list[int]:
    if progress is None or epochs < 400:
        return [epochs]
    size = -(-epochs // 8)
    return [size] * (epochs // size) + ([epochs % size] if epochs % size else [])


def _train_compiled(configs: list[dict], split: Split, progress) -> list[Result]:
    first = configs[0]
    assert all(structure_key(c) == structure_key(first) for c in configs), "mixed structures"
    train_cfg = first["train"]
    epochs, batch_size = train_cfg["epochs"], train_cfg["batch_size"]
    n_train = len(split.train_x)
    steps = _chunks(n_train, batch_size)

    built = build_model(first)
    model = built.model
    starts = [initial_weights(c) for c in configs]
    stacked = [keras.Variable(np.stack([w[i] for w in starts]), name=f"stacked_{i}")
               for i in range(len(starts[0]))]
    dtype = train_cfg["dtype"]
    split = split.astype(dtype)
    strengths = tf.constant(np.array(
        [[[r["l1"], r["l2"]] for r in c["model"]["regularizers"]] or np.zeros((0, 2))
         for c in configs], dtype=dtype).reshape(len(configs), -1, 2))
    seeds = tf.constant([c["train"]["seed"] for c in configs], dtype=tf.int32)
    optimizer = make_optimizer(train_cfg)
    optimizer.build(stacked)
    bce = keras.losses.BinaryCrossentropy()
    tx, ty = tf.constant(split.train_x), tf.constant(split.train_y)
    vx, vy = tf.constant(split.test_x), tf.constant(split.test_y)

    def forward(weights, strength, x, y, training):
        """One replica on one batch: (loss including penalties, number correct)."""
        with bound_strengths(built, strength):
            pred, _, losses = model.stateless_call(list(weights), [], x, training=training,
                                                   return_losses=True)
        # The same reduction and sum as Keras' compute_loss, so rounding matches model.fit.
        loss = bce(y, pred)
        if losses:
            loss = keras.ops.sum([loss, *losses])
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.cast(pred > 0.5, y.dtype), y), y.dtype))
        return loss, correct

    def evaluate(weights, x, y):
        """model.evaluate's running sums: batch losses weighted by batch size, hit count."""
        def one(args):
            w, s = args
            loss_sum, correct = 0.0, 0.0
            for start, stop in _chunks(x.shape[0], batch_size):
                loss, hits = forward(w, s, x[start:stop], y[start:stop], training=False)
                loss_sum += loss * (stop - start)
                correct += hits
            return loss_sum, correct
        return replica_map(one, (weights, strengths))

    def train_epoch(epoch):
        loss_sum, correct = tf.zeros(len(configs), dtype), tf.zeros(len(configs), dtype)
        if len(steps) > 1:  # minibatches: reshuffle per epoch and replica, like fit(shuffle=True)
            order = replica_map(lambda s: tf.argsort(tf.random.stateless_uniform(
                [n_train], tf.stack([s, epoch]))), seeds)
        for start, stop in steps:
            with tf.GradientTape() as tape:
                weights = [v.value for v in stacked]
                tape.watch(weights)

                def one(args, start=start, stop=stop):
                    w, s, idx = args
                    x, y = ((tx, ty) if len(steps) == 1 else
                            (tf.gather(tx, idx[start:stop]), tf.gather(ty, idx[start:stop])))
                    return forward(w, s, x, y, training=True)

                batch_order = order if len(steps) > 1 else tf.zeros((len(configs), 1), tf.int32)
                loss, hits = replica_map(one, (weights, strengths, batch_order))
                total = tf.reduce_sum(loss)
            optimizer.apply(tape.gradient(total, weights), stacked)
            loss_sum += loss * (stop - start)
            correct += hits
        return loss_sum, correct

    @tf.function(jit_compile=True)
    def run(first_epoch, count):
        """`count` epochs from `first_epoch`; weights and optimizer state live in variables."""
        def body(i, curves):
            loss, accuracy = train_epoch(first_epoch + i)
            val_loss, val_accuracy = evaluate([v.value for v in stacked], vx, vy)
            return i + 1, [c.write(i, v) for c, v in
                           zip(curves, (loss, accuracy, val_loss, val_accuracy))]

        curves = [tf.TensorArray(dtype, size=count) for _ in CURVES]
        _, curves = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), curves))
        return [c.stack() for c in curves]

    # A separate call: reads of the variables after the while_loop are not ordered after it.
    @tf.function(jit_compile=True)
    def final():
        weights = [v.value for v in stacked]
        return evaluate(weights, tx, ty), evaluate(weights, vx, vy)

    start = time.perf_counter()
    done, parts = 0, []
    for count in _segments(epochs, progress):
        parts.append(run(tf.constant(done), count))
        done += count
        if progress is not None:
            progress(count)
    curves = [tf.concat(part, axis=0) for part in zip(*parts)]
    (train_loss, train_acc), (test_loss, test_acc) = final()
    seconds = (time.perf_counter() - start) / len(configs)
    # Keras' Mean metrics divide their running totals once; so do we, on the host.
    real = np.dtype(dtype).type
    sizes = (n_train, n_train, len(split.test_x), len(split.test_x))
    curves = [c.numpy().T / real(n) for c, n in zip(curves, sizes)]  # -> (R, epochs)
    train_loss, train_acc = (t.numpy() / real(n_train) for t in (train_loss, train_acc))
    n_test = real(len(split.test_x))
    test_loss, test_acc = (t.numpy() / n_test for t in (test_loss, test_acc))
    weights = [v.numpy() for v in stacked]
    return [
        Result(
            seed=config["train"]["seed"],
            history={name: curve[r] for name, curve in zip(CURVES, curves)},
            final={"train_loss": float(train_loss[r]), "train_accuracy": float(train_acc[r]),
                   "test_loss": float(test_loss[r]), "test_accuracy": float(test_acc[r])},
            weights=[w[r] for w in weights],
            train_seconds=seconds,
        )
        for r, config in enumerate(configs)
    ]


def train_fit(config: dict, split: Split) -> Result:
    """The reference engine: the study's own `model.fit` loop."""
    with floatx(config["train"]["dtype"]):
        return _train_fit(config, split)


def _train_fit(config: dict, split: Split) -> Result:
    train_cfg = config["train"]
    keras.utils.set_random_seed(train_cfg["seed"])
    model = build_model(config).model
    model.compile(loss="binary_crossentropy", optimizer=make_optimizer(train_cfg),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(split.train_x, split.train_y, validation_data=(split.test_x, split.test_y),
                        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"], verbose=0)
    seconds = time.perf_counter() - start
    batch = train_cfg["batch_size"]
    train_loss, train_acc = model.evaluate(split.train_x, split.train_y, batch_size=batch,
                                           verbose=0)
    test_loss, test_acc = model.evaluate(split.test_x, split.test_y, batch_size=batch, verbose=0)
    return Result(
        seed=train_cfg["seed"],
        history={name: np.asarray(history.history[name]) for name in CURVES},
        final={"train_loss": train_loss, "train_accuracy": train_acc,
               "test_loss": test_loss, "test_accuracy": test_acc},
        weights=model.get_weights(),
        train_seconds=seconds,
    )


def train(config: dict, split: Split) -> Result:
    if config["train"]["engine"] == "fit":
        return train_fit(config, split)
    return train_compiled([config], split)[0]


class ActivationProbe:
    """Each hidden layer's activations (after its activation function), for any weights of
    one config's model shape; built once and reused across replicas."""

    def __init__(self, config: dict):
        self.built = build_model(config)
        model = self.built.model
        self.probe = keras.Model(model.inputs, [model.get_layer(name).output
                                                for name in self.built.hidden_outputs])

    def __call__(self, weights: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
        self.built.model.set_weights(weights)
        outputs = self.probe([x], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [keras.ops.convert_to_numpy(o) for o in outputs]
