"""The executor: how a plan's replicas are cut into jobs and handed to a backend's workers.

Every command (run, run --repeats, sweep, compare, reproduce, tune) builds a `Plan` and calls
`execute(plan, executor)`. Replicas of one structure (`config.structure_key`: everything but
the lane settings, `lanes.SETTINGS`) are cut into jobs of `chunk` replicas, each trained as
batches of exactly `train.LANES` lanes; so how the plan was cut never reaches a replica's
numbers.

A worker (`engine.worker.Worker`) trains a job and writes its run directories itself; this
module only hands out jobs, reports progress and gathers what the workers wrote, so nothing
here grows with the work but a few messages per job (`protocol`). Where workers run is the
`Backend` an `Executor` is made with: worker processes of this machine
(`processes.WorkerProcesses`, the default), Ray actors (`cluster.RayActors`), or, for the
tests, one worker in this process (`InProcess`). The command's process never imports the
engine: workers are named (`WORKER`), and load TensorFlow where they run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from circlereg.cluster import RayActors
from circlereg.config import LANES, structure_key
from circlereg.index import open_index
from circlereg.plan import Outputs, Plan, Replica
from circlereg.processes import WorkerProcesses, available_cpus
from circlereg.protocol import Backend, Job, ProgressCallback, load_worker
from circlereg.reuse import Placed, place
from circlereg.rundir import Result

WORKER = "circlereg.engine.worker:Worker"


def make_jobs(replicas: list[Replica], outputs: Outputs | None, chunk: int, lanes: int
              ) -> list[Job]:
    """Group by structure and cut into jobs of `chunk` replicas (rounded up to whole
    batches), interleaving structures so that workers start on different ones."""
    by_key: dict[str, list[int]] = {}
    for index, replica in enumerate(replicas):
        by_key.setdefault(structure_key(replica.config), []).append(index)
    size = -(-max(chunk, 1) // lanes) * lanes
    per_key = [[(key, indices[i:i + size]) for i in range(0, len(indices), size)]
               for key, indices in by_key.items()]
    cuts = [cut for round_ in itertools.zip_longest(*per_key) for cut in round_ if cut]
    return [Job(number, key, indices, [replicas[i] for i in indices], outputs)
            for number, (key, indices) in enumerate(cuts)]


class InProcess(Backend):
    """One worker in this process, on compiled programs the caller owns (the tests share
    them across commands): jobs one after another."""

    name = "this process"
    count = 1

    def __init__(self, worker):
        self.worker = worker

    @property
    def cpus(self) -> int:
        return available_cpus()

    def run(self, jobs: list[Job], progress: ProgressCallback | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        for job in jobs:
            yield job, self.worker.handle(job, progress)


class Executor:
    """Trains plans on one backend: local worker processes, Ray actors, or (with
    `programs`) one worker in this process; reuse one executor across plans to reuse its
    workers and their compiled programs (`with Executor() as executor: ...`)."""

    def __init__(self, workers: int | None = None, backend: str = "local",
                 address: str | None = None, chunk: int | None = None,
                 programs=None, worker: str = WORKER):
        """`workers`: jobs at once (default: `processes.default_workers()` locally, one actor
        per CPU on Ray). `programs`: train in this process, on these compiled programs, owned
        by the caller. `worker`: the worker class as `module:attribute`. Making one imports
        no TensorFlow and starts nothing."""
        self._chunk = chunk
        self.backend: Backend
        if programs is not None:
            self.backend = InProcess(load_worker(worker)(programs))
        elif backend == "ray":
            self.backend = RayActors(address, workers, worker)
        else:
            self.backend = WorkerProcesses(workers, worker)

    @property
    def lanes(self) -> int:
        return LANES

    @property
    def chunk(self) -> int:
        return self._chunk or self.lanes

    @property
    def count(self) -> int:
        """How many jobs train at once."""
        return self.backend.count

    def execution(self, jobs: int) -> dict:
        """How this executor trains a plan of `jobs` jobs, for environment.json."""
        return {"backend": self.backend.name, "workers": min(self.count, jobs),
                "cpus": self.backend.cpus}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, jobs: int | None = None) -> None:
        """Start workers now, for up to `jobs` jobs (default: as many as there are
        workers), so that they load TensorFlow while this process builds its plan."""
        self.backend.start(jobs)

    def close(self) -> None:
        """End the workers: idle ones exit at once, as do ones never handed a job."""
        self.backend.close()

    def jobs(self, replicas: list[Replica], outputs: Outputs | None) -> list[Job]:
        # Workers may run elsewhere (another working folder, another machine): each replica
        # goes to an absolute destination.
        placed = [replace(r, destination=Path(r.destination).absolute()) for r in replicas]
        jobs = make_jobs(placed, outputs, self.chunk, self.lanes)
        execution = self.execution(len(jobs))
        return [replace(job, execution=execution) for job in jobs]

    def run(self, jobs: list[Job], progress: ProgressCallback | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        """Yield (job, what its worker made of each replica) as jobs finish; `progress` is
        told the replica-epochs trained as they are."""
        yield from self.backend.run(jobs, progress)

    def train_all(self, configs: list[dict], progress=None) -> list:
        """Train without writing anything: train.Results in the order given."""
        jobs = self.jobs([Replica(c, Path(".")) for c in configs], None)
        results = {r.index: r for _, done in self.run(jobs, progress) for r in done}
        return [results[i] for i in range(len(configs))]


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
    notice = notice or (lambda message: None)
    own = executor is None
    executor = executor or Executor()
    written: dict[int, Result] = {}
    index, placed = None, Placed()
    try:
        if plan.runs_dir is not None:
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
