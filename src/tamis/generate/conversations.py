"""Instruction-response pairs and multi-turn dialogues from seed topics (input for post-editing).

Instructions: the model writes a user request about each topic, near-copies of earlier requests are
rejected (ROUGE-L, as Self-Instruct does), then the model answers each request. Dialogues: a user
simulator (the same model, told to play a person interested in the topic) and the assistant take
turns; every turn is generated for all dialogues at once. Every row records its provenance; every
rejected row comes back with its reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tamis.curate.decisions import Decision
from tamis.generate.labelled import GenerationResult
from tamis.generate.nearcopy import NearCopyConfig, NearCopyFilter
from tamis.generate.parse import parse_generated_text
from tamis.models.base import LLM, GenerationParams
from tamis.records import chat_example, content_id
from tamis.settings import setting, validate

ASSISTANT_SYSTEM = "You are a helpful, friendly assistant. Answer clearly and concisely."


def _instruction_prompt(topic: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": (
        f"Write one clear request or question that a person might ask an AI assistant about: {topic}. "
        "Reply with the request only.")}]


def _result(examples: list[Any], rejected: list[Decision], attempts: int) -> GenerationResult:
    return GenerationResult(examples, rejected, {
        "attempts": attempts, "accepted": len(examples), "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(d.reason for d in rejected)), "truncated": 0})


@dataclass
class InstructionConfig:
    n_per_topic: int = setting(2, "Instruction-response pairs per seed topic.", range=(1, None))
    temperature: float = setting(1.0, "Sampling temperature of the instructions.", range=(0, 10))
    max_tokens: int = setting(256, "Maximum new tokens of each response.", range=(1, None))
    rouge_threshold: float = setting(0.7, "Drop an instruction whose ROUGE-L with a kept one reaches this.",
                                     range=(0, 1))
    seed: int = setting(0, "Random seed of the sampling.")

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class DialogueConfig:
    n_per_topic: int = setting(1, "Dialogues per seed topic.", range=(1, None))
    n_turns: int = setting(2, "(user, assistant) exchanges per dialogue.", range=(1, None))
    temperature: float = setting(0.8, "Sampling temperature of both speakers.", range=(0, 10))
    max_tokens: int = setting(160, "Maximum new tokens of each turn.", range=(1, None))
    seed: int = setting(0, "Random seed of the sampling.")

    def __post_init__(self) -> None:
        validate(self)


def generate_instructions(topics: Sequence[str], llm: LLM, config: InstructionConfig | None = None,
                          **overrides: Any) -> GenerationResult:
    """``n_per_topic`` (instruction, response) chat examples per seed topic (``overrides``: config fields)."""
    cfg = replace(config or InstructionConfig(), **overrides)
    n_per_topic, temperature, seed = cfg.n_per_topic, cfg.temperature, cfg.seed
    max_tokens, rouge_threshold = cfg.max_tokens, cfg.rouge_threshold
    identity = llm.identity
    ask = GenerationParams(n=n_per_topic, temperature=temperature, top_p=0.95, max_tokens=80, seed=seed)
    raw = llm.generate([_instruction_prompt(t) for t in topics], ask)
    near = NearCopyFilter(NearCopyConfig(embedding_threshold=None, rouge_threshold=rouge_threshold))
    rejected: list[Decision] = []
    kept: list[tuple[str, str, int, str]] = []  # topic, instruction, sample index, raw
    for topic, samples in zip(topics, raw):
        for index, reply in enumerate(samples):
            parsed = parse_generated_text(reply, max_words=60)
            rid = content_id("instruction", [topic, index, reply])
            prov = {"generator": "tamis.generate.instructions", "topic": topic, "model": identity,
                    "prompt": _instruction_prompt(topic), "params": ask.to_dict(), "sample_index": index, "raw": reply}
            if parsed.text is None:
                rejected.append(Decision(rid, "drop", parsed.problem or "unparseable", {"provenance": prov}, "generate"))
                continue
            reason, scores = near.check_batch([(rid, parsed.text)])[0]
            if reason:
                rejected.append(Decision(rid, "drop", reason, scores | {"text": parsed.text, "provenance": prov},
                                         "generate"))
                continue
            kept.append((topic, parsed.text, index, reply))
    answer = GenerationParams(n=1, temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=seed)
    convs = [[{"role": "system", "content": ASSISTANT_SYSTEM}, {"role": "user", "content": k[1]}] for k in kept]
    responses = llm.generate(convs, answer) if convs else []
    examples = []
    for (topic, instruction, index, reply), conv, resp in zip(kept, convs, responses):
        text = resp[0].strip()
        prov = {"generator": "tamis.generate.instructions", "topic": topic, "model": identity,
                "instruction_prompt": _instruction_prompt(topic), "instruction_params": ask.to_dict(),
                "sample_index": index, "response_params": answer.to_dict(), "system": ASSISTANT_SYSTEM}
        if not text:
            rejected.append(Decision(content_id("instruction", [topic, index, reply]), "drop", "empty_response",
                                     {"instruction": instruction, "provenance": prov}, "generate"))
            continue
        examples.append(chat_example([{"role": "user", "content": instruction}, {"role": "assistant", "content": text}],
                                     meta={"synthetic": True, "provenance": prov}))
    return _result(examples, rejected, len(topics) * n_per_topic)


def _simulator(topic: str, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    transcript = "\n".join(f"{'Person' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in turns)
    task = ("Write the person's next message in this conversation. Reply with the message only."
            if turns else f"Write the first message a person sends to an assistant to talk about: {topic}. "
                          "Reply with the message only.")
    system = f"You play a curious person chatting with an AI assistant about {topic}."
    return [{"role": "system", "content": system},
            {"role": "user", "content": (f"Conversation so far:\n{transcript}\n\n" if turns else "") + task}]


def generate_dialogues(topics: Sequence[str], llm: LLM, config: DialogueConfig | None = None,
                       **overrides: Any) -> GenerationResult:
    """Dialogues of ``n_turns`` (user, assistant) exchanges per topic; a dialogue with an empty or
    unusable turn is rejected with the turn's number (``overrides``: config fields)."""
    cfg = replace(config or DialogueConfig(), **overrides)
    n_per_topic, n_turns, temperature, seed, max_tokens = (cfg.n_per_topic, cfg.n_turns, cfg.temperature, cfg.seed,
                                                           cfg.max_tokens)
    identity = llm.identity
    dialogues = [(topic, d, []) for topic in topics for d in range(n_per_topic)]
    alive = list(range(len(dialogues)))
    rejected: list[Decision] = []
    for turn in range(n_turns):
        for role in ("user", "assistant"):
            if not alive:
                break
            params = GenerationParams(n=1, temperature=temperature, top_p=0.95, max_tokens=max_tokens,
                                      seed=seed * 1000 + turn * 2 + (role == "assistant"))
            prompts = []
            for i in alive:
                topic, d, turns = dialogues[i]
                prompts.append(_simulator(topic, turns) if role == "user" else
                               [{"role": "system", "content": ASSISTANT_SYSTEM}] + turns)
            seeds = [dialogues[i][1] for i in alive]
            replies = _per_dialogue(llm, prompts, params, seeds)
            still = []
            for i, reply in zip(alive, replies):
                topic, d, turns = dialogues[i]
                text = parse_generated_text(reply, max_words=120).text if role == "user" else reply.strip()
                if not text:
                    rejected.append(Decision(content_id("dialogue", [topic, d, seed]), "drop", f"empty_{role}_turn",
                                             {"topic": topic, "turn": turn, "partial": list(turns), "raw": reply}, "generate"))
                    continue
                turns.append({"role": role, "content": text})
                still.append(i)
            alive = still
    examples = []
    for i in alive:
        topic, d, turns = dialogues[i]
        prov = {"generator": "tamis.generate.dialogues", "topic": topic, "dialogue_index": d, "model": identity,
                "temperature": temperature, "seed": seed, "n_turns": n_turns, "assistant_system": ASSISTANT_SYSTEM}
        examples.append(chat_example(turns, meta={"synthetic": True, "provenance": prov}))
    return _result(examples, rejected, len(dialogues))


def _per_dialogue(llm: LLM, prompts: list[list[dict[str, str]]], params: GenerationParams,
                  indices: list[int]) -> list[str]:
    """Identical prompts (same topic, first turn) get different samples: dialogue d takes sample d."""
    n = max(indices) + 1 if indices else 1
    if n == 1:
        return [r[0] for r in llm.generate(prompts, params)]
    samples = llm.generate(prompts, GenerationParams(**(params.to_dict() | {"n": n, "stop": tuple(params.stop)})))
    return [s[d] for s, d in zip(samples, indices)]
