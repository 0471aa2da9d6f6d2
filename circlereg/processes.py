"""The local backend: worker processes of this machine, one per CPU this process may use
(`default_workers`), each a `python -I` process running `worker_process.main` and talking to
the command over one socket.

A worker keeps the compiled program of every structure it trained (tracing one costs about
as long as training a few batches), so a free worker takes a job of a structure it holds,
else one of a structure no worker holds yet, else helps with the structure that has the most
jobs waiting per worker holding it, once more wait than those workers hold (`choose`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import wait
from pathlib import Path

from circlereg import config
from circlereg.protocol import (
    Backend,
    Failed,
    Finished,
    Job,
    Message,
    Progress,
    ProgressCallback,
)
from circlereg.rundir import Result

WORKER_MEMORY = 1.0e9  # bytes a worker process may reach on the study's configs (measured
# ~0.6 GB with run figures); defaults keep the workers within MEMORY_SHARE of the machine
MEMORY_SHARE = 0.75
HELP_MARGIN = 1.5  # see `choose`
STOP_SECONDS = 10  # how long interrupted workers get to clean up before they are killed


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, cpusets), else every
    CPU, and no more than a container's CPU quota (cgroup v2 cpu.max) allows."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_workers() -> int:
    """Workers when --workers is not given: one per available CPU, as many as the machine's
    memory holds."""
    memory = config._machine_memory()
    fit = int(memory * MEMORY_SHARE // WORKER_MEMORY) if memory else available_cpus()
    return max(1, min(available_cpus(), fit))


def choose(holds: set[str], pending: list[Job], holders: collections.Counter,
           costs: dict[str, tuple[float, float]]) -> Job | None:
    """The job a free worker holding the programs of `holds` takes next (None: it waits),
    given how many workers hold each structure and what a structure has cost so far:
    (seconds per job, what a worker's first job of it costs on top: building its program).

    A worker joins the h holders of a structure when that ends its W seconds of waiting
    jobs sooner although it must first build the program (B seconds): (W + B) / (h + 1) <
    W / h, that is W > h * B; by HELP_MARGIN more, as both are estimates and the gain near
    the threshold is small. Until a job of the structure has ended, its holders are still
    building the program too, so one more starts no later than they do: it helps."""
    for job in pending:
        if job.key in holds:
            return job
    for job in pending:
        if not holders[job.key]:
            return job
    waiting = collections.Counter(job.key for job in pending)
    if not waiting:
        return None
    key = max(waiting, key=lambda k: waiting[k] / holders[k])
    job_seconds, build_seconds = costs.get(key, (1.0, 0.0))
    if waiting[key] * job_seconds > HELP_MARGIN * holders[key] * build_seconds:
        return next(job for job in pending if job.key == key)
    return None


def learn(cost: tuple[float, float] | None, finished: Finished) -> tuple[float, float]:
    """A structure's (seconds per job, a first job's extra) once `finished` came back."""
    steady, first = cost or (finished.seconds - finished.built, 0.0)
    if finished.built:  # a first job: its extra over a steady one
        first = max(first, finished.seconds - steady)
    else:
        steady = finished.seconds
    return steady, first


class WorkerLost(OSError):
    """A worker process ended without being asked to (killed, out of memory, crashed)."""


class WorkerProcess:
    """A worker in a process of its own (`python -I`, this process's sys.path), talking over
    one socket; its stdout goes to our stderr, so nothing it prints mixes with ours."""

    BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
            "from circlereg.worker_process import main; main()")

    def __init__(self, factory: str):
        self.connection, theirs = Pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", self.BOOT, str(theirs.fileno()),
             json.dumps(sys.path), factory, str(os.getpid())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=2)
        theirs.close()
        self.holds: set[str] = set()  # structures it was handed: it keeps their programs
        self.used = False  # handed a job yet

    def send(self, job: Job | None) -> None:
        self.used = self.used or job is not None
        self.connection.send(job)

    def receive(self) -> Message:
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            code = self.process.wait()
            if code in (130, -signal.SIGINT):  # Ctrl-C reached it before us
                raise KeyboardInterrupt from None
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            raise WorkerLost(f"worker process {self.process.pid} {how}{hint}") from None

    def stop(self) -> None:
        """Interrupt it: it ends its job without leaving a run half-written, and exits. One
        never handed a job, which may still be loading, simply ends."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT if self.used else signal.SIGTERM)

    def join(self, seconds: float) -> None:
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.connection.close()


class WorkerProcesses(Backend):
    """Jobs on worker processes of this machine, started when first needed and kept (with
    their compiled programs) until `close`."""

    name = "local"

    def __init__(self, workers: int | None, factory: str):
        self.workers, self.factory = workers, factory
        self.processes: list[WorkerProcess] = []

    @property
    def count(self) -> int:
        return self.workers or default_workers()

    @property
    def cpus(self) -> int:
        return available_cpus()

    def start(self, jobs: int | None = None) -> None:
        count = min(self.count, jobs or self.count)
        while len(self.processes) < count:
            self.processes.append(WorkerProcess(self.factory))

    def run(self, jobs: list[Job], progress: ProgressCallback | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        self.start(len(jobs))
        pending, busy = list(jobs), {}
        free = list(self.processes)
        costs: dict[str, tuple[float, float]] = {}  # key -> (seconds per job, first's extra)
        try:
            while pending or busy:
                self._hand_out(pending, free, busy, costs)
                for connection in wait(list(busy)):
                    process, job = busy[connection]
                    match process.receive():
                        case Progress(replica_epochs=epochs):
                            if progress is not None:
                                progress(epochs)
                        case Failed(error=error):
                            raise error
                        case Finished() as finished:
                            del busy[connection]
                            free.append(process)
                            costs[job.key] = learn(costs.get(job.key), finished)
                            yield job, finished.results
        except BaseException:  # interrupted, failed or abandoned: stop every worker now
            self._stop()
            raise

    def _hand_out(self, pending: list[Job], free: list[WorkerProcess], busy: dict,
                  costs: dict[str, tuple[float, float]]) -> None:
        """Give each free worker the job `choose` picks for it, if any."""
        holders = collections.Counter(k for p in self.processes for k in p.holds)
        for process in list(free):
            job = choose(process.holds, pending, holders, costs)
            if job is None and not busy:
                job = pending[0]  # nobody else is working: never wait on nothing
            if job is None:
                continue
            pending.remove(job)
            free.remove(process)
            process.send(job)
            busy[process.connection] = (process, job)
            if job.key not in process.holds:
                holders[job.key] += 1
                process.holds.add(job.key)

    def close(self) -> None:
        """End the workers: idle ones exit at once, as do ones never handed a job."""
        for process in self.processes:
            if process.used:
                with contextlib.suppress(OSError):
                    process.send(None)
            else:
                process.stop()
        for process in self.processes:
            process.join(STOP_SECONDS)
        self.processes = []

    def _stop(self) -> None:
        """Interrupt every worker process and wait for each to exit (killing one that takes
        more than STOP_SECONDS), so no process is left behind and no run half-written."""
        for process in self.processes:
            process.stop()
        for process in self.processes:
            process.join(STOP_SECONDS)
        self.processes = []
