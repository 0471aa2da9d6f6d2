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

import collections
import hashlib
import itertools
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from circlereg.config import config_hash  # noqa: E402
from circlereg.data import Split  # noqa: E402
from circlereg.model import (  # noqa: E402
    BUILD_LOCK,
    BuiltModel,
    build_model,
    initial_weights,
    make_optimizer,
)

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
# Every ReplicaTrainer traces its own functions by design; TensorFlow's "excessive retracing"
# warning about that is noise here.
tf.get_logger().setLevel("ERROR")


@dataclass
class Result:
    """One trained replica: its per-epoch curves, final evaluation and weights."""

    seed: int
    history: dict[str, np.ndarray]  # each CURVES name -> (epochs run,)
    final: dict[str, float]  # train_loss, train_accuracy, test_loss, test_accuracy
    weights: list[np.ndarray]  # in model.get_weights() order
    train_seconds: float
    stopped_epoch: int | None = None  # 1-based epoch early stopping ended the run at


def initial_state(config: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What Keras initialises for this config's seed (the same in both engines): trainable
    values, and non-trainable ones (batch-norm statistics, dropout/noise seed states)."""
    with BUILD_LOCK, floatx(config["train"]["dtype"]):  # floatx is global: under the lock
        trainable, non_trainable = initial_weights(config)
        return [v.numpy() for v in trainable], [v.numpy() for v in non_trainable]


def structure_key(config: dict) -> str:
    """Configs with equal keys can train as replicas of one graph: everything but the
    seed and the penalty strengths."""
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
    """tf.vectorized_map over the replica axis; a lone replica (a plain `circlereg run`) is
    called directly, with nothing to vectorize."""
    if tf.nest.flatten(elems)[0].shape[0] == 1:
        out = fn(tf.nest.map_structure(lambda t: t[0], elems))
        return tf.nest.map_structure(lambda t: tf.expand_dims(t, 0), out)
    return tf.vectorized_map(fn, elems)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass
class Chunk:
    """Replicas of one structure_key trained together in one compiled graph of `capacity`
    replicas (padded when fewer)."""

    configs: list[dict]
    split: Split
    capacity: int


def train_compiled(configs: list[dict], split: Split, progress=None, chunk: int = 16,
                   workers: int = 2, capacity: int | None = None) -> list[Result]:
    """Train replicas of any structures on one split; results in the order given.

    Replicas sharing a structure_key train in chunks of `chunk`. A replica's result does
    not depend on which chunk it trains in, only on the chunk's shape: every chunk is padded
    to `capacity` replicas (default: min(chunk, replicas of its structure)), so a sweep that
    passes the same capacity gets the same numbers however its replicas are split (resumed,
    or spread over Ray).
    """
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(structure_key(config), []).append(index)
    chunks, members = [], []
    for indices in groups.values():
        size = capacity or min(chunk, len(indices))
        for start in range(0, len(indices), size):
            members.append(indices[start:start + size])
            chunks.append(Chunk([configs[i] for i in members[-1]], split, size))
    results: list[Result | None] = [None] * len(configs)
    for index, trained in train_chunks(chunks, progress, workers):
        for i, result in zip(members[index], trained):
            results[i] = result
    return results


def train_chunks(chunks: list[Chunk], progress=None,
                 workers: int = 2) -> Iterator[tuple[int, list[Result]]]:
    """Train chunks (of any structures), `workers` at a time; yields (chunk index, results)
    as each finishes. Small graphs, one per core, keep a core's caches warm, which beats one
    wide graph. Initial weights are built ahead, in one thread, while earlier chunks train.

    Building a trainer (tracing and compiling) costs about as much as training a chunk, so
    a free worker takes a chunk an idle trainer fits; else it builds a trainer for a
    structure no worker is on, or one with more chunks waiting than trainers busy on it;
    else it waits for a trainer to come free.

    `progress(replica_epochs)` is called as segments of each chunk's epoch loop finish.
    """
    keys = [_trainer_key(chunk) for chunk in chunks]
    # Expected training order (structures interleaved), so initial weights are ready in time.
    by_key: dict[tuple, list[int]] = {}
    for index, key in enumerate(keys):
        by_key.setdefault(key, []).append(index)
    order = [i for batch in itertools.zip_longest(*by_key.values()) for i in batch
             if i is not None]
    pending, busy = list(order), collections.Counter()
    changed, finished, stop = threading.Condition(), queue.Queue(), threading.Event()

    def take() -> tuple[int, ReplicaTrainer | None] | None:
        """The next chunk, with an idle trainer that fits it (None: build one)."""
        with changed:
            while not stop.is_set() and pending:
                with _IDLE_LOCK:
                    index = next((i for i in pending if _IDLE.get(keys[i])), None)
                    trainer = _IDLE[keys[index]].pop() if index is not None else None
                if index is None:  # build a trainer: first for a structure nobody is on
                    index = next((i for i in pending if not busy[keys[i]]), None)
                if index is None:  # or where more chunks wait than busy trainers will take
                    waiting = collections.Counter(keys[i] for i in pending)
                    index = next((i for i in pending if waiting[keys[i]] > busy[keys[i]]), None)
                if index is not None:
                    pending.remove(index)
                    busy[keys[index]] += 1
                    return index, trainer
                changed.wait()
            return None

    def work() -> None:
        while (taken := take()) is not None:
            index, trainer = taken
            chunk = chunks[index]
            try:
                trainer = trainer or ReplicaTrainer(chunk.configs[0], chunk.split,
                                                    chunk.capacity)
                results = trainer.train(chunk.configs, starts[index].result(), progress)
                _release(keys[index], trainer)
                finished.put((index, results, None))
            except BaseException as err:  # handed to the consuming thread, which raises it
                stop.set()
                finished.put((index, None, err))
                return
            finally:
                with changed:
                    busy[keys[index]] -= 1
                    changed.notify_all()

    with ThreadPoolExecutor(1) as builder:
        starts = {i: builder.submit(lambda c: [initial_state(x) for x in c.configs], chunks[i])
                  for i in order}
        threads = [threading.Thread(target=work, daemon=True)
                   for _ in range(min(workers, len(chunks)))]
        for thread in threads:
            thread.start()
        try:
            for _ in chunks:
                index, results, err = finished.get()
                if err is not None:
                    raise err
                yield index, results
        finally:  # done, interrupted or failed: start nothing new, let running chunks end
            with changed:
                stop.set()
                changed.notify_all()
            for future in starts.values():
                future.cancel()
            for thread in threads:
                thread.join()


# Compiled trainers kept for reuse by later chunks, sweeps and repeats in this process:
# tracing and compiling one costs seconds, training a chunk on it about as much.
_IDLE: dict[tuple, list[ReplicaTrainer]] = {}
_IDLE_LOCK = threading.Lock()
_IDLE_MAX = 8


def _trainer_key(chunk: Chunk) -> tuple:
    split = chunk.split
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in (
        split.train_x, split.train_y, split.test_x, split.test_y))).hexdigest()
    return structure_key(chunk.configs[0]), chunk.capacity, digest


def _release(key: tuple, trainer: ReplicaTrainer) -> None:
    with _IDLE_LOCK:
        _IDLE[key] = [*_IDLE.pop(key, []), trainer]  # now the most recently used
        while sum(map(len, _IDLE.values())) > _IDLE_MAX:  # the oldest key goes first
            oldest = next(k for k, idle in _IDLE.items() if idle)
            _IDLE[oldest].pop(0)
            if not _IDLE[oldest]:
                del _IDLE[oldest]


def _segments(epochs: int, parts: int = 8) -> list[int]:
    """The epoch loop in up to `parts` calls, so a progress bar moves."""
    size = -(-epochs // parts)
    return [min(size, epochs - start) for start in range(0, epochs, size)]


class ReplicaTrainer:
    """Room for `capacity` replicas of one model shape: their stacked weights, non-trainable
    state, strengths, seeds and early-stopping bookkeeping as variables, a Keras optimizer
    over the stacked weights, and the compiled epoch loop. Reused chunk after chunk, so it
    compiles once."""

    def __init__(self, config: dict, split: Split, capacity: int):
        # Keras reads its global floatx while building and tracing; other threads may be
        # building for another dtype.
        with BUILD_LOCK, floatx(config["train"]["dtype"]):
            self._setup(config, split, capacity)

    def _setup(self, config: dict, split: Split, capacity: int) -> None:
        train_cfg = config["train"]
        self.config, self.capacity = config, capacity
        self.epochs, self.batch_size = train_cfg["epochs"], train_cfg["batch_size"]
        self.dtype = train_cfg["dtype"]
        self.split = split.astype(self.dtype)
        self.built = build_model(config)
        model = self.built.model

        def stack(variables, prefix):
            return [keras.Variable(np.zeros((capacity, *v.shape), v.dtype), name=f"{prefix}_{i}")
                    for i, v in enumerate(variables)]

        self.stacked = stack(model.trainable_variables, "stacked")
        self.state = stack(model.non_trainable_variables, "state")
        self.constraints = [v.constraint for v in model.trainable_variables]
        # model.get_weights() order, as (is trainable, index) into stacked / state
        trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
        state = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        self.weight_order = [(True, trainable[id(v)]) if id(v) in trainable else
                             (False, state[id(v)]) for v in model.weights]
        n_regs = len(config["model"]["regularizers"])
        self.strengths = tf.Variable(tf.zeros((capacity, n_regs, 2), self.dtype))
        self.seeds = tf.Variable(tf.zeros(capacity, tf.int32))
        self.early = config["early_stopping"]
        if self.early["enabled"]:
            self.best = tf.Variable(tf.zeros(capacity, self.dtype))
            self.wait = tf.Variable(tf.zeros(capacity, tf.int32))
            self.stopped = tf.Variable(tf.zeros(capacity, tf.int32))  # -1: still training
            self.best_weights = stack(model.trainable_variables + model.non_trainable_variables,
                                      "best")
        self.optimizer = make_optimizer(train_cfg)
        self.optimizer.build(self.stacked)
        # Moments, step count and learning rate as built: restored before every chunk.
        self.optimizer_start = [v.numpy() for v in self.optimizer.variables]
        self.run = tf.function(self._run, jit_compile=True, autograph=False)
        # Separate calls: reads of the variables after a while_loop are not ordered after it.
        self.final = tf.function(self._final, jit_compile=True, autograph=False)
        self.restore = tf.function(self._restore_best, jit_compile=True, autograph=False)
        # AutoGraph is off: the Python control flow here is all fixed at trace time, and
        # converting Keras' code costs more than half of the tracing.
        # One trace for every segment: the trip count is a tensor. (A Python int would let
        # XLA unroll the loop: minutes of compiling, and slower code.)
        self.segment = _segments(self.epochs)[0]
        self.run.get_concrete_function(tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32))
        self.final.get_concrete_function()
        if self.early["enabled"] and self.early["restore_best_weights"]:
            self.restore.get_concrete_function()

    def train(self, configs: list[dict], starts: list, progress) -> list[Result]:
        pad = self.capacity - len(configs)
        starts = starts + [starts[0]] * pad  # padding replicas repeat the first; dropped below
        for variables, index in ((self.stacked, 0), (self.state, 1)):
            for i, variable in enumerate(variables):
                variable.assign(np.stack([s[index][i] for s in starts]))
        strengths = [[[r["l1"], r["l2"]] for r in c["model"]["regularizers"]] for c in configs]
        self.strengths.assign(np.array(strengths + strengths[:1] * pad, self.dtype)
                              .reshape(self.strengths.shape))
        seeds = [c["train"]["seed"] for c in configs]
        self.seeds.assign(seeds + seeds[:1] * pad)
        for variable, value in zip(self.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        if self.early["enabled"]:
            worst = np.inf if self.early["monitor"].endswith("loss") else -np.inf
            self.best.assign(np.full(self.capacity, worst, self.dtype))
            self.wait.assign(np.zeros(self.capacity, "int32"))
            self.stopped.assign(np.full(self.capacity, -1, "int32"))

        start = time.perf_counter()
        done, parts = 0, []
        for count in _segments(self.epochs):
            parts.append([c[:count] for c in self.run(tf.constant(done), tf.constant(count))])
            done += count
            if progress is not None:
                progress(count * len(configs))
        if self.early["enabled"] and self.early["restore_best_weights"]:
            self.restore()  # as EarlyStopping.on_train_end, stopped early or not
        curves = [tf.concat(part, axis=0) for part in zip(*parts)]
        (train_loss, train_acc), (test_loss, test_acc) = self.final()
        seconds = (time.perf_counter() - start) / len(configs)
        # Keras' Mean metrics divide their running totals once; so do we, on the host.
        real = np.dtype(self.dtype).type
        n_train, n_test = real(len(self.split.train_x)), real(len(self.split.test_x))
        sizes = (n_train, n_train, n_test, n_test)
        curves = [c.numpy().T / n for c, n in zip(curves, sizes)]  # -> (R, epochs)
        train_loss, train_acc = (t.numpy() / n_train for t in (train_loss, train_acc))
        test_loss, test_acc = (t.numpy() / n_test for t in (test_loss, test_acc))
        stacked = [v.numpy() for v in self.stacked]
        state = [v.numpy() for v in self.state]
        stopped = self.stopped.numpy() if self.early["enabled"] else np.full(len(configs), -1)
        results = []
        for r, config in enumerate(configs):
            ran = self.epochs if stopped[r] < 0 else stopped[r] + 1  # nothing after the stop
            results.append(Result(
                seed=config["train"]["seed"],
                history={name: curve[r][:ran] for name, curve in zip(CURVES, curves)},
                final={"train_loss": float(train_loss[r]),
                       "train_accuracy": float(train_acc[r]),
                       "test_loss": float(test_loss[r]), "test_accuracy": float(test_acc[r])},
                weights=[(stacked if is_trainable else state)[i][r]
                         for is_trainable, i in self.weight_order],
                train_seconds=seconds,
                stopped_epoch=None if stopped[r] < 0 else int(stopped[r]) + 1,
            ))
        return results

    def _forward(self, weights, state, strength, x, y, training):
        """One replica on one batch: (loss including penalties, number correct, new state)."""
        with bound_strengths(self.built, strength):
            pred, state, losses = self.built.model.stateless_call(
                list(weights), list(state), x, training=training, return_losses=True)
        # The same reduction and sum as Keras' compute_loss, so rounding matches model.fit.
        loss = keras.losses.BinaryCrossentropy()(y, pred)
        if losses:
            loss = keras.ops.sum([loss, *losses])
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.cast(pred > 0.5, y.dtype), y), y.dtype))
        return loss, correct, state

    def _per_replica(self, array: np.ndarray) -> tf.Tensor:
        # Each replica gets its own copy of the data: vectorized_map then turns Dense's matmul
        # into one batched matmul instead of transposes around a wide one (about 1.8x faster).
        return tf.constant(np.repeat(array[None], self.capacity, axis=0))

    def _evaluate(self, x, y):
        """model.evaluate's running sums: batch losses weighted by batch size, hit count."""
        def one(args):
            w, st, s, x, y = args
            loss_sum, correct = 0.0, 0.0
            for start, stop in _chunks(x.shape[0], self.batch_size):
                loss, hits, _ = self._forward(w, st, s, x[start:stop], y[start:stop],
                                              training=False)
                loss_sum += loss * (stop - start)
                correct += hits
            return loss_sum, correct
        return replica_map(one, ([v.value for v in self.stacked], [v.value for v in self.state],
                                 self.strengths, self._per_replica(x), self._per_replica(y)))

    def _train_epoch(self, epoch, frozen):
        tx, ty = self.split.train_x, self.split.train_y
        n_train = len(tx)
        steps = _chunks(n_train, self.batch_size)
        loss_sum = tf.zeros(self.capacity, self.dtype)
        correct = tf.zeros(self.capacity, self.dtype)
        if len(steps) > 1:  # minibatches: reshuffle per epoch and replica, like fit(shuffle=True)
            order = replica_map(lambda s: tf.argsort(tf.random.stateless_uniform(
                [n_train], tf.stack([s, epoch]))), self.seeds)
        else:
            order = tf.zeros((self.capacity, 1), tf.int32)
        for start, stop in steps:
            before = [v.value for v in self.stacked + self.state]

            def one(args, start=start, stop=stop):
                w, st, s, idx, x, y = args
                if len(steps) > 1:
                    x, y = tf.gather(x, idx[start:stop]), tf.gather(y, idx[start:stop])
                # Each replica's gradient inside the vectorized function: a gradient taken
                # through it would make XLA treat the weights as compile-time constants,
                # recompiling on every call.
                with tf.GradientTape() as tape:
                    tape.watch(w)
                    loss, hits, state = self._forward(w, st, s, x, y, training=True)
                return loss, hits, state, tape.gradient(loss, w)

            loss, hits, state, grads = replica_map(one, (
                [v.value for v in self.stacked], [v.value for v in self.state], self.strengths,
                order, self._per_replica(tx), self._per_replica(ty)))
            self.optimizer.apply(grads, self.stacked)
            for variable, value in zip(self.state, state):
                variable.assign(value)
            for variable, constraint in zip(self.stacked, self.constraints):
                if constraint is not None:  # what Keras' optimizer does after each update
                    variable.assign(replica_map(constraint, variable.value))
            if frozen is not None:  # early-stopped replicas keep their weights
                for variable, old in zip(self.stacked + self.state, before):
                    variable.assign(_where(frozen, old, variable.value))
            loss_sum += loss * (stop - start)
            correct += hits
        return loss_sum, correct

    def _early_stopping(self, epoch, curves):
        """keras.callbacks.EarlyStopping.on_epoch_end, for every replica at once."""
        n_train, n_test = len(self.split.train_x), len(self.split.test_x)
        sums = dict(zip(CURVES, curves))
        size = n_test if self.early["monitor"].startswith("val_") else n_train
        current = sums[self.early["monitor"]] / size
        running = tf.equal(self.stopped, -1)
        delta = self.early["min_delta"]
        if self.early["monitor"].endswith("loss"):
            improved = current + delta < self.best
        else:
            improved = current - delta > self.best
        improved = improved & running
        self.best.assign(tf.where(improved, current, self.best))
        wait = tf.where(improved, 0, tf.where(running, self.wait + 1, self.wait))
        self.wait.assign(wait)
        if self.early["restore_best_weights"]:
            for best, variable in zip(self.best_weights, self.stacked + self.state):
                best.assign(_where(improved, variable.value, best.value))
        stop = running & ~improved & (wait >= self.early["patience"]) & (epoch > 0)
        self.stopped.assign(tf.where(stop, epoch, self.stopped))

    def _run(self, first_epoch, count):
        """`count` (at most `self.segment`) epochs from `first_epoch`; weights and optimizer
        state live in variables. Returns the curves, `self.segment` long (the tail unused)."""
        test_x, test_y = self.split.test_x, self.split.test_y
        early = self.early["enabled"]

        def body(i, curves):
            epoch = first_epoch + i
            frozen = tf.not_equal(self.stopped, -1) if early else None
            loss, accuracy = self._train_epoch(epoch, frozen)
            val_loss, val_accuracy = self._evaluate(test_x, test_y)
            values = (loss, accuracy, val_loss, val_accuracy)
            if early:
                self._early_stopping(epoch, values)
            return i + 1, [c.write(i, v) for c, v in zip(curves, values)]

        curves = [tf.TensorArray(self.dtype, size=self.segment) for _ in CURVES]
        _, curves = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), curves))
        return [c.stack() for c in curves]

    def _restore_best(self):
        for variable, best in zip(self.stacked + self.state, self.best_weights):
            variable.assign(best.value)

    def _final(self):
        return (self._evaluate(self.split.train_x, self.split.train_y),
                self._evaluate(self.split.test_x, self.split.test_y))


def _where(mask, a, b):
    """Per-replica choice between two stacked tensors: a where mask (shape [R]), else b."""
    mask = tf.reshape(mask, [-1] + [1] * (len(a.shape) - 1))
    return tf.where(mask, a, b)


def train_fit(config: dict, split: Split) -> Result:
    """The reference engine: the study's own `model.fit` loop."""
    with floatx(config["train"]["dtype"]):
        return _train_fit(config, split)


def _train_fit(config: dict, split: Split) -> Result:
    train_cfg = config["train"]
    model = build_model(config, seed=train_cfg["seed"]).model
    model.compile(loss="binary_crossentropy", optimizer=make_optimizer(train_cfg),
                  metrics=["accuracy"])
    early = config["early_stopping"]
    callbacks = [keras.callbacks.EarlyStopping(
        monitor=early["monitor"], patience=early["patience"], min_delta=early["min_delta"],
        restore_best_weights=early["restore_best_weights"])] if early["enabled"] else []
    start = time.perf_counter()
    history = model.fit(split.train_x, split.train_y, validation_data=(split.test_x, split.test_y),
                        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"], verbose=0,
                        callbacks=callbacks)
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
    )


def train(config: dict, split: Split) -> Result:
    if config["train"]["engine"] == "fit":
        return train_fit(config, split)
    return train_compiled([config], split)[0]


class ActivationProbe:
    """One model of a config's shape, built once and reused across its replicas: `hold` a
    replica (its weights and penalty strengths), then read each hidden layer's activations
    (after its activation function) or save the model."""

    def __init__(self, config: dict):
        self.built = build_model(config)
        model = self.built.model
        self.probe = keras.Model(model.inputs, [model.get_layer(name).output
                                                for name in self.built.hidden_outputs])

    def hold(self, config: dict, weights: list[np.ndarray]) -> keras.Model:
        """The model, now with this replica's weights and strengths (model.keras saves them)."""
        self.built.model.set_weights(weights)
        for penalty, reg in zip(self.built.penalties, config["model"]["regularizers"]):
            penalty.l1, penalty.l2 = reg["l1"], reg["l2"]
        return self.built.model

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.probe([x], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [keras.ops.convert_to_numpy(o) for o in outputs]
