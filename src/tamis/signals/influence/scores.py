"""Influence of each candidate on each seed example / seed batch, with one documented sign.

    influence(candidate, seed) = g_seed^T H^-1 g_candidate

POSITIVE means "training on this candidate lowers the seed loss": a (preconditioned) gradient step
theta <- theta - eta H^-1 g_cand changes the seed loss by -eta g_seed^T H^-1 g_cand to first order.
This is the opposite sign of Koh & Liang's I_up,loss and of G-DIG's code (where negative is
beneficial). With H = I it is TracIn (one checkpoint) / LESS without Adam preconditioning or cosine.

Seed batches: G-DIG averages the loss over a seed batch (2 examples); by linearity the influence on a
batch is the mean of the influences on its members, so per-seed scores are computed once and
aggregated. The scale is arbitrary (depends on damping and projection); compare scores, not values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tamis.signals.influence.projection import CountSketch


def seed_features(grads: Sequence[torch.Tensor], projection: CountSketch, preconditioner: Any = None,
                  damping: float | None = None, strategy: str | None = None) -> np.ndarray:
    """Projected H^-1 g_seed (or g_seed when preconditioner is None), one row per seed example."""
    if preconditioner is not None:
        grads = preconditioner.precondition(grads, damping=damping, strategy=strategy)
    return projection(grads).double().cpu().numpy()


def influence_scores(candidate_features: np.ndarray, seed_feats: np.ndarray) -> np.ndarray:
    """(N candidates, S seeds) matrix of g_seed^T H^-1 g_cand (positive = helpful)."""
    return candidate_features.astype(np.float64) @ seed_feats.astype(np.float64).T


def seed_batches(n_seeds: int, batch_size: int) -> list[list[int]]:
    """Consecutive seed batches (the last may be smaller)."""
    size = max(1, batch_size)
    return [list(range(s, min(s + size, n_seeds))) for s in range(0, n_seeds, size)]


def per_batch(scores: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
    """(N, n_batches): the influence on each seed batch's mean loss."""
    return np.stack([scores[:, list(b)].mean(axis=1) for b in batches], axis=1)


def summary_columns(batch_scores: np.ndarray, prefix: str = "influence") -> dict[str, np.ndarray]:
    """The per-candidate columns selection works from."""
    return {
        f"{prefix}_mean": batch_scores.mean(axis=1),
        f"{prefix}_min": batch_scores.min(axis=1),
        f"{prefix}_n_positive": (batch_scores > 0).sum(axis=1),
    }
