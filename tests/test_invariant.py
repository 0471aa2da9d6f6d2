"""The invariant: a replica's history.csv and metrics.json (wall times aside) are
byte-identical whichever command, grid, seed list, --chunk, worker count, resume or
backend trained it. Here for seed 3 of l1_pre_relu (chaotic: any change in the compiled
arithmetic shows in the loss bits), on a short run. Resume and Ray: test_sweep, test_cluster.
"""

import json

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app

from .conftest import CONFIGS

runner = CliRunner()
CONFIG = str(CONFIGS / "l1_pre_relu.yaml")
SHORT = ["--set", "train.epochs=60", "--quiet", "--no-run-figures"]


def fingerprint(run_dir):
    """What must not change: the curves, and every metric but the wall times."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    timeless = {k: v for k, v in metrics.items() if not k.endswith("_seconds")}
    return (run_dir / "history.csv").read_bytes(), timeless


def invoke(runs, *args):
    result = runner.invoke(app, [*map(str, args), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    return result.output


def only(pattern, root):
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    runs = tmp_path_factory.mktemp("alone")
    output = invoke(runs, "run", CONFIG, "--seed", 3, *SHORT)
    return fingerprint(only("l1_pre_relu/*", runs)), output


@pytest.mark.parametrize("name, args, pattern", [
    ("seeds", ["run", CONFIG, "--seeds", "1,2,3", *SHORT], "l1_pre_relu-sweep/*/p000/seed_3"),
    ("repeats", ["run", CONFIG, "--repeats", 4, *SHORT], "l1_pre_relu-sweep/*/p000/seed_3"),
    ("sweep", ["sweep", CONFIG, "model.regularizers.0.l1=1e-3,1e-4", "--seeds", "5,3",
               *SHORT], "l1_pre_relu-sweep/*/p001/seed_3"),
    ("one worker, chunk 8", ["sweep", CONFIG, "model.regularizers.0.l1=1e-4,1e-3",
                             "--repeats", 5, "--workers", 1, "--chunk", 8, *SHORT],
     "l1_pre_relu-sweep/*/p000/seed_3"),
    ("compare", ["compare", str(CONFIGS / "baseline.yaml"), CONFIG, "--seeds", "3,5", *SHORT],
     "compare/*/p001/seed_3"),
])
def test_a_replica_is_byte_identical_whichever_command_trains_it(alone, tmp_path, name, args,
                                                                    pattern):
    invoke(tmp_path, *args)
    assert fingerprint(only(pattern, tmp_path)) == alone[0]


def test_reproduce_trains_the_same_replica(alone, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "tiny", "seeds": 3, "epochs": 60, "models": {
        "pre": {"config": CONFIG}}}))
    result = runner.invoke(app, ["reproduce", "--spec", str(spec), "--quiet",
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert fingerprint(only("reproduce-tiny/*/runs/pre-sum/seed_3", tmp_path)) == alone[0]


def test_the_figures_printed_alone_are_the_sub_runs_figures(alone, tmp_path):
    """The issue's first example: seed 3 prints the same figures alone and inside --seeds."""
    _, metrics = alone[0]
    assert f"Train: {metrics['train_accuracy']:.3f}, Test: {metrics['test_accuracy']:.3f}" \
        in alone[1]
    assert metrics["compiled_shape"]["lanes"] == 4
