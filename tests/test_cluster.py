"""The Ray backend: a real local cluster (a head node and its worker processes, on 127.0.0.1
only), a worker process killed mid-task, and the same summary as the local backend."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.cluster import LOOPBACK

from .conftest import CONFIGS, ROOT
from .test_invariant import fingerprint

SWEEP = ["sweep", str(CONFIGS / "l1_pre_relu.yaml"), "model.regularizers.0.l1=1e-4,1e-3",
         "--set", "train.epochs=300", "--repeats", "4", "--chunk", "2", "--no-run-figures",
         "--quiet"]


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(app, [*SWEEP, "--backend", "ray", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'circlereg[ray]'" in result.output
    assert not list(tmp_path.rglob("metrics.json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    scratch = tempfile.mkdtemp(prefix="cr-ray-", dir="/tmp")  # short: Ray's socket paths
    # loopback only, so no token: the driver then needs none either
    env = {**os.environ, **LOOPBACK, "RAY_TMPDIR": scratch, "RAY_AUTH_MODE": "disabled"}
    try:
        # A head node whose two worker processes run the tasks; with LOOPBACK every Ray
        # socket binds 127.0.0.1 (a second node would need a routable address).
        subprocess.run([str(ray_cli), "start", "--head", f"--port={port}",
                        "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                        "--num-cpus=2", "--disable-usage-stats"],
                       check=True, env=env, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


def summary(runs: Path) -> bytes:
    (folder,) = (runs / "l1_pre_relu-sweep").iterdir()
    return (folder / "summary.csv").read_bytes()


@pytest.mark.ray
def test_ray_cluster_survives_a_killed_worker_and_matches_local(tmp_path, ray_cluster):
    """Ray listens on 127.0.0.1 only; one task's worker process is SIGKILLed and retried."""
    address, env = ray_cluster
    local = tmp_path / "local"
    subprocess.run([sys.executable, "-m", "circlereg.cli", *SWEEP, "--runs-dir", str(local)],
                   check=True, cwd=ROOT, capture_output=True)
    on_ray = tmp_path / "ray_runs"
    driver = subprocess.Popen([sys.executable, "-m", "circlereg.cli", *SWEEP, "--backend",
                               "ray", "--address", address, "--runs-dir", str(on_ray)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 300
    while killed is None and driver.poll() is None and time.time() < deadline:
        found = subprocess.run(["pgrep", "-f", "ray::WorkerActor"], capture_output=True,
                               text=True).stdout.split()
        if found:
            killed = int(found[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    output, _ = driver.communicate(timeout=600)
    assert killed is not None, "no Ray worker was running a task to kill"
    assert driver.returncode == 0, output
    assert summary(on_ray) == summary(local)
    assert len(list(on_ray.rglob("seed_*/metrics.json"))) == 8
    (folder,) = (local / "l1_pre_relu-sweep").iterdir()
    (ray_folder,) = (on_ray / "l1_pre_relu-sweep").iterdir()
    for run in folder.glob("p*/seed_*"):  # the invariant: every sub-run, byte for byte
        assert fingerprint(run) == fingerprint(ray_folder / run.parent.name / run.name)
