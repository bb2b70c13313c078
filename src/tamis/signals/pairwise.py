"""An LLM judge comparing two responses to the same instruction, in both orders, with a confidence.

Judges prefer whichever response they see first (or second) more often than content warrants, so
every pair is asked twice, with the responses swapped, and the two readings are averaged after
un-swapping (MT-Bench / AlpacaEval practice). Each reading is the judge's next-token probability of
each letter (A, B and, when ties are allowed, C), renormalised over the letters; a backend without
log-probabilities answers greedily and the parsed letter counts as probability 1 (unparseable
answers are counted, never guessed).

Confidence in a verdict is BSDetector-style (as Auto-Correct uses it): C = beta * O + (1 - beta) * S,
with S the judge's averaged probability of the verdict and O the share of ``k`` sampled verdicts per
order (temperature 1) that agree with it; with ``k = 0`` only S is used.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tamis.models.base import LLM, ChatMessages, GenerationParams, LogprobsUnavailable
from tamis.signals.choices import choice_logprobs
from tamis.signals.confidence import clip

PAIRWISE_PROMPT = (
    "Instruction: {question}\n\nResponse (A): {first}\n\nResponse (B): {second}\n\n"
    "Which response follows the instruction better and is more accurate and helpful? "
    "Reply with one letter: A if (A) is better, B if (B) is better, C if they are equally good."
)
OUTCOMES = ("a", "b", "tie")


@dataclass
class JudgeConfig:
    prompt: str = PAIRWISE_PROMPT  # fields {question}, {first}, {second}
    ties: bool = True  # offer "C" (equally good); Auto-Correct asks A or B only
    k: int = 0  # sampled verdicts per order for the agreement part O (0: the probabilities alone)
    beta: float = 0.7
    temperature: float = 1.0
    max_chars: int = 2000  # longer responses are clipped (and still judged)
    seed: int = 0


@dataclass
class PairJudgement:
    """The judge's reading of one pair: per outcome (a, b, tie), probability S and sampled share O."""

    probs: np.ndarray  # (3,) averaged over both orders; NaN when neither order gave a reading
    votes: np.ndarray  # (3,) share of sampled verdicts; NaN when k = 0 or none parsed
    consistent: bool  # both orders name the same outcome
    unparsed: int  # sampled or greedy answers that named no letter
    identical: bool = False  # the two responses are the same text: a tie, the judge is not asked

    def confidence(self, outcome: str, beta: float) -> float:
        """beta * O + (1 - beta) * S for one outcome, using whichever part is defined."""
        i = OUTCOMES.index(outcome)
        parts = [(beta, self.votes[i]), (1 - beta, self.probs[i])]
        weight = sum(w for w, v in parts if np.isfinite(v))
        return sum(w * v for w, v in parts if np.isfinite(v)) / weight if weight else float("nan")

    def verdict(self, beta: float) -> tuple[str, float]:
        """The most confident outcome and its confidence; ("tie", nan) when nothing was readable."""
        if self.identical:
            return "tie", 1.0
        conf = [self.confidence(o, beta) for o in OUTCOMES]
        if not np.isfinite(conf).any():
            return "tie", float("nan")
        best = int(np.nanargmax(conf))
        return OUTCOMES[best], float(conf[best])


def instruction_text(messages: ChatMessages) -> str:
    """What the judge sees as the instruction: the conversation before the judged turn, minus system."""
    return "\n\n".join(m["content"] for m in messages if m["role"] != "system")


def _letter(text: str, letters: str) -> str | None:
    found = re.findall(r"\(?\b([%s])\b\)?" % letters, text.strip()[:40])
    return found[0] if found else None


def _to_outcomes(row: np.ndarray, swapped: bool) -> np.ndarray:
    """Letter probabilities (A, B[, C]) of one order -> (a, b, tie)."""
    a, b = (row[1], row[0]) if swapped else (row[0], row[1])
    return np.array([a, b, row[2] if len(row) > 2 else 0.0])


def judge_pairs(judge: LLM, questions: list[str], first: list[str], second: list[str],
                cfg: JudgeConfig | None = None) -> tuple[list[PairJudgement], dict[str, int]]:
    """Judge response ``first[i]`` (a) against ``second[i]`` (b) for each instruction, both orders."""
    cfg = cfg or JudgeConfig()
    letters = "ABC" if cfg.ties else "AB"
    todo = [i for i in range(len(questions)) if first[i].strip() != second[i].strip()]
    counts: Counter[str] = Counter(pairs=len(questions), identical=len(questions) - len(todo))
    prompts: list[ChatMessages] = []
    for i in todo:
        a, b = (clip(t, cfg.max_chars)[0] or "(empty)" for t in (first[i], second[i]))
        for x, y in ((a, b), (b, a)):
            prompts.append([{"role": "user", "content": cfg.prompt.format(question=questions[i], first=x, second=y)}])
    try:
        lp = choice_logprobs(judge, prompts, list(letters))
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        readings = p / p.sum(axis=1, keepdims=True)
        counts["verdict_logprobs"] = len(prompts)
    except LogprobsUnavailable:
        greedy = judge.generate(prompts, GenerationParams(max_tokens=8)) if prompts else []
        readings = np.full((len(prompts), len(letters)), np.nan)
        for row, g in enumerate(greedy):
            letter = _letter(g[0], letters)
            if letter is None:
                counts["verdict_unparsed"] += 1
            else:
                readings[row] = [float(letter == x) for x in letters]
    sampled = judge.generate(prompts, GenerationParams(n=cfg.k, temperature=cfg.temperature, max_tokens=8,
                                                       seed=cfg.seed)) if cfg.k and prompts else []
    out = [PairJudgement(np.array([np.nan, np.nan, 1.0]), np.full(3, np.nan), True, 0, identical=True)
           for _ in questions]
    for n, i in enumerate(todo):
        orders = [_to_outcomes(readings[2 * n + s], swapped=bool(s)) for s in (0, 1)]
        stacked = np.stack(orders)
        probs = np.nanmean(stacked, axis=0) if np.isfinite(stacked).any() else np.full(3, np.nan)
        consistent = all(np.isfinite(o).all() for o in orders) and int(np.argmax(orders[0])) == int(np.argmax(orders[1]))
        tally, unparsed = np.zeros(3), 0
        for s in (0, 1):
            for text in (sampled[2 * n + s] if sampled else []):
                letter = _letter(text, letters)
                if letter is None:
                    unparsed += 1
                else:
                    tally += _to_outcomes(np.array([float(letter == x) for x in "ABC"]), swapped=bool(s))
        votes = tally / tally.sum() if tally.sum() else np.full(3, np.nan)
        counts["verdict_samples_unparsed"] += unparsed
        counts["inconsistent_orders"] += not consistent
        out[i] = PairJudgement(probs, votes, consistent, unparsed)
    return out, dict(counts)
