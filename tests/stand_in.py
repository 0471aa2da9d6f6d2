"""A stand-in worker for the scheduling tests: it "trains" a job by sleeping (which holds
no GIL and takes no core) and "writes" a file per replica, so many workers can be watched on
a machine with few cores. Imported by the worker processes: no pytest, no TensorFlow."""

import json
import os
import time

from circlereg.rundir import Result

SECONDS = 1.5  # one job's "training"
WRITE_SECONDS = 0.1  # one job's "writing"


class SleepWorker:
    def __init__(self, programs=None):
        pass

    def handle(self, job, progress=None):
        start = time.time()  # the wall clock, comparable across processes
        time.sleep(SECONDS)
        if progress is not None:
            progress(len(job.replicas))
        time.sleep(WRITE_SECONDS)
        done = []
        for index, replica in zip(job.indices, job.replicas):
            replica.destination.mkdir(parents=True)
            (replica.destination / "done.json").write_text(json.dumps({"pid": os.getpid()}))
            done.append(Result(0, {}, index=index, metrics={
                "start": start, "end": time.time(), "pid": os.getpid()}))
        return done


class CrashingWorker(SleepWorker):
    """A worker that dies mid-job, as one killed for memory would."""

    def handle(self, job, progress=None):
        os._exit(3)
