"""Stage 2: the data. The study's make_circles set, split by position, never shuffled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def astype(self, dtype: str) -> Split:
        return Split(*(a.astype(dtype) for a in (self.train_x, self.train_y,
                                                  self.test_x, self.test_y)))


def load_split(data: dict) -> Split:
    """The `data` section of a resolved config -> train/test arrays (float32, y as a column).

    >>> split = load_split({"n_samples": 100, "noise": 0.1, "factor": 0.8, "seed": 1,
    ...                     "n_train": 30})
    >>> split.train_x.shape, split.test_x.shape, int(split.train_y.sum())
    ((30, 2), (70, 2), 16)
    """
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=data["n_samples"], noise=data["noise"],
                        factor=data["factor"], random_state=data["seed"])
    x, y = x.astype("float32"), y.astype("float32").reshape(-1, 1)
    n = data["n_train"]
    return Split(x[:n], y[:n], x[n:], y[n:])
