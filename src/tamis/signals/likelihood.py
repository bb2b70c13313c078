"""Log-likelihood of each target response under a model: the base signal for CLEAR and IFD."""

from __future__ import annotations

import math
from typing import Any

from tamis.models.base import LLM
from tamis.records import Example


def response_likelihood(examples: list[Example], llm: LLM) -> list[dict[str, Any]]:
    """Per chat example: summed and length-normalised log p(response | prompt), tokens, perplexity.

    Examples with no assistant turn get no row (there is nothing to score)."""
    scored = [ex for ex in examples if ex.kind == "chat" and ex.response is not None]
    results = llm.logprobs([ex.prompt_messages for ex in scored], [ex.response or "" for ex in scored])
    return [
        {
            "id": ex.id,
            "loglik_sum": r.total,
            "loglik_mean": r.mean,
            "loglik_tokens": r.n_tokens,
            "perplexity": math.exp(-r.mean),
        }
        for ex, r in zip(scored, results)
    ]
