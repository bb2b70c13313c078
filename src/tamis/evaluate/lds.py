"""The linear datamodeling score (LDS): does an attribution predict what retraining does?

TRAK (Park et al. 2023) and Bergson's ``validate`` check influence scores this way: train models on
M random subsets S_m of the candidates (half of them each), measure each seed example's loss under
each model, and compare with the attribution's prediction for that subset, the sum of the selected
candidates' scores, ``f(z; S_m) = sum_{i in S_m} tau(z)_i``. The LDS of seed example z is the
Spearman correlation over the M subsets between the prediction and the measured outcome; the
attribution's LDS is the mean over seed examples (a bootstrap over them gives the CI).

Sign: tamis's influence is positive when training on the candidate lowers the seed loss
(``signals/influence/scores.py``), so the outcome correlated here is the negative seed loss; a
useful attribution has LDS > 0, a random one LDS ~ 0.
"""

from __future__ import annotations

import numpy as np

from tamis.evaluate.bootstrap import Estimate, bootstrap


def subset_masks(n: int, n_subsets: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """[n_subsets, n] bool: each row a seeded random subset of round(fraction * n) candidates."""
    size = int(round(fraction * n))
    if not 1 <= size < n:
        raise ValueError(f"fraction {fraction} of {n} candidates leaves {size}; choose a subset of 1..{n - 1}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subsets, n), dtype=bool)
    for m in range(n_subsets):
        masks[m, rng.choice(n, size, replace=False)] = True
    return masks


def predicted_outcomes(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[M, S]: per subset and seed example, the sum of the subset's candidates' scores ([N, S])."""
    return masks.astype(np.float64) @ np.asarray(scores, dtype=np.float64)


def per_seed_lds(predicted: np.ndarray, seed_losses: np.ndarray) -> np.ndarray:
    """[S]: Spearman over subsets between the prediction and the negative measured seed loss
    (NaN where either is constant over the subsets)."""
    from scipy.stats import spearmanr

    out = np.full(predicted.shape[1], np.nan)
    for s in range(predicted.shape[1]):
        if np.ptp(predicted[:, s]) > 0 and np.ptp(seed_losses[:, s]) > 0:
            out[s] = spearmanr(predicted[:, s], -seed_losses[:, s]).statistic
    return out


def lds(masks: np.ndarray, scores: np.ndarray, seed_losses: np.ndarray, *, n_resamples: int = 1000,
        seed: int = 0) -> Estimate:
    """The attribution's LDS: the mean per-seed LDS with a bootstrap CI over seed examples."""
    values = per_seed_lds(predicted_outcomes(masks, scores), seed_losses)
    values = values[np.isfinite(values)]
    return bootstrap(len(values), lambda idx: float(values[idx].mean()), n_resamples=n_resamples, seed=seed)
