"""One config in, one complete run directory out: data -> model -> train -> files."""

from __future__ import annotations

import time
from pathlib import Path

from circlereg import plots, rundir
from circlereg.config import dump
from circlereg.data import load_split


def train_and_write(config: dict, runs_dir: Path, source: str = "<config>") -> tuple[Path, dict]:
    """Train `config` and write its run directory; returns (its path, metrics)."""
    # TensorFlow is imported here, not at module level, so the CLI's --help stays fast.
    from circlereg.regularizers import check_custom_regularizers
    from circlereg.train import train

    start = time.perf_counter()
    check_custom_regularizers(config, source)
    split = load_split(config["data"])
    result = train(config, split)
    final = rundir.run_path(runs_dir, config)
    return final, write_run(config, split, result, final, start)


def write_run(config: dict, split, result, final: Path, start: float, probe=None,
              figures: bool = True) -> dict:
    """Write one trained replica's run directory at `final` (atomically); returns metrics.

    `probe` (an ActivationProbe) may be shared by replicas of one shape; `figures=False`
    leaves out the PNGs (sweeps).
    """
    import keras

    from circlereg.regularizers import installed_convention
    from circlereg.train import ActivationProbe

    # Every layer carries its dtype, so no global floatx is needed (sweeps write from a thread).
    probe = probe or ActivationProbe(config)
    model = probe.hold(config, result.weights)
    activations = probe(split.test_x)
    metrics = rundir.summarize(result, activations, time.perf_counter() - start)

    with rundir.atomic_dir(final) as scratch:
        (scratch / "config.yaml").write_text(dump(config))
        rundir.write_history(scratch / "history.csv", result.history)
        rundir.write_json(scratch / "environment.json", rundir.environment(installed_convention()))
        name = config["name"]
        if figures:
            plots.curves(result.history, scratch / "accuracy.png", "accuracy",
                         f"{name}: accuracy")
            plots.curves(result.history, scratch / "loss.png", "loss", f"{name}: loss")

            def predict(points):
                return keras.ops.convert_to_numpy(
                    model(points.astype(config["train"]["dtype"]), training=False))

            plots.decision_boundary(predict, split, scratch / "decision_boundary.png",
                                    f"{name}: decision boundary")
        model.save(scratch / "model.keras")
        metrics["wall_seconds"] = round(time.perf_counter() - start, 3)
        rundir.write_json(scratch / "metrics.json", metrics)
    return metrics
