"""README.md against the code: the config-key table, the commands it shows, the shipped configs.

No TensorFlow here: circlereg.config and circlereg.cli import without it, so this stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from circlereg.cli import app
from circlereg.config import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HEADER = "| key | default | meaning |"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def cells(line: str) -> list[str]:
    """`| a | b | c |` -> ["a", "b", "c"] (a `\\|` inside a cell is not a separator)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def key_table() -> list[list[str]]:
    """Rows between the header and the first non-table line, separator row skipped."""
    lines = README.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == HEADER]
    assert len(starts) == 1, f"expected one {HEADER!r} table, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 1:]:
        if not line.strip().startswith("|"):
            break
        row = cells(line)
        if all(re.fullmatch(r":?-+:?", cell) for cell in row):
            continue
        assert len(row) == 3, f"a key table row needs 3 cells: {line!r}"
        rows.append(row)
    return rows


def in_backticks(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"cell must be one `code` span: {cell!r}"
    return match.group(1)


def test_key_table_lists_every_schema_key_in_order():
    keys = [in_backticks(row[0]) for row in key_table()]
    assert keys == [key.path for key in SCHEMA]


def test_key_table_defaults_are_the_schema_defaults():
    for (_, default_cell, meaning), key in zip(key_table(), SCHEMA):
        assert yaml.safe_load(in_backticks(default_cell)) == key.default, key.path
        assert meaning, f"{key.path}: empty meaning"


def test_commands_in_code_blocks_exist():
    commands = set(typer.main.get_command(app).commands)
    shown = {name for block in FENCE.findall(README)
             # command lines as typed (not program output that mentions circlereg)
             for name in re.findall(r"(?m)^\s*(?:\$ )?(?:\.venv/bin/)?circlereg\s+([a-z][\w-]*)",
                                    block)}
    assert shown, "README shows no circlereg commands"
    assert shown <= commands, f"not commands of circlereg: {sorted(shown - commands)}"


def test_every_shipped_config_is_listed():
    configs = sorted(path.name for path in (ROOT / "configs").glob("*.yaml"))
    assert configs
    missing = [name for name in configs if f"configs/{name}" not in README]
    assert not missing, f"configs missing from README: {missing}"
