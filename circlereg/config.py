"""Stage 1: the config. Schema, defaults and validation (the file as written: document.py).

The schema below is the one source of truth for every key: its default, what it accepts and
its one-line meaning. README's key table is checked against it by a test. Nothing here
imports TensorFlow, so `circlereg validate` and `--help` stay fast.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from circlereg import lanes
from circlereg.constraints import (
    Boolean,
    Constraint,
    Either,
    Interval,
    ListOf,
    OneOf,
    Optional,
    Pattern,
    quote,
)
from circlereg.document import apply_override, parse_override, read_document
from circlereg.errors import ConfigError
from circlereg.grammar import shorten
from circlereg.memory import check_memory

TARGETS = ("kernel", "bias", "activity")
KIND_STRENGTHS = {"l1": ("l1",), "l2": ("l2",), "l1_l2": ("l1", "l2")}  # what each kind uses
BUILTIN_KINDS = tuple(KIND_STRENGTHS)
PLACEMENTS = ("pre_activation", "post_activation")
BATCH_REDUCTIONS = ("sum", "mean")
# The activity conventions a reproduction trains each model under (docs/reproduction.md).
CONVENTIONS = ("sum", "mean", "mean_scaled")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "swish", "linear")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw", "nadam", "adagrad")
ENGINES = ("compiled", "fit")
# Raised whenever a change of circlereg moves some replica's numbers (same config, seed,
# software and machine): environment.json records it and a replica's identity includes it, so
# a run trained before is never reused for one trained after. 1: runs that do not record it;
# 2: train.shuffle (the fit engine's minibatches now reshuffle every epoch).
NUMBERS_REVISION = 2
# How each epoch orders the training points (train.shuffle): the shuffle trap, docs/toolbox.md.
SHUFFLES = ("each_epoch", "once", "off")
DTYPES = ("float32", "float64")
BATCH_NORM_POSITIONS = ("before_activation", "after_activation")
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")  # what History records
CUSTOM_KIND = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Bounds of what the engine can take: seeds are int32 inside the compiled graph; the others
# keep a typo (1e12 epochs, 1e8 points) from running for days or exhausting memory.
MAX_SEED = 2**31 - 1
MAX_EPOCHS = 1_000_000
MAX_SAMPLES = 1_000_000
MAX_WIDTH = 100_000
MAX_NAME = 100
# Replicas per compiled program, the same for every structure (train.py says why). Measured on
# 2 cores (4000 epochs of the study net): 4 lanes train in 0.84 s against 0.28 s for one
# replica alone, and a 220-run sweep takes 9% longer than at 16 lanes, where a lone run would
# take 2.0 s.
LANES = 4


# --- value checks: the constraints (circlereg/constraints.py) every key is checked with ---

non_negative = Interval(False, 0, None, "left")
positive = Interval(False, 0, None, "neither")
positive_int = Interval(True, 1, None)
non_negative_int = Interval(True, 0, None)
fraction = Interval(False, 0, 1, "left")
unit_interval = Interval(False, 0, 1)
boolean = Boolean()


def int_in(low: int, high: int) -> Interval:
    """An integer in [low, high]."""
    return Interval(True, low, high)


def one_of(*allowed: str) -> OneOf:
    return OneOf(allowed)


# train.shuffle; YAML reads an unquoted `off` as false, which means `off` here.
shuffle_order = OneOf(SHUFFLES, aliases=((False, "off"),))
optional = Optional
# A folder name that stays where it is put: no separators, not `.` or `..`.
name_text = Pattern(r"(?!\.+$)[\w.-]+", f"1 to {MAX_NAME} letters, digits, '_', '-' or '.' "
                    "(not only dots)", longest=MAX_NAME)
widths = ListOf(int_in(1, MAX_WIDTH), 1, 100, "a list of 1 to 100 layer widths", "[500]")
regularizer_kind = Either((OneOf(BUILTIN_KINDS),
                           Pattern(CUSTOM_KIND.pattern.strip("^$"), "package.module:function")))


@dataclass(frozen=True)
class Key:
    """One config key: where it lives, its default, what it accepts, what it means."""

    path: str
    default: Any
    check: Constraint | None  # None: a list of mappings, each key of which is checked
    help: str
    # Left out of a resolved config while at its default: a key added after runs were made,
    # so every earlier config resolves, hashes and writes config.yaml exactly as before.
    implicit: bool = False


# `[]` in a path marks a key of each item of the regularizers list.
SCHEMA: tuple[Key, ...] = (
    Key("name", None, optional(name_text),
        "run name, the folder under runs/; default: the config file's stem"),
    Key("data.n_samples", 100, int_in(2, MAX_SAMPLES), "points drawn by sklearn make_circles"),
    Key("data.noise", 0.1, non_negative, "standard deviation of the Gaussian noise"),
    Key("data.factor", 0.8, non_negative, "inner circle radius relative to the outer (< 1)"),
    Key("data.seed", 1, int_in(0, MAX_SEED), "make_circles random_state: fixes the data set"),
    Key("data.n_train", 30, positive_int,
        "the first n_train rows train, the rest test (no shuffling; see data.n_test)"),
    Key("data.n_test", None, optional(positive_int),
        "the last n_test rows test, whatever n_train is: a test set that stays fixed while "
        "n_train varies (n_train + n_test <= n_samples). null: every row after the n_train "
        "rows tests, as in the study (and the key is left out of config.yaml)",
        implicit=True),
    Key("data.n_validation", 0, int_in(0, MAX_SAMPLES),
        "points drawn as a validation set (validation_data) from the same circles with a "
        "random stream of their own; the test points are then held out. 0: the test points "
        "are the validation data, as in the study (and the key is left out of config.yaml)",
        implicit=True),
    Key("model.hidden", [500], widths, "hidden layer widths, one Dense layer each"),
    Key("model.activation", "relu", one_of(*ACTIVATIONS), "hidden layer activation"),
    Key("model.regularizers", [], None, "list of penalties, each with the keys below"),
    Key("model.regularizers[].target", None, one_of(*TARGETS),
        "what is penalised: kernel, bias or activity (the layer's output); required"),
    Key("model.regularizers[].kind", "l1", regularizer_kind,
        "l1, l2, l1_l2, or package.module:function (a callable: tensor -> scalar)"),
    Key("model.regularizers[].l1", 0.01, non_negative,
        "L1 strength: adds l1 * sum(|x|) (kinds l1 and l1_l2; unset and unused: 0)"),
    Key("model.regularizers[].l2", 0.01, non_negative,
        "L2 strength: adds l2 * sum(x^2), no factor 1/2 (kinds l2 and l1_l2; unset and "
        "unused: 0)"),
    Key("model.regularizers[].layer", 0, non_negative_int,
        "index of the hidden layer it is on (0 = first)"),
    Key("model.regularizers[].placement", None, optional(one_of(*PLACEMENTS)),
        "activity only: pre_activation (linear Dense output, activation as a separate "
        "layer) or post_activation; default post_activation"),
    Key("model.regularizers[].batch_reduction", None, optional(one_of(*BATCH_REDUCTIONS)),
        "activity only: sum (penalty summed over the batch, the study's Keras) or mean "
        "(divided by the batch size, Keras >= 3.14); default sum"),
    Key("model.dropout", [], None, "list of Dropout layers, each with the keys below"),
    Key("model.dropout[].layer", 0, non_negative_int,
        "hidden layer after whose output (after its activation) the Dropout sits"),
    Key("model.dropout[].rate", None, fraction,
        "probability of dropping a unit while training, in [0, 1); required"),
    Key("model.batch_norm", [], None,
        "list of BatchNormalization layers (Keras defaults: epsilon 0.001, center, scale)"),
    Key("model.batch_norm[].layer", 0, non_negative_int, "hidden layer it normalises"),
    Key("model.batch_norm[].position", "before_activation", one_of(*BATCH_NORM_POSITIONS),
        "before_activation (on the linear Dense output) or after_activation"),
    Key("model.noise", [], None, "list of GaussianNoise layers (active while training only)"),
    Key("model.noise[].layer", None, optional(non_negative_int),
        "hidden layer after whose output the noise is added; null: on the input"),
    Key("model.noise[].stddev", None, unit_interval,
        "noise standard deviation, in [0, 1] (Keras' GaussianNoise); required"),
    Key("model.max_norm", [], None, "list of MaxNorm kernel constraints"),
    Key("model.max_norm[].layer", 0, non_negative_int, "hidden layer whose kernel is constrained"),
    Key("model.max_norm[].value", None, positive,
        "largest allowed norm of each unit's incoming weights; required"),
    Key("train.epochs", 4000, int_in(1, MAX_EPOCHS), "training epochs"),
    Key("train.batch_size", 32, int_in(1, MAX_SAMPLES),
        "minibatch size; >= n_train means one full batch per epoch, as in the study"),
    Key("train.optimizer", "adam", one_of(*OPTIMIZERS), "Keras optimizer, default settings"),
    Key("train.learning_rate", 0.001, positive, "optimizer learning rate"),
    Key("train.seed", 1, int_in(0, MAX_SEED),
        "keras.utils.set_random_seed before building: the initial weights (and minibatch "
        "order)"),
    Key("train.dtype", "float32", one_of(*DTYPES),
        "float type of weights and arithmetic; float64 makes runs far less sensitive to rounding"),
    Key("train.engine", "compiled", one_of(*ENGINES),
        "compiled: the whole run in one XLA graph; fit: plain model.fit (reference, slow)"),
    Key("train.shuffle", "each_epoch", shuffle_order,
        "minibatch order: each_epoch, a fresh permutation every epoch (documented Keras, "
        "the study's Keras 2.2); once, one permutation per run replayed every epoch (what a "
        "seeded Keras 3 model.fit does); off, the data's own order. Both engines honour it",
        implicit=True),
    Key("early_stopping.enabled", False, boolean,
        "stop each run as keras.callbacks.EarlyStopping would"),
    Key("early_stopping.monitor", "val_loss", one_of(*MONITORS), "the History curve watched"),
    Key("early_stopping.patience", 0, int_in(0, MAX_EPOCHS),
        "epochs without improvement before stopping"),
    Key("early_stopping.min_delta", 0.0, non_negative,
        "smallest change that counts as an improvement"),
    Key("early_stopping.restore_best_weights", False, boolean,
        "on stopping, go back to the weights of the best epoch"),
)

KEYS = {key.path: key for key in SCHEMA}
LIST_DEFAULTS = {key.path: key.default for key in SCHEMA if isinstance(key.default, list)}
SECTIONS = ("data", "model", "train", "early_stopping")
LISTS = ("model.regularizers", "model.dropout", "model.batch_norm", "model.noise", "model.max_norm")
REQUIRED = ("model.regularizers[].target", "model.dropout[].rate", "model.noise[].stddev",
            "model.max_norm[].value")
ACTIVITY_ONLY = ("placement", "batch_reduction")
ACTIVITY_DEFAULTS = {"placement": "post_activation", "batch_reduction": "sum"}


def defaults() -> dict:
    """The resolved config of an empty YAML file: the study's overfit baseline."""
    config: dict = {"name": None}
    for key in SCHEMA:
        if "[]" in key.path or key.path == "name" or key.implicit:
            continue
        section, field = key.path.split(".")
        config.setdefault(section, {})[field] = copy.deepcopy(key.default)
    return config


def setting(config: dict, path: str) -> Any:
    """A `section.field` key's value, its default when the config leaves it out (implicit)."""
    section, field = path.split(".")
    return config[section].get(field, KEYS[path].default)


def n_tested(data: dict) -> int:
    """How many points test: data.n_test, or every row after the training rows.

    >>> n_tested({"n_samples": 100, "n_train": 30}), n_tested({"n_samples": 4000,
    ...                                                          "n_train": 30, "n_test": 1000})
    (70, 1000)
    """
    return data.get("n_test") or data["n_samples"] - data["n_train"]


def _unknown(source: str, where: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    key = shorten(key if key.isprintable() else repr(key))  # one short line, whatever the key
    return ConfigError(source, f"{where}{key}", f"unknown key; {hint}allowed: {', '.join(known)}")


def check_value(source: str, path: str, schema_path: str, value: Any,
                unless_none: bool = False) -> Any:
    """`value` checked as the schema's key `schema_path`; a ConfigError names `source` and
    `path` (e.g. a `--name` option is checked as the config's `name`). `unless_none`: an
    option not given (None) is not checked."""
    if unless_none and value is None:
        return None
    try:
        return KEYS[schema_path].check(value)
    except ValueError as err:
        raise ConfigError(source, path, str(err)) from None


def _resolve_item(source: str, list_path: str, index: int, item: Any, n_hidden: int) -> dict:
    """One item of a list key (a regularizer, a dropout layer, ...): defaults and checks."""
    where = f"{list_path}.{index}"
    if not isinstance(item, dict):
        raise ConfigError(source, where, f"must be a mapping of keys, got {quote(item)}")
    prefix = f"{list_path}[]."
    fields = [k.path.removeprefix(prefix) for k in SCHEMA if k.path.startswith(prefix)]
    for key in item:
        if key not in fields:
            raise _unknown(source, f"{where}.", str(key), fields)
    resolved = {}
    for field in fields:
        if prefix + field in REQUIRED and field not in item:
            raise ConfigError(source, f"{where}.{field}", "is required: "
                              + KEYS[prefix + field].help.removesuffix("; required"))
        value = item.get(field, KEYS[prefix + field].default)
        resolved[field] = check_value(source, f"{where}.{field}", prefix + field, value)
    if list_path == "model.regularizers":
        _resolve_regularizer(source, where, item, resolved)
    layer = resolved.get("layer")
    if layer is not None and layer >= n_hidden:
        raise ConfigError(source, f"{where}.layer",
                          f"must be a hidden layer index in [0, {n_hidden - 1}], got {layer}")
    return resolved


def _resolve_regularizer(source: str, where: str, item: dict, resolved: dict) -> None:
    for strength in ("l1", "l2"):
        # An unset strength the kind does not use is 0; a set one is kept, so a sweep over
        # kinds (l1, l2, l1_l2) can carry both strengths.
        if strength not in item and strength not in KIND_STRENGTHS.get(resolved["kind"], ()):
            resolved[strength] = 0.0
    if resolved["target"] == "activity":
        for field, default in ACTIVITY_DEFAULTS.items():
            resolved[field] = resolved[field] or default
    else:
        for field in ACTIVITY_ONLY:
            if resolved[field] is not None:
                raise ConfigError(source, f"{where}.{field}", "applies to activity "
                                  f"regularizers only, not {resolved['target']}")


def resolve(raw: Any, source: str = "<config>") -> dict:
    """Fill defaults into a parsed YAML document and validate every key.

    >>> resolve({"train": {"epochs": 10}})["train"]["epochs"], resolve({})["model"]["hidden"]
    (10, [500])
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "must be a YAML mapping of sections, "
                                      f"got {type(raw).__name__}")
    config = defaults()
    for section, body in raw.items():
        if section == "name":
            config["name"] = check_value(source, "name", "name", body)
            continue
        if section not in SECTIONS:
            raise _unknown(source, "", str(section), ["name", *SECTIONS])
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ConfigError(source, section, f"must be a mapping, got {quote(body)}")
        known = [k.path.split(".")[1] for k in SCHEMA
                 if k.path.startswith(section + ".") and "[]" not in k.path]
        for field, value in body.items():
            if field not in known:
                raise _unknown(source, f"{section}.", str(field), known)
            if f"{section}.{field}" in LISTS:
                config[section][field] = value
            else:
                config[section][field] = check_value(source, f"{section}.{field}",
                                                 f"{section}.{field}", value)
    n_hidden = len(config["model"]["hidden"])
    for list_path in LISTS:
        section, field = list_path.split(".")
        items = config[section][field]
        items = [] if items is None else items
        if not isinstance(items, list):
            raise ConfigError(source, list_path, f"must be a list, got {quote(items)}")
        config[section][field] = [_resolve_item(source, list_path, i, item, n_hidden)
                                  for i, item in enumerate(items)]
        _check_slots(source, list_path, config[section][field])
    data = config["data"]
    if data["n_train"] >= data["n_samples"]:
        raise ConfigError(source, "data.n_train",
                          f"must be < data.n_samples ({data['n_samples']}) so that a test set "
                          f"remains, got {data['n_train']}")
    n_test = data.get("n_test")
    if n_test is not None and data["n_train"] + n_test > data["n_samples"]:
        raise ConfigError(source, "data.n_test",
                          f"must fit beside the {data['n_train']} training rows in "
                          f"data.n_samples ({data['n_samples']}): at most "
                          f"{data['n_samples'] - data['n_train']}, got {n_test}")
    if data["factor"] >= 1:
        raise ConfigError(source, "data.factor", f"must be < 1, got {data['factor']:g}")
    check_memory(source, config, LANES, n_tested(data), _machine_memory())
    for key in SCHEMA:
        section, _, field = key.path.partition(".")
        if key.implicit and config[section].get(field) == key.default:
            config[section].pop(field, None)  # absent already when its default is null
    return config


def structure_key(config: dict) -> str:
    """Configs with equal keys can train as replicas of one graph: everything but the lane
    settings (`lanes.SETTINGS`: the seed, penalty strengths, learning rate, and how strong
    each dropout or noise layer is, whether it acts at all being structure)."""
    return config_hash(lanes.structure(config))


def _machine_memory() -> int:
    """This machine's memory in bytes; 0 where unknown (memory.check_memory then checks none)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform: no check
        return 0


# What makes two items of a list collide: a Keras layer has one kernel, one bias and one
# activity regularizer slot; one dropout, batch norm, noise or constraint per place is enough.
SLOTS = {"model.regularizers": ("target", "layer", "placement"), "model.dropout": ("layer",),
         "model.batch_norm": ("layer",), "model.noise": ("layer",), "model.max_norm": ("layer",)}


def _check_slots(source: str, list_path: str, items: list[dict]) -> None:
    seen: dict[tuple, int] = {}
    for index, item in enumerate(items):
        slot = tuple(item[field] for field in SLOTS[list_path])
        if slot in seen:
            hint = "; combine them into one (kind l1_l2)" if list_path == "model.regularizers" \
                else ""
            raise ConfigError(source, f"{list_path}.{index}",
                              f"same {', '.join(SLOTS[list_path])} as {list_path}.{seen[slot]}"
                              f"{hint}")
        seen[slot] = index


def stem_name(path: str | Path) -> str:
    """The name of a config file that sets none: its stem, kept a safe folder name."""
    stem = re.sub(r"[^\w.-]", "_", Path(path).stem)[:MAX_NAME]
    return stem if stem.strip(".") else "config"


def load(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read, override and validate one YAML config; raise ConfigError naming file and key."""
    return load_document(read_document(path), str(path), overrides, stem_name(path))


def load_document(raw: Any, source: str, overrides: list[str] = (),
                  default_name: str = "config") -> dict:
    """Override and validate a config document (a file's, or one inline in a sweep spec);
    `default_name` names the run unless the document sets `name`. `raw` is not changed."""
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "must be a YAML mapping of sections, "
                                      f"got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    overridden = []
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(raw, parts, value, LIST_DEFAULTS)
        overridden.append(".".join(map(str, parts)))
    try:
        config = resolve(raw, source)
    except ConfigError as err:
        # a bad value the user typed after --set is theirs, not the (maybe shipped) file's
        if any(err.key == key or f"{err.key}.".startswith(f"{key}.")
               or f"{key}.".startswith(f"{err.key}.") for key in overridden if err.key):
            raise ConfigError("--set", err.key, err.message) from None
        raise
    if config["name"] is None:
        config["name"] = default_name
    return config


def with_seed(config: dict, seed: int) -> dict:
    config = copy.deepcopy(config)
    config["train"]["seed"] = seed
    return config


def config_hash(config: dict) -> str:
    """Short, stable hash of a resolved config (the run folder's suffix)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
