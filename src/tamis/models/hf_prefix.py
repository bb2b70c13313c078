"""Scoring several responses to one prompt with one pass over the prompt (the transformers backend).

Option scoring (``tamis.evaluate.choices``), reflection and label filters ask for the log-probability
of every label option after the same prompt; scored one row each, the prompt, nearly all of the
tokens, runs once per option. Here a prompt and all its responses are packed into one sequence,
``prompt, response 1, response 2, ...``: each response's position ids restart where the prompt ends
and a 4D attention mask lets a response token see the prompt and the earlier tokens of its own
response only, so every response is scored exactly as if it followed the prompt alone (a test holds
it to the row-by-row result), and the prompt is computed once. Two options cost about half, three a
third (bench/bench_likelihood.py).

Prompts of one call usually also start alike (a study's system prompt and instruction, about a third
of each prompt's tokens): that common prefix runs once per call and its keys and values are
reused by every packed row of every batch (``common_prefix_length``, ``encode_prefix``), again
scoring each row as it would be scored alone.

Packing needs a model that takes position ids and a custom mask (the Llama/Qwen/Mistral families
with SDPA or eager attention, no sliding window); others keep the row-by-row path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

PACKABLE_ATTENTION = ("sdpa", "eager")
# tokens: under this, copying the prefix's keys and values into each batch saves too little
MIN_SHARED_PREFIX = 8


def can_pack(model: Any) -> bool:
    """Whether ``model`` honours a custom 4D mask with position ids (see the module docstring)."""
    config = model.config
    return (getattr(config, "_attn_implementation", None) in PACKABLE_ATTENTION
            and getattr(config, "sliding_window", None) is None
            and getattr(config, "model_type", "") in ("llama", "qwen2", "qwen3", "mistral", "phi3", "olmo2"))


def shared_prompts(contexts: Sequence[Sequence[int]], todo: Sequence[int]) -> tuple[list[list[int]], list[int]]:
    """(groups of row indices with the same context, rows left alone): a group holds >= 2 rows."""
    by_context: dict[tuple[int, ...], list[int]] = {}
    for i in todo:
        by_context.setdefault(tuple(contexts[i]), []).append(i)
    groups = [rows for rows in by_context.values() if len(rows) > 1]
    singles = [rows[0] for rows in by_context.values() if len(rows) == 1]
    return groups, singles


def common_prefix_length(contexts: Sequence[Sequence[int]]) -> int:
    """Tokens every context starts with, kept one short of the shortest context (a row's last prompt
    position predicts its first target token, so it must be the row's own); 0 for a single row or a
    prefix under ``MIN_SHARED_PREFIX``."""
    if len(contexts) < 2:
        return 0
    first, n = contexts[0], min(len(c) for c in contexts) - 1
    for context in contexts[1:]:
        k = 0
        while k < n and context[k] == first[k]:
            k += 1
        n = k
    return n if n >= MIN_SHARED_PREFIX else 0


class Prefix(NamedTuple):
    length: int
    cache: Any  # the prefix's keys and values (a transformers Cache), batch of one


def encode_prefix(model: Any, ids: Sequence[int], device: torch.device) -> Prefix:
    """Run the shared prefix once; every packed batch then continues from its keys and values."""
    out = model.base_model(input_ids=torch.tensor([list(ids)], device=device), use_cache=True)
    return Prefix(len(ids), out.past_key_values)


class Packed(NamedTuple):
    ids: list[int]
    positions: list[int]
    context_len: int
    target_lens: list[int]
    reads: list[list[int]]  # per target: the positions whose logits predict its tokens


def pack(context: Sequence[int], targets: Sequence[Sequence[int]]) -> Packed:
    """One sequence: the prompt, then each target with position ids restarting after the prompt."""
    ids, positions = list(context), list(range(len(context)))
    reads: list[list[int]] = []
    for target in targets:
        start = len(ids)
        ids.extend(target)
        positions.extend(range(len(context), len(context) + len(target)))
        # the first token is predicted by the last prompt position, the k-th by the (k-1)-th own token
        reads.append([len(context) - 1] + list(range(start, start + len(target) - 1)))
    return Packed(ids, positions, len(context), [len(t) for t in targets], reads)


def packed_mask(context_len: int, target_lens: Sequence[int], width: int) -> torch.Tensor:
    """[width, width] bool (True: may attend): the prompt causally; each target the prompt and
    itself causally; padding only itself (a row with nothing to attend to would give NaN)."""
    mask = torch.zeros(width, width, dtype=torch.bool)
    mask[:context_len, :context_len] = torch.ones(context_len, context_len, dtype=torch.bool).tril()
    start = context_len
    for n in target_lens:
        mask[start:start + n, :context_len] = True
        mask[start:start + n, start:start + n] = torch.ones(n, n, dtype=torch.bool).tril()
        start += n
    for pad in range(start, width):
        mask[pad, pad] = True
    return mask


def packed_hidden(model: Any, packs: Sequence[Packed], pad_id: int, device: torch.device,
                  dtype: torch.dtype, prefix: Prefix | None = None) -> torch.Tensor:
    """Last hidden states [batch, width, d] of packed sequences, right-padded to one width; with a
    ``prefix``, the packs continue it (positions after it, every token may attend to all of it)."""
    width = max(len(p.ids) for p in packs)
    ids = torch.full((len(packs), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(packs), width), dtype=torch.long)
    for row, p in enumerate(packs):
        ids[row, :len(p.ids)] = torch.tensor(p.ids)
        positions[row, :len(p.positions)] = torch.tensor(p.positions)
    mask = torch.stack([packed_mask(p.context_len, p.target_lens, width) for p in packs])[:, None]
    extra: dict[str, Any] = {}
    if prefix is not None:
        positions += prefix.length
        mask = torch.cat([torch.ones(len(packs), 1, width, prefix.length, dtype=torch.bool), mask], dim=-1)
        cache = copy.deepcopy(prefix.cache)  # the forward appends to it; the prefix's own stays as it is
        cache.batch_repeat_interleave(len(packs))
        extra = {"past_key_values": cache, "use_cache": True}
    if model.config._attn_implementation == "eager":  # eager adds the mask to the scores
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    return model.base_model(input_ids=ids.to(device), position_ids=positions.to(device),
                            attention_mask=mask.to(device), **extra).last_hidden_state
