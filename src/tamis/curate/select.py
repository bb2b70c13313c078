"""G-DIG selection: keep candidates that help the seed set (quality), then sample evenly across gradient
clusters (diversity), up to a budget. Every candidate gets a decision with its scores and a reason.

Quality rules (on per-seed-batch influence, positive = helpful):
- ``all``: positive on every seed batch (G-DIG's rule);
- ``mean``: mean influence > 0;
- ``topk``: the ``top_k`` highest mean influences (ties broken by id).
Diversity: K-means (Euclidean, scikit-learn) on the L2-normalised projected gradients of the kept
candidates; then round-robin over clusters, best mean influence first within a cluster, until the
budget is reached (G-DIG resamples evenly across clusters). No budget: every kept candidate is selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tamis.curate.decisions import Decision
from tamis.errors import ConfigError, unknown
from tamis.settings import setting, validate

RULES = ("all", "mean", "topk")
STEP = "influence_select"


@dataclass
class SelectionConfig:
    rule: str = setting("all", "Quality rule: all (positive on every seed batch), mean (> 0), topk.", choices=RULES)
    top_k: int | None = setting(None, "How many to keep with --rule topk.", range=(1, None))
    budget: int | None = setting(None, "How many to select in the end [default: all that pass].", range=(0, None))
    clusters: int = setting(8, "K-means clusters for diversity.", range=(1, None))
    seed: int = setting(0, "K-means random seed.")

    def __post_init__(self) -> None:
        validate(self)


def quality_mask(batch_scores: np.ndarray, rule: str, top_k: int | None = None, ids: Sequence[str] | None = None) -> np.ndarray:
    """Which candidates pass the quality rule."""
    if rule == "all":
        return (batch_scores > 0).all(axis=1)
    if rule == "mean":
        return batch_scores.mean(axis=1) > 0
    if rule == "topk":
        if not top_k or top_k < 1:
            raise ConfigError("rule 'topk' needs top_k >= 1")
        names = list(ids) if ids is not None else [str(i) for i in range(len(batch_scores))]
        order = sorted(range(len(batch_scores)), key=lambda i: (-batch_scores[i].mean(), names[i]))
        mask = np.zeros(len(batch_scores), dtype=bool)
        mask[order[:top_k]] = True
        return mask
    raise ConfigError(unknown("selection rule", rule, RULES))


def cluster(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """K-means labels on L2-normalised features (k is capped by the number of rows)."""
    from sklearn.cluster import KMeans

    if len(features) == 0:
        return np.zeros(0, dtype=int)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.where(norms > 0, norms, 1.0)
    k = max(1, min(k, len(features)))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(unit.astype(np.float64))


def round_robin(labels: np.ndarray, priority: np.ndarray, budget: int) -> list[int]:
    """Take one from each cluster in turn (highest priority first) until the budget is spent."""
    queues = {c: sorted(np.flatnonzero(labels == c).tolist(), key=lambda i: -priority[i]) for c in np.unique(labels)}
    picked: list[int] = []
    while len(picked) < budget and any(queues.values()):
        for c in sorted(queues):
            if queues[c] and len(picked) < budget:
                picked.append(queues[c].pop(0))
    return picked


def select(ids: Sequence[str], batch_scores: np.ndarray, features: np.ndarray, config: SelectionConfig,
           baseline: np.ndarray | None = None) -> list[Decision]:
    """One decision per candidate ("keep" or "drop"), with influence scores, cluster and reason."""
    n_batches = batch_scores.shape[1]
    mean = batch_scores.mean(axis=1)
    n_pos = (batch_scores > 0).sum(axis=1)
    keep = quality_mask(batch_scores, config.rule, config.top_k, ids)
    kept = np.flatnonzero(keep)
    labels = np.full(len(ids), -1)
    if len(kept):
        labels[kept] = cluster(features[kept], config.clusters, config.seed)
    budget = len(kept) if config.budget is None else min(config.budget, len(kept))
    chosen = set(kept[round_robin(labels[kept], mean[kept], budget)].tolist()) if len(kept) else set()
    sizes = {int(c): int((labels == c).sum()) for c in np.unique(labels[kept])} if len(kept) else {}
    taken = {c: sum(1 for i in chosen if labels[i] == c) for c in sizes}
    decisions = []
    for i, ex_id in enumerate(ids):
        scores = {"influence_mean": float(mean[i]), "influence_min": float(batch_scores[i].min()),
                  "influence_n_positive": int(n_pos[i]), "n_seed_batches": n_batches, "cluster": int(labels[i])}
        if baseline is not None:
            scores["tracin_mean"] = float(baseline[i].mean())
        if i in chosen:
            action, reason = "keep", (f"helps the seed set ({_rule_text(config, n_pos[i], n_batches, mean[i])}); "
                                        f"sampled from cluster {labels[i]} ({taken[int(labels[i])]} of {sizes[int(labels[i])]})")
        elif keep[i]:
            action, reason = "drop", (f"passes the quality rule but not sampled: budget {budget} spread over "
                                        f"{len(sizes)} clusters, cluster {labels[i]} gave {taken[int(labels[i])]} of "
                                        f"{sizes[int(labels[i])]} (higher-influence members first)")
        else:
            action, reason = "drop", f"fails the quality rule '{config.rule}': {_rule_text(config, n_pos[i], n_batches, mean[i])}"
        decisions.append(Decision(id=ex_id, action=action, reason=reason, scores=scores, step=STEP))  # type: ignore[arg-type]
    return decisions


def _rule_text(config: SelectionConfig, n_pos: int, n_batches: int, mean: float) -> str:
    if config.rule == "all":
        return f"positive influence on {n_pos}/{n_batches} seed batches"
    if config.rule == "mean":
        return f"mean influence {mean:.4g}"
    return f"mean influence {mean:.4g} (top {config.top_k} kept)"
