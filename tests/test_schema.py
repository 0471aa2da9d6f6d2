"""One validation vocabulary (circlereg/constraints.py): the config's JSON Schema for editors
comes from the constraints that check a config, every shipped config passes it, and a bad
value is refused by both the schema and the CLI, in the same words."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from circlereg import constraints, schemafile, shipped
from circlereg.cli import app
from circlereg.config import KEYS

runner = CliRunner()
VALIDATOR = jsonschema.Draft202012Validator(json.loads(shipped.schema_text()))
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def as_editors_read(node):
    """A document as YAML 1.2 reads it (VS Code's YAML extension does): `1e-4` is a number,
    where PyYAML's YAML 1.1 reads a string (which circlereg's checks then accept)."""
    if isinstance(node, dict):
        return {key: as_editors_read(value) for key, value in node.items()}
    if isinstance(node, list):
        return [as_editors_read(value) for value in node]
    return float(node) if isinstance(node, str) and NUMBER.match(node) else node


def test_the_shipped_schema_is_the_one_the_constraints_make():
    jsonschema.Draft202012Validator.check_schema(VALIDATOR.schema)
    assert shipped.schema_text() == schemafile.text()
    assert schemafile.main(["--check"]) == 0
    result = runner.invoke(app, ["configs", "--schema"])
    assert result.exit_code == 0 and json.loads(result.output) == VALIDATOR.schema


@pytest.mark.parametrize("name", sorted(shipped.configs()))
def test_every_shipped_config_passes_the_schema(name):
    document = as_editors_read(yaml.safe_load(shipped.configs()[name].read_text()))
    assert [error.message for error in VALIDATOR.iter_errors(document)] == []


@pytest.mark.parametrize("yaml_text, key, words", [
    ("train:\n  epochs: 0\n", "train.epochs", "must be an integer in [1, 1000000], got 0"),
    ("train:\n  optimizer: adamx\n", "train.optimizer", "must be one of adam, sgd"),
    ("model:\n  dropout:\n    - {layer: 0, rate: 1.5}\n", "model.dropout.0.rate",
     "must be in [0, 1), got 1.5"),
    ("model:\n  hidden: []\n", "model.hidden", "a list of 1 to 100 layer widths"),
    ("model:\n  regularizers:\n    - {target: kernel, kind: l3}\n",
     "model.regularizers.0.kind", "or package.module:function; got 'l3'"),
    ("model:\n  regularizers:\n    - {kind: l1}\n", "model.regularizers.0.target",
     "is required"),
    ("train:\n  epoch: 5\n", "train.epoch", "unknown key"),
    ("name: ..\n", "name", "(not only dots), got '..'"),
])
def test_a_bad_value_is_refused_by_both_the_schema_and_the_cli(tmp_path, yaml_text, key,
                                                                 words):
    assert not VALIDATOR.is_valid(yaml.safe_load(yaml_text)), yaml_text
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: {key}: ") and words in result.output, \
        result.output


@pytest.mark.parametrize("constraint, good, bad", [
    (constraints.Interval(True, 1, None), [1, 7, 4000.0], [0, -3, 1.5, True]),
    (constraints.Interval(False, 0, 1, "left"), [0, 0.5], [1, -0.1]),
    (constraints.Interval(False, 0, None, "neither"), [1e-9, 3], [0, -1]),
    (KEYS["train.shuffle"].check, ["once", False], ["never", True]),
    (KEYS["name"].check, ["run-1.b", None], ["", "..", "a/b", "x" * 101]),
    (KEYS["model.regularizers[].kind"].check, ["l1_l2", "pkg.mod:fn"], ["l3", "mod:"]),
])
def test_each_constraint_and_its_schema_agree(constraint, good, bad):
    """What a constraint accepts, its JSON Schema accepts; what it refuses, the schema
    refuses, with one line saying what is allowed."""
    schema = jsonschema.Draft202012Validator(constraint.schema())
    for value in good:
        constraint(value)
        assert schema.is_valid(value), value
    for value in bad:
        with pytest.raises(ValueError, match="^must be .*got "):
            constraint(value)
        assert not schema.is_valid(value), value
