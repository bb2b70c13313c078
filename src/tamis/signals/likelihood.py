"""Log-likelihood of each target response under a model: the base signal for CLEAR and IFD.

A row longer than the model's context is never scored silently: its prompt is cut from the left
(as lm-evaluation-harness does for loglikelihood), or, when the response alone does not fit, it
gets no score (null). Either way the row says so in its notes and ``likelihood_counts`` counts it,
for the manifest.
"""

from __future__ import annotations

import math
from typing import Any

from tamis.models.base import LLM
from tamis.records import Example
from tamis.signals.registry import SignalTable, register_signal

_LL = dict(needs=("llm",), produced_by="tamis profile, tamis score confidence")
register_signal("loglik_mean", "higher", "log p(response | prompt) per token: how likely the model finds the target",
                range=(None, 0.0), **_LL)
register_signal("loglik_sum", "higher", "summed log p(response | prompt) (favours short responses)",
                range=(None, 0.0), **_LL)
register_signal("perplexity", "lower", "exp(-loglik_mean) of the response", range=(1.0, None), **_LL)
register_signal("loglik_tokens", "none", "response tokens scored", range=(0.0, None), **_LL)
register_signal("loglik_context_dropped", "none", "prompt tokens cut from the left to fit the context",
                range=(0.0, None), **_LL)


def response_likelihood(examples: list[Example], llm: LLM) -> SignalTable:
    """Per chat example: summed and length-normalised log p(response | prompt), tokens, perplexity.

    Examples with no assistant turn get no row (there is nothing to score). A row whose prompt was
    truncated, or which was skipped (scores None), says so in its notes; the counts say how many."""
    scored = [ex for ex in examples if ex.kind == "chat" and ex.response is not None]
    results = llm.logprobs([ex.prompt_messages for ex in scored], [ex.response or "" for ex in scored])
    rows = [
        {
            "id": ex.id,
            "loglik_sum": None if r.skipped else r.total,
            "loglik_mean": None if r.skipped else r.mean,
            "loglik_tokens": r.n_tokens,
            "perplexity": None if r.skipped else math.exp(-r.mean),
            "loglik_context_dropped": r.context_dropped,
            "notes": [r.note] if r.note else [],
        }
        for ex, r in zip(scored, results)
    ]
    return SignalTable.from_rows(rows, likelihood_counts(rows))


def likelihood_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows were scored whole, scored with a truncated prompt, or skipped (for the manifest)."""
    skipped = sum(1 for r in rows if r.get("loglik_mean") is None)
    truncated = sum(1 for r in rows if r.get("loglik_context_dropped") and r.get("loglik_mean") is not None)
    return {"likelihood_scored": len(rows) - skipped, "likelihood_truncated": truncated,
            "likelihood_skipped": skipped}
