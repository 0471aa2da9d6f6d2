#!/usr/bin/env python3
"""circlereg against the study's own loop (../shared/anchors/seed_study.py), side by side.

    python bench/bench.py [--epochs 4000] [--seeds 30] [--peer-seeds 2] [--sweep-repeats 10]

Prints wall times, runs per second and the ratios, plus peak memory (max RSS) of each side.
The peer is timed on a few seeds and scaled to the full work; circlereg trains all of it:
one run, a repeat of the study over --seeds seeds, and the README's sweep (11 strengths x
2 placements x --sweep-repeats seeds). Every circlereg time is end to end (a fresh process:
imports, compiles, training, every file written).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "anchors" / "seed_study.py"


def timed(cmd: list[str]) -> tuple[float, str, float]:
    """(wall seconds, stdout, peak RSS of that child in MiB)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{err.read()[-2000:]}")
        return seconds, out.read(), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=30, help="seeds in the repeated study")
    ap.add_argument("--peer-seeds", type=int, default=2, help="peer seeds actually timed")
    ap.add_argument("--sweep-repeats", type=int, default=10, help="seeds per sweep point")
    args = ap.parse_args()
    if not PEER.is_file():
        sys.exit(f"peer not found: {PEER}")
    cli = [sys.executable, "-m", "circlereg.cli"]
    runs = tempfile.mkdtemp(prefix="circlereg-bench-")
    epochs = f"train.epochs={args.epochs}"

    peer_times = []
    for seed in range(1, args.peer_seeds + 1):
        seconds, out, peer_mem = timed([sys.executable, str(PEER), "--variant", "pre",
                                        "--epochs", str(args.epochs), "--seed", str(seed)])
        peer_times.append(seconds)
        print(f"peer   seed {seed}: {seconds:7.1f} s   {out.strip()}")
    peer_one = sum(peer_times) / len(peer_times)

    ours_one, out, ours_mem = timed([*cli, "run", "configs/l1_pre_relu.yaml", "--set", epochs,
                                     "--runs-dir", runs])
    figures = re.search(r"Train: .*", out)
    print(f"circlereg run:   {ours_one:7.1f} s   {figures.group(0) if figures else ''}")

    ours_many, _, ours_many_mem = timed([*cli, "run", "configs/l1_pre_relu.yaml", "--set", epochs,
                                         "--repeats", str(args.seeds), "--no-run-figures",
                                         "--quiet", "--runs-dir", runs])
    print(f"circlereg run --repeats {args.seeds}: {ours_many:7.1f} s")

    sweep = ["model.regularizers.0.l1=logspace(-6,-1,11)",
             "model.regularizers.0.placement=pre_activation,post_activation"]
    sweep_runs = 11 * 2 * args.sweep_repeats
    ours_sweep, _, ours_sweep_mem = timed([*cli, "sweep", "configs/l1_pre_relu.yaml", *sweep,
                                           "--set", epochs, "--repeats",
                                           str(args.sweep_repeats), "--no-run-figures",
                                           "--quiet", "--runs-dir", runs])
    print(f"circlereg sweep ({sweep_runs} runs): {ours_sweep:7.1f} s")

    print()
    print(f"{'work':<34}{'peer s':>10}{'circlereg s':>13}{'ratio':>9}")
    rows = [(f"one run, {args.epochs} epochs, end to end", 1, ours_one),
            (f"{args.seeds}-seed repeat (peer scaled)", args.seeds, ours_many),
            (f"{sweep_runs}-run sweep (peer scaled)", sweep_runs, ours_sweep)]
    for label, runs_done, ours in rows:
        print(f"{label:<34}{peer_one * runs_done:>10.1f}{ours:>13.1f}"
              f"{peer_one * runs_done / ours:>8.1f}x")
    print(f"runs per second: peer {1 / peer_one:.4f}, circlereg repeat "
          f"{args.seeds / ours_many:.3f}, sweep {sweep_runs / ours_sweep:.3f} "
          f"(target: 1000x the peer, {1000 / peer_one:.2f})")
    print(f"peak memory (max RSS): peer {peer_mem:.0f} MiB, circlereg run {ours_mem:.0f} MiB, "
          f"repeat {ours_many_mem:.0f} MiB, sweep {ours_sweep_mem:.0f} MiB")


if __name__ == "__main__":
    main()
