"""Where the penalties come from: L1, L2, L1_L2 or a user's callable, with the activity
batch convention pinned by the config rather than by the installed Keras release.

Keras 3.0-3.13 add an activity penalty summed over the batch; Keras 3.14+ divide it by the
batch size (keras-team/keras#22021). `Penalty` measures which one is installed and scales its
own value so the loss Keras finally adds is the one the config asked for.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from circlereg.config import BUILTIN_KINDS, ConfigError, shorten
from circlereg.engine.backend import keras

ops = keras.ops


@functools.cache
def keras_divides_activity_penalty() -> bool:
    """True when the installed Keras divides an activity penalty by the batch size.

    Probe: Dense(1, kernel ones) on a batch of two 2s gives outputs [2, 2]; L1(1.0) of that is
    4.0 summed over the batch, 2.0 per sample.
    """
    layer = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False,
                               activity_regularizer=keras.regularizers.L1(1.0))
    layer(np.full((2, 1), 2.0, dtype="float32"))
    added = float(ops.convert_to_numpy(ops.sum(layer.losses)))
    if added not in (2.0, 4.0):
        raise RuntimeError(f"unrecognised Keras activity-penalty convention (probe gave {added})")
    return added == 2.0


def installed_convention() -> str:
    return "mean" if keras_divides_activity_penalty() else "sum"


def import_callable(spec: str, source: str = "<config>", key: str = "kind") -> Callable:
    """`package.module:function` -> the callable, or a ConfigError saying why not. A class
    (e.g. a keras.regularizers.Regularizer subclass with get_config) is instantiated with
    no arguments."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # as `python -m` would: user modules beside the configs
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or anything the user's module raises on import
        raise ConfigError(source, key, f"cannot import module '{module_name}': "
                                       f"{type(err).__name__}: {shorten(err, 200)}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ConfigError(source, key, f"module '{module_name}' has no callable '{attr}'")
    if inspect.isclass(fn):
        try:
            fn = fn()
        except Exception as err:  # a user's class can fail in any way; report it in one line
            raise ConfigError(source, key, f"cannot instantiate {spec}() without arguments: "
                                           f"{type(err).__name__}: {err}") from None
    return fn


@keras.saving.register_keras_serializable(package="circlereg")
class Penalty(keras.regularizers.Regularizer):
    """One configured penalty: `l1 * sum(|x|)`, `l2 * sum(x^2)`, both, or a user callable.

    `batch_reduction` is set for activity penalties only: "sum" makes the added loss the
    penalty summed over the batch (the study's Keras), "mean" divides it by the batch size,
    whichever convention the installed Keras follows.

    The strengths (l1, l2) live in a variable, `strengths`, so one compiled graph serves any
    strengths: the batched engine maps it to each replica's values, as it maps the weights.

    >>> layer = keras.layers.Dense(3, kernel_initializer="ones",
    ...     activity_regularizer=Penalty("l1", l1=0.5, batch_reduction="sum"))
    >>> _ = layer(np.full((2, 2), 2.0, dtype="float32"))   # outputs: six 4s
    >>> float(ops.sum(layer.losses))                        # 0.5 * 24, on any Keras
    12.0
    """

    def __init__(self, kind: str = "l1", l1: float = 0.0, l2: float = 0.0,
                 batch_reduction: str | None = None, dtype: str = "float32"):
        self.kind, self.batch_reduction, self.dtype = kind, batch_reduction, dtype
        self.strengths = keras.Variable([l1, l2], dtype=dtype, trainable=False,
                                        name="penalty_strengths")
        self._custom = None if kind in BUILTIN_KINDS else import_callable(kind)
        # Probed here, eagerly: the penalty itself is called inside compiled graphs.
        self._keras_divides = batch_reduction is not None and keras_divides_activity_penalty()

    @property
    def l1(self) -> float:
        return float(self.strengths.numpy()[0])

    @property
    def l2(self) -> float:
        return float(self.strengths.numpy()[1])

    def norm(self, x: Any) -> Any:
        """The penalty on x before any batch convention."""
        if self._custom is not None:
            return ops.cast(self._custom(x), x.dtype)
        strengths = ops.cast(self.strengths, x.dtype)
        value = ops.convert_to_tensor(0.0, dtype=x.dtype)
        if self.kind in ("l1", "l1_l2"):
            value = value + strengths[0] * ops.sum(ops.absolute(x))
        if self.kind in ("l2", "l1_l2"):
            value = value + strengths[1] * ops.sum(ops.square(x))
        return value

    def __call__(self, x: Any) -> Any:
        value = self.norm(x)
        if self.batch_reduction is None:
            return value
        batch = ops.cast(ops.shape(x)[0], x.dtype)
        if self.batch_reduction == "sum" and self._keras_divides:
            return value * batch  # Keras will divide by the batch size next
        if self.batch_reduction == "mean" and not self._keras_divides:
            return value / batch
        return value

    def get_config(self) -> dict:
        return {"kind": self.kind, "l1": self.l1, "l2": self.l2,
                "batch_reduction": self.batch_reduction, "dtype": self.dtype}


def penalty_from_config(reg: dict, dtype: str = "float32") -> Penalty:
    return Penalty(reg["kind"], l1=reg["l1"], l2=reg["l2"], dtype=dtype,
                   batch_reduction=reg["batch_reduction"] if reg["target"] == "activity" else None)


def check_custom_regularizers(config: dict, source: str) -> None:
    """Import every user penalty and check it maps a tensor to a scalar, before training."""
    for index, reg in enumerate(config["model"]["regularizers"]):
        if reg["kind"] in BUILTIN_KINDS:
            continue
        key = f"model.regularizers.{index}.kind"
        fn = import_callable(reg["kind"], source, key)
        try:
            value = fn(ops.ones((4, 3)))
            dtype = keras.backend.standardize_dtype(getattr(value, "dtype", type(value)))
            shape = tuple(ops.shape(value))
        except Exception as err:  # a user's function can fail in any way; report it in one line
            raise ConfigError(source, key, f"calling {reg['kind']} on a tensor failed: "
                                           f"{type(err).__name__}: {shorten(err, 200)}") from None
        if not dtype.startswith(("float", "int")):
            raise ConfigError(source, key, f"{reg['kind']} must return a number, got "
                                           f"{type(value).__name__} ({dtype})")
        if shape != ():
            raise ConfigError(source, key, f"{reg['kind']} must return a scalar, "
                                           f"got shape {shape}")
