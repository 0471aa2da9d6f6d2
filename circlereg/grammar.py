"""One grammar for values on the command line: `--set`, sweep axes and tune spaces.

A value is YAML flow text (`1e-3`, `pre_activation`, `[8,4]`, `{l1: 0.01}`); a list of
values is split on the commas that sit outside brackets, braces, parentheses and quotes,
so `[8,4],[16]` is two values; a function is `name(arguments)`, its arguments split the same
way. No TensorFlow here: validation must stay cheap.
"""

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
    if quote or closers:
        raise ValueError(f"unclosed {(quote or closers[-1])!r} in {text!r}")
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
