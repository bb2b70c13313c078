"""A study's answer: every variant against the baseline, paired over the same test items and seeds.

Reads each run's per-item scores (``eval/outputs.jsonl``), builds one (seeds x items) matrix per
variant and model, and computes from one set of joint resamples (``tamis.evaluate.paired``):

- the difference of every variant from the baseline with its 95% CI, p-value and verdict line;
- with an oracle (clean data) variant: the share of the noisy-to-clean gap each variant recovers;
- with training data whose rows carry an injected-flaw flag in ``meta``: each curation's detection
  precision and recall against the flags, and the share of flagged rows left in its training data.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis.errors import DataError
from tamis.evaluate.paired import paired_difference, recovered_share, resampled_means
from tamis.records import Example

BASE_MODEL_VARIANT = "base (untuned)"


def read_item_scores(eval_dir: str | Path, metric: str) -> dict[str, float]:
    """{item id: score} for one metric from an evaluation's outputs.jsonl."""
    path = Path(eval_dir) / "outputs.jsonl"
    scores = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if metric not in row.get("scores", {}):
                raise DataError(f"{path}: item {row.get('id')} has no per-item {metric!r} score (it has "
                                f"{sorted(row.get('scores', {}))}); compare on a per-item metric")
            scores[str(row["id"])] = float(row["scores"][metric])
    return scores


def per_item_metric(rows: Sequence[Mapping[str, Any]], out_dir: Path, wanted: str | None) -> str:
    """The metric to compare on: ``wanted``, else the first metric every run scores per item."""
    first = next(r for r in rows if r.get("eval_dir"))
    with open(out_dir / first["eval_dir"] / "outputs.jsonl", encoding="utf-8") as f:
        item_metrics = list(json.loads(f.readline()).get("scores", {}))
    if wanted:
        return wanted
    summary_order = [m for m in first["metrics"] if m in item_metrics]
    if not summary_order:
        raise DataError(f"{first['eval_dir']}: no per-item metric to compare variants on")
    return summary_order[0]


def compare_study(rows: Sequence[Mapping[str, Any]], out_dir: str | Path, *, baseline: str, oracle: str | None = None,
                  metric: str | None = None, n_resamples: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Per model: paired differences from ``baseline`` (and recovered shares with an ``oracle``).

    ``rows`` are the study's result rows, each with ``variant``, ``model``, ``seed`` and ``eval_dir``
    (relative to ``out_dir``)."""
    out_dir = Path(out_dir)
    rows = [r for r in rows if r.get("eval_dir")]
    if not rows:
        return {"models": {}}
    metric = per_item_metric(rows, out_dir, metric)
    by_model: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by_model[r["model"]][r["variant"]][int(r["seed"])] = read_item_scores(out_dir / r["eval_dir"], metric)
    result: dict[str, Any] = {"metric": metric, "baseline": baseline, "oracle": oracle, "n_resamples": n_resamples,
                              "models": {}}
    for model, variants in by_model.items():
        if baseline not in variants:
            continue
        items = sorted(set.intersection(*(set(s) for runs in variants.values() for s in runs.values())))
        seeds = sorted(variants[baseline])
        matrices = {}
        for name, runs in variants.items():
            run_seeds = seeds if set(seeds) <= set(runs) else sorted(runs)[:1]  # one row: the same for every seed
            matrices[name] = np.array([[runs[s][i] for i in items] for s in run_seeds])
        means = resampled_means(matrices, n_resamples=n_resamples, seed=seed)
        differences = [paired_difference(matrices, name, baseline, metric=metric, means=means).to_dict()
                       for name in variants if name != baseline]
        entry: dict[str, Any] = {"n_items": len(items), "n_seeds": len(seeds),
                                 "means": {name: float(m.mean()) for name, m in matrices.items()},
                                 "differences": differences}
        if oracle and oracle in variants:
            entry["recovered"] = [recovered_share(matrices, name, baseline, oracle, means).to_dict()
                                  for name in variants if name not in (baseline, oracle, BASE_MODEL_VARIANT)]
        result["models"][model] = entry
    return result


def detection(start: Sequence[Example], decisions_file: str | Path, flag: str,
              score_keys: tuple[str, ...] = ("label_confidence", "neighbour_agreement", "confidence")) -> dict[str, Any] | None:
    """Precision/recall of a variant's drops against rows flagged ``meta[flag]`` in the data it started
    from (and, when its decisions carry one of ``score_keys`` (higher = cleaner), that score's AUROC as a
    detector with a bootstrap CI); None when no starting row carries the flag (nothing to check)."""
    flagged = {ex.id for ex in start if ex.meta.get(flag)}
    if not flagged:
        return None
    ids = {ex.id for ex in start}
    dropped: set[str] = set()
    scores: dict[str, float] = {}
    path = Path(decisions_file)
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                if d.get("action") == "drop" and d.get("id") in ids:
                    dropped.add(d["id"])
                found_key = next((key for key in score_keys if isinstance((d.get("scores") or {}).get(key),
                                                                          (int, float))), None)
                if found_key is not None and d.get("id") in ids:
                    score = found_key
                    scores[d["id"]] = float(d["scores"][found_key])
    hits = len(dropped & flagged)
    kept = ids - dropped
    found: dict[str, Any] = {}
    if len(scores) == len(ids):
        from tamis.evaluate.detection import detection_metrics, length_matched_auroc

        order = sorted(ids)
        bad = [i in flagged for i in order]
        metrics = detection_metrics([scores[i] for i in order], bad, n_resamples=1000)
        if "auroc" in metrics:
            # the confounder check beside every detector: length alone ("longer = worse"), and the score's
            # AUROC with flagged and clean rows compared only within a response-length decile
            length = {ex.id: len(ex.response or ex.label or "") for ex in start}
            lengths = [length[i] for i in order]
            by_length = detection_metrics(lengths, bad, higher_is_better=False, n_resamples=1000)
            found = {"score": score, "auroc": metrics["auroc"], "length_only_auroc": by_length.get("auroc"),
                     "length_matched_auroc": length_matched_auroc([scores[i] for i in order], bad, lengths)}
    return found | {"flag": flag, "n_start": len(ids), "n_flagged": len(flagged), "n_dropped": len(dropped),
            "true_drops": hits,
            "precision": hits / len(dropped) if dropped else float("nan"),
            "recall": hits / len(flagged),
            "flagged_share_before": len(flagged) / len(ids),
            "flagged_share_after": len(kept & flagged) / len(kept) if kept else float("nan")}


def _share(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.0%}"


def verdict_lines(comparison: Mapping[str, Any]) -> list[str]:
    """The study's answer as text lines: per model the verdicts, recovered gap shares, then detection."""
    lines = []
    for model, entry in comparison.get("models", {}).items():
        lines.append(f"Verdicts ({model}; paired bootstrap over {entry['n_items']} test items x {entry['n_seeds']} "
                     f"seed(s), {comparison['n_resamples']} resamples, 95% CI):")
        lines += [f"  {d['verdict']}" for d in entry["differences"]]
        for r in entry.get("recovered", []):
            lines.append(f"  {r['variant']} recovers {_share(r['share'])} [{_share(r['low'])}, {_share(r['high'])}] of "
                         f"the {comparison['baseline']} -> {comparison['oracle']} gap"
                         + ("" if r["gap_detected"] else " (the gap itself is not detected at this size)"))
    for variant, d in comparison.get("detection", {}).items():
        if not d["n_dropped"]:
            continue
        line = (f"  detection by {variant}: dropped {d['n_dropped']} of {d['n_start']}, {d['true_drops']} of them "
                f"flagged: precision {d['precision']:.2f}, recall {d['recall']:.2f} ({d['n_flagged']} flagged; "
                f"flagged share {d['flagged_share_before']:.0%} -> {d['flagged_share_after']:.0%})")
        if "auroc" in d:
            a = d["auroc"]
            line += f"; AUROC of {d['score']} {a['value']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]"
            if d.get("length_matched_auroc") and d.get("length_only_auroc"):
                m, n = d["length_matched_auroc"], d["length_only_auroc"]
                line += (f", length-matched {m['value']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}] (length alone "
                         f"{n['value']:.2f})")
        lines.append(line)
    return lines
