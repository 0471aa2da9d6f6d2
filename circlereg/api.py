"""circlereg from Python, for notebooks (docs/python.md): `runs`, `run`, `sweep`, `compare` and
`history`, each returning a pandas DataFrame.

The training functions are the commands themselves (commands.run, commands.sweep): the same
folders, names, reuse and checks, but they raise instead of exiting. Bad input raises one
ConfigError (a ValueError) whose text is the command's one error line.

By default they train in the calling process, on compiled programs kept for the session, so
a notebook pays TensorFlow's start once and traces each model shape once; `workers=N` trains
on N worker processes as the command line does. Either way a replica's bytes are the same.

Nothing here imports pandas, TensorFlow or matplotlib until a function is called: `import
circlereg` stays as light as `circlereg --help`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from circlereg import commands
from circlereg.config import ConfigError
from circlereg.grammar import format_value
from circlereg.index import open_index
from circlereg.options import Execution, Work

FIXED = ("collection", "kind", "point", "seed")  # then the varied keys, metrics and folder
# Not final metrics: the seed is a column already, the shape is how the lanes were compiled.
NOT_METRICS = ("seed", "compiled_shape")
LEADING = ("train_accuracy", "test_accuracy", "gap", "train_loss", "test_loss")  # then A-Z

_programs = None  # compiled programs of every model shape trained in this process


def runs(runs_dir: str | Path = "runs"):
    """Every complete run under `runs_dir`, one row each: its collection (the folder of its
    sweep, comparison, ... or the run itself), kind, point, seed, each key its collection
    varies (dotted, e.g. `model.regularizers.0.l1`), its final metrics (metrics.json, wall
    times aside; hidden layers as `hidden_layers.0.zero_fraction`) and its folder. Read
    from the runs directory's index, which is first brought up to date with the folders."""
    if not Path(runs_dir).is_dir():
        raise ConfigError(str(runs_dir), "", "no such folder (--runs-dir of the commands that "
                                             "wrote runs)")
    return _frame(runs_dir)


def run(config: str | Path, *, set: str | Iterable[str] | Mapping | None = None,
        seed: int | None = None, repeats: int | None = None,
        seeds: str | Iterable[int] | None = None, runs_dir: str | Path = "runs",
        figures: bool = True, resume: bool = False, workers: int | None = 0,
        backend: str = "local", address: str | None = None, retrain: bool = False,
        quiet: bool = True):
    """`circlereg run`: train a config (a YAML file or a shipped config's name), once or,
    with `repeats`/`seeds`, once per seed; returns the rows of `runs()` for what it made.

    `set`: overrides, as `"key=value"` texts or a mapping {key: value}. `seeds`: a list of
    seeds or the text "1,5,9". `workers`: 0 trains in this process (the default), N on N
    worker processes, None on the command line's default count. `quiet=False` draws the
    progress bar."""
    execution = _execution(workers, None, backend, address, quiet)
    work = Work(runs_dir=Path(runs_dir), overrides=tuple(_settings(set)), seed=seed,
                repeats=repeats, seeds=_seed_text(seeds), resume=resume, figures=figures,
                retrain=retrain)
    if repeats is None and seeds is None:
        folder, metrics = commands.run(config, work, execution)
        if metrics["diverged"]:  # the command's exit code 3; a sweep warns by itself
            commands.notice(f"warning: the run diverged (training loss not finite by epoch "
                            f"{metrics['epochs']})")
    else:
        folder, _ = commands.sweep("run", [config], [], work, execution)
    return _frame(work.runs_dir, folder)


def sweep(config: str | Path | None = None,
          axes: str | Iterable[str] | Mapping | None = None, *, spec: str | Path | None = None,
          set: str | Iterable[str] | Mapping | None = None, seed: int | None = None,
          repeats: int | None = None, seeds: str | Iterable[int] | None = None,
          runs_dir: str | Path = "runs", name: str | None = None, resume: bool = False,
          figures: bool = True, workers: int | None = 0, chunk: int | None = None,
          backend: str = "local", address: str | None = None, retrain: bool = False,
          reference: str | Iterable[str] | None = None,
          metrics: str | Iterable[str] | None = None, quiet: bool = True):
    """`circlereg sweep`: a base config times the grid of its axes, each point with its
    seeds; returns the rows of `runs()` for the sweep's folder.

    `axes`: `"key=values"` texts in the command line's grammar (docs/grammar.md), or a
    mapping {key: [values] or "logspace(-6,-4,3)"}. `spec`: a sweep spec file (then `config`
    is left out). `reference`: the point every other is judged against (`"p003"`, or
    `"key=value"` texts), as --reference; `metrics`: metrics judged besides test accuracy,
    as --metric. The rest as in `run`."""
    execution = _execution(workers, chunk, backend, address, quiet)
    spec = None if spec is None else Path(spec)
    configs, axes = commands.sweep_arguments(None if config is None else str(config),
                                             _axes(axes), spec)
    work = Work(runs_dir=Path(runs_dir), overrides=tuple(_settings(set)), seed=seed,
                repeats=repeats, seeds=_seed_text(seeds), name=name, resume=resume, figures=figures,
                retrain=retrain, reference=_texts(reference), metrics=_texts(metrics),
                spec_file=spec)
    folder, _ = commands.sweep("sweep", configs, axes, work, execution)
    return _frame(work.runs_dir, folder)


def compare(configs: Iterable[str | Path], *, set: str | Iterable[str] | Mapping | None = None,
            seed: int | None = None, repeats: int | None = None,
            seeds: str | Iterable[int] | None = None, runs_dir: str | Path = "runs",
            name: str = "compare", resume: bool = False, figures: bool = False,
            workers: int | None = 0, chunk: int | None = None, backend: str = "local",
            address: str | None = None, retrain: bool = False,
            reference: str | Iterable[str] | None = None,
            metrics: str | Iterable[str] | None = None, quiet: bool = True):
    """`circlereg compare`: several configs with the same seeds; returns the rows of
    `runs()` for the comparison's folder (its `config` column names each run's config).
    `reference` and `metrics` as in `sweep`, the rest as in `run`."""
    execution = _execution(workers, chunk, backend, address, quiet)
    if isinstance(configs, (str, Path)):  # one config is a comparison of one, not of letters
        configs = [configs]
    work = Work(runs_dir=Path(runs_dir), overrides=tuple(_settings(set)), seed=seed,
                repeats=repeats, seeds=_seed_text(seeds), name=name, resume=resume, figures=figures,
                retrain=retrain, reference=_texts(reference), metrics=_texts(metrics))
    folder, _ = commands.sweep("compare", [Path(c) for c in configs], [], work, execution)
    return _frame(work.runs_dir, folder)


def history(run):
    """A run's curves by epoch (its history.csv): loss, accuracy, val_loss, val_accuracy
    (val_* on the test points, or on the validation points with data.n_validation). `run`:
    a run folder, or a row of a `runs()` frame. A whole frame gives every run's curves, one
    row per run and epoch, each with the run's collection, point, seed, varied keys and
    folder."""
    import pandas as pd

    if isinstance(run, pd.DataFrame):
        keys = [c for c in run.columns if c in (*FIXED, *run.attrs.get("varies", ()), "folder")]
        curves = [_with(history(row["folder"]).reset_index(), {k: row[k] for k in keys})
                  for _, row in run.iterrows()]
        if not curves:
            return pd.DataFrame(columns=[*keys, "epoch", "loss", "accuracy", "val_loss",
                                         "val_accuracy"])
        return pd.concat(curves, ignore_index=True)
    folder = Path(run["folder"] if isinstance(run, (Mapping, pd.Series)) else run)
    path = folder / "history.csv"
    if not path.is_file():
        raise ConfigError(str(folder), "", "not a run folder: it holds no history.csv")
    return pd.read_csv(path, index_col="epoch")


def _with(curves, columns: dict):
    """`curves` with `columns` (each one value) in front."""
    for position, (key, value) in enumerate(columns.items()):
        curves.insert(position, key, [value] * len(curves))
    return curves


def _frame(runs_dir: str | Path, folder: Path | None = None):
    """`runs()`'s frame: every run under runs_dir, or those of the collection in `folder`."""
    import pandas as pd

    with open_index(Path(runs_dir), commands.notice) as index:
        rows = index.rows()
    if folder is not None:
        collection = os.path.relpath(Path(folder).absolute(), Path(runs_dir).absolute())
        rows = [row for row in rows if row["collection"] == collection.replace(os.sep, "/")]
    rows.sort(key=lambda row: (row["collection"], row["point"] or "", row["seed"]))
    varies, metrics, records = {}, {}, []
    for row in rows:
        params = json.loads(row["params"])
        final = _final(json.loads(row["metrics"]))
        varies.update(dict.fromkeys(params))
        metrics.update(dict.fromkeys(final))
        records.append({**{key: row[key] for key in FIXED}, **params, **final,
                        "folder": str(Path(runs_dir) / row["folder"])})
    metrics = sorted(metrics, key=lambda k: (k not in LEADING, LEADING.index(k)
                                             if k in LEADING else 0, k))
    columns = [*FIXED, *varies, *(k for k in metrics if k not in varies), "folder"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame.attrs["varies"] = list(varies)
    return frame


def _final(metrics: dict) -> dict:
    """metrics.json's final metrics as flat columns: hidden layers by number."""
    final = {}
    for key, value in metrics.items():
        if key in NOT_METRICS:
            continue
        if key == "hidden_layers":
            for layer in value:
                final.update({f"hidden_layers.{layer['layer']}.{k}": v
                              for k, v in layer.items() if k != "layer"})
        else:
            final[key] = value
    return final


def _execution(workers: int | None, chunk: int | None, backend: str, address: str | None,
               quiet: bool) -> Execution:
    """Where the API trains: in this process (workers=0), or as the command line does."""
    return Execution(workers=workers or None, chunk=chunk, backend=backend, address=address,
                     quiet=quiet, programs=_where(workers, backend))


def _where(workers: int | None, backend: str):
    """The compiled programs to train on in this process (workers=0), else None: workers.
    Loads circlereg's figures first (`_keep_backend`)."""
    global _programs
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise ConfigError("workers", "", "must be an integer >= 0 (0: train in this "
                                         f"process) or None, got {workers!r}")
    _keep_backend()  # the sweep's own figures are drawn here whatever trains its runs
    if workers != 0:
        return None
    if backend != "local":
        raise ConfigError("workers", "", f"0 trains in this process; with backend "
                                         f"{backend!r} give workers=N or None")

    if commands.PROGRAMS is not None:  # the tests' cache, shared by every command they run
        return commands.PROGRAMS
    if _programs is None:
        # training here: the engine (TensorFlow) loads now, once per session
        from circlereg.engine.worker import Programs

        _programs = Programs()
    return _programs


def _keep_backend() -> None:
    """Load circlereg's figures (matplotlib) now, keeping the caller's matplotlib backend.

    plots.py selects Agg, files only, for the command line; a notebook's inline backend
    must survive it. Loaded before training also because a sweep's warm-up thread and the
    run writer's would otherwise import matplotlib at the same time, which it does not
    survive."""
    if "circlereg.plots" in sys.modules:
        return
    import matplotlib

    chosen = dict.get(matplotlib.rcParams, "backend")  # as set: maybe "choose when needed"
    drawing = "matplotlib.pyplot" in sys.modules and matplotlib.get_backend()
    import circlereg.plots  # noqa: F401

    if drawing:
        import matplotlib.pyplot as plt

        plt.switch_backend(drawing)
    else:
        dict.__setitem__(matplotlib.rcParams, "backend", chosen)


def _texts(given) -> tuple[str, ...]:
    """A text or several, as a repeatable option's values."""
    return () if given is None else (given,) if isinstance(given, str) else tuple(given)


def _settings(given) -> list[str]:
    """`set=` as --set texts: "key=value", a list of them, or a mapping {key: value}."""
    if given is None:
        return []
    if isinstance(given, str):
        return [given]
    if isinstance(given, Mapping):
        return [f"{key}={format_value(value)}" for key, value in given.items()]
    return [str(text) for text in given]


def _axes(given) -> list[str]:
    """`axes=` as the command line's axis texts: "key=values", a list of them, or a mapping
    {key: a list of values, or the values' text}."""
    if given is None:
        return []
    if isinstance(given, str):
        return [given]
    if isinstance(given, Mapping):
        return [f"{key}={values}" if isinstance(values, str)
                else f"{key}={','.join(format_value(v) for v in values)}"
                if isinstance(values, (list, tuple, range)) else f"{key}={format_value(values)}"
                for key, values in given.items()]
    return [str(text) for text in given]


def _seed_text(seeds) -> str | None:
    """`seeds=` as --seeds text: "1,5,9", or any iterable of seeds."""
    if seeds is None or isinstance(seeds, str):
        return seeds
    return ",".join(str(seed) for seed in seeds)
