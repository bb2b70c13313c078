"""Auto-Correct (CLEAR): replace a low-confidence target only when a judge is confident a model's
answer is better; otherwise the example stays filtered.

1. The answer model (typically the one fine-tuned on the filtered data; any spec) answers the prompt
   of each filtered example (greedy).
2. The judge (typically the base model) compares the original target with the candidate in both
   orders (cancelling position bias): "Which response is better? (A) / (B)".
3. BSDetector-style confidence that the candidate is better, C_v = β·O_v + (1−β)·S_v:
   O_v = share of k sampled verdicts per order (temperature 1) that pick the candidate (a verdict
   is a letter, so s_i = r_i = agreement); S_v = the judge's own certainty, the next-token
   probability of the candidate's letter (renormalised over A/B), averaged over both orders; without
   log-probabilities, the greedy verdict in each order (1 / 0), unparseable verdicts counted.
4. C_v > η (0.8): "correct" (corrected conversation in the decision, the original kept in the data);
   ``review_above`` ≤ C_v ≤ η: "review" with the candidate attached for a person to decide; else
   "filter". Examples the filter kept stay "keep".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis.curate.decisions import Decision
from tamis.models.base import LLM, ChatMessages, GenerationParams, LogprobsUnavailable
from tamis.records import Example
from tamis.signals.choices import choice_logprobs
from tamis.signals.confidence import clip

JUDGE_PAIR_PROMPT = (
    "Instruction: {question}\n\nResponse (A): {first}\n\nResponse (B): {second}\n\n"
    "Which response follows the instruction better and is more accurate and helpful? "
    "Reply with one letter: A or B."
)


@dataclass
class CorrectConfig:
    eta: float = 0.8
    review_above: float | None = None
    k: int = 5
    beta: float = 0.7
    temperature: float = 1.0
    max_tokens: int = 256
    max_chars: int = 2000
    seed: int = 0
    judge_prompt: str = JUDGE_PAIR_PROMPT


def _letter(text: str) -> str | None:
    found = re.findall(r"\(?\b([AB])\b\)?", text.strip()[:40])
    return found[0] if found else None


def _pair_prompts(question: str, original: str, candidate: str, cfg: CorrectConfig) -> list[ChatMessages]:
    """[candidate second (B), candidate first (A)]."""
    orig, cand = clip(original, cfg.max_chars)[0] or "(empty)", clip(candidate, cfg.max_chars)[0] or "(empty)"
    return [[{"role": "user", "content": cfg.judge_prompt.format(question=question, first=orig, second=cand)}],
            [{"role": "user", "content": cfg.judge_prompt.format(question=question, first=cand, second=orig)}]]


def auto_correct(examples: list[Example], filter_decisions: list[Decision], answer_llm: LLM, judge_llm: LLM,
                 cfg: CorrectConfig | None = None) -> tuple[list[Decision], dict[str, int]]:
    """One decision per example: keep (filter kept it), correct, review or filter, with reasons."""
    cfg = cfg or CorrectConfig()
    by_id = {d.id: d for d in filter_decisions}
    todo = [ex for ex in examples if by_id.get(ex.id) is not None and by_id[ex.id].action == "filter"]
    counts: Counter[str] = Counter(candidates=len(todo))
    candidates = [c[0] for c in answer_llm.generate([ex.prompt_messages for ex in todo],
                                                    GenerationParams(max_tokens=cfg.max_tokens, seed=cfg.seed))]
    questions = ["\n\n".join(m["content"] for m in ex.prompt_messages if m["role"] != "system") for ex in todo]
    prompts = [p for ex, q, c in zip(todo, questions, candidates) for p in _pair_prompts(q, ex.response or "", c, cfg)]
    # which letter names the candidate in each prompt: B in the first order, A in the second
    cand_letter = np.array([1, 0] * len(todo))
    sampled = judge_llm.generate(prompts, GenerationParams(n=cfg.k, temperature=cfg.temperature, max_tokens=8,
                                                           seed=cfg.seed)) if todo else []
    try:
        lp = choice_logprobs(judge_llm, prompts, ["A", "B"])
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        certainty = p[np.arange(len(prompts)), cand_letter]
        counts["verdict_logprobs"] = len(prompts)
    except LogprobsUnavailable:
        greedy = judge_llm.generate(prompts, GenerationParams(max_tokens=8))
        letters = [_letter(g[0]) for g in greedy]
        counts["verdict_unparsed"] += sum(x is None for x in letters)
        certainty = np.array([np.nan if x is None else float(x == "AB"[c]) for x, c in zip(letters, cand_letter)])
    results: dict[str, Decision] = {}
    for i, (ex, candidate) in enumerate(zip(todo, candidates)):
        votes, unparsed = [], 0
        for j in (2 * i, 2 * i + 1):
            for text in sampled[j]:
                letter = _letter(text)
                if letter is None:
                    unparsed += 1
                else:
                    votes.append(float(letter == "AB"[cand_letter[j]]))
        counts["verdict_samples_unparsed"] += unparsed
        o = float(np.mean(votes)) if votes else float("nan")
        s_vals = certainty[2 * i:2 * i + 2]
        s = float(np.nanmean(s_vals)) if np.isfinite(s_vals).any() else float("nan")
        parts = [(cfg.beta, o), (1 - cfg.beta, s)]
        weight = sum(w for w, v in parts if np.isfinite(v))
        conf = sum(w * v for w, v in parts if np.isfinite(v)) / weight if weight else float("nan")
        scores: dict[str, Any] = dict(by_id[ex.id].scores) | {
            "judge_confidence": conf, "judge_agreement": o, "judge_certainty": s, "verdicts_unparsed": unparsed,
            "candidate": candidate}
        corrected = ex.prompt_messages + [{"role": "assistant", "content": candidate}]
        if not candidate.strip():
            results[ex.id] = Decision(ex.id, "filter", "answer model gave an empty candidate", scores, "auto-correct")
        elif np.isfinite(conf) and conf > cfg.eta:
            results[ex.id] = Decision(ex.id, "correct", f"judge confidence {conf:.3f} > eta {cfg.eta:g} that the "
                                      "candidate beats the target", scores, "auto-correct", corrected)
        elif cfg.review_above is not None and np.isfinite(conf) and conf >= cfg.review_above:
            results[ex.id] = Decision(ex.id, "review", f"judge confidence {conf:.3f} in [{cfg.review_above:g}, "
                                      f"{cfg.eta:g}]: a person should decide", scores, "auto-correct", corrected)
        else:
            shown = "undefined (no parseable verdict)" if not np.isfinite(conf) else f"{conf:.3f}"
            results[ex.id] = Decision(ex.id, "filter", f"low confidence target; judge confidence {shown} <= eta "
                                      f"{cfg.eta:g}, target not replaced", scores, "auto-correct")
    decisions = []
    for ex in examples:
        if ex.id in results:
            decisions.append(results[ex.id])
        elif ex.id in by_id:
            decisions.append(by_id[ex.id])
        else:
            decisions.append(Decision(ex.id, "review", "no filter decision for this example", {}, "auto-correct"))
    counts.update(Counter(d.action for d in decisions))
    return decisions, dict(counts)
