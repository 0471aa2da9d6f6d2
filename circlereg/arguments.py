"""The command line's arguments and options, each declared once (its metavar and help) for
every command that takes it: the same argument reads the same everywhere (NAME|PATH,
KEY=VALUE, N, PATH). No TensorFlow here: `--help` reads only this and cli.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


class _Argument(typer.core.TyperArgument):
    """An argument as click writes one: NAME|PATH, [PATH], KEY=VALUES... Typer 0.29 writes a
    required one as {NAME|PATH} and adds its Python type (<list[Path]>) beside the metavar."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    _rich_display_name = _usage_display_name

    def display_type_rich(self, ctx) -> None:
        return None


# typer builds every argument from this name; the help text is the only thing that changes
typer.main.TyperArgument = _Argument

CONFIG_HELP = ("A YAML config file, or the name of a shipped config (circlereg configs lists "
               "them), e.g. l1_pre_relu.")
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
             help="Override a config key, e.g. --set train.epochs=100 (repeatable; list "
                  "items by index: model.hidden.0=8).")]
SeedOption = Annotated[int | None, typer.Option(
    metavar="N", help="Training seed (overrides train.seed); with --repeats, the first seed.")]
RepeatsOption = Annotated[int | None, typer.Option(
    metavar="N", help="Train N seeds: seed .. seed+N-1, all in one batched graph.")]
SeedsOption = Annotated[str | None, typer.Option(metavar="N,N,...",
    help="Explicit seeds, e.g. 1,5,9.")]
RunsDirOption = Annotated[Path, typer.Option(metavar="PATH", help="Where run directories go.")]
FiguresOption = Annotated[bool, typer.Option(
    "--run-figures/--no-run-figures", help="Per-run PNGs in every run directory.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue the newest folder of this same work: train only missing runs.")]
WorkersOption = Annotated[int | None, typer.Option(
    metavar="N",
    help="Worker processes training at once (default: one per CPU this process may use, "
         "as many as memory holds; one Ray actor per CPU with --backend ray). Never changes "
         "a run's numbers.")]
ChunkOption = Annotated[int | None, typer.Option(
    metavar="N",
    help="Replicas a worker or Ray task takes at a time (whole batches of 4 lanes). Never "
         "changes a run's numbers.")]
BackendOption = Annotated[str, typer.Option(
    metavar="local|ray",
    help="local (this machine) or ray (each task on a Ray actor; needs Ray, the ray extra).")]
AddressOption = Annotated[str | None, typer.Option(
    metavar="HOST:PORT",
    help="Ray cluster address HOST:PORT; default: start a local Ray on 127.0.0.1.")]
ReferenceOption = Annotated[list[str] | None, typer.Option(
    "--reference", metavar="POINT",
    help="The point every other is judged against: a point (p003), a compared config's name, "
         "or KEY=VALUE of a swept key (repeatable, each narrowing it). Default: compare's "
         "first config; a sweep's first point, or its 0 point on a strength axis that holds "
         "0.")]
MetricOption = Annotated[list[str] | None, typer.Option(
    "--metric", metavar="METRIC",
    help="Judge the points on this metric of metrics.json too, besides test accuracy "
         "(repeatable): e.g. test_loss, gap, zero_fraction.")]
RetrainOption = Annotated[bool, typer.Option(
    help="Train every replica, even one already trained under --runs-dir (by default it is "
         "reused: its files placed in the new folder, never trained twice).")]
RunConfigArgument = Annotated[Path, typer.Argument(metavar="NAME|PATH", help=CONFIG_HELP)]
RunResumeOption = Annotated[bool, typer.Option(
    help="With --repeats/--seeds: continue the newest folder of these same runs.")]
SweepConfigArgument = Annotated[str | None, typer.Argument(
    metavar="NAME|PATH",
    help="Base config: a YAML file or a shipped config's name (none with --spec: the spec "
         "names it).", show_default=False)]
SweepAxesArgument = Annotated[list[str] | None, typer.Argument(
    metavar="KEY=VALUES",
    help="Swept keys: key=v1,v2 | key=choice(v1,v2) | key=range(a,b[,step]) | "
         "key=logspace(a,b,n) | key=linspace(a,b,n); values are YAML ([8,4],[16] is two "
         "lists); several form the Cartesian product (docs/grammar.md).")]
SweepSpecOption = Annotated[Path | None, typer.Option(
    "--spec", metavar="NAME|PATH",
    help="A sweep kept in a file (YAML: config, set, axes, repeats/seeds, name), or a "
         "shipped spec's name (learning_curve); every sweep folder's sweep.yaml is one. "
         "Options given with it apply on top: --set after its set, an axis replaces its "
         "axis of that key, --repeats/--seeds/--name replace its own.")]
SweepNameOption = Annotated[str | None, typer.Option(
    metavar="NAME",
    help="Sweep folder name under runs/ (default: <config name>-sweep).")]
CompareConfigsArgument = Annotated[list[Path], typer.Argument(
    metavar="NAME|PATH",
    help="Configs to put side by side: YAML files or shipped configs' names.")]
CompareNameOption = Annotated[str, typer.Option(metavar="NAME", help="Folder name under runs/.")]
ReproduceSpecOption = Annotated[Path | None, typer.Option(
    metavar="PATH",
    help="Reproduction spec (YAML); default: the study's, shipped with circlereg.",
    show_default=False)]
ReproduceSeedsOption = Annotated[int | None, typer.Option(metavar="N",
    help="Seeds per model (default: the spec's).")]
ReproduceEpochsOption = Annotated[int | None, typer.Option(metavar="N",
    help="Epochs (default: the spec's).")]
ListFolderArgument = Annotated[Path, typer.Argument(metavar="PATH",
    help="Folder to list.")]
ListEachRunOption = Annotated[bool, typer.Option(
    "--runs", help="One line per run (from the runs directory's index) instead of one "
                   "per folder.")]
ShowPathArgument = Annotated[Path, typer.Argument(
    metavar="PATH", help="A run or collection folder (sweep, comparison, repeats, tune, "
                         "reproduction).")]
DiffAArgument = Annotated[Path, typer.Argument(metavar="A", help="A run or collection folder.")]
DiffBArgument = Annotated[Path, typer.Argument(
    metavar="B", help="Another of the same sort (run or collection).")]
ValidateConfigsArgument = Annotated[list[Path], typer.Argument(
    metavar="NAME|PATH", help="Configs to check: YAML files or shipped configs' names.")]
ConfigsCopyOption = Annotated[Path | None, typer.Option(
    "--copy", metavar="DIR", show_default=False,
    help="Write the shipped configs into DIR to edit, the reproduction spec as "
         "DIR/reproduce/study.yaml; never overwrites a file.")]
ConfigsSchemaOption = Annotated[bool, typer.Option(
    "--schema", help="Print the config file's JSON Schema, for editors that check YAML "
                     "as it is typed (docs/config.md).")]
ExportTensorboardLogdirOption = Annotated[Path | None, typer.Option(
    metavar="PATH", help="Where the event files go (default: FOLDER/.tensorboard).")]
ExportMlflowExperimentOption = Annotated[str | None, typer.Option(
    metavar="NAME",
    help="MLflow experiment (default: the folder each sweep or run is in, i.e. its sweep "
         "or config name).")]
TuneConfigArgument = Annotated[Path, typer.Argument(
    metavar="NAME|PATH", help="Base config: a YAML file or a shipped config's name.")]
TuneSpaceArgument = Annotated[list[str] | None, typer.Argument(
    metavar="KEY=SPACE",
    help="Searched keys: key=uniform(a,b) | loguniform(a,b) | interval(a,b) | int(a,b) | "
         "intlog(a,b) | range(a,b[,step]) | choice(v1,v2,...) (values are YAML, e.g. "
         "[100,100]); key=value fixes a value.")]
TuneTrialsOption = Annotated[int, typer.Option(
    metavar="N", help="Trials to finish (with --resume: in all, so a larger number extends the "
         "study).")]
TuneObjectiveOption = Annotated[str, typer.Option(
    metavar="METRIC",
    help="What a trial scores, the mean over its seeds: val_accuracy, val_loss, "
         "test_accuracy, test_loss, train_accuracy, train_loss or gap. val_* are on "
         "the validation points with data.n_validation, else on the test points.")]
TuneDirectionOption = Annotated[str | None, typer.Option(
    metavar="maximize|minimize",
    help="maximize or minimize (default: maximize accuracies, minimize losses and gap).")]
TuneSamplerOption = Annotated[str, typer.Option(metavar="tpe|random|grid",
    help="tpe, random or grid.")]
TuneSamplerSeedOption = Annotated[int, typer.Option(
    metavar="N", help="Seed of the sampler: the same tune draws the same trials.")]
TuneBatchOption = Annotated[int | None, typer.Option(
    metavar="N",
    help="Trials asked and trained together (default: enough to fill every worker's "
         "lanes twice).")]
TuneNameOption = Annotated[str | None, typer.Option(
    metavar="NAME", help="Tune folder name under runs/ (default: <config name>-tune).")]
ExportFolder = Annotated[Path, typer.Argument(
metavar="PATH",
help="A runs folder (every run and sweep in it), a sweep, comparison or reproduction "
     "folder, or one run directory.")]
