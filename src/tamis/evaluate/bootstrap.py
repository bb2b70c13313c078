"""Bootstrap confidence intervals: every reported figure comes with its uncertainty.

Percentile bootstrap over examples (resampled with replacement, seeded). ``statistic`` receives the
resampled index array, so corpus-level metrics (BLEU over a resampled corpus, AUROC over resampled
labels and scores) use the same routine as plain means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


def bootstrap(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic on all n items, and its percentile CI over ``n_resamples`` resamples.

    Resamples where the statistic is undefined (NaN, e.g. AUROC on one class) are skipped."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    value = float(statistic(np.arange(n)))
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Estimate(value, float("nan"), float("nan"), n)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), n)


def mean_ci(values: np.ndarray | list[float], **kwargs) -> Estimate:
    """Mean of per-example values with a bootstrap CI (NaN values ignored)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return bootstrap(len(arr), lambda idx: float(arr[idx].mean()), **kwargs)
