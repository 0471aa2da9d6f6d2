"""The executor: how a plan's replicas are cut into jobs and scheduled on workers.

Every command (run, run --repeats, sweep, compare, reproduce, tune) builds a `Plan` and calls
`execute(plan, executor)`. Replicas of one structure (`config.structure_key`: everything but
the lane settings, `lanes.SETTINGS`) are cut into jobs of `chunk` replicas, each trained as
batches of exactly `train.LANES` lanes; so how the plan was cut never reaches a replica's
numbers.

A worker (`worker.Worker`) trains a job and writes its run directories itself; this module
only hands out jobs, reports progress and gathers what the workers wrote, so nothing here
grows with the work but a few messages per job. Workers are processes of this machine, one
per CPU this process may use (`default_workers`), or Ray actors, or (`Executor(programs=...)`,
for the tests) one worker in this process.

A worker keeps the compiled program of every structure it trained (tracing one costs about
as long as training a few batches), so a free worker takes a job of a structure it holds,
else one of a structure no worker holds yet, else helps with the structure that has the most
jobs waiting per worker holding it, once more wait than those workers hold.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from circlereg.plan import Outputs, Plan, Replica
from circlereg.protocol import Job, load_worker
from circlereg.rundir import Result

WORKER = "circlereg.engine.worker:Worker"
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
    from circlereg.config import _machine_memory

    memory = _machine_memory()
    fit = int(memory * MEMORY_SHARE // WORKER_MEMORY) if memory else available_cpus()
    return max(1, min(available_cpus(), fit))


def make_jobs(replicas: list[Replica], outputs: Outputs | None, chunk: int, lanes: int
              ) -> list[Job]:
    """Group by structure and cut into jobs of `chunk` replicas (rounded up to whole
    batches), interleaving structures so that workers start on different ones."""
    from circlereg.config import structure_key

    by_key: dict[str, list[int]] = {}
    for index, replica in enumerate(replicas):
        by_key.setdefault(structure_key(replica.config), []).append(index)
    size = -(-max(chunk, 1) // lanes) * lanes
    per_key = [[(key, indices[i:i + size]) for i in range(0, len(indices), size)]
               for key, indices in by_key.items()]
    cuts = [cut for round_ in itertools.zip_longest(*per_key) for cut in round_ if cut]
    return [Job(number, key, indices, [replicas[i] for i in indices], outputs)
            for number, (key, indices) in enumerate(cuts)]


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


class WorkerLost(OSError):
    """A worker process ended without being asked to (killed, out of memory, crashed)."""


class WorkerProcess:
    """A worker in a process of its own (`python -I`, this process's sys.path), talking over
    one socket; its stdout goes to our stderr, so nothing it prints mixes with ours."""

    BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
            "from circlereg.engine.worker import main; main()")

    def __init__(self, factory: str):
        from multiprocessing import Pipe

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

    def receive(self) -> tuple:
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


class Executor:
    """Trains plans on local worker processes, Ray actors, or (with `programs`) one worker in
    this process; reuse one executor across plans to reuse its workers and their compiled
    programs (`with Executor() as executor: ...`)."""

    def __init__(self, workers: int | None = None, backend: str = "local",
                 address: str | None = None, chunk: int | None = None,
                 programs=None, worker: str = WORKER):
        """`workers`: jobs at once (default: `default_workers()` locally, one actor per CPU
        on Ray). `programs`: train in this process, on these compiled programs, owned by the
        caller. `worker`: the worker class as `module:attribute`. Making one imports no
        TensorFlow and starts nothing."""
        self.workers, self.backend, self.address = workers, backend, address
        self._chunk = chunk
        self._factory = worker
        self._here = None
        if programs is not None:
            self._here = load_worker(worker)(programs)
        self._processes: list[WorkerProcess] = []
        self._ray = None

    @property
    def lanes(self) -> int:
        from circlereg.config import LANES

        return LANES

    @property
    def chunk(self) -> int:
        return self._chunk or self.lanes

    @property
    def count(self) -> int:
        """How many jobs train at once."""
        if self._here is not None:
            return 1
        if self.backend == "ray":
            return self._cluster().count
        return self.workers or default_workers()

    def execution(self, jobs: int) -> dict:
        """How this executor trains a plan of `jobs` jobs, for environment.json."""
        where = "this process" if self._here is not None else self.backend
        cpus = self._cluster().cpus if self.backend == "ray" else available_cpus()
        return {"backend": where, "workers": min(self.count, jobs), "cpus": cpus}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, jobs: int | None = None) -> None:
        """Start worker processes now, for up to `jobs` jobs (default: as many as there are
        workers), so that they load TensorFlow while this process builds its plan."""
        if self._here is None and self.backend == "local":
            count = min(self.count, jobs or self.count)
            while len(self._processes) < count:
                self._processes.append(WorkerProcess(self._factory))

    def close(self) -> None:
        """End the workers: idle ones exit at once, as do ones never handed a job."""
        if self._ray is not None:
            self._ray.close()
            self._ray = None
        for process in self._processes:
            if process.used:
                with contextlib.suppress(OSError):
                    process.send(None)
            else:
                process.stop()
        for process in self._processes:
            process.join(STOP_SECONDS)
        self._processes = []

    def _cluster(self):
        if self._ray is None:
            from circlereg.cluster import RayBackend

            self._ray = RayBackend(self.address, self.workers)
        return self._ray

    def jobs(self, replicas: list[Replica], outputs: Outputs | None) -> list[Job]:
        # Workers may run elsewhere (another working folder, another machine): each replica
        # goes to an absolute destination.
        placed = [replace(r, destination=Path(r.destination).absolute()) for r in replicas]
        jobs = make_jobs(placed, outputs, self.chunk, self.lanes)
        execution = self.execution(len(jobs))
        return [replace(job, execution=execution) for job in jobs]

    def run(self, jobs: list[Job], progress: Callable[[int], None] | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        """Yield (job, what its worker made of each replica) as jobs finish."""
        if self._here is not None:
            for job in jobs:
                yield job, self._here.handle(job, progress)
        elif self.backend == "ray":
            yield from self._cluster().run(jobs, progress)
        else:
            yield from self._run_here(jobs, progress)

    def train_all(self, configs: list[dict], progress=None) -> list:
        """Train without writing anything: train.Results in the order given."""
        jobs = self.jobs([Replica(c, Path(".")) for c in configs], None)
        results = {r.index: r for _, done in self.run(jobs, progress) for r in done}
        return [results[i] for i in range(len(configs))]

    def _run_here(self, jobs: list[Job], progress) -> Iterator[tuple[Job, list[Result]]]:
        from multiprocessing.connection import wait

        self.start(len(jobs))
        pending, busy = list(jobs), {}
        free = list(self._processes)
        costs: dict[str, tuple[float, float]] = {}  # key -> (seconds per job, first's extra)
        try:
            while pending or busy:
                holders = collections.Counter(k for p in self._processes for k in p.holds)
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
                for connection in wait(list(busy)):
                    process, job = busy[connection]
                    kind, *message = process.receive()
                    if kind == "progress":
                        if progress is not None:
                            progress(message[0])
                    elif kind == "error":
                        raise message[1]
                    elif kind == "done":
                        del busy[connection]
                        free.append(process)
                        _, done, seconds, built = message
                        steady, first = costs.get(job.key, (seconds - built, 0.0))
                        if built:  # a first job: its extra over a steady one
                            first = max(first, seconds - steady)
                        else:
                            steady = seconds
                        costs[job.key] = (steady, first)
                        yield job, done
        except BaseException:  # interrupted, failed or abandoned: stop every worker now
            self._stop()
            raise

    def _stop(self) -> None:
        """Interrupt every worker process and wait for each to exit (killing one that takes
        more than STOP_SECONDS), so no process is left behind and no run half-written."""
        for process in self._processes:
            process.stop()
        for process in self._processes:
            process.join(STOP_SECONDS)
        self._processes = []


def warm_up_idle(*steps: Callable[[], object]) -> threading.Thread:
    """Run `steps` (e.g. loading matplotlib and scipy for the summary and its figures) in a
    thread of this process at the lowest priority while the workers train: they take CPU
    the workers leave idle, and the command's serial end no longer waits for them."""
    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: a thread has a priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        for step in steps:
            step()

    # Not a daemon: Python waits for it at exit. A daemon thread still inside matplotlib's or
    # scipy's C++ when an interrupted command exits is torn down mid-call, and the process
    # aborts ("terminate called without an active exception", exit -6 instead of 130).
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def execute(plan: Plan, executor: Executor | None = None, progress=None,
            on_plan: Callable[[int], None] | None = None,
            notice: Callable[[str], None] | None = None) -> list[Result]:
    """Train every replica of a checked plan (`Plan.check`, which its builder runs before
    creating any folder); each worker writes the run directories of what it trained.
    With `plan.runs_dir`, replicas already trained there are kept or reused first
    (`reuse.place`), and each run written is added to the runs directory's index.
    `on_plan(replica_epochs)` is told what is left to train, when anything is; `notice`
    gets how many were reused and trained. Returns each replica's Result as written, in
    plan order (a kept or reused run's history is None: it is on disk). An interrupted plan
    keeps every run directory already written."""
    from circlereg.reuse import Placed, place

    notice = notice or (lambda message: None)
    own = executor is None
    executor = executor or Executor()
    written: dict[int, Result] = {}
    index, placed = None, Placed()
    try:
        if plan.runs_dir is not None:
            from circlereg.index import open_index

            index = open_index(plan.runs_dir, notice)
            placed = place(plan, index, notice)
            for i in (*placed.kept, *placed.reused):
                written[i] = Result.on_disk(plan.replicas[i])
            index.add([(plan.replicas[i].destination, plan.replicas[i].config)
                       for i in placed.reused])
        todo = [i for i in range(len(plan.replicas)) if i not in written]
        if todo and on_plan is not None:
            on_plan(sum(plan.replicas[i].config["train"]["epochs"] for i in todo))
        if todo:
            jobs = executor.jobs([plan.replicas[i] for i in todo], plan.outputs)
            with contextlib.closing(executor.run(jobs, progress)) as finished:
                for _, done in finished:
                    for result in done:
                        i = todo[result.index]
                        written[i] = replace(result, replica=plan.replicas[i])
                    if index is not None:
                        index.add([(plan.replicas[todo[d.index]].destination,
                                    plan.replicas[todo[d.index]].config) for d in done])
        if index is not None and len(plan.replicas) > 1 \
                and (placed.reused or placed.kept or plan.retrain):
            kept = f", {len(placed.kept)} already in place" if placed.kept else ""
            notice(f"{len(placed.reused)} reused, {len(todo)} trained{kept}")
    finally:
        if index is not None:
            index.close()
        if own:
            executor.close()
    return [written[i] for i in range(len(plan.replicas))]
