#!/usr/bin/env python3
"""The same sweep on the local backend and on a loopback Ray head with 1 and 2 worker CPUs.

    python bench/ray_scaling.py [--epochs 1000] [--points 20] [--seeds 4] [--chunk 8]

Prints wall time and Ray tasks (chunks) per second for each, and checks that every backend
wrote the same summary.csv.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def sweep(args, runs: Path, env: dict, *extra: str) -> float:
    cmd = [sys.executable, "-m", "circlereg.cli", "sweep", "configs/l1_pre_relu.yaml",
           f"model.regularizers.0.l1=logspace(-6,-2,{args.points})", "--repeats",
           str(args.seeds), "--set", f"train.epochs={args.epochs}", "--chunk", str(args.chunk),
           "--no-run-figures", "--quiet", "--runs-dir", str(runs), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def summary(runs: Path) -> bytes:
    (folder,) = (runs / "l1_pre_relu-sweep").iterdir()
    return (folder / "summary.csv").read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=8)
    args = ap.parse_args()
    tasks = -(-args.points * args.seeds // args.chunk)
    scratch = Path(tempfile.mkdtemp(prefix="cr-bench-", dir="/tmp"))
    env = {**os.environ, **LOOPBACK, "RAY_TMPDIR": str(scratch / "ray")}
    ray = Path(sys.executable).with_name("ray")

    local = sweep(args, scratch / "local", env)
    print(f"local backend (2 threads): {local:6.1f} s")
    for cpus in (1, 2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        subprocess.run([str(ray), "start", "--head", f"--port={port}",
                        "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                        f"--num-cpus={cpus}", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True)
        try:
            runs = scratch / f"ray{cpus}"
            seconds = sweep(args, runs, env, "--backend", "ray", "--address",
                            f"127.0.0.1:{port}")
        finally:
            subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True)
        same = summary(runs) == summary(scratch / "local")
        print(f"ray, {cpus} worker(s):       {seconds:6.1f} s  {tasks / seconds:.3f} tasks/s  "
              f"({tasks} tasks of {args.chunk} replicas; summary equal to local: {same})")


if __name__ == "__main__":
    main()
