"""`circlereg show` and `circlereg diff` on real (tiny) comparisons and their runs."""

import pytest
from typer.testing import CliRunner

from circlereg.cli import app

from .conftest import CONFIGS

runner = CliRunner()
TINY = ["--seeds", "1,2", "--set", "train.epochs=5", "--quiet"]


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """Two comparisons: baseline and l1_pre_relu; then the same with the baseline again
    under another name (all reused from the first)."""
    root = tmp_path_factory.mktemp("show")
    again = root / "baseline_again.yaml"
    again.write_text((CONFIGS / "baseline.yaml").read_text().replace(
        "name: baseline", "name: baseline_again"))
    made = []
    for extra in ([], [str(again)]):
        result = runner.invoke(app, ["compare", str(CONFIGS / "baseline.yaml"),
                                     str(CONFIGS / "l1_pre_relu.yaml"), *extra, *TINY,
                                     "--runs-dir", str(root / "runs")])
        assert result.exit_code == 0, result.output
        made.append(next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
                         if line.startswith("sweep: ")))
    return made


def invoke(*args):
    result = runner.invoke(app, [*map(str, args)])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_show_a_collection_and_a_run_in_it(collections):
    first, second = collections
    code, lines, _ = invoke("show", first)
    assert code == 0
    assert lines[0] == f"comparison: {first}" and lines[1].startswith("command: ")
    assert "varies: config x 2, seeds 1-2" in lines and "runs: 4 of 4 finished" in lines
    header = next(line for line in lines if line.startswith("point"))
    assert " ".join(header.split()).endswith("vs baseline [95% CI] p (Holm) verdict")
    assert "  4 runs trained here, 0 reused from runs trained before (reused.json)" in lines
    assert any(line.startswith("  software: TensorFlow ") for line in lines)

    code, lines, _ = invoke("show", second)
    assert "  0 runs trained here, 6 reused from runs trained before (reused.json)" in lines
    assert f"    from compare/{first.rsplit('/', 1)[1]}" in lines

    code, lines, _ = invoke("show", f"{first}/p001/seed_2")
    assert code == 0
    assert lines[1] == f"in: comparison {first} (p001 config=l1_pre_relu)"
    assert "config: l1_pre_relu, seed 2" in lines and "  trained here" in lines
    assert any(line.startswith("test_accuracy: 0.") for line in lines)


def test_diff_runs_and_collections(collections):
    first, second = collections
    code, lines, _ = invoke("diff", f"{first}/p000/seed_1", f"{first}/p001/seed_1")
    assert code == 0
    assert lines[0] == "config:"
    assert "  model.regularizers.0.l1: (none) -> 0.0001" in lines
    assert "  name: baseline -> l1_pre_relu" in lines
    assert "metrics:" in lines and not any("_seconds" in line for line in lines)
    assert not any(line.startswith("  train.") for line in lines)  # the same training

    assert invoke("diff", first, first)[1] == [
        f"no config key or metric differs between {first} and {first}"]
    code, lines, _ = invoke("diff", first, second)
    assert lines == ["collection:",
                     "  varies.config: ['baseline', 'l1_pre_relu'] -> "
                     "['baseline', 'l1_pre_relu', 'baseline_again']",
                     "points:", "  config=baseline_again: (none) -> present"]


def test_bad_paths_exit_2_with_one_line(collections, tmp_path):
    first, _ = collections
    for args, message in (
            (["show", tmp_path / "nope"], f"error: {tmp_path / 'nope'}: no such folder"),
            (["show", tmp_path], f"error: {tmp_path}: not a run or a collection"),
            (["diff", first, f"{first}/p000/seed_1"],
             f"error: {first}/p000/seed_1: is a run and {first} a comparison")):
        code, lines, stderr = invoke(*args)
        assert code == 2 and lines == []
        assert stderr.startswith(message) and stderr.count("\n") == 1, stderr
