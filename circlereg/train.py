"""Stage 4: training. Two engines over the same Keras model.

`compiled` trains a batch of replicas (seeds, strengths) of one model structure as a single
XLA-compiled TensorFlow graph: a `tf.while_loop` over epochs, `tf.vectorized_map` over the
Keras model with the replicas' weights stacked, and the Keras optimizer applied to the stacked
weights (Adam and friends are elementwise, so each replica's update is its own). `fit` is the
reference: plain `model.fit(..., validation_data=test)`.

Both record what `model.fit` puts in History: `loss`/`accuracy` from the training forward pass
of each epoch, `val_loss`/`val_accuracy` on the test set after the update, evaluated in
batches of `batch_size` as Keras does (which matters for a summed activity penalty).

What determines a replica's numbers: its config (seed included) and the compiled program,
which XLA specialises to the batch's shape. Every batch therefore has exactly `LANES` lanes,
for every structure, whoever asks: a lone run is padded with copies of itself, a sweep's last
batch likewise. A replica's lane never mixes with the others, so its bits are the same
whatever its batch-mates, position, command, worker or backend.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from circlereg.backend import compiling, keras, tf
from circlereg.config import config_hash
from circlereg.data import Split
from circlereg.model import (
    BUILDING,
    build_model,
    draw_key,
    make_optimizer,
    random_lanes,
    random_layers,
    train_call,
)

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
# Replicas per compiled graph, the same for every structure. Measured on 2 cores (4000
# epochs of the study net): 4 lanes train in 0.84 s against 0.28 s for one replica alone,
# and a 220-run sweep takes 9% longer than at 16 lanes, where a lone run would take 2.0 s.
LANES = 4
# Every trainer traces its own functions by design; TensorFlow's "excessive retracing"
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
    shape: dict = field(default_factory=dict)  # the compiled shape that trained it


def structure_key(config: dict) -> str:
    """Configs with equal keys can train as replicas of one graph: everything but the
    seed, the penalty strengths, and how strong each dropout or noise layer is (whether it
    acts at all is structure)."""
    model = config["model"]
    shape = {**config, "name": None, "train": {**config["train"], "seed": None},
             "model": {**model,
                       "regularizers": [{**reg, "l1": None, "l2": None}
                                        for reg in model["regularizers"]],
                       "dropout": [{**d, "rate": d["rate"] > 0} for d in model["dropout"]],
                       "noise": [{**n, "stddev": n["stddev"] > 0} for n in model["noise"]]}}
    return config_hash(shape)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _segments(epochs: int, parts: int = 8) -> list[int]:
    """The epoch loop in up to `parts` calls, so a progress bar moves."""
    size = -(-epochs // parts)
    return [min(size, epochs - start) for start in range(0, epochs, size)]


class LaneTrainer:
    """Room for `LANES` replicas of one structure: their stacked weights, non-trainable
    state, penalty strengths, seeds and early-stopping bookkeeping as variables, a Keras
    optimizer over the stacked weights, and the compiled epoch loop. Reused batch after
    batch, so it compiles once; it owns all of this state, and nothing else touches it."""

    def __init__(self, config: dict, split: Split, traced=None):
        """`traced()` is called once the functions are traced, before XLA compiles them."""
        with BUILDING:
            self._build(config, split)
        if traced is not None:
            traced()
        self._compile()

    def _build(self, config: dict, split: Split) -> None:
        train_cfg = config["train"]
        capacity = self.capacity = LANES
        self.config = config
        self.epochs, self.batch_size = train_cfg["epochs"], train_cfg["batch_size"]
        self.dtype = train_cfg["dtype"]
        self.split = split.astype(self.dtype)
        self.built = build_model(config)
        model = self.built.model
        self.random = random_layers(model)
        self.loss = keras.losses.BinaryCrossentropy(dtype=self.dtype)

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
        # Each random layer's rate (float32, as the uniforms it is compared with) and scale
        # or stddev (the model's dtype), per lane: model.train_call.
        drawn = len(self.random)
        self.rates = tf.Variable(tf.zeros((capacity, drawn), tf.float32))
        self.amounts = tf.Variable(tf.zeros((capacity, drawn), self.dtype))
        self.early = config["early_stopping"]
        self.stopping = LaneEarlyStopping(
            self.early, len(self.split.train_x), len(self.split.test_x), self.dtype,
            self.stacked + self.state) if self.early["enabled"] else None
        self.optimizer = make_optimizer(train_cfg)
        self.optimizer.build(self.stacked)
        # Moments, step count and learning rate as built: restored before every chunk.
        self.optimizer_start = [v.numpy() for v in self.optimizer.variables]
        # The test set's evaluation, traced once for both the epoch loop and the final
        # figures (each trace of a vectorized evaluation costs ~0.3 s); XLA inlines it.
        self.evaluate_test = tf.function(
            lambda: self._evaluate(self.split.test_x, self.split.test_y), autograph=False)
        self.run = tf.function(self._run, jit_compile=True, autograph=False)
        # Separate calls: reads of the variables after a while_loop are not ordered after it.
        self.final = tf.function(self._final, jit_compile=True, autograph=False)
        self.restore = tf.function(self._restore_best, jit_compile=True, autograph=False)
        # AutoGraph is off: the Python control flow here is all fixed at trace time, and
        # converting Keras' code costs more than half of the tracing.
        # One trace for every segment: the trip count is a tensor. (A Python int would let
        # XLA unroll the loop: minutes of compiling, and slower code.)
        self.segment = _segments(self.epochs)[0]
        self.run.get_concrete_function(tf.constant(0), tf.constant(0))
        for function in self._side():
            function.get_concrete_function()

    def _compile(self) -> None:
        """XLA-compile the traced functions side by side (compiling releases the GIL,
        so the smaller ones take the other core: 0.6 s off a lone run). Calling them here
        is harmless: zero epochs change nothing, the others only read or copy state that
        `train` sets before use. With the compile cache on, programs compiled before (by any
        process) are loaded instead, and new ones are shared once compiled."""
        with compiling():
            self._compile_here()

    def _side(self) -> list:
        return [self.final] + ([self.restore] if self.early["enabled"]
                               and self.early["restore_best_weights"] else [])

    def _compile_here(self) -> None:
        threads = [threading.Thread(target=function) for function in self._side()]
        for thread in threads:
            thread.start()
        self.run(tf.constant(0), tf.constant(0))
        for thread in threads:
            thread.join()

    @property
    def shape(self) -> dict:
        return {"engine": "compiled", "lanes": self.capacity, "segment_epochs": self.segment}

    def train(self, configs: list[dict], starts: list, progress=None) -> list[Result]:
        """Train up to LANES replicas of this structure from their initial states
        (`model.initial_state` of each config); results in the order given."""
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
        if self.random:
            lanes = [random_lanes(c, self.random) for c in configs]
            lanes += lanes[:1] * pad
            self.rates.assign(np.array([rates for rates, _ in lanes], np.float32))
            self.amounts.assign(np.array([amounts for _, amounts in lanes], self.dtype))
        for variable, value in zip(self.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        if self.stopping is not None:
            self.stopping.reset()

        start = time.perf_counter()
        done, parts = 0, []
        for count in _segments(self.epochs):
            parts.append([c[:count] for c in self.run(tf.constant(done), tf.constant(count))])
            done += count
            if progress is not None:
                progress(count * len(configs))
        if self.early["enabled"] and self.early["restore_best_weights"]:
            self.restore()  # as EarlyStopping.on_train_end, stopped early or not
        curves = [tf.concat(part, axis=0).numpy() for part in zip(*parts)]
        (train_loss, train_acc), (test_loss, test_acc) = self.final()
        seconds = (time.perf_counter() - start) / len(configs)
        stacked, state = [v.numpy() for v in self.stacked], [v.numpy() for v in self.state]
        weights = [(stacked if is_trainable else state)[i] for is_trainable, i in
                   self.weight_order]
        stopped = self.stopping.stopped.numpy() if self.stopping else np.full(self.capacity, -1)
        sums = {"train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
                "test_accuracy": test_acc}
        return unstack(configs, curves, {k: v.numpy() for k, v in sums.items()}, weights,
                       stopped, (len(self.split.train_x), len(self.split.test_x)), self.dtype,
                       seconds, self.shape)

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
        return tf.vectorized_map(one, ([v.value for v in self.stacked],
                                       [v.value for v in self.state], self.strengths,
                                       self._per_replica(x), self._per_replica(y)))

    def _train_epoch(self, epoch, frozen):
        tx, ty = self.split.train_x, self.split.train_y
        n_train = len(tx)
        steps = _chunks(n_train, self.batch_size)
        loss_sum = tf.zeros(self.capacity, self.dtype)
        correct = tf.zeros(self.capacity, self.dtype)
        if len(steps) > 1:  # minibatches: reshuffle per epoch and replica, like fit(shuffle=True)
            order = tf.vectorized_map(lambda s: tf.argsort(tf.random.stateless_uniform(
                [n_train], tf.stack([s, epoch]))), self.seeds)
        else:
            order = tf.zeros((self.capacity, 1), tf.int32)
        for step, (start, stop) in enumerate(steps):
            before = [v.value for v in self.stacked + self.state]

            def one(args, start=start, stop=stop, step=step):
                w, st, s, seed, idx, x, y, randoms = args
                if len(steps) > 1:
                    x, y = tf.gather(x, idx[start:stop]), tf.gather(y, idx[start:stop])
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
                [v.value for v in self.stacked], [v.value for v in self.state], self.strengths,
                self.seeds, order, self._per_replica(tx), self._per_replica(ty),
                (self.rates, self.amounts) if self.random else ()))
            self.optimizer.apply(grads, self.stacked)
            for variable, value in zip(self.state, state):
                variable.assign(value)
            for variable, constraint in zip(self.stacked, self.constraints):
                if constraint is not None:  # what Keras' optimizer does after each update
                    variable.assign(tf.vectorized_map(constraint, variable.value))
            if frozen is not None:  # early-stopped replicas keep their weights
                for variable, old in zip(self.stacked + self.state, before):
                    variable.assign(_where(frozen, old, variable.value))
            loss_sum += loss * (stop - start)
            correct += hits
        return loss_sum, correct

    def _run(self, first_epoch, count):
        """`count` (at most `self.segment`) epochs from `first_epoch`; weights and optimizer
        state live in variables. Returns the curves, `self.segment` long (the tail unused)."""
        stopping = self.stopping

        def body(i, curves):
            epoch = first_epoch + i
            frozen = tf.not_equal(stopping.stopped, -1) if stopping else None
            loss, accuracy = self._train_epoch(epoch, frozen)
            val_loss, val_accuracy = self.evaluate_test()
            values = (loss, accuracy, val_loss, val_accuracy)
            if stopping:
                stopping.update(epoch, dict(zip(CURVES, values)))
            return i + 1, [c.write(i, v) for c, v in zip(curves, values)]

        curves = [tf.TensorArray(self.dtype, size=self.segment) for _ in CURVES]
        _, curves = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), curves))
        return [c.stack() for c in curves]

    def _restore_best(self):
        self.stopping.restore()

    def _final(self):
        return self._evaluate(self.split.train_x, self.split.train_y), self.evaluate_test()


class LaneEarlyStopping:
    """keras.callbacks.EarlyStopping for every lane at once. Its bookkeeping (best value,
    epochs waited, the epoch each lane stopped at, best weights) lives in variables, so the
    compiled epoch loop updates it; `weights` are the trainer's stacked variables."""

    def __init__(self, settings: dict, n_train: int, n_test: int, dtype: str, weights: list):
        self.settings, self.dtype, self.weights = settings, dtype, weights
        self.size = n_test if settings["monitor"].startswith("val_") else n_train
        lanes = weights[0].shape[0]
        self.best = tf.Variable(tf.zeros(lanes, dtype))
        self.wait = tf.Variable(tf.zeros(lanes, tf.int32))
        self.stopped = tf.Variable(tf.zeros(lanes, tf.int32))  # -1: still training
        self.best_weights = [keras.Variable(np.zeros(v.shape, v.dtype), name=f"best_{i}")
                             for i, v in enumerate(weights)]

    def reset(self) -> None:
        worst = np.inf if self.settings["monitor"].endswith("loss") else -np.inf
        self.best.assign(np.full(self.best.shape, worst, self.dtype))
        self.wait.assign(np.zeros(self.wait.shape, "int32"))
        self.stopped.assign(np.full(self.stopped.shape, -1, "int32"))

    def update(self, epoch, sums: dict) -> None:
        """EarlyStopping.on_epoch_end, from the epoch's summed curves."""
        current = sums[self.settings["monitor"]] / self.size
        running = tf.equal(self.stopped, -1)
        delta = self.settings["min_delta"]
        if self.settings["monitor"].endswith("loss"):
            improved = current + delta < self.best
        else:
            improved = current - delta > self.best
        improved = improved & running
        self.best.assign(tf.where(improved, current, self.best))
        wait = tf.where(improved, 0, tf.where(running, self.wait + 1, self.wait))
        self.wait.assign(wait)
        if self.settings["restore_best_weights"]:
            for best, variable in zip(self.best_weights, self.weights):
                best.assign(_where(improved, variable.value, best.value))
        stop = running & ~improved & (wait >= self.settings["patience"]) & (epoch > 0)
        self.stopped.assign(tf.where(stop, epoch, self.stopped))

    def restore(self) -> None:
        """EarlyStopping.on_train_end with restore_best_weights."""
        for variable, best in zip(self.weights, self.best_weights):
            variable.assign(best.value)


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


def _where(mask, a, b):
    """Per-replica choice between two stacked tensors: a where mask (shape [R]), else b."""
    mask = tf.reshape(mask, [-1] + [1] * (len(a.shape) - 1))
    return tf.where(mask, a, b)


_FLOATX_LOCK = threading.Lock()


def train_fit(config: dict, split: Split) -> Result:
    """The reference engine: the study's own `model.fit` loop, on the same initial weights.

    The one place that touches Keras' global floatx: compile() wraps the loss in a tracker
    of the global float type, with no argument to set it, so a float64 fit sets it for its
    own duration, under a lock."""
    with _FLOATX_LOCK:
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
    # model.fit shuffles minibatches from the global seeds, as in the study: only this
    # reference engine seeds them (the compiled engine derives its order from train.seed).
    keras.utils.set_random_seed(train_cfg["seed"])
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
        shape={"engine": "fit", "lanes": 1},
    )
