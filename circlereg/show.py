"""`circlereg show` and `circlereg diff`: what a run or collection is, and what differs
between two of them, read from their manifests (manifest.read) and the files their commands
wrote (config.yaml, metrics.json, summary.json, trials.csv, reproduction.json), never
guessed from folder names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from circlereg import manifest, report
from circlereg.config import ConfigError
from circlereg.grammar import flatten
from circlereg.report import cell
from circlereg.reuse import reused_from
from circlereg.rundir import read_summary, run_state
from circlereg.sweep import metric_value

COLLECTION_KINDS = ("repeats", "sweep", "comparison", "tune", "reproduction")
# metrics.json keys that are not results: how long it took, the compiled shape, the seed
NOT_METRICS = ("compiled_shape", "seed", "hidden_layers")  # and every *_seconds


def read(path: Path):
    """The manifest of a run or collection folder; a ConfigError naming the path otherwise."""

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(str(path), "", "no such folder" if not path.exists()
                          else "not a folder; give a run or collection folder")
    try:
        found = manifest.read(path)
    except ValueError as err:  # an unreadable manifest
        raise ConfigError(str(path), manifest.MANIFEST, str(err).split(": ", 1)[-1]) from None
    except (OSError, KeyError, TypeError):  # damaged old files
        found = None
    if found is None:
        raise ConfigError(str(path), "", "not a run or a collection (no manifest.json and no "
                                         "finished run's files); `circlereg list` shows what "
                                         "a runs folder holds")
    return found


def show(path: Path) -> list[str]:
    """What a run or collection is: kind, command, what it varies, its table, provenance."""

    path = Path(path)
    found = read(path)
    planned = [path / r["run"] for r in found.runs]
    done = sum(run_state(run) is None for run in planned)
    within = enclosing(path) if found.kind == "run" else None
    if within is not None:  # a run of a collection: its manifest is the collection's
        folder, outer, entry = within
        params = " ".join(f"{k}={v}" for k, v in entry["params"].items())
        found.command = outer.command
    lines = [f"{found.kind}: {path}",
             *([f"in: {outer.kind} {folder} ({entry['point']}{' ' + params if params else ''})"]
               if within is not None else []),
             f"command: {found.command or 'made from Python (no command line)'}",
             f"created: {(found.created or '-').replace('T', ' ').removesuffix('Z')}",
             f"varies: {found.describe()}",
             f"runs: {done} of {len(planned)} finished", ""]
    lines += _table(path, found)
    lines += ["", *provenance(path, found)]
    return lines


def enclosing(run: Path):
    """(folder, manifest, the run's entry) of the collection a run belongs to: the nearest
    folder above it whose manifest lists it; None for a lone run."""

    run = run.resolve()
    for folder in list(run.parents)[:3]:
        try:
            outer = manifest.read(folder) if (folder / manifest.MANIFEST).is_file() else None
        except ValueError:
            return None
        if outer is not None:
            entry = outer.entry(run.relative_to(folder).as_posix())
            return (folder, outer, entry) if entry is not None else None
    return None


def _table(path: Path, found) -> list[str]:

    if found.kind == "run":
        metrics = _metrics(path)
        config = _config(path)
        return [f"config: {config.get('name', '-')}, seed {metrics.get('seed')}",
                *(f"{key}: {_value(value)}" for key, value in _flat_metrics(metrics).items())]
    if (path / "summary.json").is_file():
        rows = json.loads((path / "summary.json").read_text())["points"]
        return report.summary_table(rows)
    if found.kind == "tune" and (path / "trials.csv").is_file():
        return _tune_table(path)
    if found.kind == "reproduction" and (path / "reproduction.json").is_file():
        return _reproduction_table(path)
    return ["no summary yet (interrupted before its summary was written)"]


def _tune_table(path: Path) -> list[str]:

    rows = read_summary(path / "trials.csv")
    if not rows:
        return ["no trials"]
    header = list(rows[0])
    body = [[row[k] for k in header] for row in rows]
    return report.aligned(header, body, [False] * len(header))


def _reproduction_table(path: Path) -> list[str]:

    verdict = json.loads((path / "reproduction.json").read_text())
    header = ["convention", "model", "figure", "published", "measured [95% CI]", "verdict"]
    body = [[r["convention"], r["model"], r["metric"],
             "-" if r["published"] is None else f"{r['published']}%",
             f"{r['mean']:.3f} [{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]",
             r.get("verdict", "-")] for r in verdict["figures"]]
    body += [[c["convention"], "claim", c["statement"], "", f"p = {c['p_value']:.2g}",
              c["verdict"]] for c in verdict["claims"]]
    return [*report.aligned(header, body, [False] * len(header)),
            f"reproduces: {'yes' if verdict['reproduces'] else 'no'}"]


def provenance(path: Path, found) -> list[str]:
    """Where the runs came from: trained here or reused (reused.json), the software, the
    config's repository commit."""

    runs = [path / r["run"] for r in found.runs]
    sources = [reused_from(run) for run in runs]
    reused = [s for s in sources if s is not None]
    lines = ["provenance:"]
    if found.kind == "run":
        lines.append(f"  reused from {reused[0]} (reused.json)" if reused
                     else "  trained here")
    else:
        lines.append(f"  {len(runs) - len(reused)} runs trained here, {len(reused)} reused "
                     "from runs trained before (reused.json)")
        for source in sorted({str(Path(s).parent.parent) for s in reused})[:5]:
            lines.append(f"    from {source}")
    first = next((run for run in runs if (run / "environment.json").is_file()), None)
    if first is not None:
        environment = json.loads((first / "environment.json").read_text())
        git = environment.get("git") or {}
        lines.append(f"  software: {report.software(environment)}")
        lines.append(f"  machine: {report.machine(environment)}")
        if git.get("commit"):
            lines.append(f"  config repository: {git['commit'][:12]}"
                         + (" (dirty)" if git.get("dirty") else ""))
    return lines


def diff(a: Path, b: Path) -> list[str]:
    """The config keys and metrics that differ between two runs or two collections, one line
    each (`key: A -> B`); a ConfigError when one is a run and the other a collection."""
    a, b = Path(a), Path(b)
    found_a, found_b = read(a), read(b)
    runs = [found.kind == "run" for found in (found_a, found_b)]
    if runs[0] != runs[1]:
        raise ConfigError(str(b), "", f"is a {found_b.kind} and {a} a {found_a.kind}; diff "
                                      "compares two runs or two collections")
    if runs[0]:
        sections = [("config", _flat(_config(a)), _flat(_config(b))),
                    ("metrics", _flat_metrics(_metrics(a)), _flat_metrics(_metrics(b)))]
    else:
        labels = [{_label(found, p.get("point")) for p in found.points}
                  for found in (found_a, found_b)]
        shared = labels[0] & labels[1]
        sections = [("collection", _collection(found_a), _collection(found_b)),
                    ("points", {k: "present" for k in labels[0] - shared},
                     {k: "present" for k in labels[1] - shared}),
                    *((title, _within(left, shared), _within(right, shared))
                      for title, left, right in (
                          ("config", _point_configs(found_a), _point_configs(found_b)),
                          ("metrics", _point_metrics(a, found_a),
                           _point_metrics(b, found_b))))]
    lines = []
    for title, left, right in sections:
        changed = [f"  {key}: {_value(left.get(key, '(none)'))} -> "
                   f"{_value(right.get(key, '(none)'))}"
                   for key in sorted(left.keys() | right.keys(), key=_natural)
                   if not _same(left.get(key), right.get(key))]
        if changed:
            lines += [f"{title}:", *changed]
    return lines or [f"no config key or metric differs between {a} and {b}"]


def _within(flat: dict, labels: set[str]) -> dict:
    """The entries of the points both collections have (`<label>: <key>`)."""
    return {k: v for k, v in flat.items() if k.rsplit(": ", 1)[0] in labels}


def _config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text()) or {}


def _metrics(run: Path) -> dict:
    path = run / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _flat(document: dict) -> dict:

    # An empty list (no regularizers) against a filled one shows as the filled one's keys.
    return {k: v for k, v in flatten(document).items() if v != []}


def _flat_metrics(metrics: dict) -> dict:
    """metrics.json's results, hidden layers averaged as the summaries average them."""

    flat = {k: v for k, v in metrics.items()
            if k not in NOT_METRICS and not k.endswith("_seconds")}
    if metrics.get("hidden_layers"):
        for name in ("zero_fraction", "mean_activation"):
            flat[name] = metric_value(metrics, name)
    return flat


def _collection(found) -> dict:
    """What a collection is, flattened: kind, what it varies, its seeds."""
    return {"kind": found.kind, "seeds": found.seeds,
            **{f"varies.{axis['key']}": axis["values"] for axis in found.varies}}


def _point_configs(found) -> dict:
    """Each point's resolved config, flattened under its name (the point's params: a
    config name or key=value); for collections that record no configs, nothing."""
    flat = {}
    for entry in found.points:
        label = _label(found, entry.get("point"))
        flat.update({f"{label}: {k}": v for k, v in _flat(entry.get("config") or {}).items()
                     if k != "name"})
    return flat


def _point_metrics(folder: Path, found) -> dict:
    """Each point's summary statistics (means), under its label."""
    summary = folder / "summary.json"
    if not summary.is_file():
        return {}
    rows = json.loads(summary.read_text())["points"]
    flat = {}
    for row in rows:
        label = _label(found, row["point"])
        flat.update({f"{label}: {k}": v for k, v in row.items()
                     if k.endswith(("_mean", "_verdict")) or k in ("n", "n_diverged")})
    return flat


def _label(found, point: str | None) -> str:
    """A point by what it varies (`config=l1_pre_relu`, `l1=0.0001 placement=...`), so
    points of two collections pair by value, not by position."""
    entry = next((r for r in found.runs if r.get("point") == point), None)
    params = (entry or {}).get("params") or {}
    if not params:
        return str(point)

    return " ".join(f"{k}={cell(v)}" for k, v in params.items())


def _same(left, right) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return round(left, 6) == round(right, 6) or (math.isnan(left) and math.isnan(right))
    return left == right


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _natural(key: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in key.replace(": ", ".").split(".")]


def run_lines(runs_dir: Path, rows: list[dict]) -> list[str]:
    """`circlereg list --runs`: one line per run of the runs directory's index (its rows):
    where it is, what its point varies, its seed, accuracies, and where it was reused from."""
    lines = []
    for row in rows:
        params = ", ".join(f"{k}={cell(v)}" for k, v in json.loads(row["params"]).items())
        where = " ".join(x for x in (row["kind"], row["point"] or "", params) if x)
        test = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.3f}"
        train = "-" if row["train_accuracy"] is None else f"{row['train_accuracy']:.3f}"
        reused = f"  (reused from {row['reused_from']})" if row["reused_from"] else ""
        lines.append(f"{Path(runs_dir) / row['folder']}  {where}  seed {row['seed']}  "
                     f"train {train}  test {test}{reused}")
    return lines
