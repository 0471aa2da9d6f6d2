"""One grammar for values on the command line: `--set`, sweep axes and tune spaces.

A value is YAML flow text (`1e-3`, `pre_activation`, `[8,4]`, `{l1: 0.01}`); a list of
values is split on the commas that sit outside brackets, braces, parentheses and quotes,
so `[8,4],[16]` is two values; a function is `name(arguments)`, its arguments split the same
way. No TensorFlow here: validation must stay cheap.
"""

import json
import math
import re
from typing import Any

import yaml

OPENERS = {"[": "]", "{": "}", "(": ")"}
CALL = re.compile(r"^([A-Za-z_]\w*)\((.*)\)$", re.DOTALL)


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes; raise ValueError when they do not pair.

    >>> split_top_level("[8,4],[16]")
    ['[8,4]', '[16]']
    >>> split_top_level("1e-4, 'a,b', {l1: 1, l2: 2}")
    ['1e-4', "'a,b'", '{l1: 1, l2: 2}']
    """
    parts, current, closers, quote = [], [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in OPENERS:
            closers.append(OPENERS[char])
        elif char in OPENERS.values():
            if not closers or closers.pop() != char:
                raise ValueError(f"unbalanced {char!r} in {text!r}")
        elif char == "," and not closers:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quote:
        raise ValueError(f"unclosed quote {quote!r} in {text!r}")
    if closers:
        raise ValueError(f"missing {closers[-1]!r} in {text!r}")
    parts.append("".join(current).strip())
    return parts


def parse_value(text: str) -> Any:
    """YAML flow text to a value; `1e-3` is a float (plain YAML 1.1 would keep it a string).

    >>> parse_value("[8, 4]"), parse_value("1e-3"), parse_value("pre_activation")
    ([8, 4], 0.001, 'pre_activation')
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        return float(value)
    return value


def parse_call(text: str) -> tuple[str, list[str]] | None:
    """`name(a, b)` -> ('name', ['a', 'b']); None when the text is not one function call.

    >>> parse_call("choice([500],[100,100])")
    ('choice', ['[500]', '[100,100]'])
    >>> parse_call("[8,4],[16]") is None
    True
    """
    match = CALL.match(text.strip())
    if not match:
        return None
    try:
        split_top_level(match.group(2))  # `f(a),g(b)` is two values, not one call
    except ValueError:
        return None
    arguments = split_top_level(match.group(2)) if match.group(2).strip() else []
    return match.group(1), arguments


# --- what a value, a `--set` and a sweep axis may be: the one place these rules live ---------

GRID_FUNCTIONS = ("choice", "range", "logspace", "linspace")
# Hydra's interval(a,b) and tune's distributions name a continuous range or a sampler: a grid
# cannot list their values, `circlereg tune` searches them.
SEARCH_FUNCTIONS = ("interval", "uniform", "loguniform", "int")
MAX_VALUES = 10_000  # values one axis may list: no sweep holds more grid points than this
VALUE_FORMS = "a value is YAML flow text: 8, 1e-3, pre_activation, [8,4], {l1: 0.01}, null"
AXIS_FORMS = ("v1,v2,... | choice(v1,v2,...) | range([start,]stop[,step]) | "
              "logspace(a,b,n) | linspace(a,b,n)")


def split_assignment(text: str, forms: str) -> tuple[str, str]:
    """`key.path=value` -> ('key.path', 'value'), split at the first `=`; ValueError naming
    `forms` when the key or the `=` is missing.

    >>> split_assignment(" model.hidden = [8,4]", "key.path=value")
    ('model.hidden', '[8,4]')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"must look like {forms}")
    return key.strip(), value.strip()


def format_value(value: Any) -> str:
    """The text `parse_setting` reads back as `value` (how a swept value becomes a `--set`).

    >>> format_value([8, 4]), format_value(1e-06), format_value("a,b"), format_value(None)
    ('[8, 4]', '1.0e-06', '"a,b"', 'null')
    >>> parse_setting(format_value("a,b")), parse_setting(format_value(1e-06))
    ('a,b', 1e-06)
    """
    if isinstance(value, str):  # a JSON string is YAML, quoted: `a,b` stays one value
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def parse_setting(text: str) -> Any:
    """The value of one `--set key=value`: one YAML flow value, never a list of values or a
    function (those sweep).

    >>> parse_setting("[8, 4]"), parse_setting("{kind: kernel, l2: 0.01}")
    ([8, 4], {'kind': 'kernel', 'l2': 0.01})
    >>> parse_setting("8,4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: '8,4' is 2 values; --set takes one (a list is [a,b]; ...
    """
    if not text.strip():
        raise ValueError(f"needs a value after '=' (null for none); {VALUE_FORMS}")
    parts = _split(text, VALUE_FORMS)
    if len(parts) > 1:
        raise ValueError(f"{_shown(text)} is {len(parts)} values; --set takes one (a list is "
                         "[a,b]; several values are a sweep axis)")
    call = parse_call(text)
    if call is not None:
        raise ValueError(f"{call[0]}(...) lists values to sweep or search; --set takes one "
                         f"value: {VALUE_FORMS}")
    return parse_value(text)


def parse_axis_values(text: str) -> list:
    """The values of one sweep axis (the text after `key=`), in order.

    >>> parse_axis_values("[8,4],[16]")
    [[8, 4], [16]]
    >>> parse_axis_values("choice(pre_activation, post_activation)")
    ['pre_activation', 'post_activation']
    >>> parse_axis_values("range(10,40,10)"), parse_axis_values("range(3)")
    ([10, 20, 30], [0, 1, 2])
    >>> parse_axis_values("range(0,1,0.25)")
    [0.0, 0.25, 0.5, 0.75]
    >>> parse_axis_values("logspace(-6,-4,3)"), parse_axis_values("linspace(0,1,3)")
    ([1e-06, 1e-05, 0.0001], [0.0, 0.5, 1.0])
    >>> parse_axis_values("interval(0,0.5)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: interval(...) is a continuous range, which a grid cannot list: search it with ...
    """
    if not text.strip():
        raise ValueError(f"needs values after '='; an axis is {AXIS_FORMS}")
    parts = _split(text, f"an axis is {AXIS_FORMS}")
    call = parse_call(text) if len(parts) == 1 else None
    if call is not None:
        return grid(*call)
    values = []
    for part in parts:
        if not part:
            raise ValueError(f"empty value between commas in {_shown(text)}; an axis is "
                             f"{AXIS_FORMS}")
        if parse_call(part) is not None:
            raise ValueError(f"{_shown(part)}: a function must be the whole axis; an axis is "
                             f"{AXIS_FORMS}")
        values.append(parse_value(part))
    return values


def grid(function: str, arguments: list[str]) -> list:
    """The values of `function(arguments)` on a grid: Hydra's choice and range (integers, or
    floats when any argument is one; `stop` excluded), and numpy's logspace and linspace (n
    values, both ends included; 12 significant digits, so 1e-06 is not 9.999999999999999e-07).

    >>> grid("range", ["5", "0", "-2"]), grid("logspace", ["-1", "1", "3"])
    ([5, 3, 1], [0.1, 1.0, 10.0])
    >>> grid("range", ["0", "b"])
    Traceback (most recent call last):
    ValueError: range takes numbers: range([start,]stop[,step]); got 'b'
    """
    if function in SEARCH_FUNCTIONS:
        kind = "a continuous range" if function in ("interval", "uniform", "loguniform") \
            else "a sampled integer"
        raise ValueError(f"{function}(...) is {kind}, which a grid cannot list: search it "
                         "with `circlereg tune`, or sweep "
                         + ("range(a,b)" if function == "int" else
                            "logspace(a,b,n) / linspace(a,b,n)"))
    if function not in GRID_FUNCTIONS:
        raise ValueError(f"unknown function {function}(); an axis is {AXIS_FORMS} "
                         f"(and {', '.join(SEARCH_FUNCTIONS)} in `circlereg tune`)")
    if function == "choice":
        if not arguments or not all(arguments):
            raise ValueError("choice takes one or more values: choice(v1,v2,...)")
        if any(parse_call(a) is not None for a in arguments):
            raise ValueError("choice takes values, not functions: choice(v1,v2,...)")
        return [parse_value(a) for a in arguments]
    if function == "range":
        return _range(_numbers(function, arguments, (1, 3), "range([start,]stop[,step])"))
    start, stop, n = _numbers(function, arguments, (3, 3), f"{function}(start, stop, n)")
    if not float(n).is_integer() or not 1 <= n <= MAX_VALUES:
        raise ValueError(f"{function}(start, stop, n) takes an integer n in [1, {MAX_VALUES}], "
                         f"got {n}")
    import numpy as np  # here, not at the top: `--help` and validation stay light

    spaced = (np.logspace if function == "logspace" else np.linspace)(
        float(start), float(stop), int(n))
    return [float(f"{v:.12g}") for v in spaced]


def _numbers(function: str, arguments: list[str], arity: tuple[int, int],
             usage: str) -> list[int | float]:
    if not arity[0] <= len(arguments) <= arity[1]:
        count = f"{arity[0]}" if arity[0] == arity[1] else f"{arity[0]} to {arity[1]}"
        raise ValueError(f"{function} takes {count} numbers: {usage}; got {len(arguments)}")
    numbers = []
    for argument in arguments:
        number = parse_value(argument)
        if isinstance(number, bool) or not isinstance(number, (int, float)) \
                or not math.isfinite(number):
            raise ValueError(f"{function} takes numbers: {usage}; got {_shown(argument)}")
        numbers.append(number)
    return numbers


def _range(numbers: list[int | float]) -> list:
    if len(numbers) == 1:  # range(stop) counts from 0, as Python's and Hydra's do
        numbers = [0, *numbers]
    start, stop, step = (*numbers, 1)[:3]
    usage = "range([start,]stop[,step])"
    if step == 0:
        raise ValueError(f"range's step must not be 0: {usage}")
    count = max(0, math.ceil(round((stop - start) / step, 9)))
    if count == 0:
        raise ValueError(f"range({start}, {stop}, {step}) lists no values: {usage}, stop "
                         "excluded")
    if count > MAX_VALUES:
        raise ValueError(f"range({start}, {stop}, {step}) lists {count} values; at most "
                         f"{MAX_VALUES}")
    if all(isinstance(n, int) for n in numbers):
        return [start + i * step for i in range(count)]
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def shorten(text: str, limit: int = 40) -> str:
    """Text for one line of an error: whitespace collapsed, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _split(text: str, allowed: str) -> list[str]:
    """split_top_level, its error saying what is allowed."""
    try:
        return split_top_level(text)
    except ValueError as err:
        raise ValueError(f"{shorten(err, 80)}; {allowed}") from None


def _shown(text: str) -> str:
    return repr(shorten(text))


def flatten(value, prefix: str = "") -> dict:
    """A document as dotted keys, list items by index: {"model.regularizers.0.l1": 0.01}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items()
                for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {k: v for i, item in enumerate(value)
                for k, v in flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}
