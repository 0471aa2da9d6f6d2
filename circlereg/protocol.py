"""What the command and its workers say to each other, and the one interface every way of
running workers implements. No TensorFlow here: the command imports it, and so do workers.

The command hands a worker a `Job`; the worker answers with `Progress` messages as it trains
and then one `Finished` (or `Failed`). A `Backend` (`executor.InProcess`,
`processes.WorkerProcesses`, `cluster.RayActors`) turns a list of jobs into (job, results)
pairs as jobs finish; the `Executor` holds one and never asks which. Workers are named as
`module:attribute` (`load_worker`), so the command never imports one.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from circlereg.plan import Outputs, Replica
from circlereg.rundir import Result


@dataclass
class Job:
    """What a worker is handed: replicas of one structure and where each goes."""

    number: int  # the job's place in the executor's list, reported back with what it made
    key: str  # config.structure_key of every replica in it
    indices: list[int]  # the replicas' places in the plan (or in Executor.train_all's list)
    replicas: list[Replica]
    outputs: Outputs | None  # what each run directory holds; None: train, return Results
    execution: dict = field(default_factory=dict)  # how the plan runs: environment.json


@dataclass
class Progress:
    """Job `number` trained `replica_epochs` more replica-epochs (an epoch of each of 4 lanes
    is 4), the one unit of progress on every backend: a plan's total is the sum of its
    replicas' train.epochs."""

    number: int
    replica_epochs: int


@dataclass
class Finished:
    """Job `number` is trained and written: what its worker made of each replica (each
    Result's `index` is the replica's place in the executor's list), in `seconds`, of which
    `built` went to building the structure's program (0.0: the worker held it)."""

    number: int
    results: list[Result]
    seconds: float
    built: float


@dataclass
class Failed:
    """Job `number` raised `error` (picklable: `worker_process.portable`); the command raises
    it again, as itself (a ConfigError stays one)."""

    number: int
    error: BaseException


Message = Progress | Finished | Failed
ProgressCallback = Callable[[int], None]  # told replica-epochs as they are trained


class Backend(ABC):
    """Where jobs train: one worker in this process, worker processes of this machine, or
    Ray actors. Making one starts nothing and imports no TensorFlow."""

    name: str  # how environment.json's execution says where runs trained

    @property
    @abstractmethod
    def count(self) -> int:
        """How many jobs train at once."""

    @property
    @abstractmethod
    def cpus(self) -> int:
        """The CPUs the workers share, for environment.json."""

    def start(self, jobs: int | None = None) -> None:
        """Start workers now, for up to `jobs` jobs (default: as many as run at once), so
        that they load TensorFlow while the command builds its plan; no-op where workers
        start when first needed."""
        return None  # by default, workers start when `run` needs them

    @abstractmethod
    def run(self, jobs: list[Job], progress: ProgressCallback | None = None
            ) -> Iterator[tuple[Job, list[Result]]]:
        """Yield (job, its results) as jobs finish, telling `progress` the replica-epochs
        trained as they are. Interrupted (Ctrl-C) or abandoned, it stops its workers
        without leaving a run half-written; a worker's error is raised as itself."""

    def close(self) -> None:
        """End the workers (idle ones at once); the backend may start new ones later."""
        return None  # by default, nothing is held between plans


def load_worker(factory: str):
    """`module:attribute` -> the worker class (or factory) it names."""
    module, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module), attribute)
