"""G-DIG selection: keep candidates that help the seed set (quality), then sample evenly across gradient
clusters (diversity), up to a budget. Every candidate gets a decision with its scores and a reason.

Quality rules (on per-seed-batch influence, positive = helpful):
- ``all``: positive on every seed batch (G-DIG's rule);
- ``mean``: mean influence > 0;
- ``topk``: the ``top_k`` highest mean influences (ties broken by id).
Diversity: K-means (Euclidean, scikit-learn) on the L2-normalised projected gradients of the kept
candidates; then round-robin over clusters, best mean influence first within a cluster, until the
budget is reached (G-DIG resamples evenly across clusters). No budget: every kept candidate is selected.

Per label (``per_label``, for classification as generation): the influence of a candidate is compared with
the median of the candidates that give the same response (its label) on each seed batch, and the budget is
split over the labels in proportion to their candidates (largest remainder), with clusters and round-robin
inside each label. A model that favours one label gives every candidate of that label a positive offset
(measured on the gdig-spam study: every "no" row helped the seed set on average, every "yes" row hurt it,
so the plain rule kept one label); comparing within a label removes the offset, as confident learning's
per-label thresholds do. It does not make the scores better detectors: on a second draw of that study the
influence ranked wrong labels as more helpful, and per-label selection lost to raw (docs/RESULTS.md).
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
    per_label: bool = setting(False, "Apply the rule and split the budget within each label (the candidates' "
                              "response), influence relative to the label's median: for classification data, "
                              "where a model's label bias shifts every candidate of a label the same way.")

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


def centre_by_label(batch_scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Each candidate's per-seed-batch influence minus the median over the candidates with its label."""
    labels = np.asarray(labels, dtype=object)
    out = np.empty_like(batch_scores, dtype=np.float64)
    for lab in dict.fromkeys(labels.tolist()):
        rows = labels == lab
        out[rows] = batch_scores[rows] - np.median(batch_scores[rows], axis=0, keepdims=True)
    return out


def split_budget(budget: int, sizes: dict[str, int], room: dict[str, int]) -> dict[str, int]:
    """``budget`` over groups in proportion to ``sizes`` (largest remainder), none above its ``room``;
    what a full group cannot take goes to the others."""
    total = sum(sizes.values())
    exact = {g: budget * n / total if total else 0.0 for g, n in sizes.items()}
    share = {g: min(int(v), room[g]) for g, v in exact.items()}
    for g in sorted(exact, key=lambda g: (-(exact[g] - int(exact[g])), g)):  # largest remainder first
        if sum(share.values()) >= budget:
            break
        if share[g] < room[g]:
            share[g] += 1
    while sum(share.values()) < budget and any(share[g] < room[g] for g in share):
        for g in sorted(share, key=lambda g: (-(room[g] - share[g]), g)):
            if share[g] < room[g] and sum(share.values()) < budget:
                share[g] += 1
    return share


def select(ids: Sequence[str], batch_scores: np.ndarray, features: np.ndarray, config: SelectionConfig,
           baseline: np.ndarray | None = None, labels: Sequence[str] | None = None) -> list[Decision]:
    """One decision per candidate ("keep" or "drop"), with influence scores, cluster and reason.
    ``labels`` (each candidate's response) is needed with ``config.per_label``."""
    n_batches = batch_scores.shape[1]
    raw_mean, raw_min = batch_scores.mean(axis=1), batch_scores.min(axis=1)
    if config.per_label:
        if labels is None or len(labels) != len(ids):
            raise ConfigError("per_label selection needs each candidate's label (its response)")
        groups = [str(x) for x in labels]
        if len(set(groups)) > max(1, len(groups) // 2):
            raise ConfigError(f"per_label selection is for classification data: {len(set(groups))} distinct "
                              f"responses among {len(groups)} candidates leave no label to compare within")
        batch_scores = centre_by_label(batch_scores, groups)
    else:
        groups = [""] * len(ids)
    mean = batch_scores.mean(axis=1)
    n_pos = (batch_scores > 0).sum(axis=1)
    keep = quality_mask(batch_scores, config.rule, config.top_k, ids)
    names = list(dict.fromkeys(groups))
    in_group = {g: np.flatnonzero(np.asarray(groups, dtype=object) == g) for g in names}
    kept_in = {g: idx[keep[idx]] for g, idx in in_group.items()}
    n_kept = int(keep.sum())
    budget = n_kept if config.budget is None else min(config.budget, n_kept)
    shares = split_budget(budget, {g: len(in_group[g]) for g in names}, {g: len(kept_in[g]) for g in names})
    clusters = np.full(len(ids), -1)
    chosen: set[int] = set()
    for g in names:
        kept = kept_in[g]
        if len(kept):
            clusters[kept] = cluster(features[kept], config.clusters, config.seed)
            chosen |= set(kept[round_robin(clusters[kept], mean[kept], shares[g])].tolist())
    size = {(g, int(c)): int((clusters[kept_in[g]] == c).sum()) for g in names for c in np.unique(clusters[kept_in[g]])}
    taken = {key: sum(1 for i in chosen if (groups[i], int(clusters[i])) == key) for key in size}
    decisions = []
    for i, ex_id in enumerate(ids):
        scores = {"influence_mean": float(raw_mean[i]), "influence_min": float(raw_min[i]),
                  "influence_n_positive": int(n_pos[i]), "n_seed_batches": n_batches, "cluster": int(clusters[i])}
        if config.per_label:
            scores["influence_vs_label_median"] = float(mean[i])
        if baseline is not None:
            scores["tracin_mean"] = float(baseline[i].mean())
        where = f"label {groups[i]!r}, " if config.per_label else ""
        key = (groups[i], int(clusters[i]))
        if i in chosen:
            action, reason = "keep", (f"helps the seed set ({_rule_text(config, n_pos[i], n_batches, mean[i])}); "
                                        f"sampled from {where}cluster {clusters[i]} ({taken[key]} of {size[key]})")
        elif keep[i]:
            n_clusters = sum(1 for g, _ in size if g == groups[i])
            spread = f"{shares[groups[i]]} of budget {budget} for label {groups[i]!r}" if config.per_label else f"budget {budget}"
            action, reason = "drop", (f"passes the quality rule but not sampled: {spread} spread over "
                                        f"{n_clusters} clusters, cluster {clusters[i]} gave {taken[key]} of "
                                        f"{size[key]} (higher-influence members first)")
        else:
            action, reason = "drop", f"fails the quality rule '{config.rule}': {_rule_text(config, n_pos[i], n_batches, mean[i])}"
        decisions.append(Decision(id=ex_id, action=action, reason=reason, scores=scores, step=STEP))  # type: ignore[arg-type]
    return decisions


def _rule_text(config: SelectionConfig, n_pos: int, n_batches: int, mean: float) -> str:
    if config.rule == "all":
        what = "higher than its label's median" if config.per_label else "positive influence"
        return f"{what} on {n_pos}/{n_batches} seed batches"
    text = f"mean influence {mean:.4g}" + (" relative to its label's median" if config.per_label else "")
    return text if config.rule == "mean" else f"{text} (top {config.top_k} kept)"
