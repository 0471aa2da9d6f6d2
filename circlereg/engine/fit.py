"""The reference engine, `train.engine: fit`: the study's own `model.fit(...,
validation_data=test)` loop on the same initial weights as the compiled engine (train.py),
recording the same curves (`train.CURVES`). Also what the installed Keras' `model.fit` does
with the training order: `fit_order` pins it to `train.shuffle`, and `seeded_fit_shuffle`
records what a seeded `fit(shuffle=True)` would have done.
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np

from circlereg.config import setting
from circlereg.data import Split
from circlereg.engine.backend import keras
from circlereg.engine.model import build_model, make_optimizer
from circlereg.engine.train import CURVES
from circlereg.rundir import Result

# Held by whatever uses Keras' global state: the fit engine (floatx, the global seed) and the
# shuffle probe (the global seed), which a worker's writer thread may run beside a fit.
_KERAS_GLOBALS = threading.Lock()


def train_fit(config: dict, split: Split) -> Result:
    """The reference engine: the study's own `model.fit` loop, on the same initial weights.

    The one place that touches Keras' global floatx: compile() wraps the loss in a tracker
    of the global float type, with no argument to set it, so a float64 fit sets it for its
    own duration, under a lock."""
    with _KERAS_GLOBALS:
        saved = keras.config.floatx()
        keras.config.set_floatx(config["train"]["dtype"])
        try:
            return _train_fit(config, split)
        finally:
            keras.config.set_floatx(saved)


def _train_fit(config: dict, split: Split) -> Result:
    train_cfg = config["train"]
    model = build_model(config).model
    model.compile(loss=keras.losses.BinaryCrossentropy(dtype=train_cfg["dtype"]),
                  optimizer=make_optimizer(train_cfg),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy",
                                                        dtype=train_cfg["dtype"])])
    # The study's global seeding; only this reference engine does it (the compiled engine
    # derives everything from train.seed). The training order does not come from it: see
    # `fit_order`.
    keras.utils.set_random_seed(train_cfg["seed"])
    early = config["early_stopping"]
    callbacks = [keras.callbacks.EarlyStopping(
        monitor=early["monitor"], patience=early["patience"], min_delta=early["min_delta"],
        restore_best_weights=early["restore_best_weights"])] if early["enabled"] else []
    start = time.perf_counter()
    history = model.fit(**fit_order(config, split), validation_data=(split.test_x, split.test_y),
                        epochs=train_cfg["epochs"], verbose=0, callbacks=callbacks)
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
        stopped_epoch=callbacks[0].stopped_epoch + 1 if callbacks and callbacks[0].stopped_epoch
        else None,
        shape={"engine": "fit", "lanes": 1},
    )


def fit_order(config: dict, split: Split) -> dict:
    """model.fit's training arguments, ordered as `train.shuffle` says, whatever the installed
    Keras does: a seeded Keras 3 fit(shuffle=True) replays one permutation every epoch (the
    shuffle trap, docs/toolbox.md). Orders are drawn with NumPy from train.seed, as Keras 2.2
    did, independently of the compiled engine's (so the fidelity check compares two streams).

    One full batch per epoch keeps the study's own call, fit(shuffle=True): the order within
    a batch changes only rounding there."""
    x, y, batch = split.train_x, split.train_y, config["train"]["batch_size"]
    shuffle, seed = setting(config, "train.shuffle"), config["train"]["seed"]
    if shuffle == "off":
        return {"x": x, "y": y, "batch_size": batch, "shuffle": False}
    if batch >= len(x):
        return {"x": x, "y": y, "batch_size": batch, "shuffle": True}
    if shuffle == "once":
        order = _permutation(seed, 0, len(x))
        return {"x": x[order], "y": y[order], "batch_size": batch, "shuffle": False}
    orders = EpochOrders(x, y, batch, seed)
    return {"x": orders, "steps_per_epoch": orders.steps, "shuffle": False}


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, epoch)).permutation(n)


class EpochOrders(keras.utils.PyDataset):
    """The training points in minibatches, in a fresh permutation every epoch (`fit_order`):
    one endless stream whose batch `i` is step `i % steps` of epoch `i // steps`, read by
    fit with steps_per_epoch. A pure function of `i`, because Keras' tf.data prefetch reads
    ahead of its on_epoch_end calls."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.steps = -(-len(x) // batch_size)
        self._orders: dict[int, np.ndarray] = {}

    @property
    def num_batches(self) -> None:
        return None  # endless: fit's steps_per_epoch cuts it into epochs

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = divmod(index, self.steps)
        if epoch not in self._orders:
            self._orders = {epoch: _permutation(self.seed, epoch, len(self.x))}
        rows = self._orders[epoch][step * self.batch_size:(step + 1) * self.batch_size]
        return self.x[rows], self.y[rows]


@functools.cache
def seeded_fit_shuffle() -> str:
    """How the installed Keras orders the minibatches of `model.fit(shuffle=True)` after
    `keras.utils.set_random_seed`, as every reproducible script calls it: 'once' when it
    replays one permutation every epoch (Keras 3.15), 'each_epoch' when it draws a new one
    (documented; Keras 2.2). Recorded in environment.json; circlereg's engines do not rely on
    it (`train.shuffle` pins the order).

    Probe: 16 points in batches of 4 for 3 epochs."""
    points = np.arange(16, dtype="float32")[:, None]
    epochs = batches_fit_trains({"x": points, "y": np.zeros_like(points), "batch_size": 4,
                                 "shuffle": True}, epochs=3, seed=0)
    if [len(e) for e in epochs] != [4] * 3 or sorted(sum(epochs[0], [])) != list(range(16)):
        raise RuntimeError(f"unrecognised Keras fit order (probe saw {epochs})")
    return "once" if epochs[0] == epochs[1] == epochs[2] else "each_epoch"


def batches_fit_trains(arguments: dict, epochs: int, seed: int) -> list[list[list[int]]]:
    """The points of every batch `model.fit(**arguments)` trains on, per epoch, after
    `keras.utils.set_random_seed(seed)`: a point is named by its first input, an integer.
    (Eagerly, so each batch can be noted; the data pipeline is the same as compiled.)"""
    seen = []

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1, kernel_initializer="zeros")

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            seen.append(np.asarray(data[0])[:, 0].astype(int).tolist())
            return {"batches": len(seen)}

    with _KERAS_GLOBALS:
        model = Recorder()
        model.compile(loss="mse", run_eagerly=True)
        keras.utils.set_random_seed(seed)
        model.fit(**arguments, epochs=epochs, verbose=0)
    steps = len(seen) // epochs
    return [seen[e * steps:(e + 1) * steps] for e in range(epochs)]
