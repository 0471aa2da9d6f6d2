"""Imports that tell the truth: one boundary says where TensorFlow may load (circlereg/engine),
the command's own process never crosses it, and outside it circlereg's modules import each
other at the top of the file, without cycles.

Read from the source (ast) except where a process is run: no module is imported here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CONFIGS, ROOT

PACKAGE = ROOT / "circlereg"
HEAVY = ("tensorflow", "keras")
# In-function imports of circlereg's modules that cross a boundary on purpose; each has a
# comment saying why, and there are fewer than 10.
MOST_IN_FUNCTION = 9


def modules() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of the package by its dotted name: its file and its syntax tree."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("circlereg", *path.relative_to(PACKAGE).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = path, ast.parse(path.read_text())
    return found


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        if node.module == "circlereg":
            return [f"circlereg.{alias.name}" for alias in node.names]
        return [node.module]
    return []


def in_functions(tree: ast.Module) -> list[ast.AST]:
    return [sub for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))]


def test_only_the_engine_imports_tensorflow_or_keras_at_the_top():
    for name, (_, tree) in modules().items():
        if name.startswith("circlereg.engine"):
            continue
        for node in tree.body:
            for target in imported(node):
                assert not target.startswith(HEAVY), f"{name} imports {target}"
                assert not target.startswith("circlereg.engine"), f"{name} imports {target}"


def test_circlereg_modules_import_each_other_at_the_top_with_few_exceptions_each_explained():
    inside = []
    for name, (path, tree) in modules().items():
        lines = path.read_text().splitlines()
        for node in in_functions(tree):
            if any(t.startswith("circlereg") for t in imported(node)):
                said = lines[node.lineno - 1] + lines[node.lineno - 2]
                assert "#" in said, f"{name}:{node.lineno} imports inside a function, unsaid why"
                inside.append(f"{name}:{node.lineno}")
    assert len(inside) <= MOST_IN_FUNCTION, inside


def test_no_import_cycles_among_circlereg_modules():
    """Counting every import, in functions too: a cycle is a module that cannot be read
    without the one that reads it."""
    found = modules()
    graph = {name: {t for node in ast.walk(tree) for t in imported(node)
                    if t in found and t not in (name, "circlereg")}
             for name, (_, tree) in found.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for after in graph[name]:
            assert state.get(after) != 1, " -> ".join([*path, name, after])
            if after not in state:
                visit(after, [*path, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


LOADED = ("import sys; from circlereg.cli import main; sys.argv = ['circlereg', *sys.argv[1:]]\n"
          "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
          "print('tensorflow' in sys.modules, 'keras' in sys.modules, code, file=sys.stderr)")


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["validate", str(CONFIGS / "l1_pre_relu.yaml")],
    ["configs", "--schema"]])
def test_help_and_validation_never_load_tensorflow(argv):
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stderr.split()[-3:] == ["False", "False", "0"], done.stderr


@pytest.mark.slow
def test_the_commands_own_process_never_loads_tensorflow(tmp_path):
    """A run trains in a worker process, which loads TensorFlow; the command's does not."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, "run", "baseline", "--set", "train.epochs=5", "--quiet",
         "--runs-dir", str(tmp_path), "--no-run-figures"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Train:" in done.stdout, done.stderr
    assert done.stderr.split()[-3:] == ["False", "False", "0"], done.stderr
