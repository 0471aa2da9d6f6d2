"""The user's errors: one line naming the file (or option), the key and what is allowed.

The CLI turns a ConfigError into that line and exit code 2, wherever it was raised: the
command's process, a worker process or a Ray actor. No TensorFlow here.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: rendered as one line `<file>: <key>: <what is wrong>`, exit code 2."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + message)

    def __reduce__(self):
        # As itself across processes: a worker's ConfigError is still one line, exit 2.
        return ConfigError, (self.source, self.key, self.message)
