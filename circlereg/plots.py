"""Figures of a run: accuracy and loss curves like the study's, and the decision boundary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(history: dict, path: Path, metric: str, title: str) -> None:
    """Train and test `metric` per epoch, as in the study's line plots."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.arange(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], label="train")
    ax.plot(epochs, history[f"val_{metric}"], label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def decision_boundary(predict, split, path: Path, title: str) -> None:
    """The data (train filled, test hollow) over the model's predicted probability."""
    points = np.concatenate([split.train_x, split.test_x])
    lo, hi = points.min(axis=0) - 0.25, points.max(axis=0) + 0.25
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(split.train_x.dtype)
    prob = predict(grid).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.4)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
    for x, y, style in ((split.train_x, split.train_y, "filled"),
                        (split.test_x, split.test_y, "hollow")):
        for label, color in ((0, "tab:blue"), (1, "tab:red")):
            pick = y.ravel() == label
            face = color if style == "filled" else "none"
            ax.scatter(x[pick, 0], x[pick, 1], facecolors=face, edgecolors=color, s=25,
                       label=f"{'train' if style == 'filled' else 'test'} class {label}")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
