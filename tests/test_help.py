"""Every command's --help in an 80-column terminal: sentences wrap where the terminal does,
not where a docstring's source line happened to end, and no word is lost or cut short.

No TensorFlow here: --help never imports it.
"""

from __future__ import annotations

import click
import pytest
import typer.main
from typer.testing import CliRunner

from circlereg.cli import app

WIDTH = 80
BORDER = "│"


def commands(group: click.Group, path: tuple[str, ...] = ()):
    """(argv, command) for the top level and every command and subcommand under it."""
    yield list(path), group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield [*path, name], command


COMMANDS = list(commands(typer.main.get_command(app)))


def shown(argv: list[str]) -> list[str]:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def help_texts(command: click.Command) -> list[str]:
    """What the command's author wrote: its help and each parameter's."""
    return [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]


def text_start(line: str) -> int | None:
    """The column where a line's text begins (after a panel's left border); None if blank."""
    stripped = line.lstrip(f" {BORDER}")
    return len(line) - len(stripped) if stripped.strip(f" {BORDER}") else None


def early_breaks(lines: list[str]) -> list[str]:
    """Lines of running text that end before they had to: the next line continues the same
    text (same column, not a new option or typer's `[default: ...]`) and its first word would
    have fitted on this one."""
    found = []
    for line, after in zip(lines, lines[1:]):
        column, panel = text_start(after), line.startswith(BORDER)
        if column is None or column == 2 and panel or after[column] in "[-*" \
                or line[column - 1] != " " or line[column] == " ":
            continue
        right = len(line) - (2 if panel else 1)  # the text area ends before padding and border
        text = line[column:right].rstrip()
        if len(text) + 1 + len(after[column:].split()[0]) <= right - column:
            found.append(f"{line.rstrip()!r} then {after.strip(f' {BORDER}')!r}")
    return found


@pytest.mark.parametrize("argv, command", COMMANDS, ids=lambda a: " ".join(a) or "circlereg"
                         if isinstance(a, list) else "")
def test_help_wraps_at_80_columns_and_loses_no_word(argv, command):
    lines = shown(argv)
    assert all(len(line) <= WIDTH for line in lines), [ln for ln in lines if len(ln) > WIDTH]
    assert not early_breaks(lines)
    words = {word for line in lines for word in line.split()}
    for text in help_texts(command):
        # a word missing is one rich took for markup ([ray]) or cut short with an ellipsis
        missing = [word for word in text.split() if word not in words]
        assert not missing, f"{' '.join(argv)}: {missing}"


@pytest.mark.parametrize("argv, command", COMMANDS, ids=lambda a: " ".join(a) or "circlereg"
                         if isinstance(a, list) else "")
def test_help_paragraphs_are_one_line_each(argv, command):
    """Rich keeps a single line break of a command's summary in the command list, and of its
    later paragraphs: each paragraph must reach it as one line for the terminal to wrap."""
    for text in help_texts(command):
        for paragraph in text.split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{' '.join(argv)}: {paragraph!r}"
