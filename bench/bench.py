#!/usr/bin/env python3
"""circlereg against the study's own loop (bench/peer.py), side by side.

    python bench/bench.py [--epochs 4000] [--peer-seeds 2] [--sweep-repeats 10]
                          [--reproduce-runs 210] [--only run,dropout,sweep40,...]
                          [--before PATH]

The peer is the study's Keras model.fit loop, one model at a time (`bench/peer.py --variant
pre`); it is timed on --peer-seeds seeds and its mean seconds per run are scaled to each row's
work. circlereg trains all of the work, each row in a fresh process timed end to end
(imports, compiles, training, every file written), with its compile cache in a folder of
its own that starts empty:

    run        one run of configs/l1_pre_relu.yaml: first call (empty compile cache), then
               the same command again (warm cache)
    dropout    one run of configs/baseline.yaml and one of configs/dropout.yaml: their
               training seconds (metrics.json train_seconds), dropout against baseline
    sweep40    2 strengths x 2 placements x 10 seeds = 40 runs, default outputs (run figures
               and model.keras)
    sweep220   the README's sweep: 11 strengths x 2 placements x --sweep-repeats seeds,
               --no-run-figures
    repeat30   `run configs/dropout.yaml --repeats 30`, default outputs
    reproduce  `circlereg reproduce`: the default spec trains 30 seeds x 7 distinct configs
               (--reproduce-runs, used to scale the peer); exit code 1 (a figure did not
               reproduce, as with short --epochs) counts as a completed row when the
               report (reproduction.md) was written
    tune       `circlereg tune` of the L1 strength, 200 trials x 5 seeds (1000 runs), and the
               1000-run sweep it is compared with (200 strengths x 5 seeds), both
               --no-run-figures (needs circlereg[tune])
    datasize   one run of configs/l1_pre_relu.yaml as the data grow: n_train 30 (the study,
               4000 epochs), then 300, 1000, 3000 and 30000 (as many test points, batch 32,
               20 epochs), with the compiled engine and with `train.engine: fit`, each a
               first call (CIRCLEREG_COMPILE_CACHE=0); fit at n_train 30 is the peer's time.
               Also each size's trace and compile alone (building the compiled program in
               a process of its own), and a million points (500000 train, 1 epoch). A
               command past --datasize-timeout seconds is stopped and shown as such.

--before PATH times every row on a second checkout too (e.g. a `git worktree` of main), each
row alternating between the two within the same minute, so that a busy machine slows both
alike. Prints each row's wall time, ratio to the peer (peer / circlereg), peak memory (max
RSS), and the goals table of issue 13 against what was measured. Run directories and caches
go to a temporary folder that is removed at the end. --only runs a subset of the circlereg
rows (the peer is always timed).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "bench" / "peer.py"
CONFIG = "configs/l1_pre_relu.yaml"
ROWS = ("run", "dropout", "sweep40", "sweep220", "repeat30", "reproduce", "tune", "datasize")
DATA_SIZES = (30, 300, 1000, 3000, 30000)
L1 = "model.regularizers.0.l1"
PLACEMENTS = "model.regularizers.0.placement=pre_activation,post_activation"
# Issue 13's goals on a 2-core machine: (label, row, what is measured, goal, at most?)
GOALS = (
    ("one run end to end, second call", "run (warm cache)", "seconds", 6.0, True),
    ("40-run sweep, default outputs", "sweep40", "ratio", 1000.0, False),
    ("220-run sweep", "sweep220", "ratio", 3000.0, False),
    ("dropout run, training only (x baseline)", "dropout run", "training", 1.5, True),
    ("reproduce (30 seeds, 3 conventions)", "reproduce", "seconds", 30.0, True),
    ("peak memory, 220-run sweep (MB)", "sweep220", "memory", 1000.0, True),
)


def timed(cmd: list[str], cwd: Path, env: dict, ok: tuple[int, ...] = (0,),
          timeout: float | None = None) -> tuple[float, str, float, int]:
    """(wall seconds, stdout, peak RSS of that child in MB, exit code); exits unless the
    child's exit code is in `ok`. Past `timeout` seconds the child is killed: exit code -9."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        deadline = None if timeout is None else start + timeout
        while True:  # this child's own rusage, from wait4
            pid, status, usage = os.wait4(child.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                deadline = None
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode == -9 and timeout is not None:
            return seconds, "", usage.ru_maxrss * 1024 / 1e6, -9
        if child.returncode not in ok:
            sys.exit(f"failed (exit {child.returncode}): {' '.join(cmd)}\n{err.read()[-2000:]}")
        return seconds, out.read(), usage.ru_maxrss * 1024 / 1e6, child.returncode


class Tree:
    """One checkout of circlereg under test, with its own compile cache and run folders."""

    def __init__(self, name: str, root: Path, scratch: Path):
        self.name, self.root, self.scratch = name, root, scratch / name
        self.env = {**os.environ, "XDG_CACHE_HOME": str(self.scratch / "cache")}
        self.env.pop("CIRCLEREG_COMPILE_CACHE", None)

    def circlereg(self, row: str, *args: str, ok=(0,), env=None, timeout=None
                  ) -> tuple[float, float, Path, int]:
        """(seconds, peak MB, runs dir, exit code) of one circlereg command."""
        runs = self.scratch / row
        seconds, _, mem, code = timed([sys.executable, "-m", "circlereg.cli", *args,
                                       "--runs-dir", str(runs)], self.root,
                                      {**self.env, **(env or {})}, ok, timeout)
        return seconds, mem, runs, code

    def build_seconds(self, overrides: list[str], timeout: float) -> float | None:
        """Seconds to trace and XLA-compile the compiled program of l1_pre_relu.yaml with
        `overrides`, in a fresh process without the compile cache (None: past timeout)."""
        code = BUILD.format(config=CONFIG, overrides=overrides)
        _, out, _, status = timed([sys.executable, "-c", code], self.root,
                                  {**self.env, "CIRCLEREG_COMPILE_CACHE": "0"}, (0,), timeout)
        return None if status == -9 else float(out.split()[-1])


# Run in a tree's root: builds the program that trains one batch of the config (the class
# is LaneTrainer before the engine's loops, LaneProgram after).
BUILD = """
import time
from circlereg.config import load
from circlereg.data import load_split
from circlereg import train
config = load({config!r}, {overrides!r})
split = load_split(config["data"])
build = getattr(train, "LaneProgram", None) or getattr(train, "LaneTrainer")
start = time.perf_counter()
build(config, split)
print(time.perf_counter() - start)
"""


def train_seconds(runs: Path, name: str) -> float:
    (metrics,) = (runs / name).glob("*/metrics.json")
    return json.loads(metrics.read_text())["train_seconds"]


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
    ap.add_argument("--before", type=Path, help="another checkout to time alongside")
    ap.add_argument("--datasize-timeout", type=float, default=300,
                    help="seconds after which a datasize command is stopped")
    args = ap.parse_args()
    only = [row.strip() for row in args.only.split(",") if row.strip()]
    if unknown := sorted(set(only) - set(ROWS)):
        ap.error(f"--only: unknown rows {','.join(unknown)} (choose from {','.join(ROWS)})")
    if args.peer_seeds < 1:
        ap.error("--peer-seeds must be at least 1")
    if args.before is not None and not (args.before / "circlereg" / "cli.py").is_file():
        ap.error(f"--before: {args.before} is not a circlereg checkout")
    if not PEER.is_file():
        sys.exit(f"peer not found: {PEER}")
    scratch = Path(tempfile.mkdtemp(prefix="circlereg-bench-"))
    try:
        trees = [Tree("after", ROOT, scratch)]
        if args.before is not None:
            trees.insert(0, Tree("before", args.before.resolve(), scratch))
        _bench(args, only, trees)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bench(args: argparse.Namespace, only: list[str], trees: list[Tree]) -> None:
    peer_times, peer_mem = [], 0.0
    for seed in range(1, args.peer_seeds + 1):
        seconds, out, mem, _ = timed([sys.executable, str(PEER), "--variant", "pre",
                                      "--epochs", str(args.epochs), "--seed", str(seed)],
                                     ROOT, dict(os.environ))
        peer_times.append(seconds)
        peer_mem = max(peer_mem, mem)
        print(f"peer   seed {seed}: {seconds:7.1f} s   {out.strip()}", flush=True)
    peer_one = sum(peer_times) / len(peer_times)
    epochs = ["--set", f"train.epochs={args.epochs}"]
    sweep = ["sweep", CONFIG, "model.regularizers.0.l1=1e-4,3e-3", PLACEMENTS, "--repeats",
             "10", *epochs, "--quiet"]
    sweep_runs = 11 * 2 * args.sweep_repeats
    big = ["sweep", CONFIG, "model.regularizers.0.l1=logspace(-6,-1,11)", PLACEMENTS,
           "--repeats", str(args.sweep_repeats), *epochs, "--no-run-figures", "--quiet"]
    commands = {  # row -> [(label, runs, arguments)]
        "run": [("run (first call)", 1, ["run", CONFIG, *epochs]),
                ("run (warm cache)", 1, ["run", CONFIG, *epochs])],
        "dropout": [("baseline run", 1, ["run", "configs/baseline.yaml", *epochs]),
                    ("dropout run", 1, ["run", "configs/dropout.yaml", *epochs])],
        "sweep40": [("sweep40", 40, sweep)],
        "sweep220": [("sweep220", sweep_runs, big)],
        "repeat30": [("repeat30", 30, ["run", "configs/dropout.yaml", "--repeats", "30",
                                       *epochs, "--quiet"])],
        "tune": [("tune 200x5", 1000, ["tune", CONFIG, f"{L1}=loguniform(1e-6,1e-2)",
                                       "--trials", "200", "--repeats", "5", *epochs, "--quiet"]),
                 ("sweep 1000", 1000, ["sweep", CONFIG, f"{L1}=logspace(-6,-2,200)", "--repeats",
                                       "5", *epochs, "--no-run-figures", "--quiet"])],
        "reproduce": [("reproduce", args.reproduce_runs,
                       ["reproduce", "--epochs", str(args.epochs), "--quiet"])],
    }
    measured: dict[str, dict[str, dict]] = {tree.name: {} for tree in trees}
    for row in only:
        if row == "datasize":
            continue
        for label, runs_done, command in commands[row]:
            for tree in trees:  # alternating: both sides see the same load
                seconds, mem, runs, code = tree.circlereg(row, *command, ok=(0, 1))
                if code == 1 and not (row == "reproduce"
                                      and any(runs.rglob("reproduction.md"))):
                    sys.exit(f"{tree.name}: {label} exited 1")
                figure = {"seconds": seconds, "memory": mem, "runs": runs_done,
                          "ratio": peer_one * runs_done / seconds}
                if label == "dropout run":
                    base = measured[tree.name]["baseline run"]
                    figure["training"] = train_seconds(runs, "dropout") / base["train"]
                if label == "baseline run":
                    figure["train"] = train_seconds(runs, "baseline")
                measured[tree.name][label] = figure
                extra = f"  exit {code}" if row == "reproduce" else ""
                print(f"{tree.name:>6} {label:<18} {seconds:7.1f} s  {mem:6.0f} MB{extra}",
                      flush=True)
    if any(row != "datasize" for row in only):
        _report(peer_one, peer_mem, trees, measured)
    if "datasize" in only:
        _datasize(args, trees, peer_one)


def _report(peer_one: float, peer_mem: float, trees: list[Tree], measured: dict) -> None:
    names = [tree.name for tree in trees]
    print(f"\npeer: {peer_one:.1f} s per run (model.fit, 4000 epochs), peak {peer_mem:.0f} MB")
    head = "".join(f"{n + ' s':>12}{n + ' x':>10}{n + ' MB':>11}" for n in names)
    print(f"{'work':<22}{'peer s':>9}{head}")
    for label in measured[names[-1]]:
        figures = [measured[n].get(label) for n in names]
        runs_done = figures[-1]["runs"]
        cells = "".join(f"{f['seconds']:>12.1f}{f['ratio']:>9.0f}x{f['memory']:>11.0f}"
                        if f else f"{'':>33}" for f in figures)
        print(f"{label:<22}{peer_one * runs_done:>9.1f}{cells}")
    for n in names:
        if "dropout run" in measured[n]:
            print(f"{n}: dropout run trains in {measured[n]['dropout run']['training']:.2f}x "
                  f"the baseline run's training time")
    print(f"\n{'goal (issue 13)':<42}{'goal':>10}" + "".join(f"{n:>10}" for n in names))
    for label, row, what, goal, at_most in GOALS:
        cells = ""
        for n in names:
            figure = measured[n].get(row)
            if figure is None:
                cells += f"{'-':>10}"
                continue
            value = figure[what]
            met = value <= goal if at_most else value >= goal
            cells += f"{value:>9.1f}{'' if met else '!'}"
        print(f"{label:<42}{('<= ' if at_most else '>= ') + f'{goal:g}':>10}{cells}")
    print("(! marks a goal not met; ratios are the peer's time for the same number of runs "
          "over circlereg's)")


# Issue 20's goals on a 2-core machine, from the datasize table.
DATA_GOALS = "compiled no slower than fit at 300+ and faster from 1000; trace+compile at " \
    "3000 within 1.5x of 30; peak memory at 3000 <= 1.5 GB; a million points complete"


def _datasize(args: argparse.Namespace, trees: list[Tree], peer_one: float) -> None:
    """The data-size table: each size's first call with each engine, wall time and peak
    memory, and the compiled program's trace and compile alone."""
    off = {"CIRCLEREG_COMPILE_CACHE": "0"}
    limit = args.datasize_timeout
    sizes = [(n, 4000 if n == 30 else 20, 100 if n == 30 else 2 * n) for n in DATA_SIZES]
    sizes.append((500_000, 1, 1_000_000))  # the largest data set the schema takes
    print(f"\ndata size: first calls, no compile cache, batch 32; fit at n_train 30 is the "
          f"peer; '>' marks a command stopped after {limit:.0f} s")
    print(f"{'tree':<7}{'n_train':>8}{'epochs':>7}{'steps':>7}{'compiled s':>11}{'MB':>7}"
          f"{'fit s':>9}{'MB':>7}{'fit/comp':>9}{'build s':>9}{'x n=30':>8}")
    first_build: dict[str, float] = {}
    for n, epochs, samples in sizes:
        overrides = [f"data.n_train={n}", f"data.n_samples={samples}", "train.batch_size=32",
                     f"train.epochs={epochs}"]
        sets = [arg for override in overrides for arg in ("--set", override)]
        for tree in trees:  # alternating: both sides see the same load
            seconds, mb, _, code = tree.circlereg("datasize", "run", CONFIG, *sets, "--quiet",
                                                  env=off, timeout=limit)
            stopped = "" if code == 0 else ">"
            cells = f"{stopped + format(seconds, '.1f'):>11}{mb:>7.0f}"
            if n == 30:
                cells += f"{peer_one:>9.1f}{'':>7}{peer_one / seconds:>9.2f}"
            elif n < 500_000:
                fit, fit_mb, _, fit_code = tree.circlereg(
                    "datasize", "run", CONFIG, *sets, "--set", "train.engine=fit", "--quiet",
                    env=off, timeout=limit)
                ratio = fit / seconds if code == fit_code == 0 else float("nan")
                cells += f"{('' if fit_code == 0 else '>') + format(fit, '.1f'):>9}" \
                         f"{fit_mb:>7.0f}{ratio:>9.2f}"
            else:
                cells += f"{'-':>9}{'':>7}{'':>9}"
            build = tree.build_seconds(overrides, limit) if n < 500_000 else None
            if n == 30 and build is not None:
                first_build[tree.name] = build
            if build is None:
                cells += f"{'-':>9}{'':>8}"
            else:
                cells += f"{build:>9.2f}{build / first_build.get(tree.name, build):>7.2f}x"
            print(f"{tree.name:<7}{n:>8}{epochs:>7}{-(-n // 32):>7}{cells}", flush=True)
    print(f"goals (issue 20): {DATA_GOALS}")


if __name__ == "__main__":
    main()
