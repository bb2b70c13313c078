"""Inject known errors into clean data, so a detector's AUROC can be measured (CLEAR's Emails-N).

``swap_responses`` moves the responses of a seeded random share of examples to other examples of
that share. With ``length_matched`` the swaps pair examples of similar response length (sorted by
length, neighbours swapped), so a corrupted example's response is about as long as its own was:
length alone cannot explain a detector's result.
"""

from __future__ import annotations

import random

from tamis.records import Example, Message


def swap_responses(examples: list[Example], fraction: float = 0.2, seed: int = 0,
                   length_matched: bool = False) -> tuple[list[Example], set[str]]:
    """(a new list with the chosen examples' final responses swapped, the ids of corrupted examples).

    Corrupted examples carry ``meta["corruption"] = {"kind": "swapped_response", "from": other_id}``."""
    chat = [i for i, ex in enumerate(examples) if ex.kind == "chat" and ex.response is not None]
    n = int(round(fraction * len(chat)))
    if n < 2:
        return list(examples), set()
    rng = random.Random(seed)
    chosen = rng.sample(chat, n)
    order = sorted(chosen, key=lambda i: len(examples[i].response or "")) if length_matched else chosen
    # partner: neighbour pairs (a 3-cycle at the end when n is odd), so no example keeps its own response
    source: dict[int, int] = {}
    pairs = list(range(0, n - (3 if n % 2 else 0), 2))
    for p in pairs:
        a, b = order[p], order[p + 1]
        source[a], source[b] = b, a
    if n % 2:
        a, b, c = order[-3:]
        source[a], source[b], source[c] = b, c, a
    out = list(examples)
    for target, src in source.items():
        ex, donor = examples[target], examples[src]
        messages = ex.messages[:-1] + (Message("assistant", donor.response or ""),)
        meta = dict(ex.meta) | {"corruption": {"kind": "swapped_response", "from": donor.id}}
        out[target] = Example(id=ex.id, kind=ex.kind, messages=messages, meta=meta)
    return out, {examples[i].id for i in source}
