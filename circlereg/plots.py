"""Figures of a run: accuracy and loss curves like the study's, and the decision boundary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(history: dict, path: Path, metric: str, title: str, evaluated: str = "test"
           ) -> None:
    """Train and test `metric` per epoch, as in the study's line plots (`evaluated`: what
    the val_* curve is measured on, `validation` with data.n_validation)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.arange(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], label="train")
    ax.plot(epochs, history[f"val_{metric}"], label=evaluated)
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


def _is_log(values) -> bool:
    values = [v for v in values if v > 0]
    return len(values) > 1 and max(values) / min(values) >= 100


def accuracy_against(rows: list[dict], key: str, others: list[str], path: Path) -> None:
    """Final train and test accuracy (mean, 95% CI) against one swept key, a line per
    combination of the other swept keys."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in others), []).append(row)
    for group, members in groups.items():
        members = sorted(members, key=lambda r: r[key])
        x = np.array([r[key] for r in members], dtype=float)
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(others, group))
        for split, style in (("train", "--"), ("test", "-")):
            mean = np.array([r[f"{split}_accuracy_mean"] for r in members])
            low = mean - np.array([r[f"{split}_accuracy_ci95_low"] for r in members])
            high = np.array([r[f"{split}_accuracy_ci95_high"] for r in members]) - mean
            ax.errorbar(x, mean, yerr=[low, high], linestyle=style, marker="o", capsize=3,
                        markersize=4, label=f"{split} {label}".strip())
        best = int(np.nanargmax([r["test_accuracy_mean"] for r in members]))
        ax.annotate(f"peak {members[best]['test_accuracy_mean']:.3f}",
                    (x[best], members[best]["test_accuracy_mean"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    if _is_log([r[key] for r in rows]):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("final accuracy (mean, 95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def padded(curves: list[np.ndarray]) -> np.ndarray:
    """Curves of different lengths (early stopping) as one array, NaN after each one ends."""
    out = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for row, curve in zip(out, curves):
        row[:len(curve)] = curve
    return out


def mean_curves(curves: list[tuple[str, list[dict]]], path: Path) -> None:
    """Mean train (dashed) and test (solid) accuracy per epoch of every grid point."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.cm.viridis(np.linspace(0, 0.95, max(len(curves), 1)))
    for (label, histories), color in zip(curves, colors):
        for name, style in (("accuracy", "--"), ("val_accuracy", "-")):
            mean = np.nanmean(padded([h[name] for h in histories]), axis=0)
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, style, color=color, linewidth=1,
                    label=label if name == "val_accuracy" else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (mean over seeds; dashed train, solid test)")
    if len(curves) <= 24:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_curves(curves: dict[str, dict], path: Path, subtitle: str) -> None:
    """The study's figures redrawn: train and test accuracy per epoch of each model, mean
    over seeds with a band of one standard deviation."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 4), sharey=True,
                             squeeze=False)
    for ax, (name, model) in zip(axes[0], curves.items()):
        for key, label in (("accuracy", "train"), ("val_accuracy", "test")):
            mean, std = np.nanmean(model[key], axis=0), np.nanstd(model[key], axis=0)
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, label=label)
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.25)
        ax.set_title(f"{name} ({model[key].shape[0]} seeds)")
        ax.set_xlabel("epoch")
        ax.legend()
    axes[0][0].set_ylabel("accuracy")
    fig.suptitle(subtitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def final_bars(figures: list[dict], models: list[str], conventions: tuple, path: Path) -> None:
    """Final train and test accuracy per model and convention: mean with 95% CI error bars,
    the published value as a black tick."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    width = 0.8 / len(conventions)
    for ax, metric in zip(axes, ("train_accuracy", "test_accuracy")):
        for c, convention in enumerate(conventions):
            rows = {r["model"]: r for r in figures
                    if r["metric"] == metric and r["convention"] == convention}
            x = np.arange(len(models)) + (c - (len(conventions) - 1) / 2) * width
            mean = np.array([rows[m]["mean"] for m in models])
            err = [mean - np.array([rows[m]["ci95_low"] for m in models]),
                   np.array([rows[m]["ci95_high"] for m in models]) - mean]
            ax.bar(x, mean, width, yerr=err, capsize=3, label=convention)
            for xi, m in zip(x, models):
                if rows[m]["published"] is not None:
                    ax.hlines(rows[m]["published"] / 100, xi - width / 2, xi + width / 2,
                              colors="k", linewidth=2)
        ax.set_xticks(np.arange(len(models)), models, fontsize=8)
        ax.set_title(f"final {metric.replace('_', ' ')} (black: published)")
        ax.set_ylim(0.4, 1.02)
    axes[0].legend(title="convention", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def technique_bars(rows: list[dict], path: Path) -> None:
    """Final train and test accuracy per compared config (mean, 95% CI), the baseline's test
    mean as a dashed line when a config is named baseline."""
    labels = [r["config"] + "".join(f" {k.rsplit('.', 1)[-1]}={v}" for k, v in r.items()
                                    if k not in ("config", "point", "n", "n_diverged", "n_missing")
                                    and not k.endswith(("_mean", "_std", "_min", "_max",
                                                        "_low", "_high")))
              for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(rows) + 2), 4.8))
    for offset, split in ((-0.2, "train"), (0.2, "test")):
        mean = np.array([r[f"{split}_accuracy_mean"] for r in rows])
        err = [mean - np.array([r[f"{split}_accuracy_ci95_low"] for r in rows]),
               np.array([r[f"{split}_accuracy_ci95_high"] for r in rows]) - mean]
        ax.bar(x + offset, mean, 0.4, yerr=err, capsize=3, label=split)
    baseline = [r for r in rows if r["config"] == "baseline"]
    if baseline:
        ax.axhline(baseline[0]["test_accuracy_mean"], color="k", linestyle="--", linewidth=1,
                   label="baseline test")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.4, 1.02)
    ax.set_ylabel("final accuracy (mean, 95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
