"""The one validation vocabulary: what a value may be, said once, for every reader.

A constraint checks a value (returning it cleaned, or raising ValueError("must be ...; got
X")), describes what it allows in the same words (docs/config.md's table), and gives the
JSON Schema fragment that lets an editor flag a bad value as it is typed. The config schema,
sweep and reproduction specs, tune's search space and the CLI's options all check with these
(see scikit-learn's `utils._param_validation`, ../shared/style.md). No TensorFlow here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from circlereg.errors import ConfigError
from circlereg.grammar import shorten


def quote(value: Any, limit: int = 40) -> str:
    """A value as quoted in an error: at most `limit` characters of it."""
    return shorten(repr(value) if isinstance(value, str) else str(value), limit)


class Constraint:
    """What a value may be. Calling it checks a value: the cleaned value, or ValueError."""

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """What is allowed, as the error says it after `must be `."""
        raise NotImplementedError

    def schema(self) -> dict:
        """The JSON Schema of the values allowed."""
        raise NotImplementedError


def _number(value: Any) -> float:
    # PyYAML reads `1e-4` (no dot) as a string; accept it as the number the user meant.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be a number, got {quote(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {quote(value)}")
    return float(value)


def _integer(value: Any) -> int:
    if isinstance(value, str):  # `1e3` in YAML, as for numbers
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be an integer, got {quote(value)}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {quote(value)}")
    return value


@dataclass(frozen=True)
class Interval(Constraint):
    """A number (or an integer) between bounds; `None` leaves a side open. `closed` says
    which bounds belong: both, left, right or neither."""

    integer: bool
    low: float | None
    high: float | None
    closed: str = "both"
    noun: str | None = None  # what the number is, in the error: "a percentage in [0, 100]"

    def _inside(self, value: float) -> bool:
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        return (self.low is None or value > self.low or left and value == self.low) and \
            (self.high is None or value < self.high or right and value == self.high)

    def _bound(self, bound: float) -> str:
        return str(int(bound)) if self.integer else f"{bound:g}"

    def describe(self) -> str:
        kind = f"{self.noun} " if self.noun else "an integer " if self.integer else ""
        if self.high is None:
            sign = ">=" if self.closed in ("both", "left") else ">"
            return f"{kind}{sign} {self._bound(self.low)}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{kind}in {left}{self._bound(self.low)}, {self._bound(self.high)}{right}"

    def __call__(self, value: Any) -> int | float:
        value = _integer(value) if self.integer else _number(value)
        if not self._inside(value):
            shown = quote(value) if self.integer else f"{value:g}"
            raise ValueError(f"must be {self.describe()}, got {shown}")
        return value

    def schema(self) -> dict:
        found: dict = {"type": "integer" if self.integer else "number"}
        for bound, side, inclusive in ((self.low, "minimum", ("both", "left")),
                                       (self.high, "maximum", ("both", "right"))):
            if bound is not None:
                name = side if self.closed in inclusive else \
                    "exclusive" + side[0].upper() + side[1:]
                found[name] = int(bound) if float(bound).is_integer() else bound
        return found


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a few words. `aliases` maps what YAML reads (an unquoted `off` is false) to
    the word meant."""

    choices: tuple[str, ...]
    aliases: tuple[tuple[Any, str], ...] = ()

    def describe(self) -> str:
        return f"one of {', '.join(self.choices)}"

    def __call__(self, value: Any) -> str:
        for alias, meant in self.aliases:
            if value is alias:
                return meant
        if value not in self.choices:
            raise ValueError(f"must be {self.describe()}; got {quote(value)}")
        return value

    def schema(self) -> dict:
        return {"enum": [*self.choices, *(alias for alias, _ in self.aliases)]}


@dataclass(frozen=True)
class Optional(Constraint):
    """Null, or what `inner` allows."""

    inner: Constraint

    def describe(self) -> str:
        return f"{self.inner.describe()}, or null"

    def __call__(self, value: Any) -> Any:
        return None if value is None else self.inner(value)

    def schema(self) -> dict:
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


class Boolean(Constraint):
    def describe(self) -> str:
        return "true or false"

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be {self.describe()}, got {quote(value)}")
        return value

    def schema(self) -> dict:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Pattern(Constraint):
    """Text that matches a regular expression (kept within JSON Schema's dialect), at most
    `longest` characters; `says` is what it allows, in words."""

    regex: str
    says: str
    longest: int | None = None

    def describe(self) -> str:
        return self.says

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(self.regex, value) \
                or self.longest is not None and len(value) > self.longest:
            raise ValueError(f"must be {self.describe()}, got {quote(value)}")
        return value

    def schema(self) -> dict:
        found = {"type": "string", "pattern": f"^(?:{self.regex})$"}
        return found | ({"maxLength": self.longest} if self.longest is not None else {})


@dataclass(frozen=True)
class Either(Constraint):
    """What one of a few constraints allows, tried in order; the error says all of them."""

    options: tuple[Constraint, ...]

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)

    def __call__(self, value: Any) -> Any:
        for option in self.options:
            try:
                return option(value)
            except ValueError:
                pass
        raise ValueError(f"must be {self.describe()}; got {quote(value)}")

    def schema(self) -> dict:
        return {"anyOf": [option.schema() for option in self.options]}


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list of `fewest` to `most` items, each as `item` allows; `example` shows one."""

    item: Constraint
    fewest: int
    most: int
    says: str
    example: str

    def describe(self) -> str:
        return f"{self.says}, e.g. {self.example}"

    def __call__(self, value: Any) -> list:
        if not isinstance(value, list) or not self.fewest <= len(value) <= self.most:
            raise ValueError(f"must be {self.describe()}; got {quote(value)}")
        return [self.item(item) for item in value]

    def schema(self) -> dict:
        return {"type": "array", "items": self.item.schema(), "minItems": self.fewest,
                "maxItems": self.most}


def checked(source: str, key: str, constraint: Constraint, value: Any) -> Any:
    """`value` checked; a bad one is a ConfigError naming `source` (a file or an option)
    and `key`: `spec.yaml: seeds: must be an integer in [1, 10000], got 0`."""
    try:
        return constraint(value)
    except ValueError as err:
        raise ConfigError(source, key, str(err)) from None


def check_option(option: str, constraint: Constraint, value: Any) -> Any:
    """A command-line option's value checked, unless not given (None); a bad one names the
    option: `--workers: must be an integer >= 1, got 0`."""
    return None if value is None else checked(option, "", constraint, value)
