"""Scoring several responses to one prompt with one pass over the prompt (the transformers backend).

Option scoring (``tamis.evaluate.choices``), reflection and label filters ask for the log-probability
of every label option after the same prompt; scored one row each, the prompt, nearly all of the
tokens, runs once per option. Here a prompt and all its responses are packed into one sequence,
``prompt, response 1, response 2, ...``: each response's position ids restart where the prompt ends
and a 4D attention mask lets a response token see the prompt and the earlier tokens of its own
response only, so every response is scored exactly as if it followed the prompt alone (a test holds
it to the row-by-row result), and the prompt is computed once. Two options cost about half, three a
third (bench/bench_likelihood.py).

Packing needs a model that takes position ids and a custom mask (the Llama/Qwen/Mistral families
with SDPA or eager attention, no sliding window); others keep the row-by-row path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

PACKABLE_ATTENTION = ("sdpa", "eager")


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
                  dtype: torch.dtype) -> torch.Tensor:
    """Last hidden states [batch, width, d] of packed sequences, right-padded to one width."""
    width = max(len(p.ids) for p in packs)
    ids = torch.full((len(packs), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(packs), width), dtype=torch.long)
    for row, p in enumerate(packs):
        ids[row, :len(p.ids)] = torch.tensor(p.ids)
        positions[row, :len(p.positions)] = torch.tensor(p.positions)
    mask = torch.stack([packed_mask(p.context_len, p.target_lens, width) for p in packs])[:, None]
    if model.config._attn_implementation == "eager":  # eager adds the mask to the scores
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    return model.base_model(input_ids=ids.to(device), position_ids=positions.to(device),
                            attention_mask=mask.to(device)).last_hidden_state
