"""Sweeps on a Ray cluster: each chunk of replicas (one compiled graph) is a Ray task.

Ray is an optional extra (`pip install circlereg[ray]`). The driver keeps writing the sweep
folder itself, so a Ray sweep's summary equals the local backend's, and `--resume` works the
same. A worker killed mid-task is retried by Ray (max_retries).
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


def _train_task(chunk):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from circlereg.train import train_chunks

    # A Ray worker process is reused across tasks, and keeps its compiled trainers.
    return dict(train_chunks([chunk], workers=1))[0]


def train_on_ray(chunks: list, address: str | None, progress=None):
    """Yield (chunk index, results) as Ray tasks finish, in completion order."""
    ray = _ray(loopback=address is None)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:  # a private local instance, on loopback only
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    # Each task takes a whole CPU: TensorFlow itself uses the cores it is given.
    remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_train_task)
    pending = {remote.remote(chunk): index for index, chunk in enumerate(chunks)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        results = ray.get(done[0])
        if progress is not None:
            progress(sum(c["train"]["epochs"] for c in chunks[index].configs))
        yield index, results
