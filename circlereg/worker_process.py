"""A worker process's life: read jobs from the command over one socket, answer each as the
protocol says (`Progress` as it trains, then `Finished` or `Failed`), and end on Ctrl-C, when
told, or when the parent dies. It loads its worker by name (`engine.worker.Worker`, or a
test's stand-in), so TensorFlow loads when that worker's module does, not before.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import pickle
import signal
import sys
import time
from multiprocessing.connection import Connection

from circlereg.protocol import Failed, Finished, Job, Progress, load_worker


def portable(err: BaseException) -> BaseException:
    """`err` if it survives pickling, else a RuntimeError that carries its text."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def end_with_parent(parent: int) -> None:
    """Be interrupted (SIGINT) when the parent dies, even by SIGKILL, rather than finish a
    job a resumed command is about to train again (Linux; elsewhere the closed socket ends
    the worker after its job)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before that took effect
        raise KeyboardInterrupt


def answer(worker, job: Job, send) -> Finished | Failed:
    """Train `job`, `send`ing its Progress as it goes; what to answer when it ends."""
    start = time.perf_counter()
    try:
        done = worker.handle(job, lambda epochs: send(Progress(job.number, epochs)))
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        raise
    except BaseException as err:
        return Failed(job.number, portable(err))
    return Finished(job.number, done, time.perf_counter() - start,
                    getattr(worker, "built", 0.0))


def main() -> None:
    """A worker process: `python -I -c ... FD SYS_PATH FACTORY PARENT_PID` (see
    processes.WorkerProcess). Reads jobs from the socket FD and answers, for each,
    `Progress` messages as it trains and then `Finished` or `Failed` (`protocol`). Ctrl-C
    (SIGINT, from the terminal or the parent) ends the job at hand, leaving no run directory
    half-written, and the process."""
    fd, path, factory = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    sys.path[:] = path
    signal.signal(signal.SIGINT, signal.default_int_handler)
    connection = Connection(fd)
    try:
        end_with_parent(int(sys.argv[4]))
        worker = load_worker(factory)()
        while True:
            try:
                job = connection.recv()
            except EOFError:  # the parent is gone
                break
            if job is None:
                break
            connection.send(answer(worker, job, connection.send))
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError, EOFError):
        raise SystemExit(130) from None  # quietly: the parent says what happened
    # As the console script: the exit handlers (the compile cache's) run, and the process
    # ends without the ~0.6 s Python spends tearing TensorFlow's modules down.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
