"""The one report writer: every collection's Markdown report (a sweep's or comparison's
report.md, a tune's tune.md, a reproduction's reproduction.md) and the summary table the
commands print are made here, from what the folder holds.

A report says how it was made (the command), what it found (the table, with each point's
interval, its difference from the reference and the verdict), links its figures and names
the software and machine that trained it (a run's environment.json, which its worker wrote:
this process loads no TensorFlow for it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from circlereg import manifest, stats
from circlereg.reuse import reused_from
from circlereg.rundir import atomic_write

REPORT = "report.md"


def write(path: Path, lines: list[str]) -> str:
    """Write a report (by rename, so no reader sees half of one); returns its text."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    atomic_write(path, text)
    return text


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    """
    >>> print("\\n".join(markdown_table(["a", "b"], [["1", "2"]])))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cells) + " |" for cells in body)]


def figure_links(folder: Path) -> list[str]:
    """Every PNG in the folder, as a Markdown image under its name."""
    return [f"![{p.stem}]({p.name})" for p in sorted(Path(folder).glob("*.png"))]


def run_environment(run: Path) -> dict:
    """What every run of a collection shares (versions, machine, the installed Keras'
    conventions), from a run's environment.json: its workers probed them, so this process
    loads no TensorFlow for it. (Every replica has the same identity facts, reused or not.)"""
    environment = json.loads((Path(run) / "environment.json").read_text())
    return {k: v for k, v in environment.items()
            if k not in ("config_source", "git", "execution")}


def software(environment: dict) -> str:
    """
    >>> software({"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.3.0",
    ...           "scikit_learn": "1.7.2", "python": "3.11.2"})
    'TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.3.0, scikit-learn 1.7.2, Python 3.11.2'
    """
    return (f"TensorFlow {environment['tensorflow']}, Keras {environment['keras']}, "
            f"NumPy {environment['numpy']}, scikit-learn {environment['scikit_learn']}, "
            f"Python {environment['python']}")


def machine(environment: dict) -> str:
    return ", ".join(str(environment[key]) for key in ("platform", "cpu")
                     if environment.get(key))


# The summary table: `circlereg sweep`/`compare` print it aligned, report.md and `show` too.

def summary_cells(rows: list[dict]) -> tuple[list[str], list[list[str]], list[bool]]:
    """A sweep's summary rows as (header, body, right-aligned per column): the point, its
    swept values (each headed by the shortest unambiguous end of its key), the finished
    seeds, train and test accuracy as mean ± sd, then for each compared metric its paired
    difference from the reference [95% CI], Holm-corrected p and verdict; a `diverged`
    column only when a run diverged. Rows of a summary written before comparisons existed
    get no comparison columns."""
    names = list(rows[0])
    keys = names[1:names.index("n")]  # a row is point, the swept values, n, ...
    compared = [name.removesuffix("_verdict") for name in names if name.endswith("_verdict")]
    against = _reference_label(rows)
    header = ["point", *short_names(keys), "n", "train (mean ± sd)", "test (mean ± sd)"]
    numeric = [False, *(all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool)
                            for r in rows) for k in keys), True, False, False]
    body = [[row["point"], *(cell(row[k]) for k in keys), str(row["n"]),
             spread(row, "train_accuracy"), spread(row, "test_accuracy")] for row in rows]
    for metric in compared:
        if metric != "test_accuracy":
            header.append(f"{metric} (mean ± sd)")
            numeric.append(False)
            for cells, row in zip(body, rows):
                cells.append(spread(row, metric))
        header += [f"{'' if metric == 'test_accuracy' else metric + ' '}vs {against} [95% CI]",
                   "p (Holm)", "verdict"]
        numeric += [False, True, False]
        for cells, row in zip(body, rows):
            cells += _judged(row, metric)
    if any(row["n_diverged"] for row in rows):
        header.append("diverged")
        numeric.append(True)
        body = [cells + [str(row["n_diverged"])] for cells, row in zip(body, rows)]
    return header, body, numeric


def aligned(header: list[str], body: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) if right else cell.ljust(w)
                      for cell, w, right in zip(line, widths, numeric)).rstrip()
            for line in [header, *body]]


def summary_table(rows: list[dict]) -> list[str]:
    """The summary as the terminal shows it: aligned columns, then what the comparison
    columns are, wrapped at 100 characters."""
    import textwrap

    note = comparison_note(rows)
    return aligned(*summary_cells(rows)) + (textwrap.wrap(note, 100) if note else [])


def comparison_note(rows: list[dict]) -> str | None:
    """What the comparison columns are, in one line; None when the rows have none."""
    compared = [k.removesuffix("_verdict") for k in rows[0] if k.endswith("_verdict")]
    if not compared:
        return None
    reference = next(r for r in rows if r[f"{compared[0]}_verdict"] == "reference")
    judged = sum(_finite(r[f"{compared[0]}_p_holm"]) for r in rows)
    named = f" ({reference['config']})" if "config" in reference else ""
    metrics = "test accuracy" + "".join(f", {m}" for m in compared[1:])
    return (f"vs {reference['point']}{named}: {metrics} minus the reference's, mean over the "
            f"seeds both share [95% t interval]; p: {stats.TEST}, Holm-corrected over "
            f"{judged} point{'s' if judged != 1 else ''}; verdict at p < {stats.ALPHA}, "
            f"none under {stats.MIN_SHARED} shared seeds")


def _reference_label(rows: list[dict]) -> str:
    verdicts = [k for k in rows[0] if k.endswith("_verdict")]
    reference = next((r for r in rows if verdicts and r[verdicts[0]] == "reference"), rows[0])
    return str(reference.get("config", reference["point"]))


def _judged(row: dict, metric: str) -> list[str]:
    if row[f"{metric}_verdict"] == "reference":
        return ["reference", "", ""]
    diff, low, high = (row[f"{metric}_{c}"] for c in ("diff", "diff_ci95_low",
                                                      "diff_ci95_high"))
    p = row[f"{metric}_p_holm"]
    interval = f" [{signed(low)}, {signed(high)}]" if _finite(low) else ""
    return [(signed(diff) + interval) if _finite(diff) else "-",
            f"{p:.2g}" if _finite(p) else "-", row[f"{metric}_verdict"]]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def signed(value: float) -> str:
    return f"{value:+.3f}" if abs(value) < 100 else f"{value:+.0f}"


def short_names(keys: list[str]) -> list[str]:
    """The shortest dotted ends that tell the keys apart: model.dropout.0.rate -> rate."""
    for depth in range(1, max((k.count(".") + 1 for k in keys), default=1) + 1):
        names = [".".join(k.split(".")[-depth:]) for k in keys]
        if len(set(names)) == len(names):
            return names
    return keys


def cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def spread(row: dict, statistic: str) -> str:
    mean, std = row.get(f"{statistic}_mean"), row.get(f"{statistic}_std")
    if not _finite(mean):  # no finished run: NaN (null in summary.json)
        return "-"
    return f"{mean:.3f} ± {std:.3f}"


def _interval(row: dict, statistic: str) -> str:
    mean, low, high = (row.get(f"{statistic}_{k}") for k in ("mean", "ci95_low", "ci95_high"))
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if _finite(mean) else "-"


def write_collection(folder: Path) -> str:
    """report.md of a sweep, comparison or repeats folder, from its manifest, summary.json,
    figures and a run's environment.json."""

    found = manifest.read(folder)
    summary = json.loads((folder / "summary.json").read_text())
    rows = summary["points"]
    title = {"comparison": "Comparison", "repeats": "Repeats"}.get(found.kind, "Sweep")
    lines = [f"# {title} {folder.parent.name}: {summary['status']}", "",
             f"- command: {command(found)}",
             f"- varies: {found.describe()}",
             f"- runs: {summary['runs_finished']} of {summary['runs_planned']} finished"
             + reuse_note(folder, found), ""]
    header, body, _ = summary_cells(rows)
    # The report gives the test accuracy's 95% interval where the terminal gives its sd.
    at = header.index("test (mean ± sd)")
    header[at] = "test mean [95% CI]"
    for cells, row in zip(body, rows):
        cells[at] = _interval(row, "test_accuracy")
    lines += ["## Results", "", *markdown_table(header, body), ""]
    note = comparison_note(rows)
    if note:
        lines += [f"Columns {note}.", ""]
    figures = figure_links(folder)
    if figures:
        lines += ["## Figures", "", *figures, ""]
    lines += environment_section(folder, found)
    return write(folder / REPORT, lines)


def command(found) -> str:
    return f"`{found.command}`" if found.command else "made from Python (no command line)"


def reuse_note(folder: Path, found) -> str:
    """`, 3 reused from earlier runs` when runs were placed rather than trained here."""

    reused = sum(reused_from(folder / r["run"]) is not None for r in found.runs)
    return f", {reused} reused from runs trained before (reused.json)" if reused else ""


def environment_section(folder: Path, found) -> list[str]:
    """## Environment, from the first finished run's environment.json."""
    for entry in found.runs:
        run = folder / entry["run"]
        if (run / "environment.json").is_file():
            environment = run_environment(run)
            where = machine(environment)
            return ["## Environment", "", software(environment)
                    + (f"; {where}" if where else "") + f" (from `{entry['run']}`).", ""]
    return []
