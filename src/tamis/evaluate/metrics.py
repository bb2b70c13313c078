"""Reference-based metrics for generated outputs: per example, and corpus-level with bootstrap CIs.

- short answers: exact match and "accuracy" (the normalised reference appears in the output), token F1;
- translation: BLEU, chrF and TER via sacrebleu (corpus-level, the way MT papers report them);
- any text: chrF as a soft overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sacrebleu

from tamis.answers import contains_answer, exact_match, normalise_answer, token_f1  # noqa: F401  (metrics)
from tamis.evaluate.bootstrap import Estimate, bootstrap

SENTENCE_METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "accuracy": contains_answer,
    "token_f1": token_f1,
    "chrf": lambda p, r: sacrebleu.sentence_chrf(p, [r]).score,
}

CORPUS_METRICS = ("bleu", "chrf", "ter")
SHORT_ANSWER_METRICS = ("exact_match", "accuracy", "token_f1", "chrf")


def corpus_score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    if metric == "bleu":
        return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    if metric == "chrf":
        return sacrebleu.corpus_chrf(list(predictions), [list(references)]).score
    if metric == "ter":
        return sacrebleu.corpus_ter(list(predictions), [list(references)]).score
    raise ValueError(f"unknown corpus metric {metric!r}; choose from {CORPUS_METRICS}")


def score_outputs(
    predictions: Sequence[str],
    references: Sequence[str],
    metrics: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[list[dict[str, float]], dict[str, dict[str, Any]]]:
    """(per-example scores, summary with a bootstrap CI per metric).

    Corpus metrics (bleu, ter; chrf when asked for at corpus level as ``corpus_chrf``) are computed on
    the resampled corpus; sentence metrics are averaged."""
    per_example: list[dict[str, float]] = [{} for _ in predictions]
    summary: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        corpus = metric.removeprefix("corpus_")
        if metric in ("bleu", "ter") or metric.startswith("corpus_"):
            preds, refs = np.array(predictions, dtype=object), np.array(references, dtype=object)
            est: Estimate = bootstrap(len(preds), lambda idx: corpus_score(corpus, preds[idx], refs[idx]),
                                      n_resamples=n_resamples, seed=seed)
            for row, p, r in zip(per_example, predictions, references):
                row[corpus] = _sentence(corpus, p, r)
        elif metric in SENTENCE_METRICS:
            values = np.array([SENTENCE_METRICS[metric](p, r) for p, r in zip(predictions, references)])
            for row, v in zip(per_example, values):
                row[metric] = float(v)
            est = bootstrap(len(values), lambda idx: float(values[idx].mean()), n_resamples=n_resamples, seed=seed)
        else:
            raise ValueError(f"unknown metric {metric!r}; choose from {sorted(SENTENCE_METRICS) + list(CORPUS_METRICS)}")
        summary[metric] = est.to_dict()
    return per_example, summary


def _sentence(metric: str, prediction: str, reference: str) -> float:
    if metric == "bleu":
        return sacrebleu.sentence_bleu(prediction, [reference]).score
    if metric == "ter":
        return sacrebleu.sentence_ter(prediction, [reference]).score
    return sacrebleu.sentence_chrf(prediction, [reference]).score
