"""Soft curation: per-example training weights from any registered signal, instead of a hard cut.

A hard filter throws away every example below a threshold; weighting keeps them all and lets the
better ones be seen more often. ``signal_weights`` turns a signal into weights by its rank in the
signal's own direction (the registry says whether higher is better, so the user is never asked):
the worst example gets ``floor``, the best 1, linearly in between (``power`` > 1 favours the top
more). Ranks, not raw values, so one outlying score cannot starve the rest. Training then draws its
batches with probability proportional to the weight (``WeightedRandomSampler`` with replacement, as
importance-sampled curation does), so the expected gradient is the weighted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tamis.errors import SignalError
from tamis.records import Example


def signal_weights(examples: Sequence[Example], scores: Sequence[str | Path], signal: str, *, floor: float = 0.1,
                   power: float = 1.0) -> list[float]:
    """One weight in [floor, 1] per example, by its rank on ``signal`` (read from the runs ``scores``)."""
    from tamis.signals.registry import SignalSet

    if not 0 <= floor <= 1:
        raise SignalError(f"weight floor must lie in [0, 1], got {floor}")
    signals = SignalSet.read(scores)
    spec = signals.spec(signal)  # an unknown name lists the known ones
    values = signals.values(signal)
    missing = [ex.id for ex in examples if ex.id not in values or not np.isfinite(values[ex.id])]
    if missing:
        raise SignalError(f"signal {signal!r} has no value for {len(missing)} of {len(examples)} training "
                          f"examples (e.g. {', '.join(missing[:3])}); score the same data you train on")
    better = np.array([values[ex.id] for ex in examples], dtype=float) * spec.sign
    if len(better) == 1:
        return [1.0]
    ranks = better.argsort(kind="stable").argsort(kind="stable").astype(float)
    # ties share the mean of their ranks, so equal scores get equal weights
    for value in np.unique(better):
        tied = better == value
        ranks[tied] = ranks[tied].mean()
    quantile = ranks / (len(better) - 1)
    return [float(w) for w in floor + (1 - floor) * quantile ** power]


def weight_summary(weights: Sequence[float]) -> dict[str, float]:
    """What the manifest records: the spread of the weights and the effective sample size."""
    w = np.asarray(weights, dtype=float)
    return {"min": float(w.min()), "mean": float(w.mean()), "max": float(w.max()),
            "effective_n": float(w.sum() ** 2 / (w ** 2).sum())}


def weights_fingerprint(weights: Sequence[float] | None) -> str | None:
    """A hash of the weights (None without weights): a weighted training is another training."""
    if weights is None:
        return None
    import hashlib
    import json

    return hashlib.sha256(json.dumps([round(float(w), 9) for w in weights]).encode()).hexdigest()[:16]


def example_weights(examples: Sequence[Example]) -> list[float] | None:
    """The weights a ``weight_by`` step left in the examples' meta (None when no example carries one)."""
    if not any("train_weight" in ex.meta for ex in examples):
        return None
    return [float(ex.meta.get("train_weight", 1.0)) for ex in examples]
