"""`circlereg reproduce`: spec validation, verdicts and exit codes on a short real training."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import ConfigError
from circlereg.reproduce import load_spec, under_convention

from .conftest import CONFIGS

runner = CliRunner()


def write_spec(tmp_path, body: dict):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def baseline_spec(published: dict) -> dict:
    return {"name": "tiny", "seeds": 3, "epochs": 60,
            "models": {"baseline": {"config": str(CONFIGS / "baseline.yaml"),
                                    "published": published}}}


def reproduce(tmp_path, spec_path):
    return runner.invoke(app, ["reproduce", "--spec", str(spec_path), "--runs-dir",
                               str(tmp_path / "runs"), "--quiet"])


def test_a_wrong_published_figure_fails_and_the_measured_one_passes(tmp_path):
    wrong = write_spec(tmp_path, baseline_spec({"test_accuracy": 12}))
    result = reproduce(tmp_path, wrong)
    assert result.exit_code == 1, result.output
    assert "FAILED: baseline test_accuracy: published 12%" in result.output
    (folder,) = (tmp_path / "runs" / "reproduce-tiny").iterdir()
    report = json.loads((folder / "reproduction.json").read_text())
    measured = next(r for r in report["figures"] if r["convention"] == "sum"
                    and r["metric"] == "test_accuracy")
    assert measured["verdict"] == "differs"
    assert {p.name for p in folder.iterdir()} == {
        "reproduction.md", "reproduction.json", "accuracy_curves.png", "final_accuracy.png",
        "runs", "manifest.json"}
    # every replica is a run directory of its own, as `circlereg run` would write it
    assert sorted(p.name for p in (folder / "runs" / "baseline").iterdir()) == [
        "seed_1", "seed_2", "seed_3"]

    right = write_spec(tmp_path, baseline_spec({"test_accuracy": measured["measured_percent"]}))
    result = reproduce(tmp_path, right)
    assert result.exit_code == 0, result.output
    assert "| baseline | test_accuracy |" in result.output and "reproduces" in result.output


def test_conventions_differ_only_in_activity_penalties():
    spec = load_spec(CONFIGS / "reproduce" / "study.yaml", seeds=2, epochs=10)
    pre = spec["models"]["l1_pre_activation"]["config"]
    assert under_convention(pre, "sum")["model"]["regularizers"][0]["batch_reduction"] == "sum"
    scaled = under_convention(pre, "mean_scaled")["model"]["regularizers"][0]
    assert scaled["batch_reduction"] == "mean" and scaled["l1"] == pytest.approx(0.0001 * 30)
    baseline = spec["models"]["baseline"]["config"]
    assert under_convention(baseline, "mean") == under_convention(baseline, "sum")


@pytest.mark.parametrize("body, key, message", [
    ({"models": {}}, "models", "must be a mapping of model name"),
    ({"seeds": 0, "models": {"b": {"config": "x"}}}, "seeds", "must be an integer in [1, 10000]"),
    ({"modles": {}}, "modles", "unknown key"),
    ({"models": {"b": {"config": str(CONFIGS / "baseline.yaml"),
                       "published": {"test_accuracy": 178}}}},
     "models.b.published.test_accuracy", "must be a percentage in [0, 100]"),
    ({"models": {"b": {"config": str(CONFIGS / "baseline.yaml")}},
      "claims": [{"test": "greater", "metric": "test_accuracy", "model": "b", "than": "c"}]},
     "claims.0.than", "must name a model"),
    ({"models": {"b": {"config": str(CONFIGS / "baseline.yaml")}},
      "claims": [{"test": "bigger", "model": "b"}]}, "claims.0.test", "must be one of"),
])
def test_malformed_spec(tmp_path, body, key, message):
    path = write_spec(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.key == key and message in err.value.message
    result = reproduce(tmp_path, path)
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {path}: {key}: ")
