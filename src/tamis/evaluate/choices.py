"""Classification as generation, scored by the log-probability of each label option.

For a test item with label options (``spam``/``ham``; ``positive``/``neutral``/``negative``) the
model's prediction is the option it finds most likely as the next assistant turn (the summed
log-probability of the option's tokens and the end-of-turn token, lm-evaluation-harness's ``acc``).
Nothing is sampled, every forward pass is cached, and on the transformers backend a test set of
hundreds of items costs one packed pass per item after the prefix all items share, run once
(models/hf_prefix.py): cheap enough for paired comparisons on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tamis.errors import DataError
from tamis.evaluate.bootstrap import bootstrap, mean_ci
from tamis.records import Example

OPTION_METRICS = ("accuracy", "macro_f1")


def example_options(examples: Sequence[Example], options: Sequence[str] | None) -> list[list[str]]:
    """Each example's label options: the given ones, else its ``meta.options``; the reference must be one."""
    out = []
    for ex in examples:
        opts = list(options) if options else list(ex.meta.get("options") or [])
        if len(opts) < 2:
            raise DataError(f"example {ex.id}: option scoring needs at least two label options; give them "
                            "(eval options) or put them in each example's meta.options")
        if ex.response is not None and ex.response.strip() not in opts:
            raise DataError(f"example {ex.id}: the reference {ex.response!r} is not one of the options {opts}")
        out.append(opts)
    return out


def option_logprobs(llm: Any, prompts: Sequence[list[dict[str, str]]],
                    options: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """{option: summed log-probability as the next assistant turn} per prompt, in one batched call."""
    flat_prompts = [p for p, opts in zip(prompts, options) for _ in opts]
    flat_options = [o for opts in options for o in opts]
    scored = llm.logprobs(flat_prompts, flat_options)
    out, k = [], 0
    for opts in options:
        out.append({o: float(scored[k + j].total) for j, o in enumerate(opts)})
        k += len(opts)
    return out


def predict(logprobs: dict[str, float]) -> str:
    """The most likely option (ties: the first listed)."""
    return max(logprobs, key=lambda o: (logprobs[o], -list(logprobs).index(o)))


def macro_f1(predictions: Sequence[str], references: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of per-label F1 over the labels that occur in the references (or ``labels``)."""
    preds, refs = np.asarray(predictions, dtype=object), np.asarray(references, dtype=object)
    scores = []
    for label in (labels if labels is not None else sorted(set(references))):
        tp = float(np.sum((preds == label) & (refs == label)))
        fp = float(np.sum((preds == label) & (refs != label)))
        fn = float(np.sum((preds != label) & (refs == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def score_options(predictions: Sequence[str], references: Sequence[str], *, n_resamples: int = 1000,
                  seed: int = 0) -> tuple[list[dict[str, float]], dict[str, dict[str, Any]]]:
    """(per-item scores, summary): accuracy per item (1/0) and macro-F1 over the set, with bootstrap CIs."""
    correct = [float(p == r) for p, r in zip(predictions, references)]
    labels = sorted(set(references))
    preds, refs = np.asarray(predictions, dtype=object), np.asarray(references, dtype=object)
    summary = {
        "accuracy": mean_ci(correct, n_resamples=n_resamples, seed=seed).to_dict(),
        "macro_f1": bootstrap(len(refs), lambda idx: macro_f1(preds[idx], refs[idx], labels),
                              n_resamples=n_resamples, seed=seed).to_dict(),
    }
    return [{"accuracy": c} for c in correct], summary
