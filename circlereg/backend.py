"""TensorFlow and Keras, loaded once, without their start-up chatter.

The tensorflow wheel writes absl, oneDNN and CUDA lines to stderr (file descriptor 2) while
it loads and when it first looks for a GPU, before any setting can silence them; one of them,
`E0000 ... failed call to cuInit`, looks like a failure on every CPU machine. Every circlereg
module takes `keras` and `tf` from here: they are loaded with fd 2 captured, and every
captured line that is not one of those known start-up lines is written back, so a real error
still shows.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING logs

CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform"
    r"|cuda_executor|cuda_dnn|cuda_fft|cuda_blas)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*")


def _load():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras
            import tensorflow as tf

            tf.config.list_logical_devices()  # the GPU probe, which logs cuInit's failure
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not CHATTER.fullmatch(line):
                    print(line, file=sys.stderr)
    return keras, tf


keras, tf = _load()
