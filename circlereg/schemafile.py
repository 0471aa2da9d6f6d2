"""The config file's JSON Schema, made from the same constraints that check a config.

Editors that read JSON Schema for YAML (VS Code's YAML extension, for one) then complete keys
and flag a bad value as a config is typed. It ships in the package as config.schema.json;
`circlereg configs --schema` prints it, `python -m circlereg.schemafile` rewrites the shipped
file and `--check` exits 1 when it is out of date (tests/test_schema.py asserts it is not).
What the schema cannot say (data.n_train < data.n_samples, placement on activity penalties
only, one penalty per slot) is still checked by `circlereg validate`. No TensorFlow here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from circlereg.config import KEYS, LISTS, REQUIRED, SCHEMA, SECTIONS, Key

SCHEMA_FILE = Path(__file__).resolve().parent / "config.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _property(key: Key) -> dict:
    found = {"description": key.help}
    if key.default is not None or key.check is None:
        found["default"] = key.default
    return found | key.check.schema()


def _mapping(properties: dict, required: list[str] = (), nullable: bool = False) -> dict:
    found = {"type": ["object", "null"] if nullable else "object", "properties": properties,
             "additionalProperties": False}
    return found | ({"required": list(required)} if required else {})


def config_schema() -> dict:
    """The JSON Schema of a config file: every key, its default, what it accepts, its
    meaning. A section or list left empty (`data:`) is null, which circlereg reads as its
    defaults."""
    sections: dict[str, dict] = {section: {} for section in SECTIONS}
    for key in SCHEMA:
        if key.path == "name" or "[]" in key.path:
            continue
        section, field = key.path.split(".")
        if key.path in LISTS:
            prefix = f"{key.path}[]."
            items = {k.path.removeprefix(prefix): _property(k) for k in SCHEMA
                     if k.path.startswith(prefix)}
            required = [path.removeprefix(prefix) for path in REQUIRED
                        if path.startswith(prefix)]
            sections[section][field] = {"description": key.help, "default": key.default,
                                        "type": ["array", "null"],
                                        "items": _mapping(items, required)}
        else:
            sections[section][field] = _property(key)
    properties = {"name": _property(KEYS["name"])} | {
        section: _mapping(fields, nullable=True) for section, fields in sections.items()}
    return {"$schema": DIALECT, "title": "circlereg config",
            "description": "A circlereg run's config (docs/config.md).",
            **_mapping(properties, nullable=True)}


def text() -> str:
    return json.dumps(config_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text() != text():
            print(f"{SCHEMA_FILE} is out of date: run python -m circlereg.schemafile",
                  file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
