#!/usr/bin/env python3
"""circlereg against the study's own loop (bench/peer.py), side by side.

    python bench/bench.py [--epochs 4000] [--peer-seeds 2] [--sweep-repeats 10]
                          [--reproduce-runs 210] [--only run,sweep40,sweep220,reproduce]

The peer is the study's Keras model.fit loop, one model at a time (`bench/peer.py --variant
pre`); it is timed on --peer-seeds seeds and its mean seconds per run are scaled to each row's
work. circlereg trains all of the work, each row in a fresh process timed end to end
(imports, compiles, training, every file written):

    run        one run of configs/l1_pre_relu.yaml
    sweep40    2 strengths x 2 placements x 10 seeds = 40 runs, default outputs (run figures)
    sweep220   the README's sweep: 11 strengths x 2 placements x --sweep-repeats seeds,
               --no-run-figures
    reproduce  `circlereg reproduce`: the default spec trains 30 seeds x 7 distinct configs
               (--reproduce-runs, used to scale the peer); exit code 1 (a figure did not
               reproduce, as with short --epochs) counts as a completed row when the
               report (reproduction.md) was written

Prints each side's wall time, the ratio (peer / circlereg), runs per second, and the peak
memory (max RSS) of the peer and of each circlereg row. Run directories go to a temporary
folder that is removed at the end. --only runs a subset of the circlereg rows (the peer is
always timed).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "bench" / "peer.py"
CONFIG = "configs/l1_pre_relu.yaml"
ROWS = ("run", "sweep40", "sweep220", "reproduce")


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, str, float, int]:
    """(wall seconds, stdout, peak RSS of that child in MiB, exit code); exits unless the
    child's exit code is in `ok`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode not in ok:
            sys.exit(f"failed (exit {child.returncode}): {' '.join(cmd)}\n{err.read()[-2000:]}")
        return seconds, out.read(), usage.ru_maxrss / 1024, child.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4000)
    ap.add_argument("--peer-seeds", type=int, default=2, help="peer seeds actually timed")
    ap.add_argument("--sweep-repeats", type=int, default=10,
                    help="seeds per point of the 220-run sweep")
    ap.add_argument("--reproduce-runs", type=int, default=210,
                    help="runs `circlereg reproduce` trains (peer scaling)")
    ap.add_argument("--only", default=",".join(ROWS),
                    help=f"comma list of circlereg rows to time, of {','.join(ROWS)}")
    args = ap.parse_args()
    only = [row.strip() for row in args.only.split(",") if row.strip()]
    if unknown := sorted(set(only) - set(ROWS)):
        ap.error(f"--only: unknown rows {','.join(unknown)} (choose from {','.join(ROWS)})")
    if args.peer_seeds < 1:
        ap.error("--peer-seeds must be at least 1")
    if not PEER.is_file():
        sys.exit(f"peer not found: {PEER}")
    cli = [sys.executable, "-m", "circlereg.cli"]
    scratch = Path(tempfile.mkdtemp(prefix="circlereg-bench-"))
    epochs = f"train.epochs={args.epochs}"
    try:
        _bench(args, only, cli, scratch, epochs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bench(args: argparse.Namespace, only: list[str], cli: list[str], scratch: Path,
           epochs: str) -> None:
    peer_times, peer_mem = [], 0.0
    for seed in range(1, args.peer_seeds + 1):
        seconds, out, mem, _ = timed([sys.executable, str(PEER), "--variant", "pre",
                                      "--epochs", str(args.epochs), "--seed", str(seed)])
        peer_times.append(seconds)
        peer_mem = max(peer_mem, mem)
        print(f"peer   seed {seed}: {seconds:7.1f} s   {out.strip()}", flush=True)
    peer_one = sum(peer_times) / len(peer_times)

    rows = []  # (label, runs, seconds, peak MiB, memory label)
    if "run" in only:
        seconds, out, mem, _ = timed([*cli, "run", CONFIG, "--set", epochs,
                                      "--runs-dir", str(scratch / "run")])
        figures = re.search(r"Train: .*", out)
        print(f"circlereg run:   {seconds:7.1f} s   {figures.group(0) if figures else ''}",
              flush=True)
        rows.append((f"one run, {args.epochs} epochs, end to end", 1, seconds, mem, "run"))

    if "sweep40" in only:
        seconds, _, mem, _ = timed([*cli, "sweep", CONFIG, "model.regularizers.0.l1=1e-4,3e-3",
                                    "model.regularizers.0.placement=pre_activation,"
                                    "post_activation", "--repeats", "10", "--set", epochs,
                                    "--quiet", "--runs-dir", str(scratch / "sweep40")])
        print(f"circlereg sweep (40 runs, run figures): {seconds:7.1f} s", flush=True)
        rows.append(("40-run sweep, run figures (peer scaled)", 40, seconds, mem, "sweep40"))

    if "sweep220" in only:
        sweep_runs = 11 * 2 * args.sweep_repeats
        seconds, _, mem, _ = timed([*cli, "sweep", CONFIG,
                                    "model.regularizers.0.l1=logspace(-6,-1,11)",
                                    "model.regularizers.0.placement=pre_activation,"
                                    "post_activation", "--repeats", str(args.sweep_repeats),
                                    "--set", epochs, "--no-run-figures", "--quiet",
                                    "--runs-dir", str(scratch / "sweep220")])
        print(f"circlereg sweep ({sweep_runs} runs): {seconds:7.1f} s", flush=True)
        rows.append((f"{sweep_runs}-run sweep (peer scaled)", sweep_runs, seconds, mem,
                     f"sweep{sweep_runs}"))

    if "reproduce" in only:
        seconds, _, mem, code = timed([*cli, "reproduce", "--epochs", str(args.epochs),
                                       "--quiet", "--runs-dir", str(scratch / "reproduce")],
                                      ok=(0, 1))
        if not any((scratch / "reproduce").rglob("reproduction.md")):  # exit 1 from a crash
            sys.exit(f"reproduce exited {code} without writing reproduction.md")
        verdict = "reproduces" if code == 0 else "a figure or claim differs"
        print(f"circlereg reproduce ({args.reproduce_runs} runs): {seconds:7.1f} s   "
              f"exit {code} ({verdict})", flush=True)
        rows.append((f"reproduce, {args.reproduce_runs} runs (peer scaled)",
                     args.reproduce_runs, seconds, mem, "reproduce"))

    print()
    print(f"{'work':<42}{'peer s':>10}{'circlereg s':>13}{'ratio':>10}")
    for label, runs_done, ours, _, _ in rows:
        print(f"{label:<42}{peer_one * runs_done:>10.1f}{ours:>13.1f}"
              f"{peer_one * runs_done / ours:>9.1f}x")
    rates = ", ".join(f"{name} {runs_done / ours:.3f}" for _, runs_done, ours, _, name in rows)
    print(f"runs per second: peer {1 / peer_one:.4f}" + (f", circlereg {rates}" if rows else "")
          + f" (target: 1000x the peer, {1000 / peer_one:.2f})")
    mems = ", ".join(f"{name} {mem:.0f} MiB" for _, _, _, mem, name in rows)
    print(f"peak memory (max RSS): peer {peer_mem:.0f} MiB"
          + (f", circlereg {mems}" if rows else ""))


if __name__ == "__main__":
    main()
