"""docs/architecture.md, the engineers' map, stays true: every module it names exists, every
module of the package is on it, and every `module.function` it walks through is defined there
(read from the source: no module is imported, so no TensorFlow)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = (ROOT / "docs" / "architecture.md").read_text()
PACKAGE = ROOT / "circlereg"
FILE_TYPES = {"json", "yaml", "csv", "md", "png", "py", "sqlite", "txt"}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name under circlereg (`engine.train`)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[0] != "__main__":
            found[".".join(parts)] = path
    return found


def defined(path: Path) -> set[str]:
    """Names a module defines at its top level, and the methods of its classes (`Class.m`)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{item.name}" for item in node.body
                          if isinstance(item, ast.FunctionDef)}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def test_every_module_named_exists_and_every_module_is_named():
    named = set(re.findall(r"\b([a-z_]+(?:/[a-z_]+)?)\.py\b", MAP))
    known = {name.replace(".", "/") for name in modules()} | \
        {f"{name.replace('.', '/')}/__init__" for name, path in modules().items()
         if path.name == "__init__.py"}
    assert named - known == set(), "the map names modules that do not exist"
    on_map = {name for name in modules()  # a package by its __init__.py
              if {name.replace(".", "/"), f"{name.replace('.', '/')}/__init__"} & named}
    assert set(modules()) - on_map - {""} == set(), "modules missing from the map"


def test_every_function_the_map_walks_through_is_defined():
    found = modules()
    walked = [name for name in re.findall(r"`((?:[a-z_]+\.)+[A-Za-z_]+)`", MAP)
              if name.rpartition(".")[2] not in FILE_TYPES]  # manifest.json is a file
    assert len(walked) >= 10, walked
    missing = []
    for reference in walked:
        parts = reference.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if module in found:
                if ".".join(parts[cut:]) not in defined(found[module]):
                    missing.append(reference)
                break
        else:
            missing.append(reference)
    assert missing == [], f"the map names what the code does not define: {missing}"
