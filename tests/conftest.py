"""Shared fixtures. Tiers: the default (fast) tests use tiny data or few epochs; `slow` ones
train the study's full 4000 epochs; `ray` ones start a local Ray cluster."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session", autouse=True)
def programs():
    """One cache of compiled programs for the session, owned here: every executor the tests
    make, and every command they invoke in this process, reuses its compiled graphs."""
    from circlereg import commands, plots  # noqa: F401
    from circlereg.engine.worker import Programs

    # plots (matplotlib) imported here first: commands invoked in this process write their
    # runs in it too, where a command's warm-up thread and the writer's would otherwise import
    # matplotlib at the same time, which it does not survive (the CLI writes in workers).

    commands.PROGRAMS = Programs(limit=64)
    yield commands.PROGRAMS
    commands.PROGRAMS = None


@pytest.fixture(scope="session")
def executor(programs):
    """An executor on the session's programs, for tests that train without the CLI."""
    from circlereg.executor import Executor

    with Executor(programs=programs) as shared:
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


def globbed(root: Path, pattern: str) -> list[Path]:
    """root.rglob(pattern) while a command writes under root: a scratch folder it renames
    mid-scan makes rglob fail (Python 3.11), so scan again."""
    while True:
        try:
            return list(root.rglob(pattern))
        except FileNotFoundError:
            continue
