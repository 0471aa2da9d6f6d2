"""Stage 1 tests: schema defaults, validation errors, YAML loading and `--set` overrides.

No TensorFlow here: circlereg.config must stay importable (and these tests fast) without it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from circlereg.config import LIST_DEFAULTS, ConfigError, config_hash, load, resolve
from circlereg.document import apply_override, parse_override

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def reg(**item) -> dict:
    """A raw config holding one regularizer item (plus any model keys via `_model`)."""
    model = item.pop("_model", {})
    return {"model": {**model, "regularizers": [item]}}


def raises(raw, key: str, *fragments: str) -> ConfigError:
    """resolve(raw) must raise ConfigError at exactly `key`, its message holding `fragments`."""
    with pytest.raises(ConfigError) as info:
        resolve(raw, "test.yaml")
    err = info.value
    assert err.source == "test.yaml"
    assert err.key == key, f"key {err.key!r} != {key!r} (message: {err.message})"
    for fragment in fragments:
        assert fragment in err.message, f"{fragment!r} not in {err.message!r}"
    return err


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- defaults -------------------------------------------------------------------------------


def test_empty_config_is_the_study_baseline():
    config = resolve({})
    assert config == {
        "name": None,
        "data": {"n_samples": 100, "noise": 0.1, "factor": 0.8, "seed": 1, "n_train": 30},
        "model": {"hidden": [500], "activation": "relu", "regularizers": [], "dropout": [],
                  "batch_norm": [], "noise": [], "max_norm": []},
        "train": {
            "epochs": 4000,
            "batch_size": 32,
            "optimizer": "adam",
            "learning_rate": 0.001,
            "seed": 1,
            "dtype": "float32",
            "engine": "compiled",
        },
        "early_stopping": {"enabled": False, "monitor": "val_loss", "patience": 0,
                           "min_delta": 0.0, "restore_best_weights": False},
    }
    assert resolve(None) == config


def test_defaults_are_not_shared_between_calls():
    first = resolve({})
    first["model"]["hidden"].append(7)
    first["model"]["regularizers"].append({})
    assert resolve({})["model"]["hidden"] == [500]
    assert resolve({})["model"]["regularizers"] == []


def test_activity_regularizer_defaults():
    (item,) = resolve(reg(target="activity"))["model"]["regularizers"]
    assert item == {
        "target": "activity",
        "kind": "l1",
        "l1": 0.01,
        "l2": 0.0,  # unset and unused by kind l1
        "layer": 0,
        "placement": "post_activation",
        "batch_reduction": "sum",
    }


@pytest.mark.parametrize("target", ["kernel", "bias"])
def test_weight_regularizer_keeps_placement_none(target):
    (item,) = resolve(reg(target=target))["model"]["regularizers"]
    assert item["placement"] is None
    assert item["batch_reduction"] is None


@pytest.mark.parametrize("kind, l1, l2", [("l1", 0.01, 0.0), ("l2", 0.0, 0.01),
                                           ("l1_l2", 0.01, 0.01)])
def test_unset_strength_unused_by_kind_is_zero(kind, l1, l2):
    (item,) = resolve(reg(target="kernel", kind=kind))["model"]["regularizers"]
    assert (item["l1"], item["l2"]) == (l1, l2)


def test_set_strength_is_kept_even_if_kind_does_not_use_it():
    (item,) = resolve(reg(target="kernel", kind="l1", l2=0.3))["model"]["regularizers"]
    assert (item["l1"], item["l2"]) == (0.01, 0.3)


def test_string_exponent_strength_becomes_float():
    # PyYAML reads `l1: 1e-4` (no dot) as the string "1e-4".
    (item,) = resolve(reg(target="activity", l1="1e-4"))["model"]["regularizers"]
    assert isinstance(item["l1"], float)
    assert item["l1"] == pytest.approx(0.0001)


def test_integral_float_is_accepted_as_integer():
    config = resolve({"train": {"epochs": 10.0}})
    assert config["train"]["epochs"] == 10
    assert isinstance(config["train"]["epochs"], int)


# --- validation errors: exact key path and what is allowed -----------------------------------


def test_unknown_section_suggests_the_close_one():
    err = raises({"trian": {"epochs": 5}}, "trian", "unknown key", "did you mean 'train'")
    assert "allowed: name, data, model, train" in err.message


def test_unknown_key_in_section_suggests_the_close_one():
    err = raises({"train": {"epoch": 5}}, "train.epoch", "unknown key", "did you mean 'epochs'")
    assert "learning_rate" in err.message


def test_unknown_key_in_regularizer_item():
    err = raises(reg(target="activity", strenght=0.1), "model.regularizers.0.strenght",
                 "unknown key", "allowed:")
    for field in ("target", "kind", "l1", "l2", "layer", "placement", "batch_reduction"):
        assert field in err.message


def test_wrong_type():
    raises({"train": {"epochs": "many"}}, "train.epochs", "must be an integer", "'many'")


def test_bool_is_not_a_number():
    raises({"train": {"learning_rate": True}}, "train.learning_rate", "must be a finite number")


def test_negative_strength():
    raises(reg(target="activity", l1=-1), "model.regularizers.0.l1", "must be >= 0")


def test_placement_on_kernel_regularizer():
    raises(reg(target="kernel", placement="pre_activation"), "model.regularizers.0.placement",
           "activity regularizers only", "kernel")


def test_batch_reduction_on_bias_regularizer():
    raises(reg(target="bias", batch_reduction="mean"), "model.regularizers.0.batch_reduction",
           "activity regularizers only", "bias")


@pytest.mark.parametrize("n_train", [100, 150])
def test_n_train_must_leave_a_test_set(n_train):
    raises({"data": {"n_train": n_train}}, "data.n_train", "must be < data.n_samples (100)")


def test_n_train_just_below_n_samples_is_fine():
    assert resolve({"data": {"n_samples": 40, "n_train": 39}})["data"]["n_train"] == 39


def test_factor_must_be_below_one():
    raises({"data": {"factor": 1}}, "data.factor", "must be < 1")


def test_zero_epochs():
    raises({"train": {"epochs": 0}}, "train.epochs", "must be an integer in [1, 1000000]", "got 0")


def test_layer_index_out_of_range():
    raises(reg(target="activity", layer=1), "model.regularizers.0.layer",
           "hidden layer index in [0, 0]", "got 1")


def test_layer_index_in_range_with_two_hidden_layers():
    config = resolve(reg(target="activity", layer=1, _model={"hidden": [8, 4]}))
    assert config["model"]["regularizers"][0]["layer"] == 1


def test_missing_target():
    raises(reg(kind="l1", l1=0.1), "model.regularizers.0.target",
           "is required", "kernel, bias or activity")


def test_bad_kind():
    raises(reg(target="kernel", kind="l3"), "model.regularizers.0.kind",
           "l1, l2, l1_l2", "package.module:function", "'l3'")


def test_custom_kind_is_accepted():
    (item,) = resolve(reg(target="kernel", kind="mypkg.penalties:group_lasso"))[
        "model"]["regularizers"]
    assert item["kind"] == "mypkg.penalties:group_lasso"


def test_bad_enum_value_lists_allowed():
    raises({"model": {"activation": "relux"}}, "model.activation", "must be one of", "relu, tanh")


def test_two_regularizers_on_the_same_slot():
    raw = {"model": {"regularizers": [
        {"target": "activity", "l1": 0.1},
        {"target": "activity", "placement": "post_activation", "l1": 0.2},
    ]}}
    raises(raw, "model.regularizers.1", "same target, layer, placement",
           "model.regularizers.0", "l1_l2")


def test_same_target_on_different_slots_is_fine():
    raw = {"model": {"hidden": [8, 8], "regularizers": [
        {"target": "activity", "placement": "pre_activation"},
        {"target": "activity", "placement": "post_activation"},
        {"target": "kernel", "layer": 0},
        {"target": "kernel", "layer": 1},
    ]}}
    assert len(resolve(raw)["model"]["regularizers"]) == 4


def test_empty_hidden():
    raises({"model": {"hidden": []}}, "model.hidden", "must be a list of 1 to 100 layer widths")


def test_regularizer_item_must_be_a_mapping():
    raises({"model": {"regularizers": ["l1"]}}, "model.regularizers.0", "must be a mapping")


def test_regularizers_must_be_a_list():
    raises({"model": {"regularizers": {"target": "activity"}}}, "model.regularizers",
           "must be a list")


def test_section_must_be_a_mapping():
    raises({"train": 5}, "train", "must be a mapping")


def test_name_must_be_folder_safe():
    raises({"name": "a/b"}, "name", "letters, digits")


# --- load(): files on disk --------------------------------------------------------------------


def test_load_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert info.value.source == str(missing)
    assert info.value.key == ""
    assert "no such config file" in info.value.message


def test_load_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "name: x\ndata:\n  noise: a: b\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "YAML syntax error" in info.value.message
    assert "line 3" in info.value.message


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("42\n", "int")])
def test_load_non_mapping_document(tmp_path, text, kind):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    assert "must be a YAML mapping" in info.value.message
    assert kind in info.value.message


def test_load_name_defaults_to_file_stem(tmp_path):
    config = load(write(tmp_path, "train:\n  epochs: 7\n", name="my_run.yaml"))
    assert config["name"] == "my_run"
    assert config["train"]["epochs"] == 7


def test_load_empty_file_is_baseline(tmp_path):
    config = load(write(tmp_path, "", name="empty.yaml"))
    assert config == {**resolve({}), "name": "empty"}


def test_load_explicit_name_wins(tmp_path):
    assert load(write(tmp_path, "name: other\n"))["name"] == "other"


def test_load_reads_yaml_exponent_without_dot(tmp_path):
    path = write(tmp_path, "model:\n  regularizers:\n    - target: activity\n      l1: 1e-4\n")
    assert load(path)["model"]["regularizers"][0]["l1"] == pytest.approx(1e-4)


def test_load_error_names_the_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.source == str(path)
    assert info.value.key == "train.epochs"


# --- shipped configs --------------------------------------------------------------------------


def test_shipped_baseline_is_the_default_config():
    assert load(CONFIGS / "baseline.yaml") == {**resolve({}), "name": "baseline"}


@pytest.mark.parametrize("stem, placement", [
    ("l1_pre_relu", "pre_activation"),
    ("l1_post_relu", "post_activation"),
])
def test_shipped_l1_configs(stem, placement):
    config = load(CONFIGS / f"{stem}.yaml")
    assert config["name"] == stem
    assert config["model"]["regularizers"] == [{
        "target": "activity", "kind": "l1", "l1": 0.0001, "l2": 0.0, "layer": 0,
        "placement": placement, "batch_reduction": "sum",
    }]


def test_shipped_l1_configs_differ_only_in_placement():
    pre = load(CONFIGS / "l1_pre_relu.yaml")
    post = load(CONFIGS / "l1_post_relu.yaml")
    assert config_hash(pre) != config_hash(post)
    post["name"] = pre["name"]
    post["model"]["regularizers"][0]["placement"] = "pre_activation"
    assert pre == post


# --- --set overrides --------------------------------------------------------------------------


def test_overrides_set_float_and_int():
    config = load(CONFIGS / "l1_pre_relu.yaml",
                  ["model.regularizers.0.l1=1e-3", "train.epochs=10"])
    assert config["model"]["regularizers"][0]["l1"] == pytest.approx(1e-3)
    assert isinstance(config["model"]["regularizers"][0]["l1"], float)
    assert config["train"]["epochs"] == 10
    # untouched keys keep the file's values
    assert config["model"]["regularizers"][0]["placement"] == "pre_activation"


def test_parse_override_values():
    assert parse_override("model.regularizers.0.l1=1e-3") == (
        ["model", "regularizers", "0", "l1"], 0.001)
    assert parse_override("train.epochs=10") == (["train", "epochs"], 10)
    assert parse_override("model.hidden=[64,32]") == (["model", "hidden"], [64, 32])
    assert parse_override(" train.optimizer = sgd") == (["train", "optimizer"], "sgd")


def test_override_one_past_the_end_appends_a_regularizer():
    config = load(CONFIGS / "l1_post_relu.yaml",
                  ["model.regularizers.1.target=kernel", "model.regularizers.1.l1=0.5"])
    regs = config["model"]["regularizers"]
    assert len(regs) == 2
    assert regs[0]["target"] == "activity"
    assert regs[1]["target"] == "kernel"
    assert regs[1]["l1"] == 0.5
    assert regs[1]["placement"] is None


def test_override_appends_to_missing_list(tmp_path):
    config = load(CONFIGS / "baseline.yaml", ["model.regularizers.0.target=bias"])
    assert [r["target"] for r in config["model"]["regularizers"]] == ["bias"]


@pytest.mark.parametrize("index", ["2", "5", "x"])
def test_override_index_beyond_the_end_raises(index):
    with pytest.raises(ConfigError) as info:
        load(CONFIGS / "l1_post_relu.yaml", [f"model.regularizers.{index}.target=kernel"])
    assert info.value.source == "--set"
    assert info.value.key == f"model.regularizers.{index}"
    assert "list index must be in [0, 1]" in info.value.message


def test_override_hidden_list_gives_two_layers():
    config = load(CONFIGS / "baseline.yaml", ["model.hidden=[64,32]"])
    assert config["model"]["hidden"] == [64, 32]


@pytest.mark.parametrize("text", ["train.epochs", "=5", ""])
def test_override_without_key_value_raises(text):
    with pytest.raises(ConfigError) as info:
        load(CONFIGS / "baseline.yaml", [text])
    assert info.value.source == "--set"
    assert "key.path=value" in info.value.message


def test_override_is_validated():
    with pytest.raises(ConfigError) as info:
        load(CONFIGS / "baseline.yaml", ["train.epoch=10"])
    assert (info.value.source, info.value.key) == ("--set", "train.epoch")
    assert "did you mean 'epochs'" in info.value.message


def test_a_bad_key_in_the_file_names_the_file_even_beside_a_set(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as info:
        load(path, ["train.seed=3", "model.hidden.0=8"])
    assert (info.value.source, info.value.key) == (str(path), "train.epochs")
    with pytest.raises(ConfigError) as info:
        load(path, ["train.epochs=-1"])
    assert (info.value.source, info.value.key) == ("--set", "train.epochs")


def test_override_into_a_scalar_raises():
    raw = {"train": {"epochs": 5}}
    with pytest.raises(ConfigError) as info:
        apply_override(raw, ["train", "epochs", "x"], 1, LIST_DEFAULTS)
    assert info.value.key == "train.epochs.x"


def test_apply_override_creates_missing_sections():
    raw: dict = {}
    apply_override(raw, ["train", "epochs"], 3, LIST_DEFAULTS)
    assert raw == {"train": {"epochs": 3}}


# --- config_hash --------------------------------------------------------------------------------


def test_config_hash_is_stable_for_equal_configs():
    a = load(CONFIGS / "l1_pre_relu.yaml")
    b = copy.deepcopy(a)
    # key order must not matter
    b["train"] = dict(reversed(list(b["train"].items())))
    assert config_hash(a) == config_hash(b) == config_hash(load(CONFIGS / "l1_pre_relu.yaml"))
    assert len(config_hash(a)) == 8


def test_config_hash_changes_with_a_value():
    a = resolve({})
    b = resolve({"train": {"learning_rate": 0.002}})
    c = resolve({"train": {"seed": 2}})
    assert len({config_hash(a), config_hash(b), config_hash(c)}) == 3


def test_config_hash_equal_for_equivalent_spellings():
    assert config_hash(resolve(reg(target="activity", l1="1e-4"))) == config_hash(
        resolve(reg(target="activity", l1=0.0001)))


# --- error rendering ------------------------------------------------------------------------------


def test_config_error_renders_one_line():
    err = raises({"train": {"epoch": 5}}, "train.epoch")
    text = str(err)
    assert text == f"test.yaml: train.epoch: {err.message}"
    assert "\n" not in text


def test_config_error_without_key_renders_file_and_message(tmp_path):
    missing = tmp_path / "gone.yaml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert str(info.value) == f"{missing}: no such config file"


def test_yaml_syntax_error_renders_one_line(tmp_path):
    path = write(tmp_path, "data:\n  n_samples: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert "\n" not in text
