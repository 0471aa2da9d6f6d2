"""A config document as written, before the schema sees it: YAML read strictly, and the `--set`
overrides parsed and set in it.

    >>> raw = {"train": {"epochs": 5}}
    >>> apply_override(raw, *parse_override("model.hidden.1=8"), {"model.hidden": [500]})
    >>> raw
    {'train': {'epochs': 5}, 'model': {'hidden': [500, 8]}}
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from circlereg.constraints import quote
from circlereg.errors import ConfigError
from circlereg.grammar import parse_setting, shorten, split_assignment


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.regularizers.0.l1=1e-3` -> (["model", "regularizers", "0", "l1"], 0.001); the
    value is one YAML flow value (grammar.parse_setting), so `model.hidden=[8,4]` is a list."""
    try:
        path, value = split_assignment(text, "key.path=value, e.g. train.epochs=100")
    except ValueError as err:
        raise ConfigError("--set", shorten(text), str(err)) from None
    parts = path.split(".")
    if not all(parts):
        raise ConfigError("--set", shorten(path), "a key is names and list indexes joined by "
                                                  "'.', e.g. model.regularizers.0.l1")
    try:
        return parts, parse_setting(value)
    except ValueError as err:
        raise ConfigError("--set", shorten(path), str(err)) from None


def apply_override(raw: dict, parts: list[str], value: Any, lists: dict[str, list]) -> None:
    """Set one `--set` value in the raw (unresolved) document; list items by index. A key the
    document leaves out starts from its schema default (`lists`: the list keys' defaults,
    config.LIST_DEFAULTS), so `model.hidden.0=8` indexes the default [500] and
    `model.dropout.0.rate=0.2` appends to the default []."""
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) > len(node):
                raise ConfigError("--set", where,
                                  f"list index must be in [0, {len(node)}], got {part!r}")
            if int(part) == len(node):  # one past the end appends, so loops can add items
                node.append({})
            if last:
                node[int(part)] = value
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = copy.deepcopy(lists[where]) if where in lists else {}
                node = node[part]
        else:
            raise ConfigError("--set", where, f"cannot set a key inside {node!r}")


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses what a config never needs and a mistake or an attack
    brings: a key given twice in one mapping (which would silently win), and aliases (a
    few lines of them expand to gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not supported in configs",
                                       problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {quote(key)}",
                                           problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, source: str) -> Any:
    """Parse a YAML file strictly; ConfigError naming the line on any problem."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, "", f"YAML syntax error at {line}{err.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise ConfigError(source, "", f"not readable YAML: {shorten(err, 120)}") from None


def read_document(path: str | Path) -> dict:
    """A config file's YAML document as written (a mapping, not yet overridden or validated)."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ConfigError(source, "", "no such config file")
    if not path.is_file():
        raise ConfigError(source, "", "not a file; give a YAML config file")
    raw = read_yaml(path, source)
    return {} if raw is None else raw
