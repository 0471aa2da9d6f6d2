"""The worker: trains jobs of replicas and writes their run directories, wherever it runs.

A `Job` is replicas of one structure (`config.structure_key`), trained as batches of exactly
`LANES` lanes, so which worker trained a replica, and with what else, never reaches its
numbers. The worker keeps what a structure costs to set up (its compiled program, the
writer's probe model, the data split) for as long as it lives, and writes each run
directory itself (`writer.Writer`), figures included: training, metrics and writing all
proceed in as many places at once as there are workers.

Where a worker runs is the executor's business: a worker process of the local executor
(`python -I`, running `main`, talking to its parent over one socket), a Ray actor, or the
command's own process (`Executor(programs=...)`, which the tests use to share compiled
programs across commands).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import replace

from circlereg.config import LANES, config_hash
from circlereg.data import load_split
from circlereg.engine.fit import train_fit
from circlereg.engine.model import initial_state
from circlereg.engine.train import LaneProgram
from circlereg.engine.writer import Writer
from circlereg.plan import Outputs
from circlereg.protocol import Job
from circlereg.rundir import Result

PROGRAM_LIMIT = 8  # compiled programs a worker keeps; the least recently used goes first


class Programs:
    """Compiled programs (`train.LaneProgram`) by structure key, least recently used first
    out. A program is a pure function of what it trains: whoever holds one may train any
    batch of its structure."""

    def __init__(self, limit: int = PROGRAM_LIMIT):
        self.limit = limit
        self._ready: collections.OrderedDict[str, object] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._ready)

    def get(self, key: str):
        program = self._ready.get(key)
        if program is not None:
            self._ready.move_to_end(key)
        return program

    def put(self, key: str, program) -> None:
        self._ready[key] = program
        self._ready.move_to_end(key)
        while len(self._ready) > self.limit:
            self._ready.popitem(last=False)


class Worker:
    """Trains jobs one after another and writes their run directories."""

    def __init__(self, programs: Programs | None = None):
        self.programs = programs if programs is not None else Programs()
        self._splits: dict[str, object] = {}
        self._writers: dict[Outputs, object] = {}
        self.built = 0.0  # seconds the last job spent building its program

    def split(self, config: dict):
        """The config's data split, made once per data section."""
        key = config_hash(config["data"])
        if key not in self._splits:
            self._splits[key] = load_split(config["data"])
        return self._splits[key]

    def handle(self, job: Job, progress=None) -> list[Result]:
        """Train the job's replicas and write each one's run directory; returns their
        Results (as written; without outputs, as trained, weights included), each with its
        `index`. `progress(replica_epochs)` as training advances."""
        self.built = 0.0
        configs = [r.config for r in job.replicas]
        if configs[0]["train"]["engine"] == "fit":  # the reference: one replica at a time
            batches = [[i] for i in range(len(configs))]
            program = None
        else:
            batches = [list(range(i, min(i + LANES, len(configs))))
                       for i in range(0, len(configs), LANES)]
            program = self._program(job.key, configs[0])
        ahead = self._prepare(job)
        done = []
        for batch in batches:
            if program is None:
                split = self.split(configs[batch[0]])
                results = [train_fit(configs[batch[0]], split)]
                if progress is not None:
                    progress(len(results[0].history["loss"]))
            else:
                starts = [initial_state(configs[i]) for i in batch]
                results = program.train([configs[i] for i in batch], starts, progress)
            if ahead is not None:
                ahead.join()
            for i, result in zip(batch, results):
                done.append(self._finish(job, i, result))
        return done

    def _prepare(self, job: Job) -> threading.Thread | None:
        """Build what writing a new structure needs (`Writer.prepare`: its probe model,
        matplotlib) in a thread of its own while the first batch trains, which releases the
        GIL: ~0.5 s off a lone run."""
        if job.outputs is None:
            return None
        writer = self._writer(job.outputs)
        if writer.prepared(job.replicas[0].config):
            return None
        def prepare() -> None:
            try:
                writer.prepare(job.replicas[0].config)
            except Exception:  # raised again, to the caller, when the first run is written
                pass

        ahead = threading.Thread(target=prepare)
        ahead.start()
        return ahead

    def _writer(self, outputs: Outputs):
        if outputs not in self._writers:
            self._writers[outputs] = Writer(outputs)
        return self._writers[outputs]

    def _program(self, key: str, config: dict):
        """The structure's compiled program: kept, or traced now (and compiled, or loaded
        from the compile cache). Traced before any initial weights are built in a fresh
        process, so the names TensorFlow gives it, and with them its compile cache entry,
        are the same in every worker (model.BUILDING)."""
        program = self.programs.get(key)
        if program is None:
            start = time.perf_counter()
            program = LaneProgram(config, self.split(config))
            self.programs.put(key, program)
            self.built += time.perf_counter() - start
        return program

    def _finish(self, job: Job, i: int, result: Result) -> Result:
        result = replace(result, index=job.indices[i])
        if job.outputs is None:
            return result
        replica = job.replicas[i]
        return self._writer(job.outputs).write(replica, result, self.split(replica.config),
                                               job.execution)
