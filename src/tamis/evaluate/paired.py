"""Paired comparisons of study variants: is a variant better than the baseline, and by how much?

Every variant is evaluated on the same test items with the same seeds, so the honest comparison is
paired: resample the test items (and, with several seeds, the seeds) with replacement and use the
*same* resample for every variant (METHODS.md, "Evidence that holds"). Each variant's score matrix is
``(seeds, items)``; a matrix with one row (a deterministic variant such as the untuned base model) is
the same for every seed.

- ``resampled_means``: each variant's mean score on every joint resample (the one source of draws);
- ``paired_difference``: variant − baseline with its percentile CI and a two-sided p-value (twice the
  smaller share of resampled differences on either side of 0, so identical variants give p = 1);
- ``recovered_share``: (variant − noisy) / (clean − noisy), the share of the noise gap a curation
  method recovers, with its CI from the same draws;
- ``verdict``: one sentence per comparison, from the numbers only ("beats", "is worse than", or "no
  difference detected at this size"; a CI that spans 0 never reads as "equal").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

#: metrics whose per-item values are proportions in [0, 1]: differences are shown in points (x 100)
PROPORTION_METRICS = frozenset({"accuracy", "exact_match", "token_f1", "macro_f1", "correct", "win_rate"})


def resampled_means(scores: Mapping[str, np.ndarray], *, n_resamples: int = 10000, seed: int = 0,
                    chunk: int = 500) -> dict[str, np.ndarray]:
    """Each variant's mean score on ``n_resamples`` joint resamples of seeds and test items.

    ``scores[name]`` has shape (n_seeds, n_items) with the items in the same order for every
    variant; n_seeds is the same for all, or 1 (constant over seeds). Resample b draws seed rows
    s_b and item columns i_b with replacement once and applies them to every variant."""
    matrices = {name: np.atleast_2d(np.asarray(m, dtype=float)) for name, m in scores.items()}
    if not matrices:
        return {}
    n_items = {m.shape[1] for m in matrices.values()}
    if len(n_items) != 1:
        raise ValueError(f"every variant needs the same test items; item counts differ: {sorted(n_items)}")
    n_seeds = max(m.shape[0] for m in matrices.values())
    bad = [name for name, m in matrices.items() if m.shape[0] not in (1, n_seeds)]
    if bad:
        raise ValueError(f"variants {bad} have neither 1 nor {n_seeds} seeds; compare runs with the same seeds")
    (n,) = n_items
    if n == 0:
        raise ValueError("no test items to compare on")
    for name, m in matrices.items():
        if not np.isfinite(m).all():
            raise ValueError(f"variant {name!r} has missing (non-finite) item scores")
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in matrices}
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        items = rng.integers(0, n, (size, n))  # (size, n)
        # seed weights: how often each seed row is drawn, as a share (resampling seeds with replacement)
        seed_weights = np.stack([np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds)
                                 for _ in range(size)]) / n_seeds  # (size, n_seeds)
        for name, m in matrices.items():
            per_seed = m[:, items].mean(axis=2)  # (rows, size): each seed row's mean on each item resample
            if m.shape[0] == 1:
                draws[name].append(per_seed[0])
            else:
                draws[name].append((seed_weights * per_seed.T).sum(axis=1))
        done += size
    return {name: np.concatenate(parts) for name, parts in draws.items()}


@dataclass(frozen=True)
class Difference:
    """variant − baseline on one metric, from paired resamples."""

    variant: str
    baseline: str
    metric: str
    variant_mean: float
    baseline_mean: float
    diff: float
    low: float
    high: float
    p_value: float
    n_items: int
    n_seeds: int
    n_resamples: int

    @property
    def detected(self) -> bool:
        """The CI excludes 0 (at this size the data can tell the two apart)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"detected": self.detected, "verdict": verdict(self)}


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def two_sided_p(draws: np.ndarray) -> float:
    """Twice the smaller share of resampled differences at or beyond 0 on either side (capped at 1).

    Draws exactly at 0 count on both sides, so identical variants give 1 and ties never make a
    difference look significant."""
    if draws.size == 0:
        return math.nan
    return float(min(1.0, 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))))


def paired_difference(scores: Mapping[str, np.ndarray], variant: str, baseline: str, *, metric: str = "score",
                      means: Mapping[str, np.ndarray] | None = None, confidence: float = 0.95,
                      n_resamples: int = 10000, seed: int = 0) -> Difference:
    """variant − baseline with a paired-bootstrap CI and p-value (pass ``means`` to reuse draws)."""
    if means is None:
        means = resampled_means({variant: scores[variant], baseline: scores[baseline]},
                                n_resamples=n_resamples, seed=seed)
    v, b = np.atleast_2d(np.asarray(scores[variant], float)), np.atleast_2d(np.asarray(scores[baseline], float))
    draws = means[variant] - means[baseline]
    low, high = _interval(draws, confidence)
    return Difference(variant=variant, baseline=baseline, metric=metric, variant_mean=float(v.mean()),
                      baseline_mean=float(b.mean()), diff=float(v.mean() - b.mean()), low=low, high=high,
                      p_value=two_sided_p(draws), n_items=v.shape[1], n_seeds=max(v.shape[0], b.shape[0]),
                      n_resamples=int(draws.size))


@dataclass(frozen=True)
class RecoveredShare:
    """(variant − noisy) / (clean − noisy): 0 = no better than the noisy data, 1 = as good as clean."""

    variant: str
    share: float
    low: float
    high: float
    gap: float  # clean − noisy on all items: the share is only meaningful when this gap is detected
    gap_detected: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def recovered_share(scores: Mapping[str, np.ndarray], variant: str, noisy: str, clean: str,
                    means: Mapping[str, np.ndarray], confidence: float = 0.95) -> RecoveredShare:
    """The share of the noisy-to-clean gap a variant recovers, with a CI from the same joint resamples
    (resamples where the gap is not positive are left out of the CI, which is then wide or NaN)."""
    mean = {k: float(np.mean(scores[k])) for k in (variant, noisy, clean)}
    gap = mean[clean] - mean[noisy]
    gap_draws = means[clean] - means[noisy]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(gap_draws > 0, (means[variant] - means[noisy]) / gap_draws, np.nan)
    low, high = _interval(draws, confidence)
    gap_low, gap_high = _interval(gap_draws, confidence)
    share = (mean[variant] - mean[noisy]) / gap if gap > 0 else math.nan
    return RecoveredShare(variant, share, low, high, gap, bool(gap_low > 0 or gap_high < 0))


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, " points") if metric in PROPORTION_METRICS else (1.0, "")


def format_p(p: float, n_resamples: int) -> str:
    """p with its resolution: no resample on the other side of 0 reads 'p < 1/n_resamples'."""
    if not math.isfinite(p):
        return "p = n/a"
    floor = 2 / max(1, n_resamples)
    if p < floor:
        return f"p < {floor:.2g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def verdict(d: Difference) -> str:
    """One sentence from the numbers: beats / is worse than / no difference detected at this size."""
    factor, unit = _scale(d.metric)
    diff, low, high = d.diff * factor, d.low * factor, d.high * factor
    size = f"{d.metric}, {d.n_items} test items x {d.n_seeds} seed{'s' if d.n_seeds != 1 else ''}"
    stats = f"{diff:+.1f}{unit} [{low:+.1f}, {high:+.1f}], {format_p(d.p_value, d.n_resamples)}"
    if d.detected and d.diff > 0:
        return f"{d.variant} beats {d.baseline} by {stats} ({size})"
    if d.detected and d.diff < 0:
        return f"{d.variant} is worse than {d.baseline} by {stats} ({size})"
    return f"{d.variant} vs {d.baseline}: no difference detected at this size ({stats}; {size})"
