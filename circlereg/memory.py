"""Whether a config can train in this machine's memory: checked while the config is validated,
before anything trains, so a model or batch too large is one line naming the key, not a crash
an hour in.

    >>> config = {"model": {"hidden": [500]}, "train": {"batch_size": 32, "dtype": "float32"},
    ...           "data": {"n_train": 30}}
    >>> check_memory("c.yaml", config, lanes=4, tested=70, machine=16 * 10**9)  # fits
"""

from __future__ import annotations

from circlereg.errors import ConfigError

# What the compiled engine holds at once, in floats: ~8 per hidden unit of each row of a batch
# (pre-activation, activation, their gradients, dropout masks, the vectorized copies) and ~10
# per weight (weights, gradient, two optimizer moments, the carry in and out, best weights),
# for each of the LANES replicas. Measured: one full batch of 60000 rows of the 500-unit study
# net peaked at 4.8 GB, ~1 GB of it TensorFlow itself (estimate: 3.8 GB + weights).
ROW_FLOATS, WEIGHT_FLOATS = 8, 10
MEMORY_SHARE = 0.5  # of this machine's memory, that one training program may plan to use


def check_memory(source: str, config: dict, lanes: int, tested: int, machine: int) -> None:
    """Refuse, before anything trains, a model or batch whose training would not fit in
    MEMORY_SHARE of the machine's memory (`machine` bytes; 0: unknown, no check): the
    largest batch that fits is named. What grows with the data beyond the batch (the data
    themselves, a few floats per point) is not the limit; the batch is, because the engine
    takes a batch of `lanes` replicas (config.LANES) at once (the training batch, or an
    evaluation batch of the `tested` test points or the validation points, each at most
    train.batch_size rows)."""
    if not machine:
        return
    hidden = config["model"]["hidden"]
    widths = [2, *hidden, 1]
    weights = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    data, batch = config["data"], config["train"]["batch_size"]
    evaluated = data.get("n_validation") or tested
    rows = max(min(batch, data["n_train"]), min(batch, evaluated))
    floats = lanes * (8 if config["train"]["dtype"] == "float64" else 4)
    budget = machine * MEMORY_SHARE / floats  # in floats per replica
    gb = floats / 1e9

    def need(rows: int) -> float:
        return rows * sum(hidden) * ROW_FLOATS + weights * WEIGHT_FLOATS

    if need(1) > budget:
        raise ConfigError(source, "model.hidden", f"{weights} weights need about "
                          f"{need(1) * gb:.0f} GB to train {lanes} replicas at once, more "
                          f"than {MEMORY_SHARE:.0%} of this machine's {machine / 1e9:.0f} GB: "
                          f"use fewer or narrower layers")
    if need(rows) > budget:
        fits = int((budget - weights * WEIGHT_FLOATS) // (sum(hidden) * ROW_FLOATS))
        raise ConfigError(source, "train.batch_size",
                          f"a batch of {rows} points needs about {need(rows) * gb:.0f} GB to "
                          f"train {lanes} replicas at once, more than {MEMORY_SHARE:.0%} of "
                          f"this machine's {machine / 1e9:.0f} GB: at most {fits} points fit, "
                          f"got {batch}")
