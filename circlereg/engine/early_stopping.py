"""Early stopping in the compiled engine (train.py): keras.callbacks.EarlyStopping's rules
for every lane of a program at once, as pure functions of the program's carry."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from circlereg.config import LANES
from circlereg.engine.backend import tf


class EarlyState(NamedTuple):
    """Early stopping's bookkeeping (`LaneEarlyStopping`), one value per lane."""

    best: tf.Tensor  # the best value of the monitored curve so far
    wait: tf.Tensor  # epochs since it improved
    stopped: tf.Tensor  # the 0-based epoch the lane stopped at, -1 while it trains
    best_weights: list  # the weights and state at the best epoch (restore_best_weights)


class LaneEarlyStopping:
    """keras.callbacks.EarlyStopping for every lane at once, as pure functions of the
    carry: its bookkeeping (`EarlyState`) travels in `Carry.early`."""

    def __init__(self, settings: dict, n_train: int, n_test: int, dtype: str):
        self.settings, self.dtype = settings, dtype
        self.size = n_test if settings["monitor"].startswith("val_") else n_train

    def start(self, weights: list) -> EarlyState:
        """The bookkeeping at the start of training; `weights`: the carry's weights and
        state."""
        worst = np.inf if self.settings["monitor"].endswith("loss") else -np.inf
        return EarlyState(tf.constant(np.full(LANES, worst, self.dtype)),
                          tf.zeros(LANES, tf.int32), tf.constant(np.full(LANES, -1, np.int32)),
                          [tf.zeros_like(w) for w in weights])

    def update(self, carry, epoch, sums: dict):  # carry: train.Carry, which imports this
        """EarlyStopping.on_epoch_end, from the epoch's summed curves."""
        best, wait, stopped, best_weights = carry.early
        current = sums[self.settings["monitor"]] / self.size
        running = tf.equal(stopped, -1)
        delta = self.settings["min_delta"]
        if self.settings["monitor"].endswith("loss"):
            improved = current + delta < best
        else:
            improved = current - delta > best
        improved = improved & running
        best = tf.where(improved, current, best)
        wait = tf.where(improved, 0, tf.where(running, wait + 1, wait))
        if self.settings["restore_best_weights"]:
            best_weights = [lane_where(improved, w, b) for w, b in
                            zip(carry.weights + carry.state, best_weights)]
        stop = running & ~improved & (wait >= self.settings["patience"]) & (epoch > 0)
        stopped = tf.where(stop, epoch, stopped)
        return carry._replace(early=EarlyState(best, wait, stopped, best_weights))


def lane_where(mask, a, b):
    """Per-replica choice between two stacked tensors: a where mask (shape [R]), else b."""
    mask = tf.reshape(mask, [-1] + [1] * (len(a.shape) - 1))
    return tf.where(mask, a, b)
