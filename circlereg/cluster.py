"""The executor's Ray backend: each job (replicas of one structure) goes to a Ray actor.

Ray is an optional extra (`pip install circlereg[ray]`). An actor is the local executor's
worker (`worker.Worker`), so it keeps its compiled programs for as long as it lives, trains a
job exactly as a local worker process would (the same lane batches) and writes its run
directories itself: a Ray sweep writes the same numbers and files as a local one. On a
cluster of several machines, --runs-dir must therefore be a folder every machine sees (a
shared file system), as for Ray Tune's storage. An actor killed mid-job is restarted by Ray
and the job retried; a run it left half-written is in a hidden scratch folder, replaced.
"""

from __future__ import annotations

import os

from circlereg.config import ConfigError

RETRIES = 3
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray then takes 127.0.0.1 as its IP


def _ray(loopback: bool = False):
    if loopback:  # a private instance: keep every Ray socket on 127.0.0.1
        os.environ.update(LOOPBACK)
    try:
        import ray
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

    def __init__(self):
        from circlereg.engine.worker import Worker

        self.worker = Worker()

    def handle(self, job):
        return job.number, self.worker.handle(job)


class RayBackend:
    """Actors on a Ray cluster (or a private one on 127.0.0.1), one per CPU by default."""

    def __init__(self, address: str | None, workers: int | None = None):
        self.ray = ray = _ray(loopback=address is None)
        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:  # a private local instance, on loopback only
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False,
                         log_to_driver=False)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.count = workers or self.cpus
        # Each actor takes a whole CPU: its compiled programs run on one thread.
        actor = ray.remote(num_cpus=1, max_restarts=RETRIES,
                           max_task_retries=RETRIES)(WorkerActor)
        self.actors = [actor.remote() for _ in range(self.count)]

    def run(self, jobs: list, progress=None):
        """Yield (job, what its actor made of each replica) as jobs finish."""
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        for job in jobs:
            pool.submit(lambda actor, job: actor.handle.remote(job), job)
        while pool.has_next():
            number, done = pool.get_next_unordered()
            if progress is not None:
                progress(sum(len(d.history["loss"]) for d in done))
            yield jobs[number], done

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
