"""Figures of a run, drawn by the writer for every run it writes (engine/writer.py): the
accuracy and loss curves like the study's, and the decision boundary. The figures of a
collection (a sweep's, a comparison's, a reproduction's) are plots.py's.

Drawn on matplotlib Figures, without pyplot: saving one as PNG needs no backend."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from circlereg.data import Split

# A run's figures are drawn for every run of a sweep, so they skip what costs most and
# changes least: pyplot's figure registry, and tight_layout, which draws the figure once
# more to measure it (a third of a figure's time). Their margins are fixed instead.
RUN_MARGINS = {"left": 0.1, "right": 0.97, "bottom": 0.11, "top": 0.92}


# Each thread keeps the run figures it drew (matplotlib objects are not thread-safe) and
# redraws only what differs from run to run: building a figure, its axes and their ticks
# was about half of a figure's cost. A figure drawn again is byte-identical to one drawn
# afresh (tests/test_speed_paths.py), so a PNG never depends on what its process drew before.
_drawn = threading.local()
# zlib's fastest level: the PNG is ~15% larger and encodes in half the time (~6 ms a figure).
FAST_PNG = {"compress_level": 1}


def _kept(key: tuple, build):
    """The figure this thread built for `key`, building it with `build()` the first time."""
    kept = _drawn.__dict__.setdefault("figures", {})
    if key not in kept:
        kept[key] = build()
    return kept[key]


def curves(history: dict, path: Path, metric: str, title: str, evaluated: str = "test"
           ) -> None:
    """Train and test `metric` per epoch, as in the study's line plots (`evaluated`: what
    the val_* curve is measured on, `validation` with data.n_validation)."""
    def build():
        fig = Figure(figsize=(7, 4.5))
        fig.subplots_adjust(**RUN_MARGINS)
        ax = fig.add_subplot()
        lines = [ax.plot([], [], label=label)[0] for label in ("train", evaluated)]
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        return fig, ax, lines

    drawn = np.concatenate([history[metric], history[f"val_{metric}"]])
    # A kept axes with no finite value to scale to would keep the last run's limits.
    kept = np.isfinite(drawn).any()
    fig, ax, (train, test) = _kept(("curves", metric, evaluated), build) if kept else build()
    epochs = np.arange(1, len(history[metric]) + 1)
    train.set_data(epochs, history[metric])
    test.set_data(epochs, history[f"val_{metric}"])
    ax.relim()
    ax.autoscale_view()
    # At a fixed height: placing it above whatever the axes hold measures every tick label.
    ax.set_title(title, y=1.0, fontsize=title_size(title))
    fig.savefig(path, dpi=100, pil_kwargs=FAST_PNG, metadata={"Title": title})


def title_size(title: str) -> float:
    """A run figure's title size in points: 12 up to 60 characters, then smaller, so that a
    sub-run's title (every swept value) stays inside the figure.

    >>> title_size("baseline: accuracy"), round(title_size("x" * 90), 1), title_size("x" * 200)
    (12.0, 8.0, 6.0)
    """
    return max(6.0, min(12.0, 720 / len(title)))


BOUNDARY_SIDE = 200  # grid points along each axis of the decision boundary
BOUNDARY_POINTS = BOUNDARY_SIDE ** 2


def _mesh(split) -> tuple[np.ndarray, np.ndarray]:
    points = np.concatenate([split.train_x, split.test_x])
    lo, hi = points.min(axis=0) - 0.25, points.max(axis=0) + 0.25
    return np.meshgrid(np.linspace(lo[0], hi[0], BOUNDARY_SIDE),
                       np.linspace(lo[1], hi[1], BOUNDARY_SIDE))


def boundary_grid(split) -> np.ndarray:
    """The points `decision_boundary` needs the model's predicted probability at."""
    gx, gy = _mesh(split)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(split.train_x.dtype)


BOUNDARY_LEVELS = np.linspace(0, 1, 11)
# Points drawn on the decision boundary, per set: past a few thousand a scatter is a blot, and
# drawing (and sending to a figure process) a million points would cost seconds per run.
SHOWN_POINTS = 1000


def shown_points(split):
    """The split as `decision_boundary` draws it: the first SHOWN_POINTS train and test
    points (make_circles shuffles its points, so these are a fair sample)."""
    n = SHOWN_POINTS
    return Split(split.train_x[:n], split.train_y[:n], split.test_x[:n], split.test_y[:n])


def decision_boundary(split, probability: np.ndarray, path: Path, title: str) -> None:
    """The data (train filled, test hollow) over the model's predicted `probability` at
    `boundary_grid(split)` (computed by the caller, so that this draws without the model)."""
    gx, gy = _mesh(split)

    def build():
        # What every run of this data shares: the points, the colour bar, the axes.
        fig = Figure(figsize=(6.4, 5))
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.1, top=0.93)
        ax = fig.add_subplot()
        for x, y, style in ((split.train_x, split.train_y, "filled"),
                            (split.test_x, split.test_y, "hollow")):
            size = 25 if len(x) <= 200 else 6  # the study's 100 points large; more, small
            for label, color in ((0, "tab:blue"), (1, "tab:red")):
                pick = y.ravel() == label
                face = color if style == "filled" else "none"
                ax.scatter(x[pick, 0], x[pick, 1], facecolors=face, edgecolors=color, s=size,
                           label=f"{'train' if style == 'filled' else 'test'} class {label}",
                           zorder=3)
        shading = ScalarMappable(Normalize(0, 1), "RdBu_r")  # contourf's colours by band
        fig.colorbar(shading, ax=ax, alpha=0.4, boundaries=BOUNDARY_LEVELS,
                     values=(BOUNDARY_LEVELS[:-1] + BOUNDARY_LEVELS[1:]) / 2,
                     label="predicted probability of class 1 (black line: 0.5)")
        ax.set_xlim(gx[0, 0], gx[0, -1])
        ax.set_ylim(gy[0, 0], gy[-1, 0])
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_aspect("equal")
        return fig, ax, []

    key = ("boundary", split.train_x.tobytes(), split.test_x.tobytes())
    fig, ax, shown = _kept(key, build)
    for contours in shown:
        contours.remove()
    prob = np.asarray(probability).reshape(gx.shape)
    shown[:] = [ax.contourf(gx, gy, prob, levels=BOUNDARY_LEVELS, cmap="RdBu_r", alpha=0.4,
                            zorder=1),
                ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1, zorder=2)]
    ax.set_title(title, y=1.0, fontsize=title_size(title))
    fig.savefig(path, dpi=100, pil_kwargs=FAST_PNG, metadata={"Title": title})
