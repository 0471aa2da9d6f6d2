"""environment.json's provenance: the config repository's commit and dirty flag, the installed
packages, CPU and threads, each looked up once per process (git once per config folder)."""

import json
import shutil
import subprocess
from importlib import metadata

import pytest
from typer.testing import CliRunner

from circlereg import provenance
from circlereg.cli import app
from tests.conftest import CONFIGS


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository holding one committed config; git never looks above tmp_path."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    provenance._repository.cache_clear()
    folder = tmp_path / "study"
    (folder / "configs").mkdir(parents=True)
    shutil.copy(CONFIGS / "l1_pre_relu.yaml", folder / "configs")
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "configs")
    yield folder
    provenance._repository.cache_clear()


def test_commit_and_dirty_flag_of_the_config_repository(repo):
    config = repo / "configs" / "l1_pre_relu.yaml"
    assert provenance.repository(str(config)) == {"commit": git(repo, "rev-parse", "HEAD"),
                                                  "dirty": False}
    (repo / "notes.txt").write_text("untracked files do not make the commit dirty\n")
    provenance._repository.cache_clear()
    assert provenance.repository(str(config))["dirty"] is False
    config.write_text(config.read_text().replace("0.0001", "0.001"))
    provenance._repository.cache_clear()
    assert provenance.repository(str(config))["dirty"] is True


def test_no_repository_no_git_and_no_file_give_nulls(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    provenance._repository.cache_clear()
    config = tmp_path / "loose.yaml"
    shutil.copy(CONFIGS / "l1_pre_relu.yaml", config)
    nothing = {"commit": None, "dirty": None}
    assert provenance.repository(str(config)) == nothing
    assert provenance.repository("<config>") == nothing
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    provenance._repository.cache_clear()
    assert provenance.repository(str(CONFIGS / "l1_pre_relu.yaml")) == nothing
    provenance._repository.cache_clear()


def test_packages_cpu_and_threads():
    packages = provenance.packages()
    assert packages["tensorflow"] == metadata.version("tensorflow")
    assert packages["PyYAML"] == metadata.version("pyyaml")
    assert provenance.cpu_model()
    assert provenance.threads()["cpu_count"] >= 1


def test_every_run_of_a_sweep_records_provenance_from_one_git_call(repo, tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, [
        "sweep", str(repo / "configs" / "l1_pre_relu.yaml"), "model.regularizers.0.l1=1e-4,1e-3",
        "--repeats", "2", "--set", "train.epochs=3", "--set", "data.n_samples=40",
        "--no-run-figures", "--quiet", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    environments = [json.loads(path.read_text()) for path in runs.rglob("environment.json")]
    assert len(environments) == 4
    head = git(repo, "rev-parse", "HEAD")
    for env in environments:
        assert env["git"] == {"commit": head, "dirty": False}
        assert env["packages"]["tensorflow"] == env["tensorflow"] == metadata.version("tensorflow")
        assert env["cpu"] and env["threads"]["cpu_count"] >= 1
        assert env["threads"]["tensorflow_intra_op"] >= 0  # TensorFlow was loaded to train
        assert env["keras_activity_penalty"] in ("sum", "mean")
    assert provenance._repository.cache_info().misses == 1
