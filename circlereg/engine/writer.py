"""The writer: what a worker writes for each replica it trained, in the worker itself.

`Writer.write` computes a run's metrics (the probe model's activations, the held-out
accuracy), draws its figures and writes its run directory atomically (rundir.begin_dir, then
one rename): "what a run writes" is here, metrics included (`summarize`). Its probe model is
TensorFlow's, so it lives inside the engine.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import sklearn

from circlereg import lanes, provenance
from circlereg.config import NUMBERS_REVISION, dump, structure_key
from circlereg.data import Split
from circlereg.engine.backend import compiling, keras, tf
from circlereg.engine.fit import seeded_fit_shuffle
from circlereg.engine.model import BUILDING, build_model
from circlereg.engine.regularizers import installed_convention
from circlereg.plan import Replica
from circlereg.rundir import Result, begin_dir, commit_dir, write_history, write_json


class Writer:
    """Writes trained replicas' run directories. Keeps one probe model per structure, so it
    is used from one thread: the worker's that trained them."""

    def __init__(self, outputs):
        self.outputs = outputs
        self._probes: dict[str, ActivationProbe] = {}
        self._convention: dict | None = None

    def prepared(self, config: dict) -> bool:
        return structure_key(config) in self._probes and self._convention is not None

    def prepare(self, config: dict) -> ActivationProbe:
        """Build what writing this structure needs (its probe model, the plotting and
        environment modules) on first use; returns the probe."""
        # matplotlib loads here, in the thread that prepares while the first batch trains
        # (worker.Worker._prepare), not when the worker process starts: ~0.5 s off a lone run
        from circlereg import plots, run_plots

        self.plots, self.run_plots = plots, run_plots
        key = structure_key(config)
        if key not in self._probes:
            self._probes[key] = ActivationProbe(config)
            self._probes[key].warm_up(run_plots.BOUNDARY_POINTS if self.outputs.figures else 0)
        if self._convention is None:
            self._convention = keras_conventions()
            if self.outputs.figures:
                plots.warm_up()
        return self._probes[key]

    def write(self, replica: Replica, result: Result, split, execution: dict | None = None
              ) -> Result:
        """Write one replica's run directory (atomically); returns the result as written:
        with its metrics, without its weights. `execution`: how the plan was trained
        (backend, workers), for environment.json."""
        start = time.perf_counter()
        config = replica.config
        probe = self.prepare(config)
        model = probe.hold(config, result.weights)
        if split.held_out_x is None:
            metrics = summarize(result, probe(split.test_x))
        else:  # the test points, which training never saw, measured here
            hits = (probe.predict(split.held_out_x) > 0.5) == (split.held_out_y > 0.5)
            metrics = summarize(result, probe(split.held_out_x), float(hits.mean()))
        final = replica.destination
        scratch = begin_dir(final)
        try:
            (scratch / "config.yaml").write_text(dump(config))
            write_history(scratch / "history.csv", result.history)
            write_json(scratch / "environment.json", environment(self._convention,
                                                                 replica.source, execution))
            # In a sweep or comparison, what its point varies names it: the base config's
            # name can mislead (l1_pre_relu on a post_activation point).
            varies = replica.varies
            name = (f"{self.plots.labelled(varies, list(varies))}, seed {replica.seed}"
                    if varies else config["name"])
            figures = []
            if self.outputs.figures:
                evaluated = "test" if split.held_out_x is None else "validation"
                shown = self.run_plots.shown_points(split if split.held_out_x is None else Split(
                    split.train_x, split.train_y, split.held_out_x, split.held_out_y))
                figures = [
                    *((self.run_plots.curves, result.history, scratch / f"{metric}.png", metric,
                       f"{name}: {metric}", evaluated) for metric in ("accuracy", "loss")),
                    (self.run_plots.decision_boundary, shown,
                     probe.boundary(self.run_plots.boundary_grid(shown)),
                     scratch / "decision_boundary.png", f"{name}: decision boundary")]
            if self.outputs.model:
                model.save(scratch / "model.keras")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finish_run(scratch, final, figures, metrics, time.perf_counter() - start)
        return replace(result, weights=None, metrics=metrics)


def finish_run(scratch: Path, final: Path, figures: list[tuple], metrics: dict,
               seconds: float) -> None:
    """Draw a run's figures (each a plotting function and its arguments), write its
    metrics.json (with `write_seconds`, `seconds` spent so far plus this) and put the run
    directory in place."""

    start = time.perf_counter()
    try:
        for draw, *args in figures:
            draw(*args)
        write_json(scratch / "metrics.json",
                   {**metrics, "write_seconds": round(seconds + time.perf_counter() - start, 3)})
        commit_dir(scratch, final)
    except BaseException:  # never leave a half-written run
        shutil.rmtree(scratch, ignore_errors=True)
        raise


class ActivationProbe:
    """One model of a config's structure, built once and reused across its replicas: `hold`
    a replica (its weights and penalty strengths), then read each hidden layer's activations
    (after its activation function), predict, or save the model."""

    def __init__(self, config: dict):
        self.dtype = config["train"]["dtype"]
        self.built = build_model(config)
        model = self.built.model
        self.probe = keras.Model(model.inputs, [model.get_layer(name).output
                                                for name in self.built.hidden_outputs])
        # The decision boundary's grid in one compiled call: ~7 ms, against ~40 ms for eager
        # Keras, which holds the grid's 40000 x width hidden activations in memory. Figures
        # only; metrics come from `predict` and the probe.
        self._boundary = tf.function(lambda x: model(x, training=False), jit_compile=True,
                                     autograph=False)

    def hold(self, config: dict, weights: list[np.ndarray]):
        """The model, now with this replica's weights and lane settings (`lanes.hold`:
        strengths, dropout rates and noise stddevs; model.keras saves them)."""
        self.built.model.set_weights(weights)
        lanes.hold(self.built, config)
        return self.built.model

    def warm_up(self, boundary_points: int = 0) -> None:
        """Run the model and the probe once: TensorFlow's first eager call of each op costs
        ~0.3 s, paid here while training runs rather than in the first run's writing; with
        `boundary_points`, compile `boundary` for a grid of that many points too."""
        x = np.zeros((1, *self.built.model.inputs[0].shape[1:]), self.dtype)
        self.predict(x)
        self(x)
        if boundary_points:
            grid = tf.TensorSpec((boundary_points, x.shape[1]), self.dtype)
            with BUILDING:  # tracing names things: model.BUILDING, as a program's trace
                self._boundary.get_concrete_function(grid)
            with compiling():
                self.boundary(np.zeros(grid.shape, self.dtype))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(self.built.model(rows.astype(self.dtype),
                                                           training=False))
                               for rows in _rows(x)])

    def boundary(self, grid: np.ndarray) -> np.ndarray:
        """The predicted probability at each point of `run_plots.boundary_grid`, for the figure
        (compiled by `warm_up`)."""
        return np.asarray(self._boundary(grid.astype(self.dtype)))

    def __call__(self, x: np.ndarray) -> list[tuple[float, float]]:
        """Each hidden layer's (mean activation, share of exact zeros) over the points `x`,
        taken PROBE_ROWS points at a time and weighted by their count (one call, and the
        numbers of a whole-set call, up to PROBE_ROWS points)."""
        parts = []
        for rows in _rows(x):
            outputs = self.probe([rows.astype(self.dtype)], training=False)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            parts.append([(len(rows), float(np.asarray(o).mean()),
                           float((np.asarray(o) == 0).mean())) for o in outputs])
        if len(parts) == 1:
            return [(mean, zeros) for _, mean, zeros in parts[0]]
        return [(sum(n * mean for n, mean, _ in layer) / len(x),
                 sum(n * zeros for n, _, zeros in layer) / len(x)) for layer in zip(*parts)]


# Points per eager call of the probe: one hidden layer's activations for a million points would
# take 2 GB.
PROBE_ROWS = 8192


def _rows(x: np.ndarray) -> list[np.ndarray]:
    return [x[start:start + PROBE_ROWS] for start in range(0, len(x), PROBE_ROWS)]


def summarize(result, hidden: list[tuple[float, float]],
              held_out_accuracy: float | None = None) -> dict:
    """metrics.json: final figures, the best test epoch, hidden-layer sparsity, and the
    compiled shape that trained it. Everything but the *_seconds keys depends only on the
    replica's config and seed.

    With a validation split (`data.n_validation`), what training measured on its validation
    data is `val_loss`/`val_accuracy` (and `best_val_*`), and `test_accuracy` and `gap` are
    on the held-out test points (`held_out_accuracy`, which `hidden`, each hidden layer's
    mean activation and share of zeros from `ActivationProbe`, was taken on)."""
    val = np.asarray(result.history["val_accuracy"])
    best = int(np.nanargmax(val)) if np.isfinite(val).any() else 0
    final = {k: float(v) for k, v in result.final.items()}
    during = "test"  # what the val_* curves were measured on
    if held_out_accuracy is not None:
        during = "val"
        final = {"train_loss": final["train_loss"], "train_accuracy": final["train_accuracy"],
                 "val_loss": final["test_loss"], "val_accuracy": final["test_accuracy"],
                 "test_accuracy": held_out_accuracy}
    return {
        **final,
        "gap": final["train_accuracy"] - final["test_accuracy"],
        f"best_{during}_accuracy": float(val[best]),
        f"best_{during}_epoch": best + 1,
        "epochs": len(val),  # epochs run: fewer than train.epochs after early stopping
        "stopped_epoch": result.stopped_epoch,
        "diverged": bool(not np.isfinite(result.history["loss"]).all()),
        "hidden_layers": [
            {"layer": i, "mean_activation": mean, "zero_fraction": zeros}
            for i, (mean, zeros) in enumerate(hidden)
        ],
        "seed": result.seed,
        "compiled_shape": result.shape,
        "train_seconds": round(result.train_seconds, 3),
    }


def keras_conventions() -> dict:
    """What the installed Keras does that would move numbers if circlereg let it, probed
    (both pinned by the config: docs/toolbox.md, the two traps). Loads TensorFlow."""
    return {"keras_activity_penalty": installed_convention(),
            "keras_seeded_fit_shuffle": seeded_fit_shuffle()}


def environment(conventions: dict, config_source: str = "<config>",
                execution: dict | None = None) -> dict:
    """environment.json: the library versions that decide a run's numbers, and its
    provenance (the config repository's commit, every installed package, CPU, threads, and
    how the plan was trained: `execution`, which never reaches the numbers).
    `conventions`: `keras_conventions()`."""


    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "keras_activity_penalty": conventions["keras_activity_penalty"],
        "keras_seeded_fit_shuffle": conventions["keras_seeded_fit_shuffle"],
        "numbers_revision": NUMBERS_REVISION,
        "note": "keras_activity_penalty: 'sum' when the installed Keras adds an activity "
                "penalty summed over the batch, 'mean' when it divides by the batch size; "
                "circlereg compensates so each regularizer's batch_reduction holds. "
                "keras_seeded_fit_shuffle: 'once' when the installed Keras replays one "
                "minibatch order every epoch after keras.utils.set_random_seed, 'each_epoch' "
                "when it reshuffles; both engines follow train.shuffle instead",
        "config_source": config_source,
        "git": provenance.repository(config_source),
        "cpu": provenance.cpu_model(),
        "threads": provenance.threads(),
        "packages": provenance.packages(),
        "execution": execution or {},
    }
