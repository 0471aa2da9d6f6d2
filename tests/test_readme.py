"""README.md and docs/ against the code: the generated key table, the commands they show, the
shipped configs, and links that stay inside the repository.

No TensorFlow here: circlereg.config, circlereg.docs and circlereg.cli import without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from circlereg import docs
from circlereg.cli import app
from circlereg.config import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
HEADER = "| key | default | accepts | meaning |"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def cells(line: str) -> list[str]:
    """`| a | b | c |` -> ["a", "b", "c"] (a `\\|` inside a cell is not a separator)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def key_table() -> list[list[str]]:
    """Rows of docs/config.md's key table, separator row skipped."""
    lines = docs.CONFIG_MD.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == HEADER]
    assert len(starts) == 1, f"expected one {HEADER!r} table, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 1:]:
        if not line.strip().startswith("|"):
            break
        row = cells(line)
        if all(re.fullmatch(r":?-+:?", cell) for cell in row):
            continue
        assert len(row) == 4, f"a key table row needs 4 cells: {line!r}"
        rows.append(row)
    return rows


def in_backticks(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"cell must be one `code` span: {cell!r}"
    return match.group(1)


def test_config_doc_is_the_generated_text():
    text = docs.CONFIG_MD.read_text()
    assert text == docs.regenerate(text), "docs/config.md is stale: python -m circlereg.docs"


def test_key_table_lists_every_schema_key_in_order():
    keys = [in_backticks(row[0]) for row in key_table()]
    assert keys == [key.path for key in SCHEMA]


def test_key_table_defaults_are_the_schema_defaults():
    for (_, default_cell, accepts, meaning), key in zip(key_table(), SCHEMA):
        assert yaml.safe_load(in_backticks(default_cell)) == key.default, key.path
        assert accepts and meaning, f"{key.path}: empty cell"


def test_commands_in_code_blocks_exist():
    commands = set(typer.main.get_command(app).commands)
    for page in PAGES:
        shown = {name for block in FENCE.findall(page.read_text())
                 # command lines as typed (not program output that mentions circlereg)
                 for name in re.findall(
                     r"(?m)^\s*(?:\$ )?(?:\.venv/bin/)?circlereg\s+([a-z][\w-]*)", block)}
        assert shown <= commands, f"{page.name}: not commands: {sorted(shown - commands)}"
    readme = {name for block in FENCE.findall(README.read_text())
              for name in re.findall(r"(?m)^\s*(?:\$ )?circlereg\s+([a-z][\w-]*)", block)}
    assert {"run", "sweep", "compare", "reproduce"} <= readme


def test_every_shipped_config_is_listed():
    toolbox = (ROOT / "docs" / "toolbox.md").read_text()
    configs = sorted(path.name for path in (ROOT / "configs").glob("*.yaml"))
    assert configs
    missing = [name for name in configs if f"`configs/{name}`" not in toolbox]
    assert not missing, f"configs missing from docs/toolbox.md: {missing}"


def anchor(heading: str) -> str:
    """A markdown heading's anchor, as GitHub makes it: `## What a run's numbers` ->
    `what-a-runs-numbers`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(page):
    text = page.read_text()
    assert "../shared" not in text and "/work/" not in text
    for target in LINK.findall(FENCE.sub("", text)):
        if target.startswith("https://"):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_file() and linked.is_relative_to(ROOT), f"{page.name}: {target}"
        if fragment and linked.suffix == ".md":
            assert fragment in anchors(linked), f"{page.name}: no heading for {target}"


def test_readme_reads_in_minutes():
    assert len(README.read_bytes()) < 10_000, "README.md: move reference material to docs/"


def test_shell_completion_is_on():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "--install-completion" in result.output
