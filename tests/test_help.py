"""Every command's --help in an 80-column terminal: the help text gets at least half the
width, no word is lost or cut short, and an argument reads the same (NAME|PATH, KEY=VALUE, N,
PATH) in every command, never as a Python type (<list[str]>, <bool>) or typer's {config}.

No TensorFlow here: --help never imports it.
"""

from __future__ import annotations

import re

import click
import pytest
import typer.main
from typer.testing import CliRunner

from circlereg.cli import app

WIDTH = 80


def commands(group: click.Group, path: tuple[str, ...] = ()):
    """(argv, command) for the top level and every command and subcommand under it."""
    yield list(path), group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield [*path, name], command


COMMANDS = list(commands(typer.main.get_command(app)))
IDS = [" ".join(argv) or "circlereg" for argv, _ in COMMANDS]


def shown(argv: list[str]) -> list[str]:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def help_texts(command: click.Command) -> list[str]:
    """What the command's author wrote: its help and each parameter's."""
    return [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]


def definitions(lines: list[str]) -> dict[str, int]:
    """Each argument or option row of the Arguments and Options sections: its name column
    (`--seed N`) and the column its help text starts at."""
    rows, section = {}, None
    for line in lines:
        if line and not line.startswith(" "):
            section = line if line.rstrip(":") in ("Arguments", "Options") else None
            continue
        match = re.match(r"  (\S.*?)(?:  +)(\S)", line)
        if section and match and line[2] != " ":
            rows[match.group(1)] = match.start(2)
    return rows


@pytest.mark.parametrize("argv, command", COMMANDS, ids=IDS)
def test_help_gives_its_text_half_of_80_columns_and_loses_no_word(argv, command):
    lines = shown(argv)
    assert all(len(line) <= WIDTH for line in lines), [ln for ln in lines if len(ln) > WIDTH]
    rows = definitions(lines)
    assert rows or not command.params, lines
    for name, column in rows.items():
        assert WIDTH - column >= WIDTH // 2, f"{name}: help text starts at column {column}"
    # a word broken at its hyphen by the terminal's wrap is one word again
    joined = re.sub(r"-\n *", "-", "\n".join(lines))
    words = set(joined.split())
    for text in help_texts(command):
        missing = [word for word in text.split() if word not in words]
        assert not missing, f"{' '.join(argv)}: {missing}"


@pytest.mark.parametrize("argv, command", COMMANDS, ids=IDS)
def test_metavars_read_as_users_expect(argv, command):
    """No Python type, no braces; a value's metavar says what to type."""
    text = "\n".join(shown(argv))
    assert not re.search(r"<(int|str|path|bool|float|list\[\w+\])>|\{\w", text), text
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and param.name != "help":
            assert param.metavar, f"{' '.join(argv)}: {param.opts[0]} has no metavar"


def test_the_same_argument_reads_the_same_in_every_command():
    by_name: dict[str, set[str]] = {}
    for _, command in COMMANDS:
        for param in command.params:
            # not compared: reproduce's --seeds is a count, the others' a list; sweep's
            # --spec also takes a shipped spec's name, reproduce's a file only
            if param.name in ("config", "configs", "set_", "seed", "repeats", "runs_dir",
                              "workers", "chunk", "name"):
                by_name.setdefault(param.name.rstrip("s") if param.name.startswith("config")
                                   else param.name, set()).add(param.metavar)
    assert by_name["config"] == {"NAME|PATH"}
    assert by_name["set_"] == {"KEY=VALUE"}
    assert by_name["runs_dir"] == {"PATH"}
    assert all(len(metavars) == 1 for metavars in by_name.values()), by_name
    run_usage = shown(["run"])[0]
    assert run_usage.endswith(" run [OPTIONS] NAME|PATH"), run_usage


@pytest.mark.parametrize("argv, command", COMMANDS, ids=IDS)
def test_help_paragraphs_are_one_line_each(argv, command):
    """A docstring's source line breaks must not reach the help: each paragraph is one line
    for the terminal to wrap."""
    for text in help_texts(command):
        for paragraph in text.split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{' '.join(argv)}: {paragraph!r}"
