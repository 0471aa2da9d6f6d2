"""circlereg as a user installs it: a real wheel (not editable), run from an empty folder.

The wheel is built from a copy of the package's sources (no network, no build folder left in
the checkout) and installed with `pip install --target`; its console script then runs with
that folder on PYTHONPATH and this virtual environment's TensorFlow, so the repository's
configs/ cannot stand in for the packaged ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from circlereg.config import config_hash, load

from .conftest import CONFIGS, ROOT

SOURCES = ("pyproject.toml", "README.md", "circlereg", "configs")


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index",
                           "--quiet", "--disable-pip-version-check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the console script, the folder the wheel is installed in, an environment for it)."""
    work = tmp_path_factory.mktemp("installed")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    pip("wheel", str(source), "--no-build-isolation", "--wheel-dir", str(work / "wheel"))
    (wheel,) = (work / "wheel").glob("circlereg-*.whl")
    site = work / "site"
    pip("install", "--target", str(site), str(wheel))
    env = {**os.environ, "PYTHONPATH": str(site)}
    return site / "bin" / "circlereg", site, env


def test_the_wheel_is_what_runs_and_ships_every_config(installed, tmp_path):
    _, site, env = installed
    done = subprocess.run(
        [sys.executable, "-c", "import sys, circlereg, circlereg.shipped as shipped; "
                               "print(circlereg.__file__); print(shipped.folder()); "
                               "print(*sys.path, sep='\\n')"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module, folder, *path = done.stdout.splitlines()
    assert Path(module).is_relative_to(site) and Path(folder) == site / "circlereg" / "configs"
    assert not any(Path(entry).resolve() == ROOT for entry in path if entry)
    packaged = {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*.yaml")}
    assert packaged == {str(p.relative_to(CONFIGS)): p.read_bytes()
                        for p in CONFIGS.rglob("*.yaml")}


@pytest.mark.slow
def test_the_installed_command_runs_reproduces_and_copies_from_an_empty_folder(installed,
                                                                              tmp_path):
    script, site, env = installed

    def circlereg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True)

    ran = circlereg("run", "l1_pre_relu", "--set", "train.epochs=50", "--no-run-figures")
    assert ran.returncode == 0, ran.stderr
    expected = load(CONFIGS / "l1_pre_relu.yaml", ["train.epochs=50"])
    (run,) = (tmp_path / "runs" / "l1_pre_relu").iterdir()
    assert ran.stdout.splitlines()[-1] == f"run: {run.relative_to(tmp_path)}"
    assert run.name.endswith(f"-{config_hash(expected)}")
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 50
    assert (run / "config.yaml").is_file()
    source = json.loads((run / "environment.json").read_text())["config_source"]
    assert Path(source) == site / "circlereg" / "configs" / "l1_pre_relu.yaml"

    reproduced = circlereg("reproduce", "--seeds", "2", "--epochs", "50", "--quiet")
    assert reproduced.returncode in (0, 1), reproduced.stderr  # 1: a claim needs more seeds
    (report,) = (tmp_path / "runs" / "reproduce-study").iterdir()
    assert reproduced.stdout.splitlines()[-1] == f"report: {report.relative_to(tmp_path)}"
    verdict = json.loads((report / "reproduction.json").read_text())
    assert verdict["spec"]["seeds"] == 2 and verdict["spec"]["epochs"] == 50
    assert set(verdict["spec"]["models"]) == {"baseline", "l1_pre_activation",
                                              "l1_post_activation"}

    copied = circlereg("configs", "--copy", "mine")
    assert copied.returncode == 0, copied.stderr
    assert {str(p.relative_to(tmp_path / "mine")): p.read_bytes()
            for p in (tmp_path / "mine").rglob("*") if p.is_file()} == \
        {str(p.relative_to(site / "circlereg" / "configs")): p.read_bytes()
         for p in (site / "circlereg" / "configs").rglob("*.yaml")}
    assert circlereg("configs", "--copy", "mine").returncode == 2
