"""One grammar for `--set` values, sweep axes and spec files: what each text parses to, and
the one line (exit 2, nothing trained) every malformed one gets, through the real CLI."""

import pytest
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import load
from circlereg.sweep import expand, parse_axis

from .conftest import CONFIGS

runner = CliRunner()
BASELINE = str(CONFIGS / "baseline.yaml")
L1_PRE = str(CONFIGS / "l1_pre_relu.yaml")
L1 = "model.regularizers.0.l1"
AXIS = ("an axis is v1,v2,... | choice(v1,v2,...) | range([start,]stop[,step]) | "
        "logspace(a,b,n) | linspace(a,b,n)")
VALUE = "a value is YAML flow text: 8, 1e-3, pre_activation, [8,4], {l1: 0.01}, null"


@pytest.mark.parametrize("text, values", [
    ("model.hidden=[8,4],[16]", [[8, 4], [16]]),
    ("model.hidden=[8, 4], [16]", [[8, 4], [16]]),
    ("model.regularizers.0.placement=pre_activation,post_activation",
     ["pre_activation", "post_activation"]),
    ("model.regularizers.0.placement=choice(pre_activation,post_activation)",
     ["pre_activation", "post_activation"]),
    ("model.hidden=choice([500],[100,100])", [[500], [100, 100]]),
    (f"{L1}=1e-4,3e-4", [1e-4, 3e-4]),
    ("train.epochs=100", [100]),
    ("model.noise.0.layer=null,0", [None, 0]),
    ("model.regularizers.0={target: kernel, kind: l1},{target: bias, kind: l2, l2: 0.1}",
     [{"target": "kernel", "kind": "l1"}, {"target": "bias", "kind": "l2", "l2": 0.1}]),
    ("train.epochs=range(10,40,10)", [10, 20, 30]),
    ("train.epochs=range(3,6)", [3, 4, 5]),
    ("train.epochs=range(3)", [0, 1, 2]),
    ("train.epochs=range(9,0,-4)", [9, 5, 1]),
    ("train.learning_rate=range(0.001,0.004,0.001)", [0.001, 0.002, 0.003]),
    ("data.noise=range(0,0.3,0.1)", [0.0, 0.1, 0.2]),
    (f"{L1}=linspace(0,1,3)", [0.0, 0.5, 1.0]),
    (f"{L1}=logspace(-6,-1,11)", [1e-06, 3.16227766017e-06, 1e-05, 3.16227766017e-05, 0.0001,
                                  0.000316227766017, 0.001, 0.00316227766017, 0.01,
                                  0.0316227766017, 0.1]),
])
def test_axis_values(text, values):
    key, parsed = parse_axis(text)
    assert (key, parsed) == (text.split("=")[0], values)
    assert [type(v) for v in parsed] == [type(v) for v in values]  # 10 stays an int


@pytest.mark.parametrize("axis, line", [
    ("model.hidden=[8,4],[16", f"model.hidden: missing ']' in '[8,4],[16'; {AXIS}"),
    ("model.hidden=[8,4]],[16]", f"model.hidden: unbalanced ']' in '[8,4]],[16]'; {AXIS}"),
    ("model.hidden=[8,4],,[16]",
     f"model.hidden: empty value between commas in '[8,4],,[16]'; {AXIS}"),
    (f"{L1}=", f"{L1}: needs values after '='; {AXIS}"),
    ("=1,2", f"=1,2: must look like key.path=values; {AXIS}"),
    ("no_equals_sign", f"no_equals_sign: must look like key.path=values; {AXIS}"),
    (f"{L1}=foo(1,2)", f"{L1}: unknown function foo(); {AXIS} (and interval, uniform, "
                       "loguniform, int in `circlereg tune`)"),
    (f"{L1}=logspace(-6,-1)", f"{L1}: logspace takes 3 numbers: logspace(start, stop, n); got 2"),
    (f"{L1}=logspace(a,b,3)",
     f"{L1}: logspace takes numbers: logspace(start, stop, n); got 'a'"),
    (f"{L1}=linspace(0,1,2.5)",
     f"{L1}: linspace(start, stop, n) takes an integer n in [1, 10000], got 2.5"),
    ("train.epochs=range()",
     "train.epochs: range takes 1 to 3 numbers: range([start,]stop[,step]); got 0"),
    ("train.epochs=range(1,2,3,4)",
     "train.epochs: range takes 1 to 3 numbers: range([start,]stop[,step]); got 4"),
    ("train.epochs=range(a,3)",
     "train.epochs: range takes numbers: range([start,]stop[,step]); got 'a'"),
    ("train.epochs=range(5,1)",
     "train.epochs: range(5, 1, 1) lists no values: range([start,]stop[,step]), stop excluded"),
    ("train.epochs=range(1,5,0)",
     "train.epochs: range's step must not be 0: range([start,]stop[,step])"),
    ("train.epochs=range(0,100000)",
     "train.epochs: range(0, 100000, 1) lists 100000 values; at most 10000"),
    (f"{L1}=choice()", f"{L1}: choice takes one or more values: choice(v1,v2,...)"),
    (f"{L1}=choice(1,range(3))", f"{L1}: choice takes values, not functions: choice(v1,v2,...)"),
    (f"{L1}=1e-4,logspace(-6,-1,3)",
     f"{L1}: 'logspace(-6,-1,3)': a function must be the whole axis; {AXIS}"),
    (f"{L1}=interval(0,1)", f"{L1}: interval(...) is a continuous range, which a grid cannot "
                            "list: search it with `circlereg tune`, or sweep logspace(a,b,n) / "
                            "linspace(a,b,n)"),
    (f"{L1}=loguniform(1e-6,1e-2)", f"{L1}: loguniform(...) is a continuous range, which a "
                                    "grid cannot list: search it with `circlereg tune`, or "
                                    "sweep logspace(a,b,n) / linspace(a,b,n)"),
    ("model.hidden=int(1,5)", "model.hidden: int(...) is a sampled integer, which a grid "
                              "cannot list: search it with `circlereg tune`, or sweep "
                              "range(a,b)"),
])
def test_malformed_axis_is_one_line(tmp_path, axis, line):
    result = runner.invoke(app, ["sweep", L1_PRE, axis, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: sweep: {line}\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting, line", [
    ("model.hidden=[8,4", f"--set: model.hidden: missing ']' in '[8,4'; {VALUE}"),
    ("model.hidden=8,4", "--set: model.hidden: '8,4' is 2 values; --set takes one (a list is "
                         "[a,b]; several values are a sweep axis)"),
    ("train.epochs=", f"--set: train.epochs: needs a value after '=' (null for none); {VALUE}"),
    ("=5", "--set: =5: must look like key.path=value, e.g. train.epochs=100"),
    ("train.epochs", "--set: train.epochs: must look like key.path=value, e.g. "
                     "train.epochs=100"),
    ("model..hidden=[8]", "--set: model..hidden: a key is names and list indexes joined by "
                          "'.', e.g. model.regularizers.0.l1"),
    (f"{L1}=logspace(-6,-1,3)", f"--set: {L1}: logspace(...) lists values to sweep or search; "
                                f"--set takes one value: {VALUE}"),
    ("model.hidden.5=8", "--set: model.hidden.5: list index must be in [0, 1], got '5'"),
    ("model.dropout.x.rate=0.2",
     "--set: model.dropout.x: list index must be in [0, 0], got 'x'"),
    # the schema decides what a mapping may hold: `type` is not a regularizer's key, and the
    # line names --set, where the user typed it, not the file
    ("model.regularizers.0={kind: kernel, type: l2, l2: 0.01}",
     "--set: model.regularizers.0.type: unknown key; allowed: target, kind, l1, l2, "
     "layer, placement, batch_reduction"),
])
def test_malformed_override_is_one_line(tmp_path, setting, line):
    result = runner.invoke(app, ["run", BASELINE, "--set", setting,
                                 "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {line}\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting, key, value", [
    ("model.hidden=[8,4]", ("model", "hidden"), [8, 4]),
    ("model.regularizers.0={target: kernel, kind: l2, l2: 0.01}", ("model", "regularizers"),
     [{"target": "kernel", "kind": "l2", "l1": 0.0, "l2": 0.01, "layer": 0, "placement": None,
       "batch_reduction": None}]),
    ("model.regularizers.0.kind='l1'", ("model", "regularizers"),
     [{"target": "activity", "kind": "l1", "l1": 0.0001, "l2": 0.0, "layer": 0,
       "placement": "pre_activation", "batch_reduction": "sum"}]),
    ("train.learning_rate=1e-2", ("train", "learning_rate"), 0.01),
    # indexing reaches into a default the file leaves out (issue 12, item 5)
    ("model.hidden.0=8", ("model", "hidden"), [8]),
    ("model.hidden.1=4", ("model", "hidden"), [500, 4]),
    ("model.dropout.0.rate=0.2", ("model", "dropout"), [{"layer": 0, "rate": 0.2}]),
    ("model.max_norm.0.value=3", ("model", "max_norm"), [{"layer": 0, "value": 3.0}]),
])
def test_override_values(setting, key, value):
    config = "l1_pre_relu.yaml" if "kind='l1'" in setting else "baseline.yaml"
    section, field = key
    assert load(CONFIGS / config, [setting])[section][field] == value


def test_indexing_a_default_works_from_the_command_line(tmp_path):
    result = runner.invoke(app, ["validate", BASELINE, "--set", "model.hidden.0=8",
                                 "--set", "model.dropout.0.rate=0.2"])
    assert (result.exit_code, result.output) == (0, f"ok: {BASELINE} (baseline)\n")


def test_an_axis_indexes_a_default():
    key, values = parse_axis("model.hidden.0=4,8")
    points = expand([CONFIGS / "baseline.yaml"], ["train.epochs=5"], [(key, values)])
    assert [p.params for p in points] == [{"model.hidden.0": 4}, {"model.hidden.0": 8}]
    assert [p.config["model"]["hidden"] for p in points] == [[4], [8]]
    assert all(p.config["train"]["epochs"] == 5 for p in points)
