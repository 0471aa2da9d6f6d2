"""The config-key table of docs/config.md, generated from `config.SCHEMA`.

`python -m circlereg.docs` rewrites the table between the two markers of docs/config.md (the
prose around it is written by hand); `python -m circlereg.docs --check` exits 1 when the file
is out of date, and tests/test_readme.py asserts it is not. No TensorFlow here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from circlereg.config import SCHEMA, Key

CONFIG_MD = Path(__file__).resolve().parents[1] / "docs" / "config.md"
BEGIN = "<!-- generated from circlereg/config.py by `python -m circlereg.docs`; do not edit -->"
END = "<!-- end of generated keys -->"


def allowed(key: Key) -> str:
    """What a key accepts, in its constraint's own words (those of the error a bad value gets).

    >>> from circlereg.config import KEYS
    >>> allowed(KEYS["train.optimizer"])
    'one of adam, sgd, rmsprop, adamw, nadam, adagrad'
    >>> allowed(KEYS["model.noise[].layer"])
    'an integer >= 0, or null'
    """
    return "a list of mappings with the keys below" if key.check is None else key.check.describe()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def key_table() -> str:
    """The markdown table of every key: path, default, what it accepts, what it means."""
    lines = ["| key | default | accepts | meaning |", "|---|---|---|---|"]
    for key in SCHEMA:
        default = yaml.safe_dump(key.default, default_flow_style=True).strip()
        default = default.removesuffix("...").strip()  # a bare scalar's document end
        lines.append(f"| `{key.path}` | `{default}` | {_cell(allowed(key))} | "
                     f"{_cell(key.help)} |")
    return "\n".join(lines)


def regenerate(text: str) -> str:
    """`text` with the table between BEGIN and END replaced by the current one."""
    head, found, rest = text.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"docs/config.md needs the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{key_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = CONFIG_MD.read_text()
    fresh = regenerate(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{CONFIG_MD} is out of date: run python -m circlereg.docs", file=sys.stderr)
            return 1
        return 0
    CONFIG_MD.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
