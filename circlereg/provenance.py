"""Where a run came from: the commit of the config's repository, the installed packages, the
CPU and its threads. `rundir.environment()` puts these in every run's environment.json.

Each fact is looked up once per process (git once per config folder): a sweep of hundreds of
runs spawns one `git`, not hundreds.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path


def repository(config_source: str) -> dict:
    """The git commit and dirty flag of the repository holding the config file
    `config_source`; both None when it is in none (or git is missing, or the source is not a
    file, e.g. "<config>"). Dirty means a tracked file differs from the commit (untracked
    files, such as run folders, do not count)."""
    path = Path(config_source)
    if not path.is_file():
        return {"commit": None, "dirty": None}
    return _repository(str(path.resolve().parent))


@cache
def _repository(folder: str) -> dict:
    try:
        # One call gives both: `# branch.oid <sha>` and a line per changed tracked file.
        # --no-optional-locks: never take the index lock from under a user's own git.
        status = subprocess.run(["git", "--no-optional-locks", "-C", folder, "status",
                                 "--porcelain=v2", "--branch", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):  # no git, not a repository, hung
        return {"commit": None, "dirty": None}
    oid = next((line.split()[2] for line in status if line.startswith("# branch.oid ")), None)
    commit = oid if oid and oid != "(initial)" else None  # "(initial)": nothing committed yet
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in status)}


@cache
def packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)  # the first on sys.path wins imports
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def threads() -> dict:
    """CPUs the machine has and this process may use, and TensorFlow's op thread pools (0:
    TensorFlow's default, one thread per core) when TensorFlow is already loaded; None when
    it is not, rather than importing it for this."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    facts = {"cpu_count": os.cpu_count(), "usable_cpus": usable,
             "tensorflow_intra_op": None, "tensorflow_inter_op": None}
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        facts["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        facts["tensorflow_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    return facts
