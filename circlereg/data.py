"""Stage 2: the data. The study's make_circles set, split by position, never shuffled.

The first `data.n_train` rows train. The rest test, or with `data.n_test` the last n_test
rows only: a learning curve varies n_train over one fixed test set (and nested training sets,
since make_circles draws the same rows for the same n_samples and seed).

With `data.n_validation` > 0, a validation set is drawn from the same circles with its own
random stream: the study's train and test points stay exactly as they are, training reports
its `val_*` curves (Keras' validation_data) on the validation points, and the test points are
held out from training and from any search over its settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circlereg.config import n_tested, setting

VALIDATION_STREAM = 1  # the validation points' random stream, apart from data.seed's own


@dataclass(frozen=True)
class Split:
    """`test_x`/`test_y` are the points training evaluates after every epoch (`val_*`, as
    `model.fit(validation_data=...)`): the test points, as in the study, or the validation
    points when `data.n_validation` > 0; the test points are then `held_out_x`/`held_out_y`,
    which only the writer evaluates."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    held_out_x: np.ndarray | None = None
    held_out_y: np.ndarray | None = None

    def astype(self, dtype: str) -> Split:
        return Split(*(None if a is None else a.astype(dtype) for a in (
            self.train_x, self.train_y, self.test_x, self.test_y, self.held_out_x,
            self.held_out_y)))


def load_split(data: dict) -> Split:
    """The `data` section of a resolved config -> train/test arrays (float32, y as a column).

    >>> data = {"n_samples": 100, "noise": 0.1, "factor": 0.8, "seed": 1, "n_train": 30}
    >>> split = load_split(data)
    >>> split.train_x.shape, split.test_x.shape, int(split.train_y.sum()), split.held_out_x
    ((30, 2), (70, 2), 16, None)
    >>> apart = load_split({**data, "n_validation": 40})
    >>> apart.test_x.shape, bool((apart.held_out_x == split.test_x).all())
    ((40, 2), True)
    >>> fixed = load_split({**data, "n_train": 10, "n_test": 50})
    >>> fixed.train_x.shape, bool((fixed.test_x == split.test_x[-50:]).all())
    ((10, 2), True)
    """

    x, y = _circles(data["n_samples"], data, data["seed"])
    n = data["n_train"]
    test = slice(len(x) - n_tested(data), None)  # the last rows, whatever n_train is
    n_validation = setting({"data": data}, "data.n_validation")  # absent: the default, 0
    if not n_validation:
        return Split(x[:n], y[:n], x[test], y[test])
    # A stream of its own, derived from data.seed: make_circles with data.seed itself would
    # repeat the noise draws of the train and test points.
    stream = int(np.random.SeedSequence([data["seed"], VALIDATION_STREAM]).generate_state(1)[0])
    val_x, val_y = _circles(n_validation, data, stream)
    return Split(x[:n], y[:n], val_x, val_y, held_out_x=x[test], held_out_y=y[test])


def _circles(n_samples: int, data: dict, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=data["noise"], factor=data["factor"],
                        random_state=random_state)
    return x.astype("float32"), y.astype("float32").reshape(-1, 1)
