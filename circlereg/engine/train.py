"""Stage 4: training, the compiled engine (`train.engine: compiled`, the default).

It trains a batch of replicas (seeds, strengths) of one model structure as a single
XLA-compiled TensorFlow graph: a `tf.while_loop` over epochs (and in each, loops over the
minibatch steps and the evaluation batches), `tf.vectorized_map` over the Keras model with the
replicas' weights stacked, and the Keras optimizer's update rules applied to the stacked
weights (Adam and friends are elementwise, so each replica's update is its own). The graph is
a pure function of the weights, optimizer state, lane settings and data (`LaneProgram`), so
one serves every worker thread. The reference engine, plain
`model.fit(..., validation_data=test)`, is fit.py; early stopping's lanes, early_stopping.py.

Both engines record what `model.fit` puts in History (`CURVES`): `loss`/`accuracy` from the
training forward pass of each epoch, `val_loss`/`val_accuracy` on the test set after the
update, evaluated in batches of `batch_size` as Keras does (which matters for a summed
activity penalty).

What determines a replica's numbers: its config (seed included) and the compiled program,
which XLA specialises to the batch's shape. Every batch therefore has exactly `LANES` lanes,
for every structure, whoever asks: a lone run is padded with copies of itself, a sweep's last
batch likewise. A replica's lane never mixes with the others, so its bits are the same
whatever its batch-mates, position, command, worker or backend.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np

from circlereg.config import LANES, setting
from circlereg.data import Split
from circlereg.engine.backend import compiling, keras, tf
from circlereg.engine.early_stopping import EarlyState, LaneEarlyStopping, lane_where
from circlereg.engine.model import (
    BUILDING,
    build_model,
    draw_key,
    random_layers,
    stateless_optimizer,
    train_call,
)
from circlereg.lanes import INPUTS
from circlereg.rundir import Result

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
# Every structure traces its own program by design; TensorFlow's "excessive retracing"
# warning about that is noise here.
tf.get_logger().setLevel("ERROR")


def _segments(epochs: int, parts: int = 8) -> list[int]:
    """The epoch loop in up to `parts` calls, so a progress bar moves."""
    size = -(-epochs // parts)
    return [min(size, epochs - start) for start in range(0, epochs, size)]


class LaneProgram:
    """The compiled training of one structure (`structure_key`), for `LANES` replicas at a
    time: pure functions of what they train. In: the stacked weights, non-trainable state,
    optimizer state and early-stopping bookkeeping (`Carry`), each lane's settings (`Lanes`:
    `lanes.SETTINGS`), and the data, from a batch's own variables (`Slot`); out: the new
    carry (written back to them) and the curves. Built (traced and
    compiled) once per structure and shared by every worker thread: nothing in it changes
    after it is built.

    Its size does not grow with the data: the minibatch steps of an epoch and the batches
    of an evaluation are `tf.while_loop`s over fixed-shape slices (plus one step for a last,
    shorter batch), and the data enter as arguments."""

    def __init__(self, config: dict, split: Split, traced=None):
        """`traced()` is called once the functions are traced, before XLA compiles them."""
        with BUILDING:
            self._build(config, split)
        if traced is not None:
            traced()
        with compiling():
            self._compile_here()

    def _build(self, config: dict, split: Split) -> None:
        train_cfg = config["train"]
        self.config = config
        self.epochs, self.batch_size = train_cfg["epochs"], train_cfg["batch_size"]
        self.shuffle = setting(config, "train.shuffle")
        self.dtype = train_cfg["dtype"]
        split = split.astype(self.dtype)
        self.data = Data(*(tf.constant(a) for a in (split.train_x, split.train_y,
                                                    split.test_x, split.test_y)))
        self.built = build_model(config)
        model = self.built.model
        self.random = random_layers(model)
        self.loss = keras.losses.BinaryCrossentropy(dtype=self.dtype)

        def stack(variables, prefix):
            return [keras.Variable(np.zeros((LANES, *v.shape), v.dtype), name=f"{prefix}_{i}")
                    for i, v in enumerate(variables)]

        # Stand-ins of the stacked shapes the optimizer is built on and maps to the carry's
        # tensors; the compiled functions never read them.
        self.stacked = stack(model.trainable_variables, "stacked")
        self.constraints = [v.constraint for v in model.trainable_variables]
        # model.get_weights() order, as (is trainable, index) into stacked / state
        trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
        state = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        self.weight_order = [(True, trainable[id(v)]) if id(v) in trainable else
                             (False, state[id(v)]) for v in model.weights]
        self.early = config["early_stopping"]
        self.stopping = LaneEarlyStopping(self.early, len(split.train_x), len(split.test_x),
                                          self.dtype) if self.early["enabled"] else None
        self.optimizer = stateless_optimizer(train_cfg)
        self.optimizer.build(self.stacked)
        # Moments and step count as built: every batch starts from them (and from the
        # learning rate as built, which nothing reads: each lane has its own, in `Lanes`).
        self.optimizer_start = [v.numpy() for v in self.optimizer.variables]
        # Each lane's learning rate in the dtype of the optimizer's own (Keras' floatx).
        self.dtypes = {"int32": np.int32, "float32": np.float32, "model": self.dtype,
                       "optimizer": self.optimizer._learning_rate.dtype}
        # The evaluation, traced once per data shape for both the epoch loop and the final
        # figures (each trace of a vectorized evaluation costs ~0.3 s); XLA inlines it.
        self.evaluate = tf.function(self._evaluate, autograph=False)
        # AutoGraph is off: the Python control flow here is all fixed at trace time, and
        # converting Keras' code costs more than half of the tracing.
        self.run = tf.function(self._run_slot, jit_compile=True, autograph=False)
        self.final = tf.function(self._final_slot, jit_compile=True, autograph=False)
        # One trace for every segment: the trip count is a tensor. (A Python int would let
        # XLA unroll the loop: minutes of compiling, and slower code.)
        self.segment = _segments(self.epochs)[0]
        zeros = tuple([np.zeros(v.shape, v.dtype) for v in variables]
                      for variables in (model.trainable_variables, model.non_trainable_variables))
        self._warm = _slot(*self._inputs([config], [zeros]), self.data)
        self.run.get_concrete_function(self._warm, tf.constant(0), tf.constant(0))
        self.final.get_concrete_function(self._warm)

    def _compile_here(self) -> None:
        """XLA-compile both functions side by side (compiling releases the GIL, so the
        final evaluation takes the other core: 0.6 s off a lone run). Zero epochs of zeros
        change nothing. With the compile cache on, programs compiled before (by any process)
        are loaded instead, and new ones are shared once compiled."""
        final = threading.Thread(target=self.final, args=(self._warm,))
        final.start()
        self.run(self._warm, tf.constant(0), tf.constant(0))
        final.join()
        del self._warm

    @property
    def shape(self) -> dict:
        return {"engine": "compiled", "lanes": LANES, "segment_epochs": self.segment}

    def train(self, configs: list[dict], starts: list, progress=None) -> list[Result]:
        """Train up to LANES replicas of this structure from their initial states
        (`model.initial_state` of each config); results in the order given. Safe to call
        from several threads at once: each call has its own slot."""
        carry, lanes = self._inputs(configs, starts)
        start = time.perf_counter()
        slot = _slot(carry, lanes, self.data)
        done, parts = 0, []
        for count in _segments(self.epochs):
            curves = self.run(slot, tf.constant(done), tf.constant(count))
            parts.append([c[:count] for c in curves])
            done += count
            if progress is not None:
                progress(count * len(configs))
        carry = slot.carry
        if self.early["enabled"] and self.early["restore_best_weights"]:
            # as EarlyStopping.on_train_end
            for variable, best in zip(carry.weights + carry.state, carry.early.best_weights):
                variable.assign(best)
        curves = [tf.concat(part, axis=0).numpy() for part in zip(*parts)]
        (train_loss, train_acc), (test_loss, test_acc) = self.final(slot)
        seconds = (time.perf_counter() - start) / len(configs)
        stacked, state = [v.numpy() for v in carry.weights], [v.numpy() for v in carry.state]
        weights = [(stacked if is_trainable else state)[i] for is_trainable, i in
                   self.weight_order]
        stopped = carry.early.stopped.numpy() if self.stopping else np.full(LANES, -1)
        sums = {"train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
                "test_accuracy": test_acc}
        return unstack(configs, curves, {k: v.numpy() for k, v in sums.items()}, weights,
                       stopped, (len(self.data.train_x), len(self.data.test_x)), self.dtype,
                       seconds, self.shape)

    def _inputs(self, configs: list[dict], starts: list) -> tuple[Carry, Lanes]:
        """The carry and lane settings of a batch: up to LANES replicas, padded with copies
        of the first (whose results `train` drops)."""
        pad = LANES - len(configs)
        starts, configs = starts + starts[:1] * pad, configs + configs[:1] * pad
        weights, state = ([tf.constant(np.stack(values)) for values in zip(*part)]
                          for part in zip(*starts))
        carry = Carry(weights, state, [tf.constant(v) for v in self.optimizer_start],
                      self.stopping.start(weights + state) if self.stopping else ())
        drawn = [layer.name for layer in self.random]
        return carry, Lanes(*(tf.constant(np.array([i.read(c, drawn) for c in configs],
                                                   self.dtypes[i.dtype]).reshape(
            (LANES,) if i.items is None else (LANES, -1, *i.items))) for i in INPUTS))

    def _forward(self, weights, state, strength, x, y, training, key=None, randoms=None):
        """One replica on one batch: (loss including penalties, number correct, new state).

        Model.stateless_call, with the penalties' strength variables mapped to this
        replica's strengths as its weights are mapped to its weights; a model with dropout
        or noise draws them from `key` (`model.draw_key`) while training, at this
        replica's rates and amounts (`randoms`)."""
        model = self.built.model
        mapping = [*zip(model.trainable_variables, weights),
                   *zip(model.non_trainable_variables, state),
                   *((p.strengths, strength[i]) for i, p in enumerate(self.built.penalties))]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            if training and self.random:
                pred = train_call(model, x, key, *randoms)
            else:
                pred = model.call(x, training=training)
            losses = model.losses
        state = [scope.get_current_value(v) for v in model.non_trainable_variables]
        # The same reduction and sum as Keras' compute_loss, so rounding matches model.fit.
        loss = self.loss(y, pred)
        if losses:
            loss = keras.ops.sum([loss, *losses])
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.cast(pred > 0.5, y.dtype), y), y.dtype))
        return loss, correct, state

    def _evaluate(self, weights, state, strengths, x, y):
        """model.evaluate's running sums over (x, y) in batches of `batch_size`: batch losses
        weighted by batch size, and hits; one sum per lane."""
        def batch(x, y):
            def one(args):
                w, st, s, x, y = args
                loss, hits, _ = self._forward(w, st, s, x, y, training=False)
                return loss, hits
            return tf.vectorized_map(one, (weights, state, strengths, _lanes(x), _lanes(y)))

        def add(sums, step, x, y):
            loss, hits = batch(x, y)
            return sums[0] + loss * x.shape[0], sums[1] + hits

        return _batched(x.shape[0], self.batch_size, (x, y), add,
                        (tf.zeros(LANES, self.dtype), tf.zeros(LANES, self.dtype)))

    def _step(self, carry, lanes, epoch, step, x, y, frozen):
        """One optimizer step of every lane on its batch (x, y: lanes first)."""
        def one(args):
            w, st, s, seed, x, y, randoms = args
            # Each replica's gradient inside the vectorized function: a gradient taken
            # through it would make XLA treat the weights as compile-time constants,
            # recompiling on every call.
            key = draw_key(seed, epoch, step) if self.random else None
            with tf.GradientTape() as tape:
                tape.watch(w)
                loss, hits, state = self._forward(w, st, s, x, y, training=True, key=key,
                                                  randoms=randoms)
            return loss, hits, state, tape.gradient(loss, w)

        loss, hits, state, grads = tf.vectorized_map(one, (
            carry.weights, carry.state, lanes.strengths, lanes.seeds, x, y,
            (lanes.rates, lanes.amounts) if self.random else ()))
        weights, optimizer = self.optimizer.lane_apply(carry.optimizer, grads, carry.weights,
                                                       lanes.learning_rates)
        weights = [w if c is None else tf.vectorized_map(c, w)  # as Keras' optimizer does
                   for w, c in zip(weights, self.constraints)]
        if frozen is not None:  # early-stopped replicas keep their weights
            weights = [lane_where(frozen, old, new)
                       for old, new in zip(carry.weights, weights)]
            state = [lane_where(frozen, old, new) for old, new in zip(carry.state, state)]
        return carry._replace(weights=weights, state=state, optimizer=optimizer), loss, hits

    def _train_epoch(self, carry, lanes, data, epoch, frozen):
        tx, ty = data.train_x, data.train_y
        n_train = tx.shape[0]
        zeros = (tf.zeros(LANES, self.dtype), tf.zeros(LANES, self.dtype))
        if self.batch_size >= n_train:  # one full batch, in order, as in the study
            carry, loss, hits = self._step(carry, lanes, epoch, 0, _lanes(tx), _lanes(ty),
                                           frozen)
            return carry, (zeros[0] + loss * n_train, zeros[1] + hits)
        # Minibatches, in train.shuffle's order: a permutation per epoch and replica
        # (each_epoch), epoch 0's replayed (once), or the data's own (off).
        if self.shuffle == "off":
            order = tf.tile(tf.range(n_train)[None], [LANES, 1])
        else:
            drawn = epoch if self.shuffle == "each_epoch" else tf.zeros_like(epoch)
            order = tf.vectorized_map(lambda s: tf.argsort(tf.random.stateless_uniform(
                [n_train], tf.stack([s, drawn]))), lanes.seeds)

        def add(sums_and_carry, step, rows):
            (loss_sum, correct), carry = sums_and_carry
            idx = tf.transpose(rows)  # lanes first: each lane's batch of shuffled indices
            carry, loss, hits = self._step(carry, lanes, epoch, step, tf.gather(tx, idx),
                                           tf.gather(ty, idx), frozen)
            return (loss_sum + loss * idx.shape[1], correct + hits), carry

        sums, carry = _batched(n_train, self.batch_size, (tf.transpose(order),), add,
                               (zeros, carry))
        return carry, sums

    def _run(self, carry, lanes, data, first_epoch, count):
        """`count` (at most `self.segment`) epochs from `first_epoch`: the new carry, and
        the curves, `self.segment` long (the tail unused)."""
        stopping = self.stopping

        def body(i, carry, curves):
            epoch = first_epoch + i
            frozen = tf.not_equal(carry.early.stopped, -1) if stopping else None
            carry, (loss, accuracy) = self._train_epoch(carry, lanes, data, epoch, frozen)
            val_loss, val_accuracy = self.evaluate(carry.weights, carry.state,
                                                   lanes.strengths, data.test_x, data.test_y)
            values = (loss, accuracy, val_loss, val_accuracy)
            if stopping:
                carry = stopping.update(carry, epoch, dict(zip(CURVES, values)))
            return i + 1, carry, [c.write(i, v) for c, v in zip(curves, values)]

        curves = [tf.TensorArray(self.dtype, size=self.segment) for _ in CURVES]
        _, carry, curves = tf.while_loop(lambda i, *_: i < count, body,
                                         (tf.constant(0), carry, curves))
        return carry, [c.stack() for c in curves]

    def _run_slot(self, slot, first_epoch, count):
        """`_run` on a slot (`_slot`): reads it, writes the new carry back, returns the
        curves."""
        carry, lanes, data = _read(slot)
        carry, curves = self._run(carry, lanes, data, first_epoch, count)
        tf.nest.map_structure(lambda variable, value: variable.assign(value), slot.carry,
                              carry)
        return curves

    def _final_slot(self, slot):
        return self._final(*_read(slot))

    def _final(self, carry, lanes, data):
        w, st, s = carry.weights, carry.state, lanes.strengths
        return (self.evaluate(w, st, s, data.train_x, data.train_y),
                self.evaluate(w, st, s, data.test_x, data.test_y))


class Carry(NamedTuple):
    """What training carries from step to step, lanes first: the stacked weights and
    non-trainable state, the optimizer's variables (`optimizer.variables` order), and early
    stopping's bookkeeping (`EarlyState`), or () without early stopping."""

    weights: list
    state: list
    optimizer: list
    early: EarlyState | tuple


# Each lane's settings, one field per input of `lanes.SETTINGS` (lanes first): penalty
# strengths (l1, l2) per regularizer, train.seed, each random layer's rate and scale or
# stddev, the learning rate.
Lanes = NamedTuple("Lanes", [(i.name, tf.Tensor) for i in INPUTS])


class Data(NamedTuple):
    train_x: tf.Tensor
    train_y: tf.Tensor
    test_x: tf.Tensor
    test_y: tf.Tensor


class Slot(NamedTuple):
    """One batch's own variables (`_slot`)."""

    carry: Carry
    lanes: Lanes
    data: Data


def _slot(carry: Carry, lanes: Lanes, data: Data) -> Slot:
    """One batch's own variables holding its carry, lane settings and data: what a call of
    the program reads and updates. The program takes them as arguments, so one trace and
    compile serves every batch; and variables, not tensors, so that programs running in
    several worker threads at once run side by side. (Called with tensors in and out, two
    programs took turns on TensorFlow's one intra-op thread: a 220-run sweep took 30 s
    instead of 23 s on two workers.)"""
    return tf.nest.map_structure(tf.Variable, Slot(carry, lanes, data))


def _read(slot):
    return tf.nest.map_structure(lambda variable: variable.read_value(), slot)


def _lanes(x):
    # Each lane gets its own copy of a batch: vectorized_map then turns Dense's matmul into
    # one batched matmul instead of transposes around a wide one (about 1.8x faster).
    return tf.tile(x[None], [LANES] + [1] * len(x.shape))


def _batched(n: int, size: int, arrays: tuple, add, start):
    """Fold `add(acc, step, *batch)` over consecutive batches of `size` rows of `arrays`, step
    being the batch's index: the full batches in a `tf.while_loop` over fixed-size slices,
    then the last, shorter batch; so the traced program holds at most two copies of `add`,
    whatever `n`."""
    full, rest = divmod(n, size)
    if full == 1 and not rest:
        return add(start, 0, *arrays)
    acc = start
    if full:
        def body(i, acc):
            batch = [tf.slice(a, [i * size] + [0] * (len(a.shape) - 1),
                              [size] + list(a.shape[1:])) for a in arrays]
            return i + 1, add(acc, i, *batch)

        _, acc = tf.while_loop(lambda i, _: i < full, body, (tf.constant(0), acc))
    if rest:
        acc = add(acc, full, *(a[full * size:] for a in arrays))
    return acc


def unstack(configs: list[dict], curves: list[np.ndarray], sums: dict,
            weights: list[np.ndarray], stopped: np.ndarray, sizes: tuple[int, int],
            dtype: str, seconds: float, shape: dict) -> list[Result]:
    """A batch's stacked arrays (lanes first; curves epochs first) -> one Result per config,
    padding lanes dropped. Keras' Mean metrics divide their running totals once; so do we."""
    real = np.dtype(dtype).type
    n_train, n_test = real(sizes[0]), real(sizes[1])
    curves = [c.T / n for c, n in zip(curves, (n_train, n_train, n_test, n_test))]
    final = {k: v / (n_train if k.startswith("train") else n_test) for k, v in sums.items()}
    epochs = curves[0].shape[1]
    results = []
    for r, config in enumerate(configs):
        ran = epochs if stopped[r] < 0 else stopped[r] + 1  # nothing after the stop
        results.append(Result(
            seed=config["train"]["seed"],
            history={name: curve[r][:ran] for name, curve in zip(CURVES, curves)},
            final={k: float(v[r]) for k, v in final.items()},
            weights=[w[r] for w in weights],
            train_seconds=seconds,
            stopped_epoch=None if stopped[r] < 0 else int(stopped[r]) + 1,
            shape=shape,
        ))
    return results
