"""Worker processes: as many jobs at once as workers, whatever the cores; the same bytes
whatever the worker count; defaults from the machine."""

import json
import subprocess
import sys
import time
import zipfile

import pytest

from .conftest import CONFIGS, ROOT
from .stand_in import SECONDS, WRITE_SECONDS

STAND_IN = "tests.stand_in:SleepWorker"


def test_sixteen_workers_run_sixteen_jobs_at_once_and_the_parent_keeps_up(tmp_path):
    """With a stand-in job that sleeps without holding the GIL, 16 workers run 16 jobs at
    once on any machine (this one has 2 cores), a second wave follows at once, and each job's
    runs reach the parent within a fraction of a second of being written."""
    from circlereg.config import load
    from circlereg.executor import Executor
    from circlereg.plan import Outputs, Replica

    base = load(CONFIGS / "baseline.yaml")
    replicas = [Replica({**base, "train": {**base["train"], "seed": seed}},
                        tmp_path / f"seed_{seed}") for seed in range(1, 129)]
    with Executor(workers=16, worker=STAND_IN) as executor:
        # Start-up: 16 processes boot (staggered on 2 cores) and the cost of a job is learnt.
        list(executor.run(executor.jobs(replicas[:64], Outputs())))
        jobs = executor.jobs(replicas[64:], Outputs())
        assert len(jobs) == 16
        started = time.time()
        received = [(time.time(), done) for _, done in executor.run(jobs)]
        wall = time.time() - started
        jobs = executor.jobs([Replica(r.config, tmp_path / "again" / r.destination.name)
                              for r in replicas], Outputs())
        assert len(jobs) == 32
        started = time.time()
        twice = [(time.time(), done) for _, done in executor.run(jobs)]
        wall_twice = time.time() - started
    spans = [(done[0].metrics["start"], done[0].metrics["end"]) for _, done in received]
    at_once = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert at_once == 16
    assert len({done[0].metrics["pid"] for _, done in received}) == 16
    job = SECONDS + WRITE_SECONDS
    assert wall < job + 1.0, f"16 jobs of {job} s on 16 workers took {wall:.2f} s"
    assert wall_twice < 2 * job + 1.0, f"32 jobs on 16 workers took {wall_twice:.2f} s"
    lag = max(arrived - done[-1].metrics["end"] for arrived, done in received + twice)
    assert lag < 0.5, f"a job's runs reached the parent {lag:.2f} s after they were written"
    assert len(list(tmp_path.glob("seed_*/done.json"))) == 128
    assert len(list(tmp_path.glob("again/seed_*/done.json"))) == 128


def test_a_free_worker_helps_only_when_that_ends_the_work_sooner():
    from collections import Counter

    from circlereg.processes import choose
    from circlereg.protocol import Job

    pending = [Job(n, "a", [n], [], None) for n in range(6)] + [Job(6, "b", [6], [], None)]
    assert choose({"b"}, pending, Counter(a=1, b=1), {}).key == "b"  # its own program
    assert choose(set(), pending, Counter(a=1), {}).key == "b"  # a structure nobody holds
    # 6 jobs of a wait on 2 workers: a third one helps while they outlast 2 builds (by the
    # margin of 1.5)
    holders = Counter(a=2, b=1)
    assert choose({"c"}, pending[:6], holders, {"a": (1.0, 1.5)}).key == "a"  # 6 > 4.5
    assert choose({"c"}, pending[:6], holders, {"a": (1.0, 2.5)}) is None  # 6 < 7.5
    # no job of a has ended yet: its holders are still building its program too
    assert choose({"c"}, pending[:1], Counter(a=5), {}).key == "a"


def test_default_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    from circlereg import config, processes

    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: set(range(48)))
    monkeypatch.setattr(config, "_machine_memory", lambda: 256e9)
    assert processes.available_cpus() in (48, processes.available_cpus())  # a cgroup may cap
    assert processes.default_workers() == processes.available_cpus()
    monkeypatch.setattr(config, "_machine_memory", lambda: 8e9)  # 0.75 GB per worker
    assert processes.default_workers() == min(6, processes.available_cpus())
    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: {3})
    assert processes.available_cpus() == 1 and processes.default_workers() == 1


def comparable(path):
    """What a run's file says about its numbers: metrics without wall times, environment
    without how the plan ran, model.keras without its save date, the manifest and the report
    without the command that made them and when."""
    if path.name == "metrics.json":
        return {k: v for k, v in json.loads(path.read_text()).items()
                if not k.endswith("_seconds")}
    if path.name == "environment.json":
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "execution"}
    if path.name == "manifest.json":  # not the command line (its --workers), nor when made
        return {k: v for k, v in json.loads(path.read_text()).items()
                if k not in ("command", "created")}
    if path.name == "report.md":  # nor the command line it quotes
        return [line for line in path.read_text().splitlines()
                if not line.startswith("- command:")]
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()
                    if name != "metadata.json"}
    return path.read_bytes()


@pytest.mark.slow
def test_a_sweep_writes_the_same_bytes_with_1_and_3_worker_processes(tmp_path):
    """Every file of every run folder and the sweep's summary, figures and model included,
    whatever the number of worker processes (wall times and the recorded worker count
    aside); environment.json records how many workers trained the plan."""
    args = ["sweep", str(CONFIGS / "l1_pre_relu.yaml"), "model.regularizers.0.l1=1e-4,1e-3,1e-2",
            "model.regularizers.0.placement=pre_activation,post_activation", "--repeats", "4",
            "--set", "train.epochs=30", "--quiet"]
    folders = {}
    for workers in (1, 3):
        runs = tmp_path / str(workers)
        done = subprocess.run([sys.executable, "-m", "circlereg.cli", *args, "--workers",
                               str(workers), "--runs-dir", str(runs)], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        (folders[workers],) = runs.glob("*/*")
    files = sorted(p.relative_to(folders[1]) for p in folders[1].rglob("*")
                   if p.is_file() and p.name != ".lock")
    assert len([f for f in files if f.name == "decision_boundary.png"]) == 24
    for workers in (3,):
        assert files == sorted(p.relative_to(folders[workers]) for p in
                               folders[workers].rglob("*") if p.is_file() and p.name != ".lock")
    for name in files:
        first = comparable(folders[1] / name)
        assert all(comparable(folders[w] / name) == first for w in (3,)), name
    for workers in (1, 3):
        environment = json.loads((folders[workers] / "p000" / "seed_1" /
                                  "environment.json").read_text())
        assert environment["execution"]["workers"] == workers
        assert environment["execution"]["backend"] == "local"


def test_a_worker_that_dies_stops_the_plan_in_one_line_and_leaves_no_process(tmp_path):
    from circlereg.config import load
    from circlereg.executor import Executor
    from circlereg.plan import Outputs, Replica
    from circlereg.processes import WorkerLost

    base = load(CONFIGS / "baseline.yaml")
    replicas = [Replica({**base, "train": {**base["train"], "seed": seed}},
                        tmp_path / f"seed_{seed}") for seed in range(1, 9)]
    executor = Executor(workers=2, worker="tests.stand_in:CrashingWorker")
    with pytest.raises(WorkerLost, match=r"^worker process \d+ exited with code 3$"):
        with executor:
            list(executor.run(executor.jobs(replicas, Outputs())))
    assert executor.backend.processes == []  # every other worker was stopped and waited for


def test_a_config_error_in_a_worker_reaches_the_command_as_itself():
    from circlereg.config import ConfigError
    from circlereg.worker_process import portable

    sent = portable(ConfigError("a.yaml", "model.hidden", "must be a list"))
    assert type(sent) is ConfigError
    assert str(sent) == "a.yaml: model.hidden: must be a list"


def test_messages_survive_the_socket_and_each_backend_is_chosen_once():
    import pickle

    from circlereg.cluster import RayActors
    from circlereg.config import ConfigError
    from circlereg.executor import Executor, InProcess
    from circlereg.processes import WorkerProcesses
    from circlereg.protocol import Failed, Finished, Progress
    from circlereg.rundir import Result

    for message in (Progress(2, 40), Finished(2, [Result(0, {"loss": [1.0]}, index=5)], 1.5, 0.5),
                    Failed(2, ConfigError("a.yaml", "model.hidden", "must be a list"))):
        again = pickle.loads(pickle.dumps(message))
        assert type(again) is type(message) and again.number == 2
    assert str(again.error) == "a.yaml: model.hidden: must be a list"
    # Making an executor starts nothing, loads neither Ray nor the engine.
    assert isinstance(Executor(workers=3).backend, WorkerProcesses)
    assert isinstance(Executor(backend="ray", workers=3).backend, RayActors)
    here = Executor(programs=object(), worker=STAND_IN)
    assert isinstance(here.backend, InProcess)
    assert here.execution(5)["backend"] == "this process" and here.count == 1
    assert Executor(workers=3).execution(5)["workers"] == 3
