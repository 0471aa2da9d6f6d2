"""Folders written before manifests existed, read as manifests: the one place that knows the
old files, so every reader (resume, list, the index, the exports) sees one format.

An earlier circlereg marked a collection with `plan.json` (its runs, and for sweeps and
tunes the resolved configs) and left its kind to be guessed: `tune.yaml` made a tune,
`sweep.yaml` a sweep (a comparison when its points name configs, repeats when it has no
axes), neither a reproduction. A lone run was a folder with the run's files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath

import yaml

from circlereg.manifest import Manifest, made


def read(folder: Path) -> Manifest | None:
    """The manifest an earlier version's folder would have had; None when it is no
    collection and no complete run."""
    from circlereg.rundir import run_state

    plan = folder / "plan.json"
    if not plan.is_file():
        if run_state(folder) is not None:
            return None
        seed = json.loads((folder / "metrics.json").read_text()).get("seed")
        return Manifest("run", [{"run": ".", "point": None, "seed": seed, "params": {}}],
                        seeds=[seed] if seed is not None else [], created=made(folder),
                        legacy=True)
    try:
        body = json.loads(plan.read_text())
        planned = [str(run) for run in body["runs"]]
        if (folder / "tune.yaml").is_file() or (folder / "study.db").is_file():
            found = _tune(folder, planned)
        elif (folder / "sweep.yaml").is_file():
            found = _sweep(folder, planned)
        else:
            found = _reproduction(folder, planned)
    except (OSError, ValueError, LookupError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise ValueError(f"{plan} or its companions are unreadable: {err}") from None
    found.points = body.get("points", [])
    found.created = made(folder)
    found.legacy = True
    return found


def _seed(run: str) -> int | None:
    name = PurePosixPath(run).name
    return int(name[5:]) if name.startswith("seed_") and name[5:].isdigit() else None


def _entries(planned: list[str], params: dict[str, dict]) -> list[dict]:
    return [{"run": run, "point": PurePosixPath(run).parts[0], "seed": _seed(run),
             "params": params.get(PurePosixPath(run).parts[0], {})} for run in planned]


def _seeds(planned: list[str]) -> list[int]:
    return sorted({s for s in map(_seed, planned) if s is not None})


def _varies(points: dict[str, dict]) -> list[dict]:
    keys = list(dict.fromkeys(k for params in points.values() for k in params))
    varies = []
    for key in keys:
        values = []
        for params in points.values():
            if key in params and params[key] not in values:
                values.append(params[key])
        varies.append({"key": key, "values": values})
    return varies


def _sweep(folder: Path, planned: list[str]) -> Manifest:
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    points = {p["point"]: {k: v for k, v in p.items() if k not in ("point", "seeds")}
              for p in sweep["points"]}
    if isinstance(sweep.get("config"), list):
        kind = "comparison"
    else:
        kind = "sweep" if sweep.get("axes") else "repeats"
    spec = {k: v for k, v in sweep.items() if k != "points"}
    return Manifest(kind, _entries(planned, points), _varies(points), _seeds(planned), spec)


def _tune(folder: Path, planned: list[str]) -> Manifest:
    spec = yaml.safe_load((folder / "tune.yaml").read_text()) or {}
    trials: dict[str, dict] = {}
    if (folder / "trials.csv").is_file():
        with open(folder / "trials.csv", newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        objective = spec.get("objective")
        keys = header[2:header.index(objective)] if objective in header else []
        trials = {row[0]: {k: yaml.safe_load(row[2 + i]) for i, k in enumerate(keys)
                           if row[2 + i] != ""} for row in rows[1:]}
    varies = [{"key": text.partition("=")[0].strip(), "values": text.partition("=")[2].strip()}
              for text in spec.get("space", [])]
    return Manifest("tune", _entries(planned, trials), varies, _seeds(planned), spec)


def _reproduction(folder: Path, planned: list[str]) -> Manifest:
    """runs/<model>/seed_<n>, or runs/<model>-<convention>/seed_<n>."""
    from circlereg.reproduce import CONVENTIONS

    points = {}
    for run in planned:
        label = PurePosixPath(run).parent.name
        model, _, convention = label.rpartition("-")
        points[label] = {"model": model, "convention": convention} \
            if model and convention in CONVENTIONS else {"model": label}
    entries = [{"run": run, "point": PurePosixPath(run).parent.name, "seed": _seed(run),
                "params": points[PurePosixPath(run).parent.name]} for run in planned]
    spec = {}
    if (folder / "reproduction.json").is_file():
        spec = json.loads((folder / "reproduction.json").read_text()).get("spec", {})
    return Manifest("reproduction", entries, _varies(points), _seeds(planned), spec)
