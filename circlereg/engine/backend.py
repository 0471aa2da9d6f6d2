"""TensorFlow and Keras, loaded once, without their start-up chatter.

The tensorflow wheel writes absl, oneDNN and CUDA lines to stderr (file descriptor 2) while
it loads and when it first looks for a GPU, before any setting can silence them; one of them,
`E0000 ... failed call to cuInit`, looks like a failure on every CPU machine. Every circlereg
module takes `keras` and `tf` from here: they are loaded with fd 2 captured, and every
captured line that is not one of those known start-up lines is written back, so a real error
still shows.

It also turns on XLA's persistent compilation cache (see `compile_cache`), which must be set
before TensorFlow loads: a compiled training loop is then built once per machine, not once
per command.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING logs

CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform"
    r"|cuda_executor|cuda_dnn|cuda_fft|cuda_blas)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*"
    # Loading a cached program, TensorFlow first tries to read the binary file as text, and
    # XLA counts CPU tuning flags (+prefer-no-gather) as missing features: false alarms.
    r"|E\d{4} [\d:.]+ +\d+ text_format\.cc:\d+\] Error parsing text-format "
    r"tensorflow\.XlaSerializedCacheEntry: .*"
    r"|E\d{4} [\d:.]+ +\d+ cpu_aot_loader\.cc:\d+\] Loading XLA:CPU AOT result\. "
    r"Target machine feature \+(prefer|tuning|fast|slow)[\w-]* is not .*")

_STDERR = threading.Lock()
_captured: list = []  # [saved fd 2, capture file, open blocks] while captured


@contextmanager
def quiet_stderr():
    """Capture file descriptor 2 (the process's, so every thread's) while the block runs;
    when the last open block ends, write back every captured line that is not CHATTER."""
    with _STDERR:
        if not _captured:
            sys.stderr.flush()
            capture = tempfile.TemporaryFile()
            _captured[:] = [os.dup(2), capture, 0]
            os.dup2(capture.fileno(), 2)
        _captured[2] += 1
    try:
        yield
    finally:
        with _STDERR:
            _captured[2] -= 1
            if not _captured[2]:
                sys.stderr.flush()
                saved, capture, _ = _captured
                _captured.clear()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True)
                        if line.strip() and not CHATTER.fullmatch(line.decode(errors="replace")
                                                                  .rstrip("\r\n"))]
                capture.close()
                os.write(2, b"".join(kept))


# The compile cache ---------------------------------------------------------------------------
# XLA (TF_XLA_FLAGS=--tf_xla_persistent_cache_directory) saves each compiled program in a
# file named by a hash of its HLO, and checks the whole HLO on loading: a program whose
# shapes, dtype, lanes, epochs or data differ is another entry. What the HLO does not say
# (the TensorFlow build, XLA flags, the CPU) names the folder. TensorFlow writes entries in
# place, so a process reading the shared folder could see another's half-written file:
# each process works in a private folder of links to the shared entries, and moves its
# new entries in whole (`publish_compiled`).
CACHE_ENV = "CIRCLEREG_COMPILE_CACHE"  # 0/off/false/no: compile every time
STAGE_ENV = "CIRCLEREG_XLA_STAGE"
CACHE_LIMIT = 512 * 2**20  # bytes kept; the oldest entries go first
_stage: list[Path] = []  # [shared folder, this process's folder] when the cache is on


def cache_root() -> Path:
    """$XDG_CACHE_HOME/circlereg, else ~/.cache/circlereg."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "circlereg"


def compile_cache() -> Path | None:
    """The shared folder of compiled programs this process reads and adds to; None when
    the cache is off (CIRCLEREG_COMPILE_CACHE=0) or cannot be used."""
    return _stage[0] if _stage else None


def _build_key() -> str:
    """What a compiled program depends on beyond its HLO, read without importing TF."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("tensorflow")
    library = Path(spec.origin).parent / "libtensorflow_cc.so.2" if spec and spec.origin else None
    stat = library.stat() if library and library.exists() else None
    versions = []
    for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            versions.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith(("flags", "Features"))), "")
    facts = [*versions, str(library), str(stat and (stat.st_size, stat.st_mtime_ns)),
             platform.machine(), platform.processor(), cpu, os.environ.get("XLA_FLAGS", ""),
             os.environ.get("TF_XLA_FLAGS", "")]
    tag = versions[0].split("==")[1] if versions else "unknown"
    return f"tf{tag}-{hashlib.sha256(repr(facts).encode()).hexdigest()[:16]}"


def _start_cache() -> None:
    flags = os.environ.get("TF_XLA_FLAGS", "")
    inherited = os.environ.pop(STAGE_ENV, None)  # a parent circlereg's private folder
    if inherited:
        flags = flags.replace(f"--tf_xla_persistent_cache_directory={inherited}", "").strip()
        os.environ["TF_XLA_FLAGS"] = flags
    if os.environ.get(CACHE_ENV, "1").strip().lower() in ("0", "off", "false", "no"):
        return
    if "tf_xla_persistent_cache_directory" in flags:
        return  # the user's own XLA cache setting wins
    try:
        root = cache_root() / "xla"
        shared = root / _build_key()
        shared.mkdir(parents=True, exist_ok=True)
        _prune(root)
        stage = Path(tempfile.mkdtemp(prefix=f".process-{os.getpid()}-", dir=shared))
        for entry in shared.glob("*.pb"):
            os.link(entry, stage / entry.name)
    except (OSError, RuntimeError):  # no home folder, read-only, no hard links: no cache
        return
    _stage[:] = [shared, stage]
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={stage}".strip()
    os.environ[STAGE_ENV] = str(stage)  # so a child process sets up its own
    atexit.register(_end_cache)


def publish_compiled() -> None:
    """Move this process's new compiled programs into the shared folder, each in one step
    (a hard link), so other processes only ever see whole entries."""
    if not _stage:
        return
    shared, stage = _stage
    for entry in stage.glob("*.pb"):
        try:
            os.link(entry, shared / entry.name)
        except FileExistsError:
            pass
        except OSError:
            return


@contextmanager
def compiling():
    """Around a first call that XLA-compiles: with the compile cache on, XLA's false alarms
    on each cached program it loads are kept off stderr, and the programs compiled inside
    are shared with other processes once the block ends."""
    if compile_cache() is None:
        yield
        return
    with quiet_stderr():
        yield
    publish_compiled()


def _end_cache() -> None:
    publish_compiled()
    shutil.rmtree(_stage[1], ignore_errors=True)


def _prune(root: Path) -> None:
    """Drop the private folders of processes that died, then the oldest entries while the
    cache holds more than CACHE_LIMIT bytes."""
    for stage in root.glob("*/.process-*"):
        pid = int(stage.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(stage, ignore_errors=True)
        except PermissionError:
            pass
    entries = sorted(((e.stat(), e) for e in root.glob("*/*.pb")), key=lambda s: s[0].st_mtime)
    total = sum(stat.st_size for stat, _ in entries)
    for stat, entry in entries:
        if total <= CACHE_LIMIT:
            break
        entry.unlink(missing_ok=True)
        total -= stat.st_size


def _load():
    with quiet_stderr():
        import keras
        import tensorflow as tf

        # One thread per compiled program: its ops are far too small to split. With
        # TensorFlow's default pool (one thread per core) a 4-lane batch of the study net
        # took 0.70 s and 1.05 s of CPU; with one thread, 0.43 s of both, to the same bits.
        # Sweeps get their parallelism from the executor's workers instead.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.list_logical_devices()  # the GPU probe, which logs cuInit's failure
    return keras, tf


_start_cache()
keras, tf = _load()
