"""The peers' quality scores, computed beside BSDetector so users can compare (same model).

- ``loglik_mean``: length-normalised log p(y|x) (higher = the model finds the target more likely).
- ``ifd``: Instruction-Following Difficulty (Cherry LLM) = PPL(y|x) / PPL(y); PPL(y) scores the
  response with an empty prompt. Values near or above 1 mean the instruction does not help predict
  the response: for detecting bad pairs, LOWER is better (``SIGNAL_DIRECTION``).
- ``judge``: AlpaGasus-style 0–5 rating by the model. With log-probabilities it is DEITA's read: the
  expectation over the next-token probabilities of the digits "0".."5" (no text parsing); else the
  generated text is parsed and unparseable ratings are counted and left empty.
- ``response_chars`` / ``response_tokens``: length alone, a strong confound in quality studies.
- ``random``: a uniform draw seeded by the example id (the floor every signal must beat).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from typing import Any

import numpy as np

from tamis.errors import ConfigError
from tamis.models.base import LLM, ChatMessages, GenerationParams, LogprobsUnavailable
from tamis.records import Example
from tamis.signals.choices import choice_logprobs
from tamis.signals.confidence import clip, scorable
from tamis.signals.registry import SignalTable, register_signal

_BASE = dict(needs=("llm",), produced_by="tamis score confidence")
register_signal("ifd", "lower", "Instruction-Following Difficulty PPL(y|x)/PPL(y); near or above 1: the prompt does not "
                "help predict the response", range=(0.0, None), **_BASE)
register_signal("judge", "higher", "LLM-judge quality rating, expected value over the digits 0-5", range=(0.0, 5.0), **_BASE)
register_signal("random", "higher", "a uniform draw seeded by the example id: the floor every signal must beat",
                range=(0.0, 1.0), produced_by="tamis score confidence")

JUDGE_PROMPT = (
    "Rate the quality of the response to the instruction below on a scale from 0 (useless or wrong) "
    "to 5 (excellent: accurate, helpful and relevant).\n\nInstruction: {question}\n\nResponse: {answer}\n\n"
    "Reply with a single digit from 0 to 5."
)
#: judge_reasoning="step": the judge writes its reasoning first (G-Eval's and BSDetector's chain of thought);
#: the digit is then asked for in a second turn and read exactly as in a direct rating.
JUDGE_STEP_PROMPT = (
    "Rate the quality of the response to the instruction below on a scale from 0 (useless or wrong) "
    "to 5 (excellent: accurate, helpful and relevant).\n\nInstruction: {question}\n\nResponse: {answer}\n\n"
    "Think step by step: is the response accurate, helpful and relevant? Explain briefly."
)
JUDGE_STEP_FOLLOW_UP = "Now rate the response. Reply with a single digit from 0 to 5."
JUDGE_REASONING_TOKENS = 96
DIGITS = [str(d) for d in range(6)]
#: +1: higher means a better example; -1: lower means better
SIGNAL_DIRECTION = {"confidence": 1, "observed_consistency": 1, "self_reflection": 1, "s_mean": 1, "r_mean": 1,
                    "s_embed": 1, "s_f1": 1, "loglik_mean": 1, "ifd": -1, "judge": 1, "response_chars": 1,
                    "response_tokens": 1, "random": 1}


def random_score(example_id: str, seed: int = 0) -> float:
    digest = hashlib.sha256(f"tamis-random:{seed}:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def quality_baselines(examples: list[Example], llm: LLM, *, judge: bool = True, max_response_chars: int = 2000,
                      judge_mode: str = "auto", seed: int = 0,
                      max_prompt_chars: int = 4000, judge_reasoning: str = "direct") -> SignalTable:
    """The baselines' signal table (counts beside); unscorable examples get only length and random.

    The judge sees the question and response truncated as BSDetector's prompts are
    (``max_prompt_chars``, ``max_response_chars``); log p(y|x) scores the whole prompt.
    ``judge_reasoning="step"`` lets the judge reason (greedy, ``JUDGE_REASONING_TOKENS``) before it rates."""
    rows: list[dict[str, Any]] = []
    items: list[tuple[dict[str, Any], ChatMessages, str]] = []
    counts: Counter[str] = Counter()
    tokenizer = llm.tokenizer
    for ex in examples:
        response = ex.response if ex.kind == "chat" else ex.text
        response = response or ""
        row: dict[str, Any] = {"id": ex.id, "response_chars": len(response), "random": random_score(ex.id, seed)}
        if tokenizer is not None:
            row["response_tokens"] = len(tokenizer(response, add_special_tokens=False)["input_ids"])
        rows.append(row)
        if scorable(ex) is None:
            items.append((row, ex.prompt_messages, clip(response, max_response_chars)[0]))
    if not items:
        return SignalTable.from_rows(rows, counts)
    responses = [r for _, _, r in items]
    try:
        cond = llm.logprobs([p for _, p, _ in items], responses)
    except LogprobsUnavailable:
        counts["likelihood_unavailable"] = len(items)
        cond = None
    try:  # a backend may score with a prompt but not without one (llama.cpp's server): keep log p(y|x)
        uncond = llm.logprobs([[] for _ in items], responses) if cond is not None else None
    except LogprobsUnavailable:
        counts["ifd_unavailable"] = len(items)
        uncond = None
    for i, (row, _, _) in enumerate(items):
        if cond is not None:
            row["loglik_mean"] = cond[i].mean
        if uncond is not None:
            row["ifd"] = math.exp(uncond[i].mean - cond[i].mean)  # PPL(y|x)/PPL(y) = exp(-mean_c)/exp(-mean_u)
    if judge:
        _judge(items, llm, judge_mode, counts, max_prompt_chars, judge_reasoning)
    return SignalTable.from_rows(rows, counts)


def _judge(items: list[tuple[dict[str, Any], ChatMessages, str]], llm: LLM, mode: str, counts: Counter[str],
           max_prompt_chars: int = 4000, reasoning: str = "direct") -> None:
    if reasoning not in ("direct", "step"):
        raise ConfigError(f"judge_reasoning must be 'direct' or 'step', not {reasoning!r}")
    template = JUDGE_STEP_PROMPT if reasoning == "step" else JUDGE_PROMPT
    prompts: list[ChatMessages] = []
    for _, prompt, response in items:
        question = clip("\n\n".join(m["content"] for m in prompt if m["role"] != "system"), max_prompt_chars)[0]
        prompts.append([{"role": "user", "content": template.format(question=question, answer=response or "(empty)")}])
    if reasoning == "step":
        thoughts = llm.generate(prompts, GenerationParams(max_tokens=JUDGE_REASONING_TOKENS, temperature=0.0))
        prompts = [p + [{"role": "assistant", "content": text.strip()}, {"role": "user", "content": JUDGE_STEP_FOLLOW_UP}]
                   for p, (text, *_) in zip(prompts, thoughts)]
        counts["judge_reasoned"] = len(prompts)
    if mode in ("auto", "logprobs"):
        try:
            lp = choice_logprobs(llm, prompts, DIGITS)
        except LogprobsUnavailable:
            if mode == "logprobs":
                raise
        else:
            probs = np.exp(lp - lp.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            for (row, _, _), p in zip(items, probs @ np.arange(6.0)):
                row["judge"] = float(p)
            counts["judge_logprobs"] = len(items)
            return
    outs = llm.generate(prompts, GenerationParams(max_tokens=16))
    for (row, _, _), (text,) in zip(items, outs):
        found = re.search(r"\b([0-5])(?:\.\d+)?\b", text)
        if found:
            row["judge"] = float(found.group(1))
        else:
            counts["judge_unparsed"] += 1
    counts["judge_text"] = len(items)
