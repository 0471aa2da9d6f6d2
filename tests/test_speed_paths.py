"""The speed paths never change a number: the compile cache (cold, warm, off) and the compiled
engine's counter-hash draws for dropout and noise."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from circlereg.engine.model import draw_key, normal, uniform

from .conftest import CONFIGS, ROOT

# Dropout and input noise: the draws and the cache both in play.
RUN = ["run", str(CONFIGS / "dropout.yaml"), "--seed", "3", "--set", "train.epochs=40",
       "--set", "model.noise.0.stddev=0.05", "--quiet", "--no-run-figures"]


def circlereg(runs, cache, *, enabled=True):
    """`circlereg run` in a fresh process (the cache is set when TensorFlow loads), with
    its cache under `cache`; returns (history.csv bytes, metrics minus wall times, stderr)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache),
           "CIRCLEREG_COMPILE_CACHE": "1" if enabled else "0"}
    return subprocess.Popen([sys.executable, "-m", "circlereg.cli", *RUN, "--runs-dir",
                             str(runs)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process, runs):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (run,) = (runs / "dropout").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    return ((run / "history.csv").read_bytes(),
            {k: v for k, v in metrics.items() if not k.endswith("_seconds")}, err)


@pytest.mark.slow  # three fresh processes, each importing TensorFlow: ~12 s
def test_cold_warm_and_no_cache_give_byte_identical_runs(tmp_path):
    cache = tmp_path / "cache"
    off = circlereg(tmp_path / "off", tmp_path / "unused", enabled=False)
    cold = finished(circlereg(tmp_path / "cold", cache), tmp_path / "cold")
    entries = sorted((cache / "circlereg" / "xla").glob("*/*.pb"))
    assert entries, "the first run left no compiled program in the cache"
    warm = finished(circlereg(tmp_path / "warm", cache), tmp_path / "warm")
    off = finished(off, tmp_path / "off")
    assert cold[:2] == warm[:2] == off[:2]
    assert warm[2] == cold[2] == off[2]  # loading cached programs: none of XLA's false alarms
    assert sorted((cache / "circlereg" / "xla").glob("*/*.pb")) == entries  # all reused
    assert not list((cache / "circlereg" / "xla").glob("*/.process-*"))  # cleaned at exit
    assert not (tmp_path / "unused" / "circlereg").exists()  # (matplotlib keeps its own)


def test_draws_are_a_pure_function_of_seed_epoch_step_and_layer():
    key = draw_key(7, 12, 0)
    first = uniform(key, 1, (30, 500)).numpy()
    assert np.array_equal(first, uniform(draw_key(7, 12, 0), 1, (30, 500)).numpy())
    others = [uniform(draw_key(8, 12, 0), 1, (30, 500)), uniform(draw_key(7, 13, 0), 1, (30, 500)),
              uniform(draw_key(7, 12, 1), 1, (30, 500)), uniform(key, 2, (30, 500))]
    for other in others:  # another seed, epoch, step or layer: an unrelated stream
        assert abs(np.corrcoef(first.ravel(), np.asarray(other).ravel())[0, 1]) < 0.04
    assert first.min() >= 0 and first.max() < 1
    # Dropout(0.4) keeps u >= 0.4: 60% of 15000 units, within 4 standard deviations
    assert np.mean(first >= 0.4) == pytest.approx(0.6, abs=4 * np.sqrt(0.24 / first.size))
    z = normal(key, 1, (200, 500)).numpy()
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1, abs=0.01)


@pytest.mark.slow
def test_a_run_written_in_a_worker_process_is_the_run_written_here(executor, tmp_path):
    """Every file of a run directory, figures and model included, is byte for byte the same
    from a worker process as from a worker in this process (wall times aside)."""
    from circlereg.config import load
    from circlereg.executor import Executor, execute
    from circlereg.plan import Plan, Replica

    config = load(CONFIGS / "l1_pre_relu.yaml", ["train.epochs=30"])
    for name, here in (("here", executor), ("process", None)):
        with Executor(workers=1) if here is None else contextlib.nullcontext(here) as runner:
            execute(Plan([Replica(config, tmp_path / name)]), runner)
    files = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "process").iterdir())
    assert {"accuracy.png", "loss.png", "decision_boundary.png", "model.keras"} <= set(files)
    for name in files:
        if name not in ("metrics.json", "environment.json", "model.keras"):
            assert (tmp_path / "here" / name).read_bytes() == \
                (tmp_path / "process" / name).read_bytes(), name
    here, process = ({k: v for k, v in json.loads((tmp_path / w / "metrics.json").read_text())
                      .items() if not k.endswith("_seconds")} for w in ("here", "process"))
    assert here == process
    execution = [json.loads((tmp_path / w / "environment.json").read_text())["execution"]
                 for w in ("here", "process")]
    assert execution[0]["backend"] == "this process" and execution[1]["backend"] == "local"


def test_a_run_figure_drawn_again_is_the_figure_drawn_afresh(tmp_path):
    """Each thread keeps its run figures and redraws only what a run changes: after any runs
    before it (longer, shorter, diverged), a run's PNGs are byte for byte those of a thread
    that draws it first."""
    import threading

    from circlereg import run_plots
    from circlereg.config import load
    from circlereg.data import load_split

    split = load_split(load(CONFIGS / "l1_pre_relu.yaml")["data"])
    grid = run_plots.boundary_grid(split)
    rng = np.random.default_rng(0)
    names = ("loss", "accuracy", "val_loss", "val_accuracy")

    def history(epochs, finite):
        curves = {n: np.cumsum(rng.random(epochs)).astype("float32") / epochs for n in names}
        for n in names:
            curves[n][finite:] = np.nan  # a run that diverged after `finite` epochs
        return curves

    runs = [(history(epochs, finite), 1 / (1 + np.exp(4 * scale * (grid ** 2).sum(axis=1) - 2 - k)))
            for k, (epochs, finite, scale) in enumerate(
                [(400, 400, 0.2), (90, 90, 0.5), (400, 3, 1.1), (400, 0, 0.7), (250, 250, 2.0)])]

    def draw(k, folder):
        curves, probability = runs[k]
        for metric, evaluated in (("loss", "test"), ("accuracy", "validation")):
            run_plots.curves(curves, folder / f"{metric}{k}.png", metric, f"run {k}", evaluated)
        run_plots.decision_boundary(split, probability, folder / f"boundary{k}.png", f"run {k}")

    (tmp_path / "again").mkdir(), (tmp_path / "afresh").mkdir()
    for k in range(len(runs)):
        draw(k, tmp_path / "again")
        first = threading.Thread(target=draw, args=(k, tmp_path / "afresh"))
        first.start()
        first.join()
    pngs = sorted(p.name for p in (tmp_path / "afresh").iterdir())
    assert len(pngs) == 3 * len(runs)
    assert [name for name in pngs if (tmp_path / "again" / name).read_bytes()
            != (tmp_path / "afresh" / name).read_bytes()] == []


def test_a_run_whose_figure_fails_is_never_left_looking_complete(executor, tmp_path,
                                                                 monkeypatch):
    """A run whose figure fails leaves no folder (not even a .partial- one), the failure
    reaches the caller, and the runs written before it are complete."""
    from circlereg import run_plots
    from circlereg.config import load
    from circlereg.data import load_split
    from circlereg.engine.writer import Writer
    from circlereg.plan import Outputs, Replica
    from circlereg.rundir import run_state

    config = load(CONFIGS / "l1_pre_relu.yaml", ["train.epochs=20"])
    (result,) = executor.train_all([config])
    curves = run_plots.curves

    def failing(history, path, *args):
        if path.parent.name.endswith("bad"):
            raise OSError(28, "No space left on device")
        curves(history, path, *args)

    monkeypatch.setattr(run_plots, "curves", failing)
    writer = Writer(Outputs())
    writer.write(Replica(config, tmp_path / "good"), result, load_split(config["data"]))
    with pytest.raises(OSError, match="No space left"):
        writer.write(Replica(config, tmp_path / "bad"), result, load_split(config["data"]))
    assert run_state(tmp_path / "good") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]
