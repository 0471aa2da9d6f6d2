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
    lr40       8 learning rates x 5 seeds = 40 runs of configs/l1_pre_relu.yaml,
               --no-run-figures: a sweep of the optimizer's step size
    sweep220   the README's sweep: 11 strengths x 2 placements x --sweep-repeats seeds,
               --no-run-figures
    grow220    the README's sweep cold, then the same sweep with 10 more seeds into the same
               runs dir: the second trains only the 220 new replicas (the others are reused)
    repeat30   `run configs/dropout.yaml --repeats 30`, default outputs
    reproduce  `circlereg reproduce`: the default spec trains 30 seeds x 7 distinct configs
               (--reproduce-runs, used to scale the peer); exit code 1 (a figure did not
               reproduce, as with short --epochs) counts as a completed row when the
               report (reproduction.md) was written
    tune       `circlereg tune` of the L1 strength, 200 trials x 5 seeds (1000 runs), and the
               1000-run sweep it is compared with (200 strengths x 5 seeds), both
               --no-run-figures (needs circlereg[tune])
    scaling    the 220-run sweep and a 1000-run sweep (50 strengths x 2 placements x 10
               seeds), --no-run-figures, each with --workers 1 and --workers 2: wall time, CPU
               time, peak memory of the process tree, and what Amdahl's law makes of them
               (T(1) = s + p, T(2) = s + p/2: the serial seconds s) with the speedup they
               project for 16 and 64 cores, over 1 worker and over 2
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
RSS, summed over the process tree), and the goals tables of issues 13 and 21 against what
was measured. Run directories and caches
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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "bench" / "peer.py"
CONFIG = "configs/l1_pre_relu.yaml"
ROWS = ("run", "dropout", "sweep40", "lr40", "sweep220", "grow220", "repeat30", "reproduce", "tune",
        "scaling", "datasize")
DATA_SIZES = (30, 300, 1000, 3000, 30000)
L1 = "model.regularizers.0.l1"
PLACEMENTS = "model.regularizers.0.placement=pre_activation,post_activation"
# Goals on a 2-core machine (issues 13 and 21): (label, row, what is measured, goal, at most?)
GOALS = (
    ("one run end to end, second call", "run (warm cache)", "seconds", 6.0, True),
    ("40-run sweep, default outputs", "sweep40", "ratio", 1000.0, False),
    ("220-run sweep", "sweep220", "ratio", 3000.0, False),
    ("dropout run, training only (x baseline)", "dropout run", "training", 1.5, True),
    ("reproduce (30 seeds, 3 conventions)", "reproduce", "seconds", 30.0, True),
    ("peak tree memory, 220-run sweep (MB)", "sweep220", "memory", 2000.0, True),
)
# Issue 21's scaling goals: (label, sweep, what is measured, goal, at most?)
SCALING_GOALS = (
    ("220-run sweep, 2 workers against 1", "sweep220", "speedup", 1.8, False),
    ("serial seconds, 220-run sweep", "sweep220", "serial", 5.0, True),
    ("1000-run sweep, projected 16 cores over 2", "sweep1000", "16 over 2", 5.0, False),
    ("peak tree memory, 220-run sweep, 2 workers (MB)", "sweep220", "memory 2", 2000.0, True),
)


def timed(cmd: list[str], cwd: Path, env: dict, ok: tuple[int, ...] = (0,),
          timeout: float | None = None) -> "Timing":
    """Run `cmd` to its end; exits unless its exit code is in `ok`. Past `timeout` seconds
    the child is killed (exit code -9). Memory is the peak of the RSS summed over the child
    and every process under it (its workers), sampled every 50 ms; CPU is the child's and
    its reaped descendants' user + system time."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        deadline = None if timeout is None else start + timeout
        peak = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(child.pid))
            if deadline is not None and time.perf_counter() > deadline:
                child.kill()
                deadline = None
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        memory = max(peak, usage.ru_maxrss * 1024) / 1e6
        cpu = usage.ru_utime + usage.ru_stime
        out.seek(0), err.seek(0)
        if child.returncode == -9 and timeout is not None:
            return Timing(seconds, "", memory, -9, cpu)
        if child.returncode not in ok:
            sys.exit(f"failed (exit {child.returncode}): {' '.join(cmd)}\n{err.read()[-2000:]}")
        return Timing(seconds, out.read(), memory, child.returncode, cpu)


class Timing(NamedTuple):
    seconds: float
    out: str
    memory: float  # MB, peak summed RSS of the process tree
    code: int
    cpu: float  # seconds


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and every process under it, now (Linux /proc)."""
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


class Tree:
    """One checkout of circlereg under test, with its own compile cache and run folders."""

    def __init__(self, name: str, root: Path, scratch: Path):
        self.name, self.root, self.scratch = name, root, scratch / name
        self.env = {**os.environ, "XDG_CACHE_HOME": str(self.scratch / "cache")}
        self.env.pop("CIRCLEREG_COMPILE_CACHE", None)

    def circlereg(self, row: str, *args: str, ok=(0,), env=None, timeout=None, keep=False
                  ) -> tuple[float, float, Path, int]:
        """(seconds, peak MB, runs dir, exit code) of one circlereg command."""
        timing, runs = self.command(row, *args, ok=ok, env=env, timeout=timeout, keep=keep)
        return timing.seconds, timing.memory, runs, timing.code

    def command(self, row: str, *args: str, ok=(0,), env=None, timeout=None, keep=False
                ) -> tuple[Timing, Path]:
        """The Timing of one circlereg command, and its runs dir (emptied first, unless
        `keep`: a command that reuses what the row's earlier one trained)."""
        runs = self.scratch / row
        if not keep:
            shutil.rmtree(runs, ignore_errors=True)
        return timed([sys.executable, "-m", "circlereg.cli", *args, "--runs-dir", str(runs)],
                     self.root, {**self.env, **(env or {})}, ok, timeout), runs

    def build_seconds(self, overrides: list[str], timeout: float) -> float | None:
        """Seconds to trace and XLA-compile the compiled program of l1_pre_relu.yaml with
        `overrides`, in a fresh process without the compile cache (None: past timeout)."""
        code = BUILD.format(config=CONFIG, overrides=overrides)
        timing = timed([sys.executable, "-c", code], self.root,
                       {**self.env, "CIRCLEREG_COMPILE_CACHE": "0"}, (0,), timeout)
        return None if timing.code == -9 else float(timing.out.split()[-1])


# Run in a tree's root: builds the program that trains one batch of the config (the class
# is LaneTrainer before the engine's loops, LaneProgram after).
BUILD = """
import time
from circlereg.config import load
from circlereg.data import load_split
from circlereg.engine import train
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
        seconds, out, mem, _, _ = timed([sys.executable, str(PEER), "--variant", "pre",
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
        "lr40": [("lr40", 40, ["sweep", CONFIG, "train.learning_rate=logspace(-4,-2,8)",
                               "--repeats", "5", *epochs, "--no-run-figures", "--quiet"])],
        "sweep220": [("sweep220", sweep_runs, big)],
        # The runs it trains: only the 10 new seeds of each point the second time.
        "grow220": [("grow220 cold", sweep_runs, big),
                    ("grow220 +10 seeds", 11 * 2 * 10,
                     [*big[:4], "--repeats", str(args.sweep_repeats + 10), *big[6:]])],
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
        if row in ("datasize", "scaling"):
            continue
        for label, runs_done, command in commands[row]:
            for tree in trees:  # alternating: both sides see the same load
                seconds, mem, runs, code = tree.circlereg(row, *command, ok=(0, 1),
                                                          keep=label.endswith("seeds"))
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
    if any(row not in ("datasize", "scaling") for row in only):
        _report(peer_one, peer_mem, trees, measured)
    if "scaling" in only:
        _scaling(args, trees, epochs)
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


def _scaling(args: argparse.Namespace, trees: list[Tree], epochs: list[str]) -> None:
    """Each sweep with 1 and 2 workers; Amdahl's serial seconds and projected speedups."""
    sweeps = {"sweep220": "logspace(-6,-1,11)", "sweep1000": "logspace(-6,-1,50)"}
    print("\nscaling: T(1) = s + p, T(2) = s + p/2; projected T(n) = s + p/n; memory: peak "
          "RSS summed over the process tree")
    print(f"{'tree':<7}{'sweep':<10}{'T1 s':>7}{'T2 s':>7}{'T1/T2':>7}{'cpu1 s':>8}{'cpu2 s':>8}"
          f"{'MB 1':>7}{'MB 2':>7}{'s':>6}{'p':>7}{'16 x1':>7}{'64 x1':>7}{'16/2':>6}"
          f"{'64/2':>6}")
    found: dict[str, dict[str, dict]] = {tree.name: {} for tree in trees}
    for name, strengths in sweeps.items():
        command = ["sweep", CONFIG, f"{L1}={strengths}", PLACEMENTS, "--repeats", "10",
                   *epochs, "--no-run-figures", "--quiet"]
        times: dict[str, dict[int, Timing]] = {tree.name: {} for tree in trees}
        for workers in (1, 2):
            for tree in trees:  # alternating: both sides see the same load
                times[tree.name][workers], _ = tree.command("scaling", *command, "--workers",
                                                            str(workers))
        for tree in trees:
            one, two = times[tree.name][1], times[tree.name][2]
            serial = 2 * two.seconds - one.seconds
            parallel = one.seconds - serial
            at = {n: serial + parallel / n for n in (16, 64)}
            figures = {"speedup": one.seconds / two.seconds, "serial": serial,
                       "16 over 2": two.seconds / at[16], "memory 2": two.memory}
            found[tree.name][name] = figures
            print(f"{tree.name:<7}{name:<10}{one.seconds:>7.1f}{two.seconds:>7.1f}"
                  f"{figures['speedup']:>6.2f}x{one.cpu:>8.1f}{two.cpu:>8.1f}{one.memory:>7.0f}"
                  f"{two.memory:>7.0f}{serial:>6.1f}{parallel:>7.1f}"
                  f"{one.seconds / at[16]:>6.1f}x{one.seconds / at[64]:>6.1f}x"
                  f"{two.seconds / at[16]:>5.1f}x{two.seconds / at[64]:>5.1f}x", flush=True)
    names = [tree.name for tree in trees]
    print(f"\n{'goal (issue 21)':<50}{'goal':>10}" + "".join(f"{n:>10}" for n in names))
    for label, sweep, what, goal, at_most in SCALING_GOALS:
        cells = ""
        for n in names:
            value = found[n][sweep][what]
            met = value <= goal if at_most else value >= goal
            cells += f"{value:>9.2f}{'' if met else '!'}"
        print(f"{label:<50}{('<= ' if at_most else '>= ') + f'{goal:g}':>10}{cells}")


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
