"""circlereg: run, sweep and reproduce regularization experiments on the concentric-circles
overfitting study (a 2-500-1 MLP, 30 training and 70 test points of sklearn's make_circles).

From Python (docs/python.md): `circlereg.runs(runs_dir)`, `circlereg.run(config, ...)`,
`circlereg.sweep(config, axes, ...)`, `circlereg.compare(configs, ...)` and
`circlereg.history(run)`, each a pandas DataFrame (circlereg/api.py). Importing circlereg
loads none of them, nor pandas or TensorFlow, until one is used.
"""

import importlib
import sys
import types

from circlereg.errors import ConfigError  # what bad input raises: the CLI's error line

__version__ = "0.1.0"
__all__ = ["runs", "run", "sweep", "compare", "history", "ConfigError", "__version__"]

# `run` and `sweep` are also the modules run.py and sweep.py, which Python sets as this
# package's attributes when they are imported. So those modules are made callable: the
# module is the function too, and `circlereg.sweep.run_sweep` keeps working.
_COMMAND_MODULES = ("run", "sweep")


class _Command(types.ModuleType):
    """A command's module that is also its Python API function (api.run, api.sweep)."""

    def __call__(self, *args, **kwargs):
        return self._function()(*args, **kwargs)

    def _function(self):
        return getattr(_api(), self.__name__.rpartition(".")[2])

    @property
    def __signature__(self):  # what help, IPython's `?` and tab completion show
        import inspect

        return inspect.signature(self._function())


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _COMMAND_MODULES and isinstance(value, types.ModuleType) \
                and value.__name__ == f"{__name__}.{name}":
            value.__class__ = _Command
        super().__setattr__(name, value)


def _api():
    """api.py, loaded on first use: `import circlereg` stays as light as `--help`."""
    return importlib.import_module(f"{__name__}.api")


def __getattr__(name: str):
    if name in _COMMAND_MODULES:  # importing it sets it here, callable
        return importlib.import_module(f"{__name__}.{name}")
    if name in __all__:
        return getattr(_api(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


sys.modules[__name__].__class__ = _Package
