"""What the command and its workers say to each other: the `Job` a worker is handed, and how a
worker is named (`module:attribute`) so the command never imports it. No TensorFlow here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from circlereg.plan import Outputs, Replica


@dataclass
class Job:
    """What a worker is handed: replicas of one structure and where each goes."""

    number: int  # the job's place in the executor's list, reported back with what it made
    key: str  # config.structure_key of every replica in it
    indices: list[int]  # the replicas' places in the plan (or in Executor.train_all's list)
    replicas: list[Replica]
    outputs: Outputs | None  # what each run directory holds; None: train, return Results
    execution: dict = field(default_factory=dict)  # how the plan runs: environment.json


def load_worker(factory: str):
    """`module:attribute` -> the worker class (or factory) it names."""
    module, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module), attribute)
