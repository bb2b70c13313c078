"""How well a score detects known-bad examples: AUROC, AUPRC, and a filter's precision/recall.

Scores are "higher = better example" (pass ``higher_is_better=False`` for IFD-like scores); bad
examples are the positives. AUROC 0.5 is chance; AUPRC's chance level is the share of bad examples
(reported as ``base_rate``). Every figure carries a percentile-bootstrap 95% CI over examples.

Length is the confounder to rule out first: when wrong answers are longer (or shorter) than right
ones, any score that tracks length looks like a detector. Given each example's response length,
``evaluate_signals`` adds the length-only baseline (AUROC of "longer = worse"; below 0.5: shorter is
worse) and, for every signal, a length-matched AUROC: bad and good examples are compared only within
the same length decile (the pairs of each stratum pooled), so a signal that only knows length
scores 0.5 there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.evaluate.bootstrap import bootstrap


def _two_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < len(y)


def detection_metrics(scores: list[float] | np.ndarray, bad: list[bool] | np.ndarray, *,
                      higher_is_better: bool = True, flagged: list[bool] | np.ndarray | None = None,
                      n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUROC/AUPRC of the score for flagging bad examples (+ precision/recall of ``flagged``)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(bad, dtype=int)
    if s.shape != y.shape:
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    risk = -s if higher_is_better else s
    out: dict[str, Any] = {"n": int(len(s)), "n_bad": int(y.sum()), "n_missing_score": int((~keep).sum()),
                           "base_rate": float(y.mean()) if len(y) else float("nan")}
    if not _two_classes(y):
        out["error"] = "needs both bad and good examples with scores"
        return out
    from sklearn.metrics import average_precision_score, roc_auc_score  # here: the CLI starts without sklearn

    def auroc(idx: np.ndarray) -> float:
        return float(roc_auc_score(y[idx], risk[idx])) if _two_classes(y[idx]) else float("nan")

    def auprc(idx: np.ndarray) -> float:
        return float(average_precision_score(y[idx], risk[idx])) if _two_classes(y[idx]) else float("nan")

    kw = {"n_resamples": n_resamples, "seed": seed}
    out["auroc"] = bootstrap(len(s), auroc, **kw).to_dict()
    out["auprc"] = bootstrap(len(s), auprc, **kw).to_dict()
    if flagged is not None:
        f = np.asarray(flagged, dtype=bool)[keep]

        def precision(idx: np.ndarray) -> float:
            return float(y[idx][f[idx]].mean()) if f[idx].any() else float("nan")

        def recall(idx: np.ndarray) -> float:
            return float(f[idx][y[idx] == 1].mean()) if (y[idx] == 1).any() else float("nan")

        out["n_flagged"] = int(f.sum())
        out["precision"] = bootstrap(len(s), precision, **kw).to_dict()
        out["recall"] = bootstrap(len(s), recall, **kw).to_dict()
    return out


def length_strata(lengths: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """The length decile (by default) of each example: ties never straddle a boundary."""
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, lengths, side="right")


def stratified_auroc(risk: np.ndarray, y: np.ndarray, strata: np.ndarray) -> float:
    """AUROC over (bad, good) pairs from the same stratum only (ties count half); NaN without such pairs."""
    concordant, pairs = 0.0, 0
    for stratum in np.unique(strata):
        inside = strata == stratum
        bad_risk, good_risk = risk[inside & (y == 1)], risk[inside & (y == 0)]
        if not len(bad_risk) or not len(good_risk):
            continue
        diff = bad_risk[:, None] - good_risk[None, :]
        concordant += float((diff > 0).sum() + 0.5 * (diff == 0).sum())
        pairs += diff.size
    return concordant / pairs if pairs else float("nan")


def length_matched_auroc(scores: np.ndarray, bad: np.ndarray, lengths: np.ndarray, *, higher_is_better: bool = True,
                         n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The score's AUROC with bad and good examples compared only within a length decile, with a CI."""
    s, y, n = np.asarray(scores, dtype=float), np.asarray(bad, dtype=int), np.asarray(lengths, dtype=float)
    keep = np.isfinite(s)
    s, y, n = s[keep], y[keep], n[keep]
    risk = -s if higher_is_better else s
    strata = length_strata(n)
    return bootstrap(len(s), lambda idx: stratified_auroc(risk[idx], y[idx], strata[idx]), n_resamples=n_resamples,
                     seed=seed).to_dict()


def evaluate_signals(rows: list[dict[str, Any]], bad_ids: set[str], signals: dict[str, int],
                     n_resamples: int = 1000, seed: int = 0,
                     lengths: list[float] | None = None) -> dict[str, dict[str, Any]]:
    """Detection metrics for each signal present in ``rows`` (signal -> direction, +1 higher is better).

    The filter evaluated for precision/recall is the median split of that signal (CLEAR's default).
    With ``lengths`` (each row's response length): the length-only baseline as the row
    ``response_length`` and a ``length_matched_auroc`` for every signal."""
    results: dict[str, dict[str, Any]] = {}
    bad = np.array([r["id"] in bad_ids for r in rows])
    if lengths is not None:
        n = np.asarray(lengths, dtype=float)
        results["response_length"] = detection_metrics(n, bad, higher_is_better=False, n_resamples=n_resamples,
                                                       seed=seed) | {"baseline": "longer = worse"}
    for name, direction in signals.items():
        values = np.array([r.get(name) if isinstance(r.get(name), (int, float)) else np.nan for r in rows], dtype=float)
        if not np.isfinite(values).any():
            continue
        oriented = direction * values
        median = np.nanmedian(oriented)
        flagged = np.where(np.isfinite(oriented), oriented < median, False)
        results[name] = detection_metrics(values, bad, higher_is_better=direction > 0, flagged=flagged,
                                          n_resamples=n_resamples, seed=seed)
        if lengths is not None and _two_classes(bad.astype(int)):
            results[name]["length_matched_auroc"] = length_matched_auroc(
                values, bad, n, higher_is_better=direction > 0, n_resamples=n_resamples, seed=seed)
    return results
