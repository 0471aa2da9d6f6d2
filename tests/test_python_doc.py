"""docs/python.md runs as written: every ```python block, in order, in one namespace, as a
notebook runs its cells (here at 20 epochs instead of the study's 4000, added to every call's
`set`). A block followed by a ```text block prints exactly that text; a block followed by an
```output block (numbers of the study's 4000 epochs) just runs.

`python tests/test_python_doc.py` prints every block's output at the study's epochs, to paste
into the page after a change (the rendering of a notebook: what it prints, what it writes to
stderr, and its last expression's value).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
WIDTH = 100  # pandas' display width on the page


def blocks(text: str) -> list[tuple[str, str, str | None]]:
    """(code, the kind of the block after it, that block) for each ```python block."""
    fences = FENCE.findall(text)
    return [(body, *(fences[i + 1] if i + 1 < len(fences) else ("", None)))
            for i, (kind, body) in enumerate(fences) if kind == "python"]


def run_cell(code: str, namespace: dict) -> str:
    """What a notebook shows for a cell: its prints and stderr, then its last expression's
    value."""
    import pandas as pd

    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown), \
            pd.option_context("display.width", WIDTH, "display.max_columns", 20):
        exec(compile(tree, "<docs/python.md>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<docs/python.md>", "eval"),
                         namespace)
            if value is not None:
                print(repr(value))
    return shown.getvalue()


def test_every_example_in_docs_python_md_runs(tmp_path, monkeypatch):
    from circlereg import api

    cells = blocks(PAGE.read_text())
    assert len(cells) >= 5
    settings = api._settings
    monkeypatch.setattr(api, "_settings", lambda given: [*settings(given), "train.epochs=20"])
    monkeypatch.chdir(tmp_path)  # the examples write under ./runs
    namespace: dict = {}
    for code, kind, expected in cells:
        shown = run_cell(code, namespace)
        assert kind in ("text", "output"), f"a ```python block needs its output after it:\n{code}"
        if kind == "text":
            assert shown == expected, code
    assert (tmp_path / "runs" / ".index.sqlite").is_file()


if __name__ == "__main__":
    import os
    import tempfile

    os.chdir(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    namespace = {}
    for code, _, _ in blocks(PAGE.read_text()):
        print(f"```python\n{code}```")
        print(f"```\n{run_cell(code, namespace)}```\n", flush=True)
