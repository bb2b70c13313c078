"""Log-probabilities of a few one-token answers ("A"/"B"/"C", "0".."5") as the model's next token.

Multiple-choice reads (BSDetector's self-reflection, DEITA-style judge scores) need no generation
and no text parsing: the probability of each choice as the first token of the answer. Through any
backend this is ``llm.logprobs(prompt, choice)`` (first token's log-probability), one scored
response per choice; on the transformers backend the choices share one forward pass per prompt (the
same numbers, a third of the cost for three choices), cached per (model, prompt, choices).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.models.base import LLM, ChatMessages
from tamis.store import cache_key


def _unwrap(llm: LLM) -> tuple[Any, Any]:
    """(the backend, its cache or None) behind a CachedLLM."""
    inner = getattr(llm, "inner", None)
    return (inner, getattr(llm, "cache", None)) if inner is not None else (llm, None)


def choice_logprobs(llm: LLM, prompts: list[ChatMessages], choices: list[str]) -> np.ndarray:
    """Shape (len(prompts), len(choices)): log p(first token of choice | prompt), natural log.

    Raises ``LogprobsUnavailable`` when the backend cannot score (callers fall back to text)."""
    if not prompts:
        return np.zeros((0, len(choices)))
    backend, cache = _unwrap(llm)
    own = getattr(backend, "choice_logprobs", None)  # a backend that answers choices itself (dry runs)
    if own is not None:
        return own(prompts, choices)
    from tamis.models.hf import TransformersLLM

    if isinstance(backend, TransformersLLM):
        return _shared_forward(backend, cache, prompts, choices, getattr(llm, "chunk_size", None))
    flat_prompts = [p for p in prompts for _ in choices]
    flat_choices = [c for _ in prompts for c in choices]
    scored = llm.logprobs(flat_prompts, flat_choices)
    values = [s.logprobs[0] if s.logprobs else float("-inf") for s in scored]
    return np.asarray(values, dtype=np.float64).reshape(len(prompts), len(choices))


def _shared_forward(llm: Any, cache: Any, prompts: list[ChatMessages], choices: list[str],
                    chunk_size: int | None = None) -> np.ndarray:
    """Through the cache in the caching wrapper's chunks (``commit_every=`` honoured), so the Ray
    engine, which cuts its blocks the same way, runs the same batches."""
    from tamis.models.cached import cached_map, commit_chunk_size, meter

    def compute(chunk: list[ChatMessages]) -> list[list[float]]:
        return _next_token_logprobs(llm, chunk, choices)

    if cache is None:
        return np.asarray(compute(prompts), dtype=np.float64)
    values = cached_map(
        cache, prompts,
        key=lambda p: cache_key(llm.identity, "choice_logprobs", p, choices),
        compute=compute, size=lambda p: sum(len(m["content"]) for m in p),
        chunk_size=chunk_size or commit_chunk_size(llm), description="reading choice probabilities",
        meter=meter(cache, llm, "choices", "count_choices"),
    )
    return np.asarray(values, dtype=np.float64)


def _next_token_logprobs(llm: Any, prompts: list[ChatMessages], choices: list[str]) -> list[list[float]]:
    import torch  # here, not at import: registering the signals must not load torch

    with torch.inference_mode():
        return _next_token_logprobs_torch(torch, llm, prompts, choices)


def _next_token_logprobs_torch(torch: Any, llm: Any, prompts: list[ChatMessages], choices: list[str]) -> list[list[float]]:
    first_ids, contexts = [], []
    for prompt in prompts:
        pairs = [llm.scoring_ids(prompt, c) for c in choices]
        contexts.append(pairs[0][0])
        first_ids.append([resp[0] for _, resp in pairs])
    results: list[list[float]] = []
    pad = llm.tokenizer.pad_token_id
    for start in range(0, len(prompts), llm.batch_size):
        batch = contexts[start : start + llm.batch_size]
        width = max(len(c) for c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ctx in enumerate(batch):
            ids[row, width - len(ctx):] = torch.tensor(ctx)
            mask[row, width - len(ctx):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = llm.model(input_ids=ids.to(llm.device), attention_mask=mask.to(llm.device),
                        position_ids=positions.to(llm.device), logits_to_keep=1)
        logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
        for row in range(len(batch)):
            results.append([float(logp[row, t]) for t in first_ids[start + row]])
    return results
