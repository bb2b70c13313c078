"""BSDetector confidence that a (prompt, target response) pair is right, from the model itself.

C = β·O + (1−β)·S (Chen & Mueller, ACL 2024), defaults α = 0.8, β = 0.7:

- Observed consistency O: k answers sampled at temperature 1 with a prompt asking for a
  step-by-step explanation then the answer in a fixed template; each sample's answer is compared with
  the target: o_i = α·s_i + (1−α)·r_i, O = mean_i o_i. r_i is exact match after normalisation.
  s_i is semantic similarity: NLI non-contradiction averaged over both orders when an NLI model is
  configured (any Hugging Face sequence-classification NLI model with a "contradiction" label);
  otherwise the documented fallback: cosine of the bundled MiniLM embeddings (clipped at 0), or
  token F1 (the paper's word-overlap variant was within 0.06 AUROC of NLI on short answers).
  Both fallbacks are always recorded (``s_embed``, ``s_f1``) so they can be compared.
- Self-reflection S: two multiple-choice follow-ups about the target (correct / incorrect / not sure,
  then "are you really sure?") scored A=1, B=0, C=0.5. With log-probabilities (``reflection="auto"``
  or ``"logprobs"``) each question's score is the expectation under the model's next-token
  probabilities of the letters (renormalised over A/B/C): no generation, no parsing. Otherwise the
  answer is generated and the letter parsed; unparseable answers are counted, never scored: S is the
  mean of the parsed questions, and when none parsed C falls back to O with ``reflection_missing``.

Every sample and reflection is a cached model call, batched across all examples.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis.answers import normalise_answer, token_f1
from tamis.models.base import LLM, ChatMessages, GenerationParams, LogprobsUnavailable
from tamis.records import Example
from tamis.signals.choices import choice_logprobs
from tamis.errors import ConfigError
from tamis.settings import setting, validate
from tamis.signals.registry import SignalTable, register_signal

_CONF = dict(range=(0.0, 1.0), needs=("llm",), produced_by="tamis score confidence")
register_signal("confidence", "higher", "BSDetector confidence C = beta*O + (1-beta)*S that the response is right", **_CONF)
register_signal("observed_consistency", "higher", "BSDetector O: agreement of k sampled answers with the target", **_CONF)
register_signal("self_reflection", "higher", "BSDetector S: the model's own verdict on the target (A/B/C follow-ups)", **_CONF)
register_signal("s_mean", "higher", "mean semantic similarity of the sampled answers to the target", **_CONF)
register_signal("r_mean", "higher", "share of sampled answers that match the target exactly (normalised)", **_CONF)
register_signal("s_embed", "higher", "mean embedding cosine of the sampled answers to the target", **_CONF)
register_signal("s_f1", "higher", "mean token F1 of the sampled answers to the target", **_CONF)
register_signal("s_nli", "higher", "mean NLI non-contradiction of the sampled answers and the target", **_CONF)

SAMPLE_PROMPT = (
    "{question}\n\nAnswer the request above. Think step by step, then give your final answer. "
    "Use exactly this template:\nexplanation: [step-by-step analysis]\nanswer: [your answer]"
)
REFLECTION_PROMPTS = (
    "Request: {question}\nProposed answer: {answer}\n\nIs the proposed answer:\n(A) Correct\n(B) Incorrect\n"
    "(C) I am not sure.\n{instruction}",
    "Request: {question}\nProposed answer: {answer}\n\nAre you really sure the proposed answer is correct? "
    "Choose again:\n(A) Correct\n(B) Incorrect\n(C) I am not sure.\n{instruction}",
)
LETTER_INSTRUCTION = "Reply with one letter: A, B or C."
TEXT_INSTRUCTION = ("The output should strictly use the following template: explanation: [insert analysis], "
                    "answer: [choose one letter from among choices A through C]")
LETTER_SCORES = {"A": 1.0, "B": 0.0, "C": 0.5}


@dataclass
class ConfidenceConfig:
    k: int = setting(5, "Samples per example for observed consistency.", range=(1, 1000))
    temperature: float = setting(1.0, "Sampling temperature of the k samples.", range=(0, 10))
    max_tokens: int = setting(96, "Max new tokens per sample.", range=(1, None))
    alpha: float = setting(0.8, "Weight of semantic similarity vs exact match in O.", range=(0, 1))
    beta: float = setting(0.7, "Weight of O vs self-reflection S in C.", range=(0, 1))
    similarity: str = setting("embedding", "s_i: embedding (bundled MiniLM cosine), token_f1, or nli.",
                              choices=("embedding", "token_f1", "nli"))
    embedder: str = setting("sentence-transformers:minilm", "Embedder spec for similarity=embedding.")
    nli_model: str | None = setting(None, "HF sequence-classification NLI model (folder or offline id).")
    reflection: str = setting("auto", "auto (log-probs if the backend has them), logprobs or text.",
                              choices=("auto", "logprobs", "text"))
    seed: int = setting(0, "Random seed of the sampling.")
    max_prompt_chars: int = setting(4000, "Truncate prompts to this many characters (noted per example).",
                                    range=(1, None))
    max_response_chars: int = setting(2000, "Truncate responses to this many characters (noted per example).",
                                      range=(1, None))
    reasoning: str = setting("step", "How the k samples are asked for: step (think step by step, then 'answer:': "
                                     "BSDetector's template) or direct (the example's own prompt, system turn "
                                     "included: answers in the form a tuned model learned).",
                             choices=("step", "direct"))
    sample_prompt: str = setting(SAMPLE_PROMPT, "Prompt of the k samples ({question}; reasoning=step).")
    reflection_prompts: tuple[str, str] = setting(REFLECTION_PROMPTS, "The two self-reflection prompts.")

    def __post_init__(self) -> None:
        validate(self)  # ranges and choices as declared above
        if self.similarity == "nli" and not self.nli_model:
            raise ConfigError("similarity 'nli' needs nli_model (a Hugging Face NLI model id or folder)")


@dataclass
class ConfidenceReport:
    rows: list[dict[str, Any]]
    samples: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def table(self) -> SignalTable:
        """The signals as the one table type (the samples stay beside it)."""
        return SignalTable.from_rows(self.rows, self.counts)


# -- text helpers --------------------------------------------------------------------------------
_ANSWER = re.compile(r"answer\s*[:：]\s*", re.IGNORECASE)


def extract_answer(sample: str) -> str:
    """The text after the last 'answer:' in a sample; the whole sample (minus a leading
    'explanation:') when the model ignored the template."""
    parts = _ANSWER.split(sample)
    if len(parts) > 1 and parts[-1].strip():
        return parts[-1].strip()
    return re.sub(r"^\s*explanation\s*[:：]\s*", "", sample, flags=re.IGNORECASE).strip()


_LETTER = [re.compile(p, re.IGNORECASE) for p in (r"answer\s*[:：]?\s*\(?([ABC])\b", r"\(([ABC])\)", r"^\s*([ABC])\b")]


def parse_letter(text: str) -> str | None:
    for pattern in _LETTER:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


def clip(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + " …", True)


# -- the signal ----------------------------------------------------------------------------------
def _question(ex: Example, cfg: ConfidenceConfig) -> tuple[str, list[str]]:
    notes = []
    turns = [m for m in ex.prompt_messages if m["role"] != "system"]
    question = "\n\n".join(m["content"] for m in turns) if len(turns) > 1 else (turns[0]["content"] if turns else "")
    question, cut = clip(question, cfg.max_prompt_chars)
    if cut:
        notes.append(f"prompt truncated to {cfg.max_prompt_chars} characters")
    return question, notes


def scorable(ex: Example) -> str | None:
    """Why an example cannot be scored, or None."""
    if ex.kind != "chat":
        return "not a chat example (no prompt/response pair)"
    if ex.response is None:
        return "no assistant response to score"
    if not ex.prompt_messages:
        return "no prompt before the response"
    return None


def bsdetector_confidence(examples: list[Example], llm: LLM, cfg: ConfidenceConfig | None = None,
                          embedder: Any = None, nli: Any = None) -> ConfidenceReport:
    """Confidence rows (one per example, unscorable ones with confidence None and a note)."""
    cfg = cfg or ConfidenceConfig()
    rows: list[dict[str, Any]] = []
    items: list[tuple[dict[str, Any], str, str]] = []  # (row, question, target)
    own_prompts: list[ChatMessages] = []  # each item's own prompt (reasoning=direct samples answers to it)
    for ex in examples:
        row: dict[str, Any] = {"id": ex.id, "confidence": None, "notes": []}
        rows.append(row)
        why = scorable(ex)
        if why:
            row["notes"].append(why)
            continue
        question, notes = _question(ex, cfg)
        target, cut = clip((ex.response or "").strip(), cfg.max_response_chars)
        if cut:
            notes.append(f"response truncated to {cfg.max_response_chars} characters")
        if not target:
            notes.append("empty response")
        row["notes"].extend(notes)
        items.append((row, question, target))
        own_prompts.append(ex.prompt_messages)

    counts: Counter[str] = Counter(scored=len(items), unscorable=len(rows) - len(items))
    samples = _observed_consistency(items, llm, cfg, embedder, nli, own_prompts)
    mode = _self_reflection(items, llm, cfg, counts)
    counts[f"reflection_{mode}"] = len(items)
    for row, _, _ in items:
        o, s = row["observed_consistency"], row["self_reflection"]
        if s is None:
            row["reflection_missing"] = True
            row["confidence"] = o
        else:
            row["confidence"] = cfg.beta * o + (1 - cfg.beta) * s
    return ConfidenceReport(rows=rows, samples=samples, counts=dict(counts))


def _observed_consistency(items: list[tuple[dict[str, Any], str, str]], llm: LLM, cfg: ConfidenceConfig,
                          embedder: Any, nli: Any, own_prompts: list[ChatMessages]) -> dict[str, list[str]]:
    prompts: list[ChatMessages] = (list(own_prompts) if cfg.reasoning == "direct" else
                                   [[{"role": "user", "content": cfg.sample_prompt.format(question=q)}]
                                    for _, q, _ in items])
    params = GenerationParams(n=cfg.k, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed)
    generated = llm.generate(prompts, params) if prompts else []
    answers = [[extract_answer(s) for s in per] for per in generated]
    targets = [t for _, _, t in items]
    flat = [a for per in answers for a in per]
    embed_sims = _embedding_similarity(embedder, flat, targets, cfg.k) if embedder is not None else None
    nli_sims = nli.non_contradiction([t for t in targets for _ in range(cfg.k)], flat) if nli is not None else None
    samples: dict[str, list[str]] = {}
    for i, (row, _, target) in enumerate(items):
        per = answers[i]
        f1 = [token_f1(a, target) for a in per]
        em = [float(normalise_answer(a) == normalise_answer(target) and bool(normalise_answer(a))) for a in per]
        emb = list(embed_sims[i]) if embed_sims is not None else None
        sim = {"embedding": emb, "token_f1": f1,
               "nli": list(nli_sims[i * cfg.k:(i + 1) * cfg.k]) if nli_sims is not None else None}[cfg.similarity]
        if sim is None:
            raise ValueError(f"similarity {cfg.similarity!r} needs its model (embedder or NLI) passed in")
        o = [cfg.alpha * s + (1 - cfg.alpha) * r for s, r in zip(sim, em)]
        row.update(observed_consistency=float(np.mean(o)), s_mean=float(np.mean(sim)), r_mean=float(np.mean(em)),
                   s_f1=float(np.mean(f1)), similarity=cfg.similarity)
        if emb is not None:
            row["s_embed"] = float(np.mean(emb))
        samples[row["id"]] = generated[i]
    return samples


def _embedding_similarity(embedder: Any, answers: list[str], targets: list[str], k: int) -> np.ndarray:
    if not targets:
        return np.zeros((0, k))
    vecs = embedder.embed([a or " " for a in answers]).reshape(len(targets), k, -1)
    tvecs = embedder.embed([t or " " for t in targets])
    cos = np.einsum("nkd,nd->nk", vecs, tvecs)
    return np.clip(cos, 0.0, 1.0)


def _reflection_prompts(items: list[tuple[dict[str, Any], str, str]], cfg: ConfidenceConfig,
                        instruction: str) -> list[ChatMessages]:
    return [[{"role": "user", "content": tpl.format(question=q, answer=t or "(empty)", instruction=instruction)}]
            for _, q, t in items for tpl in cfg.reflection_prompts]


def _self_reflection(items: list[tuple[dict[str, Any], str, str]], llm: LLM, cfg: ConfidenceConfig,
                     counts: Counter[str]) -> str:
    """Fill self_reflection (+ per-question scores); returns the mode used (logprobs or text)."""
    nq = len(cfg.reflection_prompts)
    if cfg.reflection in ("auto", "logprobs"):
        try:
            lp = choice_logprobs(llm, _reflection_prompts(items, cfg, LETTER_INSTRUCTION), list(LETTER_SCORES))
        except LogprobsUnavailable:
            if cfg.reflection == "logprobs":
                raise
        else:
            probs = np.exp(lp - lp.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            scores = probs @ np.array(list(LETTER_SCORES.values()))
            for i, (row, _, _) in enumerate(items):
                per = scores[i * nq:(i + 1) * nq]
                row.update(self_reflection=float(per.mean()), reflection_scores=[float(x) for x in per],
                           reflection_mode="logprobs")
            return "logprobs"
    outs = llm.generate(_reflection_prompts(items, cfg, TEXT_INSTRUCTION), GenerationParams(max_tokens=64))
    for i, (row, _, _) in enumerate(items):
        letters = [parse_letter(o[0]) for o in outs[i * nq:(i + 1) * nq]]
        parsed = [LETTER_SCORES[x] for x in letters if x is not None]
        counts["reflection_unparsed"] += sum(x is None for x in letters)
        row.update(self_reflection=float(np.mean(parsed)) if parsed else None, reflection_letters=letters,
                   reflection_mode="text")
        if len(parsed) < nq:
            row["notes"].append(f"{nq - len(parsed)} self-reflection answer(s) unparseable")
    return "text"
