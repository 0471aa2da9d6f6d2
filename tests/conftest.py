"""Shared fixtures. Tiers: the default (fast) tests use tiny data or few epochs; `slow` ones
train the study's full 4000 epochs; `ray` ones start a local Ray cluster."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def executor():
    """One executor for the session, so tests reuse its compiled trainers."""
    from circlereg.executor import Executor

    with Executor() as shared:
        yield shared


@pytest.fixture(scope="session")
def study_run(tmp_path_factory):
    """`circlereg run configs/l1_pre_relu.yaml` at the study's full 4000 epochs."""
    from typer.testing import CliRunner

    from circlereg.cli import app

    runs = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(app, ["run", str(CONFIGS / "l1_pre_relu.yaml"),
                                      "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    (path,) = (runs / "l1_pre_relu").iterdir()
    return path, result.output
