"""Stage 5: the run directory. Everything a run writes, in one place.

    runs/<config name>/<UTC timestamp>-<config hash>/
        config.yaml  metrics.json  history.csv  environment.json  model.keras
        accuracy.png  loss.png  decision_boundary.png

A run is written into a hidden `.partial-*` folder beside its final place and renamed only
when every file is there, so an interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from circlereg.config import config_hash

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


def utc_stamp() -> str:
    """The run and sweep folders' time prefix; sorts in time order."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def run_path(runs_dir: Path, config: dict) -> Path:
    return Path(runs_dir) / config["name"] / f"{utc_stamp()}-{config_hash(config)}"


@contextmanager
def atomic_dir(final: Path):
    """Yield a scratch folder; rename it to `final` on success, delete it on any failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed process; never complete
    partial.mkdir()
    try:
        yield partial
        partial.rename(final)
    except BaseException:  # KeyboardInterrupt included: never leave a half-written run
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_history(path: Path, history: dict) -> None:
    # %.9g round-trips float32 exactly, so equal histories give byte-identical files. One
    # format per row, not per value: a sweep writes hundreds of these files.
    rows = np.column_stack([np.arange(1, len(history["loss"]) + 1),
                            *(np.asarray(history[k], float) for k in HISTORY_COLUMNS[1:])])
    row = "%d" + ",%.9g" * (len(HISTORY_COLUMNS) - 1)
    path.write_text("\n".join([",".join(HISTORY_COLUMNS),
                               *(row % tuple(values) for values in rows.tolist())]) + "\n")


def read_history(path: Path) -> dict[str, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {name: rows[:, i] for i, name in enumerate(HISTORY_COLUMNS)}


def summarize(result, activations: list[np.ndarray], seconds: float) -> dict:
    """metrics.json: final figures, the best test epoch, and hidden-layer sparsity."""
    val = np.asarray(result.history["val_accuracy"])
    best = int(np.nanargmax(val)) if np.isfinite(val).any() else 0
    final = {k: float(v) for k, v in result.final.items()}
    return {
        **final,
        "gap": final["train_accuracy"] - final["test_accuracy"],
        "best_test_accuracy": float(val[best]),
        "best_test_epoch": best + 1,
        "epochs": len(val),  # epochs run: fewer than train.epochs after early stopping
        "stopped_epoch": result.stopped_epoch,
        "diverged": bool(not np.isfinite(result.history["loss"]).all()),
        "hidden_layers": [
            {"layer": i, "mean_activation": float(a.mean()),
             "zero_fraction": float((a == 0).mean())}
            for i, a in enumerate(activations)
        ],
        "seed": result.seed,
        "train_seconds": round(result.train_seconds, 3),
        "wall_seconds": round(seconds, 3),
    }


def environment(convention: str) -> dict:
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "keras_activity_penalty": convention,
        "note": "keras_activity_penalty: 'sum' when the installed Keras adds an activity "
                "penalty summed over the batch, 'mean' when it divides by the batch size; "
                "circlereg compensates so each regularizer's batch_reduction holds",
    }


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
