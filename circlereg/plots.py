"""Figures of a collection, drawn by the command that wrote it: a sweep's accuracy against
each swept key, learning curve, mean curves per epoch and bars per compared config; a
reproduction's curves and bars. Also what every figure shares: matplotlib's backend (Agg),
the warm-up, the labels of swept values. A run's own figures are run_plots.py's."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402


def warm_up() -> None:
    """Load what a process's first figure loads (fonts, the PNG encoder), so that a run's
    first figures cost what the later ones do: done while training runs."""
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png", dpi=50)


def _within_unit(mean, low, high) -> list[np.ndarray]:
    """Error bar lengths below and above `mean` for an interval clipped to [0, 1], the range
    an accuracy can take (a Student t interval of a few seeds can leave it).

    >>> [e.round(3).tolist() for e in _within_unit([0.98], [0.95], [1.03])]
    [[0.03], [0.02]]
    """
    mean = np.asarray(mean, dtype=float)
    return [mean - np.clip(low, 0, 1), np.clip(high, 0, 1) - mean]


CI_NOTE = "error bars: 95% CI over seeds (Student t), clipped to [0, 1]"
STAR_SIZE = 14  # points
STAR_NEAR = 0.015  # test-peak stars closer than this in accuracy, at one x, would overlap


def _is_log(values) -> bool:
    values = [v for v in values if v > 0]
    return len(values) > 1 and max(values) / min(values) >= 100


def is_numeric(values) -> bool:
    """Values a plot can put on an axis or a colour scale: numbers, more than one."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
        and len(set(values)) > 1


def short(key: str) -> str:
    """A swept key as a plot labels it: model.regularizers.0.l1 -> l1."""
    return key.rsplit(".", 1)[-1]


def labelled(params: dict, keys: list[str]) -> str:
    """Swept values as a plot labels them.

    >>> labelled({"model.regularizers.0.l1": 10 ** -5.5, "config": "baseline"},
    ...          ["model.regularizers.0.l1", "config"])
    'l1=3.162e-06, config=baseline'
    """
    return ", ".join(f"{short(k)}={params[k]:.4g}" if isinstance(params[k], float)
                     else f"{short(k)}={params[k]}" for k in keys)


def accuracy_against(rows: list[dict], key: str, others: list[str], path: Path,
                     title: str) -> Figure:
    """Final train and test accuracy (mean, 95% CI) against one swept key, a line per
    combination of the other swept keys. Returns the figure (closed), whose artists a test
    can inspect."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    stars: list[tuple[float, float]] = []
    for (group, members), color in zip(_groups(rows, others).items(),
                                       plt.get_cmap("tab10").colors):
        members = sorted(members, key=lambda r: r[key])
        x = np.array([r[key] for r in members], dtype=float)
        label = labelled(dict(zip(others, group)), others)
        best = int(np.nanargmax([r["test_accuracy_mean"] for r in members]))
        for split, style in (("train", "--"), ("test", "-")):
            mean = np.array([r[f"{split}_accuracy_mean"] for r in members])
            err = _within_unit(mean, [r[f"{split}_accuracy_ci95_low"] for r in members],
                               [r[f"{split}_accuracy_ci95_high"] for r in members])
            peak = f" (peak {mean[best]:.3f} at {x[best]:.4g})" if split == "test" else ""
            ax.errorbar(x, mean, yerr=err, linestyle=style, marker="o", capsize=3,
                        markersize=4, color=color, label=f"{split} {label}{peak}".strip())
        star = (x[best], members[best]["test_accuracy_mean"])
        # A star on another's point sits beside it, at the same height, so that both show.
        beside = sum(1 for sx, sy in stars if sx == star[0] and abs(sy - star[1]) < STAR_NEAR)
        stars.append(star)
        ax.plot(*star, "*", color=color, markersize=STAR_SIZE, markeredgecolor="k", zorder=3,
                transform=offset_copy(ax.transData, fig, x=STAR_SIZE * 0.8 * beside,
                                      units="points"))
    if _is_log([r[key] for r in rows]):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("final accuracy (mean over seeds)")
    ax.set_title(f"{title}: final accuracy against {short(key)}\n({CI_NOTE})", fontsize=10)
    ax.legend(fontsize=7, title="star: test peak", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def _groups(rows: list[dict], others: list[str]) -> dict[tuple, list[dict]]:
    """Summary rows by their values of the keys `others`, in order of appearance."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in others), []).append(row)
    return groups


# One marker shape per line of a learning curve: hollow, so a point on another's shows both.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def learning_curve(rows: list[dict], key: str, others: list[str], path: Path, title: str,
                   tested_on: str) -> Figure:
    """Final train (dashed) and test (solid) accuracy against the training-set size `key`:
    mean over seeds with a 95% CI band, a line per combination of the other swept keys (per
    config of a comparison). `tested_on` says what the test accuracies are measured on.
    Returns the figure (closed)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (group, members), color, marker in zip(_groups(rows, others).items(),
                                               plt.get_cmap("tab10").colors, MARKERS):
        members = sorted(members, key=lambda r: r[key])
        x = np.array([r[key] for r in members], dtype=float)
        label = labelled(dict(zip(others, group)), others)
        for split, style, shade in (("test", "-", 0.2), ("train", "--", 0.1)):
            mean = np.array([r[f"{split}_accuracy_mean"] for r in members])
            low, high = (np.clip([r[f"{split}_accuracy_ci95_{end}"] for r in members], 0, 1)
                         for end in ("low", "high"))
            ax.fill_between(x, low, high, color=color, alpha=shade, linewidth=0)
            ax.plot(x, mean, style, marker=marker, markersize=5, markerfacecolor="none",
                    color=color, label=f"{label} {split}".strip())
    sizes = sorted({r[key] for r in rows})
    if _is_log(sizes):
        ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{size:g}" for size in sizes])  # the sizes trained, not decades
    ax.minorticks_off()
    ax.set_xlabel(f"training points ({key})")
    ax.set_ylabel("final accuracy (mean over seeds)")
    ax.set_title(f"{title}: accuracy against training-set size\n({tested_on}; bands: 95% CI "
                 "over seeds, Student t, clipped to [0, 1])", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


def padded(curves: list[np.ndarray]) -> np.ndarray:
    """Curves of different lengths (early stopping) as one array, NaN after each one ends."""
    out = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for row, curve in zip(out, curves):
        row[:len(curve)] = curve
    return out


def _mean_curve(histories: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(padded([h[name] for h in histories]), axis=0)
    return np.arange(1, len(mean) + 1), mean


SPLITS = (("val_accuracy", "test"), ("accuracy", "train"))


def mean_curves(points: list[tuple[str, dict, list[dict]]], keys: list[str], path: Path,
                title: str) -> None:
    """Mean test and train accuracy per epoch of every grid point, each point given as
    (label, swept values, histories of its seeds).

    Readable at any grid size: with a numeric swept key, its value is the line's colour (a
    colour bar, not a legend) and each combination of the other keys gets its own column;
    without one, up to 10 points share a legend and more get a small panel each."""
    colour = next((k for k in keys if is_numeric([p[k] for _, p, _ in points])), None)
    others = [k for k in keys if k != colour]
    columns: dict[tuple, list] = {}
    for point in points:
        columns.setdefault(tuple(point[1][k] for k in others) if colour else (), []).append(
            point)
    if len(columns) > 6 or (colour is None and len(points) > 10):
        _small_multiples(points, path, title)
        return
    fig, axes = plt.subplots(2, len(columns), figsize=(3.2 + 3.6 * len(columns), 6.2),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    if colour is not None:
        values = [p[colour] for _, p, _ in points]
        norm = (matplotlib.colors.LogNorm if _is_log(values) and min(values) > 0
                else matplotlib.colors.Normalize)(min(values), max(values))
        cmap = plt.get_cmap("viridis")
    for c, (group, members) in enumerate(columns.items()):
        for i, (label, params, histories) in enumerate(members):
            color = cmap(norm(params[colour])) if colour else plt.get_cmap("tab10")(i)
            for row, (name, _) in enumerate(SPLITS):
                axes[row][c].plot(*_mean_curve(histories, name), color=color, linewidth=1,
                                  label=label if row == 0 and not colour else None)
        if group:
            axes[0][c].set_title(labelled(dict(zip(others, group)), others), fontsize=9)
    for row, (_, split) in enumerate(SPLITS):
        axes[row][0].set_ylabel(f"{split} accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    if colour is not None:
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=colour)
    else:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: accuracy per epoch, mean over each point's seeds")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _small_multiples(points: list[tuple[str, dict, list[dict]]], path: Path,
                     title: str) -> None:
    """One small panel per grid point: test (solid) and train (dashed) mean accuracy."""
    ncols = int(np.ceil(np.sqrt(len(points))))
    nrows = int(np.ceil(len(points) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 1.9 * nrows + 0.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for ax, (label, _, histories) in zip(axes.ravel(), points):
        for name, split in SPLITS:
            ax.plot(*_mean_curve(histories, name), "-" if split == "test" else "--",
                    color="tab:orange" if split == "test" else "tab:blue", linewidth=1,
                    label=split)
        ax.set_title(label, fontsize=7)
    for ax in axes.ravel()[len(points):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=7)
    fig.supxlabel("epoch")
    fig.supylabel("accuracy")
    fig.suptitle(f"{title}: accuracy per epoch, mean over each point's seeds")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_curves(curves: dict[str, dict], path: Path, subtitle: str) -> None:
    """The study's figures redrawn: train and test accuracy per epoch of each model, mean
    over seeds with a band of one standard deviation (clipped to [0, 1])."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 4), sharey=True,
                             squeeze=False)
    for ax, (name, model) in zip(axes[0], curves.items()):
        for key, label in (("accuracy", "train"), ("val_accuracy", "test")):
            mean, std = np.nanmean(model[key], axis=0), np.nanstd(model[key], axis=0)
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, label=f"{label} mean")
            ax.fill_between(epochs, *np.clip([mean - std, mean + std], 0, 1), alpha=0.25,
                            label=f"{label} ±1 sd")
        ax.set_title(f"{name} ({model[key].shape[0]} seeds)")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("accuracy")
    fig.suptitle(f"Accuracy per epoch, mean over seeds with ±1 sd band (clipped to [0, 1]); "
                 f"{subtitle}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_values(ax, x, mean) -> None:
    """Each bar's mean written at its foot: bars start at 0, so small differences are read
    from the numbers."""
    for xi, m in zip(x, mean):
        if np.isfinite(m):  # a point whose every run diverged has no mean
            ax.text(xi, 0.02, f"{m:.3f}", ha="center", va="bottom", rotation=90, fontsize=7,
                    color="white" if m > 0.15 else "black")


def final_bars(figures: list[dict], models: list[str], conventions: tuple, path: Path,
               title: str) -> None:
    """Final train and test accuracy per model and convention: mean with 95% CI error bars,
    the published value as a black tick."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    width = 0.8 / len(conventions)
    for ax, metric in zip(axes, ("train_accuracy", "test_accuracy")):
        for c, convention in enumerate(conventions):
            rows = {r["model"]: r for r in figures
                    if r["metric"] == metric and r["convention"] == convention}
            x = np.arange(len(models)) + (c - (len(conventions) - 1) / 2) * width
            mean = np.array([rows[m]["mean"] for m in models])
            err = _within_unit(mean, [rows[m]["ci95_low"] for m in models],
                               [rows[m]["ci95_high"] for m in models])
            ax.bar(x, mean, width, yerr=err, capsize=3, label=convention)
            _bar_values(ax, x, mean)
            for xi, m in zip(x, models):
                if rows[m]["published"] is not None:
                    ax.hlines(rows[m]["published"] / 100, xi - width / 2, xi + width / 2,
                              colors="k", linewidth=2)
        ax.set_xticks(np.arange(len(models)), models, fontsize=8)
        ax.set_title(f"final {metric.replace('_', ' ')} (black tick: published)", fontsize=10)
        ax.set_ylim(0, 1.15)
        ax.set_yticks(np.linspace(0, 1, 6))
    axes[0].set_ylabel("accuracy (mean over seeds)")
    axes[0].legend(title="convention", fontsize=7, title_fontsize=7, loc="upper center",
                   ncol=len(conventions))
    fig.suptitle(f"{title} ({CI_NOTE})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def technique_bars(rows: list[dict], path: Path, title: str) -> None:
    """Final train and test accuracy per compared config (mean, 95% CI), the baseline's test
    mean as a dashed line when a config is named baseline."""
    labels = [r["config"] + "".join(f" {short(k)}={v}" for k, v in r.items()
                                    if k not in ("config", "point", "n", "n_diverged", "n_missing")
                                    and not k.endswith(("_mean", "_std", "_min", "_max",
                                                        "_low", "_high")))
              for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(rows) + 2), 5.2))
    for offset, split in ((-0.2, "train"), (0.2, "test")):
        mean = np.array([r[f"{split}_accuracy_mean"] for r in rows])
        err = _within_unit(mean, [r[f"{split}_accuracy_ci95_low"] for r in rows],
                           [r[f"{split}_accuracy_ci95_high"] for r in rows])
        ax.bar(x + offset, mean, 0.4, yerr=err, capsize=3, label=split)
        _bar_values(ax, x + offset, mean)
    baseline = [r for r in rows if r["config"] == "baseline"]
    if baseline:
        ax.axhline(baseline[0]["test_accuracy_mean"], color="k", linestyle="--", linewidth=1,
                   label="baseline test mean")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("final accuracy (mean over seeds)")
    ax.set_title(f"{title}: final accuracy per config\n({CI_NOTE})", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
