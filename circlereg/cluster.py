"""The Ray backend: each job (replicas of one structure) goes to a Ray actor.

Ray is an optional extra (`pip install circlereg[ray]`), imported when a Ray backend first
needs it. An actor is the local executor's worker (`engine.worker.Worker`, named as
`executor.WORKER`), so it keeps its compiled programs for as long as it lives, trains a job
exactly as a local worker process would (the same lane batches) and writes its run
directories itself: a Ray sweep writes the same numbers and files as a local one. On a
cluster of several machines, --runs-dir must therefore be a folder every machine sees (a
shared file system), as for Ray Tune's storage. An actor killed mid-job is restarted by Ray
and the job retried; a run it left half-written is in a hidden scratch folder, replaced.

Progress comes as on every backend, in replica-epochs as they are trained: each actor puts
`Progress` messages on one Ray queue (at most every PROGRESS_SECONDS, and all before its job
returns), which the command drains while it waits for jobs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from circlereg.errors import ConfigError
from circlereg.protocol import Backend, Job, Progress, ProgressCallback, load_worker
from circlereg.rundir import Result

RETRIES = 3
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray then takes 127.0.0.1 as its IP
PROGRESS_SECONDS = 0.25  # how often an actor sends its progress (each send is a round trip)


def _ray(loopback: bool = False):
    if loopback:  # a private instance: keep every Ray socket on 127.0.0.1
        os.environ.update(LOOPBACK)
    try:
        import ray  # an optional extra: only with --backend ray
    except ImportError:
        raise ConfigError("--backend", "ray", "Ray is not installed; install it with "
                                              "`pip install 'circlereg[ray]'` (or `pip install "
                                              "ray`), or use --backend local") from None
    return ray


def check_available(address: str | None) -> None:
    """Fail early, before anything trains, when Ray is missing."""
    _ray(loopback=address is None)


class WorkerActor:
    """One Ray actor: a worker, alive as long as the actor."""

    def __init__(self, factory: str):
        self.worker = load_worker(factory)()

    def handle(self, job: Job, queue) -> tuple[int, list[Result]]:
        """Train the job, putting its progress on `queue` as it goes; every Progress is on
        the queue before the job returns."""
        untold, last = 0, time.monotonic()

        def tell(epochs: int) -> None:
            nonlocal untold, last
            untold += epochs
            if time.monotonic() - last >= PROGRESS_SECONDS:
                queue.put(Progress(job.number, untold))
                untold, last = 0, time.monotonic()

        done = self.worker.handle(job, tell)
        if untold:
            queue.put(Progress(job.number, untold))
        return job.number, done


class RayActors(Backend):
    """Actors on a Ray cluster (or a private one on 127.0.0.1), one per CPU by default,
    connected to when first needed."""

    name = "ray"

    def __init__(self, address: str | None, workers: int | None, factory: str):
        self.address, self.workers, self.factory = address, workers, factory
        self.ray = None
        self.actors: list = []
        self.queue = None
        self._cpus = 1

    def _connect(self) -> None:
        if self.ray is not None:
            return
        self.ray = ray = _ray(loopback=self.address is None)
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:  # a private local instance, on loopback only
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False,
                         log_to_driver=False)
        from ray.util.queue import Queue  # Ray is loaded by now

        self._cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Each actor takes a whole CPU: its compiled programs run on one thread.
        actor = ray.remote(num_cpus=1, max_restarts=RETRIES,
                           max_task_retries=RETRIES)(WorkerActor)
        self.actors = [actor.remote(self.factory) for _ in range(self.workers or self._cpus)]
        self.queue = Queue(actor_options={"num_cpus": 0})  # takes no CPU from the actors

    @property
    def count(self) -> int:
        self._connect()
        return len(self.actors)

    @property
    def cpus(self) -> int:
        self._connect()
        return self._cpus

    def run(self, jobs: list[Job], progress: ProgressCallback | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        from ray.util import ActorPool  # Ray is loaded by now (_connect)

        self._connect()
        pool = ActorPool(self.actors)
        for job in jobs:
            pool.submit(lambda actor, job: actor.handle.remote(job, self.queue), job)
        # A retried job (its actor was killed) trains again: count no job past its plan.
        room = {job.number: sum(r.config["train"]["epochs"] for r in job.replicas)
                for job in jobs}
        while pool.has_next():
            try:
                number, done = pool.get_next_unordered(timeout=PROGRESS_SECONDS)
            except TimeoutError:
                self._tell(progress, room)
                continue
            self._tell(progress, room)
            yield jobs[number], done

    def _tell(self, progress: ProgressCallback | None, room: dict[int, int]) -> None:
        """Pass on what the actors have put on the queue."""
        waiting = self.queue.qsize()
        for message in self.queue.get_nowait_batch(waiting) if waiting else []:
            epochs = min(message.replica_epochs, room[message.number])
            room[message.number] -= epochs
            if progress is not None and epochs:
                progress(epochs)

    def close(self) -> None:
        if self.ray is None:
            return
        for actor in self.actors:
            self.ray.kill(actor)
        self.queue.shutdown()
        self.actors, self.queue, self.ray = [], None, None
