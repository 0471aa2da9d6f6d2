"""The study as circlereg ships it: configs and reproduction spec as package data, shipped
configs by name, `circlereg configs`."""

import json
from importlib import resources

import pytest
from typer.testing import CliRunner

from circlereg import shipped
from circlereg.cli import app
from circlereg.reproduce import load_spec

from .conftest import CONFIGS

runner = CliRunner()


def test_the_package_ships_every_file_under_configs_byte_for_byte():
    packaged = resources.files("circlereg.configs")
    shipped = {entry.name: entry.read_bytes() for entry in packaged.iterdir()
               if entry.name.endswith(".yaml")}
    shipped.update({f"{folder}/{entry.name}": entry.read_bytes()
                    for folder in ("reproduce", "sweeps")
                    for entry in packaged.joinpath(folder).iterdir()
                    if entry.name.endswith(".yaml")})
    in_repository = {str(path.relative_to(CONFIGS)): path.read_bytes()
                     for path in CONFIGS.rglob("*.yaml")}
    assert "reproduce/study.yaml" in shipped and "l1_pre_relu.yaml" in shipped
    assert "sweeps/learning_curve.yaml" in shipped
    assert shipped == in_repository


# --- shipped configs by name ------------------------------------------------------------------

SHIPPED = ("baseline, batchnorm, custom_penalties, dropout, early_stopping, gaussian_noise, "
           "l1_kernel, l1_l2_activity, l1_post_relu, l1_pre_relu, l2_kernel, l2_kernel_deep, "
           "max_norm")


def test_a_name_is_the_shipped_config():
    assert shipped.config_file("l1_pre_relu") == CONFIGS / "l1_pre_relu.yaml"
    assert ", ".join(shipped.configs()) == SHIPPED


def test_a_file_wins_over_a_shipped_name_and_a_folder_does_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l1_pre_relu").write_text("name: mine\n")
    (tmp_path / "baseline").mkdir()
    result = runner.invoke(app, ["validate", "l1_pre_relu", "baseline"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["ok: l1_pre_relu (mine)", "ok: baseline (baseline)"]


@pytest.mark.parametrize("argv", [
    ["run", "l1_pre_rel"], ["run", "l1_pre_rel", "--repeats", "2"],
    ["sweep", "l1_pre_rel", "train.epochs=2,3"], ["compare", "baseline", "l1_pre_rel"],
    ["tune", "l1_pre_rel", "model.regularizers.0.l1=loguniform(1e-6,1e-2)"],
    ["validate", "l1_pre_rel"]])
def test_neither_a_file_nor_a_shipped_name_lists_the_shipped_names(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*argv, "--runs-dir", "runs"] if argv[0] != "validate" else argv)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: l1_pre_rel: no such config file, nor a shipped config (did you mean "
        f"l1_pre_relu?); shipped: {SHIPPED}"]
    assert not (tmp_path / "runs").exists()


def test_a_shipped_name_runs_as_its_file_does(tmp_path):
    """The same resolved config, hash, run name and numbers as the file itself."""
    made = {}
    for how, config in (("name", "l1_pre_relu"), ("file", str(CONFIGS / "l1_pre_relu.yaml"))):
        result = runner.invoke(app, ["run", config, "--set", "train.epochs=5", "--quiet",
                                     "--no-run-figures", "--runs-dir", str(tmp_path / how)])
        assert result.exit_code == 0, result.output
        (made[how],) = (tmp_path / how / "l1_pre_relu").iterdir()
    by_name, by_file = made["name"], made["file"]
    assert by_name.name.split("-")[-1] == by_file.name.split("-")[-1]  # the config's hash
    assert (by_name / "config.yaml").read_bytes() == (by_file / "config.yaml").read_bytes()
    numbers = [{k: v for k, v in json.loads((run / "metrics.json").read_text()).items()
                if not k.endswith("_seconds")} for run in (by_name, by_file)]
    assert numbers[0] == numbers[1] and numbers[0]["epochs"] == 5
    source = json.loads((by_name / "environment.json").read_text())["config_source"]
    assert source == str(CONFIGS / "l1_pre_relu.yaml")


def test_reproduce_reads_the_shipped_spec_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["reproduce", "--epochs", "0", "--runs-dir", "runs"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {CONFIGS / 'reproduce' / 'study.yaml'}: epochs: must be an integer in "
        "[1, 1000000], got 0"]


# --- circlereg configs ------------------------------------------------------------------------


def test_configs_lists_each_shipped_config_with_its_description():
    result = runner.invoke(app, ["configs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == SHIPPED.split(", ")
    assert lines[0] == ("baseline          The study's overfit baseline: Dense(500, relu) -> "
                        "Dense(1, sigmoid), no penalty.")
    # the first sentence of a longer comment; a sentence over two comment lines is joined
    assert lines[9] == ("l1_pre_relu       The study's L1 activity penalty on the linear Dense "
                        "output, ReLU as a separate layer after it.")
    assert lines[2].endswith("(run from the project folder): a group lasso on the kernel and a "
                             "Hoyer sparsity penalty on the pre-activation output.")


def test_configs_copy_writes_the_packaged_files_to_edit(tmp_path):
    folder = tmp_path / "mine" / "configs"
    result = runner.invoke(app, ["configs", "--copy", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output == ("copied 13 configs and reproduce/study.yaml, "
                             f"sweeps/learning_curve.yaml into {folder}\n")
    copied = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert copied == {str(p.relative_to(CONFIGS)): p.read_bytes() for p in CONFIGS.rglob("*.yaml")}
    # the copied spec reads the copied configs: its paths are relative to it
    (folder / "baseline.yaml").write_text("name: baseline\ndata: {noise: 0.2}\n")
    spec = load_spec(folder / "reproduce" / "study.yaml")
    assert spec["models"]["baseline"]["config"]["data"]["noise"] == 0.2


def test_configs_copy_overwrites_nothing_and_checks_every_file_first(tmp_path):
    folder = tmp_path / "configs"
    (folder / "reproduce").mkdir(parents=True)
    (folder / "reproduce" / "study.yaml").write_text("my edits\n")
    result = runner.invoke(app, ["configs", "--copy", str(folder)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {folder / 'reproduce' / 'study.yaml'}: already exists; --copy never "
        "overwrites a file: give a new or empty folder"]
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["study.yaml"]
    assert (folder / "reproduce" / "study.yaml").read_text() == "my edits\n"

    runner.invoke(app, ["configs", "--copy", str(tmp_path / "all")])
    result = runner.invoke(app, ["configs", "--copy", str(tmp_path / "all")])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {tmp_path / 'all' / 'baseline.yaml'}: already "
                                    "exists (and 14 more); ")


def test_configs_copy_into_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("")
    result = runner.invoke(app, ["configs", "--copy", str(tmp_path / "taken")])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {tmp_path / 'taken'}: not a folder; --copy writes the shipped configs into a "
        "folder"]
