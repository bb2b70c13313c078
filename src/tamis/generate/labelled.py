"""Zero-shot and few-shot generation of labelled texts (Li et al. 2023) with any LLM backend.

Generation runs in rounds. In each round every label still short of its target gets a batch of
attempts: zero-shot attempts share one prompt (sampled ``n`` times under the round's seed), few-shot
attempts each see their own sample of real examples of that label, and every ``diversity_every``-th
attempt continues a conversation holding the label's latest accepted texts and asks for something
more diverse. Replies are parsed, checked for near-copies, and either kept (with full provenance)
or rejected with a reason. Calls go through the workspace cache, so a rerun resumes for free.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tamis.curate.decisions import Decision
from tamis.generate.nearcopy import NearCopyConfig, NearCopyFilter
from tamis.generate.parse import Parsed, parse_generated_text, split_reasoned
from tamis.settings import setting
from tamis.generate.prompts import labelled_messages
from tamis.generate.tasks import TaskConfig
from tamis.models.base import LLM, GenerationParams
from tamis.progress import progress
from tamis.records import Example, content_id, labelled_example
from tamis.store import cache_key

Mode = Literal["zero-shot", "few-shot"]
REASONING_TOKENS = 96  # room for reasoning="step"'s one or two sentences before the text


@dataclass
class LabelledGenerationConfig:
    n_per_label: int = setting(50, "Texts to keep per label.", range=(1, None))
    mode: Mode = setting("zero-shot", "zero-shot or few-shot.", choices=("zero-shot", "few-shot"))
    temperature: float = setting(1.0, "Sampling temperature.", range=(0, 10))
    top_p: float = setting(0.95, "Nucleus sampling share.", range=(0, 1))
    seed: int = setting(0, "Random seed of the sampling and the few-shot draws.")
    round_size: int = setting(8, "Attempts per label per round.", range=(1, None))
    max_attempts_factor: float = setting(3.0, "Give up on a label after n_per_label x this many attempts.",
                                         range=(1, None))
    reasoning: str = setting("direct", "direct (write the text at once) or step (think in one or two sentences "
                                       "about what such a text contains, then write it after 'text:'; only "
                                       "the text is kept, the reasoning stays in the provenance).",
                             choices=("direct", "step"))
    near_copy: NearCopyConfig = field(default_factory=NearCopyConfig)


@dataclass
class GenerationResult:
    examples: list[Example]
    rejected: list[Decision]
    counts: dict[str, Any]

    def summary(self) -> str:
        c = self.counts
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(c.get("rejected_by_reason", {}).items())) or "none"
        return (f"{c['attempts']} attempts, {c['accepted']} accepted, {c['rejected']} rejected ({reasons}), "
                f"{c['truncated']} truncated to the word limit")


def _round_seed(seed: int, mode: str, label: str, round_no: int) -> int:
    return int(cache_key("tamis-generate", seed, mode, label, round_no)[:8], 16)


def generate_labelled(task: TaskConfig, llm: LLM, config: LabelledGenerationConfig, *,
                      pool: Sequence[Example] = (), embedder: Any = None,
                      references: Sequence[Example] | None = None) -> GenerationResult:
    """Generate ``n_per_label`` texts for every label of ``task``.

    ``pool`` supplies the few-shot examples (required for few-shot); ``references`` (default: the
    pool) are the real texts a generation must not copy."""
    if config.mode not in ("zero-shot", "few-shot"):
        raise ValueError(f"unknown mode {config.mode!r}; use zero-shot or few-shot")
    if config.reasoning not in ("direct", "step"):
        raise ValueError(f"unknown reasoning {config.reasoning!r}; use direct or step")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in pool:
        by_label[str(ex.label)].append(ex)
    if config.mode == "few-shot":
        missing = [lab for lab in task.labels if not by_label.get(lab)]
        if missing:
            raise ValueError(f"few-shot generation needs real examples of every label; none for {missing}")
    refs = list(pool if references is None else references)
    near = NearCopyFilter(config.near_copy, [(ex.id, ex.text or "") for ex in refs], embedder)
    identity = llm.identity
    max_tokens = task.max_words * 2 + 16 + (REASONING_TOKENS if config.reasoning == "step" else 0)
    accepted: dict[str, list[Example]] = {lab: [] for lab in task.labels}
    attempts: Counter[str] = Counter()
    rejected: list[Decision] = []
    truncated = 0
    limit = max(1, int(config.n_per_label * config.max_attempts_factor))
    round_no = 0
    total = config.n_per_label * len(task.labels)
    with progress(f"generating {config.mode}", total) as advance:
        while True:
            jobs = []  # (label, attempt, messages, shot ids, diversity)
            for label in task.labels:
                need = config.n_per_label - len(accepted[label])
                room = limit - attempts[label]
                for _ in range(max(0, min(config.round_size, need, room))):
                    t = attempts[label]
                    attempts[label] += 1
                    rng = random.Random(f"{config.seed}:{label}:{t}")
                    shots = (rng.sample(by_label[label], min(task.few_shot_k, len(by_label[label])))
                             if config.mode == "few-shot" else [])
                    previous = ([ex.text or "" for ex in accepted[label][-2:]]
                                if t and task.diversity_every and t % task.diversity_every == 0 else [])
                    jobs.append((label, t, labelled_messages(task, label, shots, previous, config.reasoning),
                                 [s.id for s in shots], bool(previous)))
            if not jobs:
                break
            replies = _sample(llm, jobs, config, max_tokens, round_no)
            candidates, meta = [], []
            for (label, t, messages, shot_ids, diverse), (raw, seed, index) in zip(jobs, replies):
                prov = {"generator": "tamis.generate.labelled", "task": task.name, "mode": config.mode,
                        "model": identity, "prompt": messages, "temperature": config.temperature,
                        "top_p": config.top_p, "max_tokens": max_tokens, "seed": seed, "sample_index": index,
                        "few_shot_ids": shot_ids, "diversity_prompt": diverse, "attempt": t, "raw": raw}
                if config.reasoning == "step":
                    text, thoughts = split_reasoned(raw)
                    prov["reasoning"] = thoughts
                    parsed = (parse_generated_text(text, task.max_words) if text is not None
                              else Parsed(None, "no_text_marker"))
                else:
                    parsed = parse_generated_text(raw, task.max_words)
                if parsed.text is None:
                    rejected.append(Decision(content_id("rejected", [label, t, raw, config.mode]), "drop",
                                             parsed.problem or "unparseable", {"label": label, "provenance": prov},
                                             "generate"))
                    continue
                truncated += parsed.truncated
                prov["truncated"] = parsed.truncated
                ex = labelled_example(parsed.text, label, meta={"synthetic": True, "provenance": prov})
                candidates.append((ex.id, parsed.text))
                meta.append(ex)
            for ex, (reason, scores) in zip(meta, near.check_batch(candidates)):
                if reason is None:  # rounds never ask for more than a label still needs
                    ex.meta["provenance"]["near_copy_scores"] = scores
                    accepted[str(ex.label)].append(ex)
                    advance(1)
                    continue
                rejected.append(Decision(ex.id, "drop", reason, scores | {"label": ex.label, "text": ex.text,
                                         "provenance": ex.meta["provenance"]}, "generate"))
            round_no += 1
    examples = [ex for lab in task.labels for ex in accepted[lab]]
    reasons = Counter(d.reason for d in rejected)
    counts = {"attempts": sum(attempts.values()), "accepted": len(examples), "rejected": len(rejected),
              "rejected_by_reason": dict(reasons), "truncated": truncated,
              "accepted_by_label": {lab: len(v) for lab, v in accepted.items()},
              "short_by_label": {lab: config.n_per_label - len(v) for lab, v in accepted.items()
                                 if len(v) < config.n_per_label}}
    return GenerationResult(examples, rejected, counts)


def _sample(llm: LLM, jobs: list[tuple], config: LabelledGenerationConfig, max_tokens: int,
            round_no: int) -> list[tuple[str, int, int]]:
    """One reply per job: identical prompts in a round are sampled together with ``n`` (distinct
    samples under one seed); the rest are sampled one each. Returns (raw, seed, sample index)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for j, job in enumerate(jobs):
        groups[json.dumps([job[0], job[2]], sort_keys=True)].append(j)
    out: list[tuple[str, int, int]] = [("", 0, 0)] * len(jobs)
    by_n: dict[int, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        by_n[len(members)].append(members)
    for n, member_lists in by_n.items():
        # the seed depends on the round and the first member's label, so reruns reproduce exactly
        seed = _round_seed(config.seed, config.mode, jobs[member_lists[0][0]][0], round_no) if n > 1 else \
            _round_seed(config.seed, config.mode, "*", round_no)
        params = GenerationParams(n=n, temperature=config.temperature, max_tokens=max_tokens, top_p=config.top_p,
                                  seed=seed)
        replies = llm.generate([jobs[m[0]][2] for m in member_lists], params)
        for members, samples in zip(member_lists, replies):
            for index, (j, raw) in enumerate(zip(members, samples)):
                out[j] = (raw, seed, index)
    return out
