"""Sweeps as files: `circlereg sweep --spec FILE`, and every sweep folder's sweep.yaml reruns
its sweep byte for byte (issue 14, item 3)."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from circlereg.cli import app
from circlereg.config import config_hash
from circlereg.rundir import read_summary
from circlereg.spec import axis_values, choose_seeds, read_spec
from circlereg.sweep import Point, expand, identity, parse_axis

from .conftest import CONFIGS, ROOT

runner = CliRunner()
BASELINE = str(CONFIGS / "baseline.yaml")
# test_hostile's small structure (a kernel L1 penalty), so the session compiles it once
SETS = ["train.epochs=20", "data.n_samples=40", "data.n_train=12", "model.hidden=[8]",
        "model.regularizers.0.target=kernel"]
TINY = [arg for text in SETS for arg in ("--set", text)]
QUIET = ["--quiet", "--no-run-figures"]


def only_folder(runs: Path, name: str) -> Path:
    (folder,) = (runs / name).iterdir()
    return folder


def rerun_from(folder: Path, tmp_path: Path) -> Path:
    """`sweep --spec` on a copy of the folder's sweep.yaml, elsewhere, into other runs."""
    copied = tmp_path / "elsewhere" / "copied.yaml"
    copied.parent.mkdir()
    shutil.copy(folder / "sweep.yaml", copied)
    result = runner.invoke(app, ["sweep", "--spec", str(copied), *QUIET,
                                 "--runs-dir", str(tmp_path / "rerun")])
    assert result.exit_code == 0, result.output
    return only_folder(tmp_path / "rerun", folder.parent.name)


def assert_same_sweep(a: Path, b: Path) -> None:
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (a, b)]
    for key in ("kind", "varies", "seeds", "runs", "points"):  # not when made, nor the command
        assert manifests[0][key] == manifests[1][key]
    assert a.name.split("-")[-1] == b.name.split("-")[-1]  # named by what it trains
    assert (a / "sweep.yaml").read_text() == (b / "sweep.yaml").read_text()  # a fixed point


def test_a_list_axis_sweeps_and_its_folder_reruns_byte_for_byte(tmp_path):
    result = runner.invoke(app, ["sweep", BASELINE, "model.hidden=[8,4],[8]", *TINY,
                                 "--repeats", "2", *QUIET, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    folder = only_folder(tmp_path / "runs", "baseline-sweep")
    rows = read_summary(folder / "summary.csv")
    assert [(r["point"], r["model.hidden"], r["n"]) for r in rows] == [
        ("p000", "[8, 4]", "2"), ("p001", "[8]", "2")]
    header, first = result.stdout.splitlines()[:2]  # the table: cells 2+ spaces apart
    assert re.split(r"\s{2,}", header)[:3] == ["point", "hidden", "n"]
    assert re.split(r"\s{2,}", first)[:3] == ["p000", "[8, 4]", "2"]
    sub_run = yaml.safe_load((folder / "p000" / "seed_2" / "config.yaml").read_text())
    assert sub_run["model"]["hidden"] == [8, 4]
    spec = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert spec["config"] == {"name": "baseline"}  # the file as read, inline
    assert spec["axes"] == {"model.hidden": "[8,4],[8]"} and spec["repeats"] == 2
    assert spec["set"] == SETS
    assert_same_sweep(folder, rerun_from(folder, tmp_path))


def test_a_comparison_folder_reruns_byte_for_byte(tmp_path):
    other = tmp_path / "configs" / "other.yaml"  # named apart, so one structure trains both
    other.parent.mkdir()
    other.write_text("data: {noise: 0.1}\n")
    result = runner.invoke(app, ["compare", BASELINE, str(other), *TINY, "--seeds", "3,4",
                                 "--quiet", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    folder = only_folder(tmp_path / "runs", "compare")
    spec = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert spec["config"] == [{"name": "baseline"}, {"name": "other", "data": {"noise": 0.1}}]
    assert spec["seeds"] == [3, 4]
    assert_same_sweep(folder, rerun_from(folder, tmp_path))


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweeps" / "spec.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_written_spec_reads_paths_from_its_folder(tmp_path):
    config = os.path.relpath(CONFIGS / "l1_pre_relu.yaml", tmp_path / "sweeps")
    path = write_spec(tmp_path, f"""
config: {config}
set: {{train.epochs: 20, model.hidden: [8]}}
axes:
  model.regularizers.0.l1: logspace(-4,-3,2)
  model.regularizers.0.placement: [pre_activation, post_activation]
seeds: [3, 5]
name: l1-grid
""")
    spec = read_spec(path)
    assert spec.overrides == ("train.epochs=20", "model.hidden=[8]")
    assert spec.seeds == (3, 5) and spec.name == "l1-grid"
    points = expand(spec.bases, spec.overrides, [(k, axis_values(k, v)) for k, v in spec.axes])
    assert [p.params for p in points] == [
        {"model.regularizers.0.l1": l1, "model.regularizers.0.placement": placement}
        for l1 in (0.0001, 0.001) for placement in ("pre_activation", "post_activation")]
    assert all(p.config["model"]["hidden"] == [8] for p in points)


def test_options_on_top_of_a_spec(tmp_path):
    path = write_spec(tmp_path, f"""
config: {BASELINE}
set: {SETS}
axes: {{model.regularizers.0.l1: "1e-4,1e-3", model.regularizers.0.l2: [0, 0.5]}}
repeats: 3
""")
    result = runner.invoke(app, ["sweep", "--spec", str(path), "model.regularizers.0.l2=0.25",
                                 "--set", "name=renamed", "--seeds", "7", "--name", "mine",
                                 *QUIET, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    folder = only_folder(tmp_path / "runs", "mine")
    written = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert written["set"] == [*SETS, "name=renamed"]  # after the file's: it wins
    assert written["axes"] == {"model.regularizers.0.l1": "1e-4,1e-3",
                               "model.regularizers.0.l2": "0.25"}
    assert written["seeds"] == [7] and "repeats" not in written
    assert [p["seeds"] for p in written["points"]] == [[7], [7]]
    assert sorted(str(p.relative_to(folder)) for p in folder.glob("p*/seed_*")) == [
        "p000/seed_7", "p001/seed_7"]
    run = yaml.safe_load((folder / "p001" / "seed_7" / "config.yaml").read_text())
    assert run["name"] == "renamed"
    assert run["model"]["regularizers"][0]["l1"] == 0.001
    assert run["model"]["regularizers"][0]["l2"] == 0.25


SPEC_KEYS = "allowed: config, set, axes, repeats, seeds, name, points"
AXIS = ("an axis is v1,v2,... | choice(v1,v2,...) | range([start,]stop[,step]) | "
        "logspace(a,b,n) | linspace(a,b,n)")


@pytest.mark.parametrize("text, line", [
    (f"config: {BASELINE}\naxis: {{train.epochs: [1, 2]}}\n",
     f"axis: unknown key; did you mean 'axes'? {SPEC_KEYS}"),
    ("axes: {train.epochs: [1, 2]}\n",
     "config: is required: a config path (relative to this file), a list of them, or a "
     "config mapping"),
    ("config: nope.yaml\n", "config: nope.yaml: no such config file (looked for {folder}/"
                            "nope.yaml; paths are relative to the spec's folder)"),
    ("config: [{name: a}, 3]\n",
     "config.1: must be a config path (relative to this file) or a config mapping, got 3"),
    (f"config: {BASELINE}\naxes: {{model.hidden: '[8,4],[16'}}\n",
     f"axes.model.hidden: missing ']' in '[8,4],[16'; {AXIS}"),
    (f"config: {BASELINE}\naxes: {{model.hidden: []}}\n",
     f"axes.model.hidden: needs one or more values; {AXIS}"),
    (f"config: {BASELINE}\naxes: {{train.epochs: {{a: 1}}}}\n",
     "axes.train.epochs: must be a list of values or text in the axis grammar; got {'a': 1}"),
    (f"config: {BASELINE}\naxes: [no_equals]\n",
     f"axes.no_equals: must look like key.path=values; {AXIS}"),
    (f"config: {BASELINE}\nrepeats: 2\nseeds: [1]\n",
     "seeds: give either repeats or seeds, not both"),
    (f"config: {BASELINE}\nrepeats: 0\n", "repeats: must be an integer >= 1, got 0"),
    (f"config: {BASELINE}\nseeds: [1, 1]\n",
     "seeds: must be distinct integers in [0, 2147483647], got '1,1'"),
    (f"config: {BASELINE}\nset: [train.epochs]\n",
     "set: 'train.epochs' must look like key.path=value"),
    (f"config: {BASELINE}\nset: train.epochs=3\n",
     "set: must be a list of key.path=value texts (as --set takes) or a mapping "
     "key.path: value; got 'train.epochs=3'"),
    (f"config: {BASELINE}\nname: ../x\n",
     "name: must be 1 to 100 letters, digits, '_', '-' or '.' (not only dots), got '../x'"),
    ("config: {train: {epochs: 0}}\n",
     "config: train.epochs: must be an integer in [1, 1000000], got 0"),
    (f"config: {BASELINE}\naxes: {{train.epochs: [1, 2]}}\npoints: [{{point: p000, "
     "train.epochs: 1, seeds: [1]}]\n",
     "points: lists 1 points but config, axes and seeds give 2; points records what a sweep "
     "trained: delete it to run the spec as it is now"),
    (f"config: {BASELINE}\naxes: {{train.epochs: [1]}}\npoints: [{{point: p000, "
     "train.epochs: 2, seeds: [1]}]\n",
     "points: p000 is listed as {'train.epochs': 2, 'seeds': [1]} but config, axes and seeds "
     "give {'train.epochs': 1, 'seeds': [1]}; points records what a sweep trained: delete it "
     "to run the spec as it is now"),
    ("config: [a\n", "YAML syntax error at line 2, column 1: expected ',' or ']', but got "
                     "'<stream end>'"),
])
def test_a_bad_spec_is_one_line_naming_file_and_key(tmp_path, text, line):
    path = write_spec(tmp_path, text)
    result = runner.invoke(app, ["sweep", "--spec", str(path), "--runs-dir",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    expected = line.replace("{folder}", str(path.parent))
    assert result.output == f"error: {path}: {expected}\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, line", [
    (["--spec", "{spec}", BASELINE],
     f"--spec: {BASELINE}: the spec names the base config; give no config argument with "
     "--spec (arguments with --spec are axes, key=values)"),
    ([], "sweep: give a base config (circlereg sweep CONFIG key=values ...) or --spec FILE"),
    (["--spec", "{folder}/missing.yaml"], "{folder}/missing.yaml: no such sweep spec"),
    (["--spec", "{spec}", "--repeats", "2", "--seeds", "1"],
     "--seeds: give either --repeats or --seeds, not both"),
])
def test_command_line_and_spec_mix_refused_in_one_line(tmp_path, args, line):
    path = write_spec(tmp_path, f"config: {BASELINE}\n")
    fill = {"{spec}": str(path), "{folder}": str(path.parent)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
        line = line.replace(key, value)
    result = runner.invoke(app, ["sweep", *args, "--runs-dir", str(tmp_path / "runs")])
    assert (result.exit_code, result.output) == (2, f"error: {line}\n")


@pytest.mark.parametrize("configs, axes, overrides, repeats, digest", [
    (["l1_pre_relu.yaml"], ["model.regularizers.0.l1=logspace(-6,-1,11)",
                            "model.regularizers.0.placement=pre_activation,post_activation"],
     ["train.epochs=50"], 3, "5afc7bec"),
    (["baseline.yaml"], ["train.epochs=range(10,40,10)",
                         "train.learning_rate=linspace(0.001,0.01,4)"], [], 2, "a71f7101"),
    (["dropout.yaml", "l2_kernel.yaml"], [], ["train.epochs=60"], 2, "eca4415a"),
])
def test_sweep_identity_is_the_one_earlier_sweeps_resume_by(configs, axes, overrides, repeats,
                                                            digest):
    """The folder suffixes the code before spec files gave (main at a685699): a sweep it
    started still resumes."""
    points = [Point(p.index, p.params, p.config, p.source,
                    tuple(choose_seeds(p.config["train"]["seed"], repeats, None)))
              for p in expand([CONFIGS / c for c in configs], overrides,
                              [parse_axis(a) for a in axes])]
    assert config_hash(identity(points)) == digest


def test_the_shipped_spec_is_the_studys_grid():
    spec = read_spec(ROOT / "sweeps" / "l1_strength.yaml")
    assert [base.source for base in spec.bases] == [
        str(ROOT / "sweeps" / ".." / "configs" / "l1_pre_relu.yaml")]
    points = expand(spec.bases, spec.overrides, [(k, axis_values(k, v)) for k, v in spec.axes])
    assert len(points) == 22 and spec.repeats == 10 and spec.name == "l1_strength"
    assert points[2].params == {"model.regularizers.0.l1": 3.16227766017e-06,
                                "model.regularizers.0.placement": "pre_activation"}
