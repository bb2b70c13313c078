"""Batched multi-prompt sampling for the transformers backend, seeded per prompt.

``model.generate`` draws every row of a batch from the one global RNG, so a prompt's samples would
depend on what else is in the batch. This loop keeps one ``torch.Generator`` per prompt (seeded from
the params' seed and the prompt text), evaluates each prompt once and copies its KV cache to its
``n`` sample rows (the prefix is shared), then decodes all prompts' rows together: one forward per
new token for the whole batch. That is what makes BSDetector's k samples cheap on CPU and GPU.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from tamis.models.base import GenerationParams


def prompt_seed(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero out tokens outside the smallest set whose mass reaches ``top_p`` (then renormalise)."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p > top_p
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return kept / kept.sum(-1, keepdim=True)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, (list, tuple)) else [ids]
    return {int(i) for i in [*ids, tokenizer.eos_token_id] if i is not None}


@torch.inference_mode()
def sample_batch(model: Any, tokenizer: Any, texts: list[str], params: GenerationParams,
                 device: torch.device) -> list[list[torch.Tensor]]:
    """``params.n`` sampled continuations (token ids, end-of-turn excluded) for each prompt text."""
    n = params.n
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(e) for e in enc)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for row, e in enumerate(enc):  # left padding: every prompt ends at the same column
        ids[row, width - len(e):] = torch.tensor(e)
        mask[row, width - len(e):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(n)  # one prompt evaluation, n sample rows
    logits = out.logits[:, -1, :].repeat_interleave(n, dim=0)
    mask = mask.repeat_interleave(n, dim=0)
    last_pos = positions[:, -1].repeat_interleave(n, dim=0)
    generators = [torch.Generator(device=device).manual_seed(prompt_seed(params.seed, t)) for t in texts]
    eos = _eos_ids(model, tokenizer)
    rows = len(texts) * n
    new_tokens: list[list[int]] = [[] for _ in range(rows)]
    done = torch.zeros(rows, dtype=torch.bool)
    for step in range(max(1, params.max_tokens)):
        probs = torch.softmax(logits.float() / max(params.temperature, 1e-6), dim=-1)
        probs = _nucleus(probs, params.top_p)
        picked = torch.cat([
            torch.multinomial(probs[p * n:(p + 1) * n], 1, generator=g)[:, 0] for p, g in enumerate(generators)
        ])
        for r, tok in enumerate(picked.tolist()):
            if done[r]:
                continue
            if tok in eos:
                done[r] = True
            else:
                new_tokens[r].append(tok)
        if params.stop:
            for r in range(rows):
                if not done[r] and any(s in tokenizer.decode(new_tokens[r][-24:]) for s in params.stop):
                    done[r] = True
        if bool(done.all()) or step == params.max_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
        last_pos = last_pos + 1
        out = model(input_ids=picked[:, None].to(device), attention_mask=mask, position_ids=last_pos[:, None],
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
    return [[torch.tensor(new_tokens[p * n + i], dtype=torch.long) for i in range(n)] for p in range(len(texts))]
