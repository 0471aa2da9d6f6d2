"""The executor's Ray backend: each task (replicas of one structure) goes to a Ray actor.

Ray is an optional extra (`pip install circlereg[ray]`). An actor owns a local Executor with
one worker, so it keeps its compiled programs for as long as it lives, and trains a task
exactly as a local worker would (the same lane batches): a Ray sweep writes the same numbers
as a local one. The driver keeps writing the run directories itself. An actor killed
mid-task is restarted by Ray and the task retried.
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


class TrainingActor:
    """One Ray actor: a local executor with one worker, alive as long as the actor."""

    def __init__(self):
        from circlereg.executor import Executor

        self.executor = Executor(workers=1)

    def train(self, index: int, configs: list[dict]) -> tuple[int, list]:
        results = dict(self.executor.train(configs))
        return index, [results[i] for i in range(len(configs))]


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
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Each actor takes a whole CPU: TensorFlow itself uses the cores it is given.
        actor = ray.remote(num_cpus=1, max_restarts=RETRIES,
                           max_task_retries=RETRIES)(TrainingActor)
        self.actors = [actor.remote() for _ in range(count)]

    def train(self, tasks: list[list[dict]], progress=None):
        """Yield (task index, results) as tasks finish, in completion order."""
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        for index, configs in enumerate(tasks):
            pool.submit(lambda actor, job: actor.train.remote(*job), (index, configs))
        while pool.has_next():
            index, results = pool.get_next_unordered()
            if progress is not None:
                progress(sum(len(r.history["loss"]) for r in results))
            yield index, results

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
