"""Plans: what every command asks to train. A plan is a list of replicas, each a resolved
config (its seed included) and the run directory it goes to, plus what each run writes.

Commands only build plans (run: one replica; run --repeats, sweep, compare: points x seeds;
reproduce: models x conventions x seeds) and hand them to `executor.execute`, which places the
replicas already trained under the runs directory (`reuse.place`), trains the others and has
`engine.writer.Writer` write each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from circlereg.config import BUILTIN_KINDS


@dataclass(frozen=True)
class Outputs:
    """What each run directory holds besides config, history, metrics and environment."""

    figures: bool = True  # accuracy.png, loss.png, decision_boundary.png
    model: bool = True  # model.keras


@dataclass(frozen=True)
class Replica:
    config: dict  # resolved, with its train.seed
    destination: Path  # its run directory
    source: str = "<config>"  # the file it came from, for error messages
    # What its point of a sweep or comparison varies (key -> value): its figures' title, in
    # place of the base config's name.
    varies: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config["train"]["seed"]


@dataclass
class Plan:
    replicas: list[Replica]
    outputs: Outputs = field(default_factory=Outputs)
    # The runs directory whose index records what trains and offers what to reuse (None:
    # neither, as for Executor.train_all); `retrain`: train every replica even so.
    runs_dir: Path | None = None
    retrain: bool = False

    def epochs(self) -> int:
        """Replica-epochs to train at most (early stopping may end some sooner)."""
        return sum(r.config["train"]["epochs"] for r in self.replicas)

    def check(self) -> None:
        """Import and try every user penalty before anything trains (ConfigError if bad).
        Without one, nothing is imported: the command's own process needs no TensorFlow,
        which its workers load."""

        seen = set()
        for replica in self.replicas:
            kinds = tuple(reg["kind"] for reg in replica.config["model"]["regularizers"])
            if (replica.source, kinds) not in seen and set(kinds) - set(BUILTIN_KINDS):
                # a user's own penalty is Keras code: only then does this load the engine
                from circlereg.engine.regularizers import check_custom_regularizers

                seen.add((replica.source, kinds))
                check_custom_regularizers(replica.config, replica.source)
