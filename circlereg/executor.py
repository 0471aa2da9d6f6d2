"""The executor: how a plan's replicas are batched, scheduled and handed to the writer.

Every command (run, run --repeats, sweep, compare, reproduce) builds a `Plan` and calls
`execute(plan, executor)`. Replicas of one structure (`train.structure_key`: everything but
seed, penalty strengths, dropout rates and noise stddevs) are cut into tasks of `chunk`
replicas, each trained as batches of exactly `train.LANES` lanes; so how the plan was cut
never reaches a replica's numbers.

Tasks run on local worker threads (one per core by default) or on Ray actors. A compiled
program costs seconds to trace and compile and about as long as a batch to train; it is a
pure function of what it trains, so each executor keeps one per structure (`Programs`) and
every worker shares it: a worker prefers a task whose program is ready, else builds the
program of a structure no worker is building, and waits only while every pending structure
is being built. Initial weights are built ahead in one thread while earlier
batches train; one writer thread writes each run directory while later batches train, and
with run figures the executor's processes (`figure_pool`) draw them and complete each folder.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass

from circlereg.plan import Plan, Replica

WORKERS = 2  # tasks trained at once: one per core of the 2-core machines this targets
PROGRAM_LIMIT = 8  # compiled programs kept; the least recently used goes first


@dataclass
class Task:
    """Replicas of one structure that one worker trains, batch after batch."""

    key: str  # train.structure_key of every replica in it
    indices: list[int]  # positions in the list of configs handed to Executor.train

    def batches(self, lanes: int) -> list[list[int]]:
        return [self.indices[i:i + lanes] for i in range(0, len(self.indices), lanes)]


def make_tasks(configs: list[dict], chunk: int, lanes: int) -> list[Task]:
    """Group by structure and cut into tasks of `chunk` replicas (rounded up to whole
    batches), interleaving structures so that both workers start on different ones."""
    from circlereg.train import structure_key

    by_key: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        by_key.setdefault(structure_key(config), []).append(index)
    size = -(-max(chunk, 1) // lanes) * lanes
    per_key = [[Task(key, indices[i:i + size]) for i in range(0, len(indices), size)]
               for key, indices in by_key.items()]
    return [task for round_ in itertools.zip_longest(*per_key) for task in round_
            if task is not None]


class Programs:
    """Compiled programs (`train.LaneProgram`) by structure key. A program is a pure
    function of what it trains, so every worker thread shares it: one trace and compile per
    structure, however many workers train it. Owned by one Executor (or by whoever passes it
    to several)."""

    def __init__(self, limit: int = PROGRAM_LIMIT):
        self.limit = limit
        self._ready: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            program = self._ready.get(key)
            if program is not None:
                self._ready.move_to_end(key)
            return program

    def put(self, key: str, program) -> None:
        with self._lock:
            self._ready[key] = program
            self._ready.move_to_end(key)
            while len(self._ready) > self.limit:
                self._ready.popitem(last=False)


class Executor:
    """Trains lists of replica configs on local workers or on Ray; reuse one executor across
    plans to reuse its compiled programs (`with Executor() as executor: ...`)."""

    def __init__(self, workers: int | None = None, backend: str = "local",
                 address: str | None = None, chunk: int | None = None,
                 programs: Programs | None = None):
        """`workers`: batches at once (default: WORKERS locally, one actor per CPU on Ray).
        `programs`: compiled programs to use and keep, owned by the caller (default: the
        executor's own, for its lifetime). Making one imports no TensorFlow."""
        self.workers, self.backend, self.address = workers, backend, address
        self._chunk = chunk
        self.programs = programs if programs is not None else Programs()
        self._splits: dict[str, object] = {}
        self._ray = None
        self._figures: ProcessPoolExecutor | None = None

    @property
    def lanes(self) -> int:
        from circlereg.train import LANES

        return LANES

    @property
    def chunk(self) -> int:
        return self._chunk or self.lanes

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._ray is not None:
            self._ray.close()
            self._ray = None
        if self._figures is not None:  # after every run handed to it is complete
            self._figures.shutdown()
            self._figures = None

    def figures(self) -> ProcessPoolExecutor | None:
        """The processes that draw run figures (`figure_pool`), started on first use and
        kept while this executor lives, so a command of several plans (tune) starts them
        once; None where a spawned process could not import this program safely."""
        if self._figures is None and _spawn_is_safe():
            self._figures = figure_pool()
        return self._figures

    def start_figures(self) -> None:
        """Start the figure processes now, for a command that will draw run figures: made
        before TensorFlow is imported, they load matplotlib on the core that importing
        leaves idle, rather than while both cores train."""
        pool = self.figures()
        if pool is not None:
            for _ in range(WORKERS):  # a process is spawned per task while none is idle
                pool.submit(_started)

    def split(self, config: dict):
        """The config's data split, loaded once per data section."""
        from circlereg.config import config_hash
        from circlereg.data import load_split

        key = config_hash(config["data"])
        if key not in self._splits:
            self._splits[key] = load_split(config["data"])
        return self._splits[key]

    def train(self, configs: list[dict], progress: Callable[[int], None] | None = None
              ) -> Iterator[tuple[int, object]]:
        """Yield (index into configs, train.Result) as batches finish."""
        from circlereg.train import train_fit

        fit = [i for i, c in enumerate(configs) if c["train"]["engine"] == "fit"]
        for index in fit:  # the reference engine: model.fit, one replica at a time
            result = train_fit(configs[index], self.split(configs[index]))
            if progress is not None:
                progress(len(result.history["loss"]))
            yield index, result
        compiled = [i for i, c in enumerate(configs) if c["train"]["engine"] == "compiled"]
        tasks = make_tasks([configs[i] for i in compiled], self.chunk, self.lanes)
        if self.backend == "ray":
            from circlereg.cluster import RayBackend

            self._ray = self._ray or RayBackend(self.address, self.workers)
            finished = self._ray.train([[configs[compiled[i]] for i in task.indices]
                                        for task in tasks], progress)
            for task_index, results in finished:
                for i, result in zip(tasks[task_index].indices, results):
                    yield compiled[i], result
            return
        for i, result in self._train_local([configs[i] for i in compiled], tasks, progress):
            yield compiled[i], result

    def train_all(self, configs: list[dict], progress=None) -> list:
        """Train without writing anything: train.Results in the order given."""
        results = dict(self.train(configs, progress))
        return [results[i] for i in range(len(configs))]

    def _train_local(self, configs: list[dict], tasks: list[Task], progress
                     ) -> Iterator[tuple[int, object]]:
        from circlereg.model import initial_state
        from circlereg.train import LaneProgram

        pending = list(tasks)
        building: set[str] = set()  # structures a worker is tracing and compiling
        changed = threading.Condition()
        finished: collections.deque = collections.deque()
        state = {"stop": False, "error": None, "running": 0}

        def take() -> tuple[Task, object] | None:
            """The next task whose program is ready, or whose program no worker is building
            yet (this worker then builds it); None when nothing is left (or everything
            stops). A worker waits only while every pending structure is being built."""
            with changed:
                while not state["stop"] and pending:
                    ready = {t.key: self.programs.get(t.key) for t in pending}
                    task = next((t for t in pending if ready[t.key] is not None), None) or \
                        next((t for t in pending if t.key not in building), None)
                    if task is not None:
                        pending.remove(task)
                        if ready[task.key] is None:
                            building.add(task.key)
                        return task, ready[task.key]
                    changed.wait()
                return None

        def work() -> None:
            while (taken := take()) is not None:
                task, program = taken
                try:
                    if program is None:
                        first = configs[task.indices[0]]
                        program = LaneProgram(first, self.split(first), traced=first_traced.set)
                        with changed:
                            self.programs.put(task.key, program)
                            building.discard(task.key)
                            changed.notify_all()
                    first_traced.set()
                    for batch in task.batches(self.lanes):
                        starts = [starts_ahead[i].result() for i in batch]
                        results = program.train([configs[i] for i in batch], starts, progress)
                        with changed:
                            finished.extend(zip(batch, results))
                            changed.notify_all()
                except BaseException as err:  # handed to the consuming thread, which raises it
                    with changed:
                        state["stop"], state["error"] = True, state["error"] or err
                        building.discard(task.key)
                        changed.notify_all()
                finally:
                    first_traced.set()

        def run_worker() -> None:
            try:
                work()
            finally:
                with changed:
                    state["running"] -= 1
                    changed.notify_all()

        # Initial weights are built once a first program is traced: its traced names, and
        # so its compile cache entry, are then the same in every process (model.BUILDING).
        first_traced = threading.Event()

        def start(config: dict):
            first_traced.wait()
            return initial_state(config)

        order = [i for task in tasks for i in task.indices]
        count = self.workers or WORKERS
        with ThreadPoolExecutor(1) as builder, ThreadPoolExecutor(count) as workers:
            starts_ahead = {i: builder.submit(start, configs[i]) for i in order}
            state["running"] = min(count, len(tasks))
            for _ in range(state["running"]):
                workers.submit(run_worker)
            try:
                while True:
                    with changed:
                        while not finished and state["running"] and state["error"] is None:
                            changed.wait()
                        if state["error"] is not None:
                            raise state["error"]
                        if not finished and not state["running"]:
                            return
                        ready = [finished.popleft() for _ in range(len(finished))]
                    yield from ready
            finally:  # done, interrupted or failed: start nothing new, let running batches end
                with changed:
                    state["stop"] = True
                    changed.notify_all()
                for future in starts_ahead.values():
                    future.cancel()


@dataclass
class Written:
    """What the writer made of one replica: its metrics and curves, as written."""

    replica: Replica
    metrics: dict
    history: dict


def execute(plan: Plan, executor: Executor | None = None, progress=None) -> list[Written]:
    """Train every replica of a checked plan (`Plan.check`, which its builder runs before
    creating any folder) and write its run directory; returns what was written, in plan
    order. An interrupted plan keeps every run directory already written."""
    from circlereg.rundir import Writer
    from circlereg.train import structure_key

    own = executor is None
    executor = executor or Executor()
    written: dict[int, Written] = {}
    figures = executor.figures() if plan.outputs.figures and len(plan.replicas) > 1 else None
    writer = Writer(plan.outputs, figures)
    try:
        # One writer thread: a batch's run directories are written while later batches
        # train, and an interrupted plan still finishes writing what it had trained.
        with ThreadPoolExecutor(1) as writing:
            structures = {structure_key(r.config): r.config for r in plan.replicas}

            def advance(replica_epochs: int) -> None:
                # Once compiled training runs (it releases the GIL, tracing does not), the
                # writer builds what it needs in the meantime.
                while structures:
                    writing.submit(writer.prepare, structures.popitem()[1])
                if progress is not None:
                    progress(replica_epochs)

            def write(index: int, result) -> None:
                replica = plan.replicas[index]
                metrics = writer.write(replica, result, executor.split(replica.config))
                written[index] = Written(replica, metrics, result.history)

            futures = [writing.submit(write, index, result) for index, result in
                       executor.train([r.config for r in plan.replicas], advance)]
            for future in futures:
                future.result()
        writer.wait()
    finally:
        futures_wait(writer.pending)  # what was trained is written, even when interrupted
        if own:
            executor.close()
    return [written[i] for i in range(len(plan.replicas))]


def figure_pool() -> ProcessPoolExecutor:
    """Processes, one per core, that draw run figures beside the writer thread: matplotlib
    holds the GIL for the ~0.2 s of a run's three figures, four times what the rest of its
    run directory takes, so one thread drawing them would leave the second core idle once
    training ends. Started afresh (spawn: no TensorFlow, no threads inherited); Ctrl-C is
    left to this process, which finishes writing what it had trained."""
    import multiprocessing

    return ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_figure_worker)


def _spawn_is_safe() -> bool:
    """Whether a spawned process may import this program's __main__: it does unless the
    program ran as a module (python -m circlereg.cli, pytest) or from the interpreter, and a
    script without an `if __name__ == "__main__":` guard would then run again in it. The
    circlereg console script has the guard; other scripts draw in the writer thread."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return getattr(main, "__spec__", None) is not None or path is None or \
        os.path.basename(path) == "circlereg"


def _started() -> None:
    """A figure process's first task: it is up once the initializer has run."""


def _figure_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from circlereg import plots  # matplotlib loads while training runs

    plots.warm_up()
