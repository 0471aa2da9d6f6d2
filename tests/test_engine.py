"""The compiled engine against plain model.fit, batched replicas against single runs."""

import numpy as np
import pytest

from circlereg.config import load, with_seed
from circlereg.data import load_split
from circlereg.engine.fit import train_fit
from circlereg.engine.model import Seeds, build_model, initial_state
from circlereg.engine.train import CURVES, LANES

from .conftest import CONFIGS

# The study's two activity placements; its baseline (no penalty) is each of them with a
# strength of 0, and tests/test_invariant.py holds its bits.
STUDY = ("l1_post_relu", "l1_pre_relu")


def study_config(name, *overrides):
    return load(CONFIGS / f"{name}.yaml", list(overrides))


def relative(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY)
def test_compiled_engine_matches_model_fit(name, executor):
    # float64 keeps rounding out of the comparison; fit records its metrics in float32.
    config = study_config(name, "train.epochs=200", "train.dtype=float64")
    split = load_split(config["data"])
    ours, reference = executor.train_all([config])[0], train_fit(config, split)
    for curve in ("accuracy", "val_accuracy"):
        assert np.mean(ours.history[curve] == reference.history[curve]) >= 0.99, curve
    assert relative(ours.history["loss"], reference.history["loss"]) < 1e-4
    # The pre-activation L1 run amplifies rounding after ~150 epochs (Adam normalises tiny
    # subgradients); up to there both loss curves agree to float32 precision.
    val_tolerance = 3e-4 if name == "l1_pre_relu" else 1e-4
    assert relative(ours.history["val_loss"], reference.history["val_loss"]) < val_tolerance
    assert relative(ours.history["val_loss"][:150], reference.history["val_loss"][:150]) < 1e-5
    assert ours.final["test_accuracy"] == pytest.approx(reference.final["test_accuracy"],
                                                        abs=1 / 70 + 1e-9)


@pytest.mark.slow
def test_float32_engines_agree_on_the_first_epochs(executor):
    config = study_config("l1_pre_relu", "train.epochs=30")
    split = load_split(config["data"])
    ours, reference = executor.train_all([config])[0], train_fit(config, split)
    for curve in CURVES:
        assert relative(ours.history[curve], reference.history[curve]) < 1e-5, curve


@pytest.mark.parametrize("batch", [
    ["train.epochs=60"],  # the study's full batch
    ["train.epochs=12", "train.batch_size=7"],  # 4 minibatches of 7 and one of 2 per epoch
])
def test_each_replica_in_a_batch_is_bit_identical_to_its_single_run(executor, batch):
    """Seeds and strengths of batch-mates never reach a replica: same bits alone or not,
    with the full batch and with minibatches (each lane shuffles by its own seed)."""
    base = study_config("l1_pre_relu", *batch)
    replicas = [with_seed(base, 1), with_seed(base, 2),
                with_seed(study_config("l1_pre_relu", *batch,
                                       "model.regularizers.0.l1=0.003"), 3)]
    batched = executor.train_all(replicas)
    for config, together in zip(replicas, batched):
        alone = executor.train_all([config])[0]
        assert together.seed == alone.seed
        for curve in CURVES:
            assert np.array_equal(together.history[curve], alone.history[curve]), curve
        assert together.final == alone.final
        assert together.shape == {"engine": "compiled", "lanes": LANES,
                                  "segment_epochs": -(-base["train"]["epochs"] // 8)}
    # and the replicas really differ: different seeds and strengths train differently
    assert not np.allclose(batched[0].history["loss"], batched[1].history["loss"])
    assert batched[2].history["loss"][0] > batched[0].history["loss"][0]


def test_a_learning_rate_sweep_trains_in_one_program_each_lane_as_alone():
    """The learning rate is a lane setting (circlereg.lanes): a sweep over it is one job of
    one structure, trained by one program, and each lane's numbers are those of its config
    trained alone, bit for bit, in a program built for another learning rate or its own.
    AdamW: both of the optimizer's readers of the rate, the update and the weight decay."""
    from pathlib import Path

    from circlereg.config import structure_key
    from circlereg.engine.worker import Programs
    from circlereg.executor import Executor, make_jobs
    from circlereg.plan import Replica

    rates = [study_config("l1_pre_relu", "train.epochs=30", "train.optimizer=adamw",
                          f"train.learning_rate={rate}") for rate in (1e-3, 3e-3, 1e-2)]
    assert len({structure_key(c) for c in rates}) == 1
    assert len(make_jobs([Replica(c, Path(".")) for c in rates], None, 4, LANES)) == 1
    programs, own = Programs(), Programs()
    with Executor(programs=programs) as shared, Executor(programs=own) as fresh:
        together = shared.train_all(rates)
        assert len(programs) == 1
        alone = [shared.train_all([c])[0] for c in rates[:2]] + fresh.train_all(rates[2:])
    for lane, single in zip(together, alone):
        for curve in CURVES:
            assert np.array_equal(lane.history[curve], single.history[curve]), curve
        assert lane.final == single.final
        assert all(np.array_equal(a, b) for a, b in zip(lane.weights, single.weights))
    losses = [r.history["loss"][-1] for r in together]
    assert len(set(losses)) == 3  # and each rate trains its own way


def test_minibatches_train_every_point_each_epoch(executor):
    config = study_config("baseline", "train.epochs=30", "train.batch_size=8",
                          "model.hidden=[32]")
    result = executor.train_all([config])[0]
    assert np.isfinite(result.history["loss"]).all()
    # 30 points in batches of 8: accuracies are multiples of 1/30
    counts = result.history["accuracy"] * 30
    assert np.allclose(counts, np.round(counts), atol=1e-4)
    assert result.history["loss"][-1] < result.history["loss"][0]


def hlo_size(n_train: int, n_test: int) -> int:
    """Instructions in the compiled epoch loop's program for this much data (batch 32)."""
    import tensorflow as tf

    from circlereg.engine.train import LaneProgram, _slot

    config = study_config("baseline", "train.epochs=2", "model.hidden=[8]",
                          f"data.n_train={n_train}", f"data.n_samples={n_train + n_test}")
    program = LaneProgram(config, load_split(config["data"]))
    slot = _slot(*program._inputs([config], [initial_state(config)]), program.data)
    hlo = program.run.experimental_get_compiler_ir(slot, tf.constant(0),
                                                   tf.constant(1))(stage="hlo")
    return sum(1 for line in hlo.splitlines() if " = " in line)


def test_the_program_does_not_grow_with_the_data():
    """The minibatch steps and evaluation batches are loops: 100 points (3 batches of 32 and
    one of 4) and 3000 (93 and one of 24) compile to programs of the same size."""
    small, large = hlo_size(100, 70), hlo_size(3000, 2010)
    assert small == large
    assert hlo_size(30, 70) < small  # one full batch: no shuffle, no loop over steps


@pytest.mark.slow
def test_study_figures_are_reproduced(study_run):
    """l1_pre_relu at 4000 epochs: the published 96% / 82% (29/30 and 58/70 points)."""
    import json

    path, output = study_run
    metrics = json.loads((path / "metrics.json").read_text())
    assert abs(metrics["train_accuracy"] - 29 / 30) <= 2 / 30 + 1e-6
    assert abs(metrics["test_accuracy"] - 58 / 70) <= 2 / 70 + 1e-6
    assert f"Train: {metrics['train_accuracy']:.3f}, Test: {metrics['test_accuracy']:.3f}" \
        in output


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seeds_give_the_weights_of_keras_global_seeding(name, dtype, monkeypatch):
    """circlereg seeds every layer explicitly; the weights must be the ones the study's
    `keras.utils.set_random_seed(seed)` and unseeded layers give, and initial_state (layers
    built alone, cheaper) must equal the full model's start."""
    import keras

    config = load(CONFIGS / f"{name}.yaml", [f"train.dtype={dtype}", "train.seed=7"])
    trainable, state = initial_state(config)
    explicit = build_model(config).model
    monkeypatch.setattr(Seeds, "next", lambda self: None)  # Keras draws its own seeds
    keras.utils.set_random_seed(7)
    study = build_model(config).model
    for model in (explicit, study):
        expected = [v.numpy() for v in model.trainable_variables + model.non_trainable_variables]
        assert len(trainable + state) == len(expected)
        for ours, theirs in zip(trainable + state, expected):
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
