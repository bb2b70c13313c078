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
4. C_v > η (0.8): "edit" (corrected conversation in the decision, the original kept in the data);
   ``review_above`` ≤ C_v ≤ η: "review" with the candidate attached for a person to decide; else
   "drop". Examples the filter kept stay "keep".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis.curate.decisions import Decision
from tamis.models.base import LLM, GenerationParams
from tamis.records import Example
from tamis.settings import setting, validate
from tamis.signals.pairwise import JudgeConfig, instruction_text, judge_pairs

JUDGE_PAIR_PROMPT = (
    "Instruction: {question}\n\nResponse (A): {first}\n\nResponse (B): {second}\n\n"
    "Which response follows the instruction better and is more accurate and helpful? "
    "Reply with one letter: A or B."
)


STEP = "auto_correct"


@dataclass
class CorrectConfig:
    eta: float = setting(0.8, "Replace only when the judge's confidence that the candidate is better exceeds this.",
                         range=(0, 1))
    review_above: float | None = setting(None, "Mark for human review when the confidence is in [this, eta].",
                                         range=(0, 1))
    k: int = setting(5, "Sampled verdicts per order.", range=(1, 1000))
    beta: float = setting(0.7, "Weight of verdict agreement vs the judge's own certainty.", range=(0, 1))
    temperature: float = setting(1.0, "Temperature of the sampled verdicts.", range=(0, 10))
    max_tokens: int = setting(256, "Max new tokens of a candidate answer.", range=(1, None))
    max_chars: int = setting(2000, "Truncate each response shown to the judge to this many characters.",
                             range=(1, None))
    seed: int = setting(0, "Random seed of the sampled verdicts.")
    judge_prompt: str = setting(JUDGE_PAIR_PROMPT, "The pairwise judge prompt.")

    def __post_init__(self) -> None:
        validate(self)


def auto_correct(examples: list[Example], filter_decisions: list[Decision], answer_llm: LLM, judge_llm: LLM,
                 cfg: CorrectConfig | None = None) -> tuple[list[Decision], dict[str, int]]:
    """One decision per example: keep (the filter kept it), edit, review or drop, with reasons."""
    cfg = cfg or CorrectConfig()
    by_id = {d.id: d for d in filter_decisions}
    todo = [ex for ex in examples if by_id.get(ex.id) is not None and by_id[ex.id].action == "drop"]
    counts: Counter[str] = Counter(candidates=len(todo))
    candidates = [c[0] for c in answer_llm.generate([ex.prompt_messages for ex in todo],
                                                    GenerationParams(max_tokens=cfg.max_tokens, seed=cfg.seed))]
    questions = [instruction_text(ex.prompt_messages) for ex in todo]
    judge_cfg = JudgeConfig(prompt=cfg.judge_prompt, ties=False, k=cfg.k, beta=cfg.beta,
                            temperature=cfg.temperature, max_chars=cfg.max_chars, seed=cfg.seed)
    # the original target is response (a), the candidate (b); both orders are asked
    judgements, judge_counts = judge_pairs(judge_llm, questions, [ex.response or "" for ex in todo], candidates,
                                           judge_cfg)
    counts.update({k: v for k, v in judge_counts.items() if k.startswith("verdict")})
    results: dict[str, Decision] = {}
    for ex, candidate, judged in zip(todo, candidates, judgements):
        conf = judged.confidence("b", cfg.beta)
        o, s = float(judged.votes[1]), float(judged.probs[1])
        scores: dict[str, Any] = dict(by_id[ex.id].scores) | {
            "judge_confidence": conf, "judge_agreement": o, "judge_certainty": s,
            "verdicts_unparsed": judged.unparsed, "candidate": candidate}
        corrected = ex.prompt_messages + [{"role": "assistant", "content": candidate}]
        if not candidate.strip():
            results[ex.id] = Decision(ex.id, "drop", "answer model gave an empty candidate", scores, STEP)
        elif judged.identical:
            results[ex.id] = Decision(ex.id, "drop", "the candidate is the target itself; not replaced", scores,
                                      STEP)
        elif np.isfinite(conf) and conf > cfg.eta:
            results[ex.id] = Decision(ex.id, "edit", f"judge confidence {conf:.3f} > eta {cfg.eta:g} that the "
                                      "candidate beats the target", scores, STEP, corrected)
        elif cfg.review_above is not None and np.isfinite(conf) and conf >= cfg.review_above:
            results[ex.id] = Decision(ex.id, "review", f"judge confidence {conf:.3f} in [{cfg.review_above:g}, "
                                      f"{cfg.eta:g}]: a person should decide", scores, STEP, corrected)
        else:
            shown = "undefined (no parseable verdict)" if not np.isfinite(conf) else f"{conf:.3f}"
            results[ex.id] = Decision(ex.id, "drop", f"low confidence target; judge confidence {shown} <= eta "
                                      f"{cfg.eta:g}, target not replaced", scores, STEP)
    decisions = []
    for ex in examples:
        if ex.id in results:
            decisions.append(results[ex.id])
        elif ex.id in by_id:
            decisions.append(by_id[ex.id])
        else:
            decisions.append(Decision(ex.id, "review", "no filter decision for this example", {}, STEP))
    counts.update(Counter(d.action for d in decisions))
    return decisions, dict(counts)
