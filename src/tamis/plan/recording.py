"""Recording models: they count every prompt a command builds and answer with placeholders, so a
dry run counts calls with the command's own code; and the step/token arithmetic of SFT."""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from tamis.plan.tokens import TokenCounter, counter_for

if TYPE_CHECKING:
    from tamis.plan.plans import Plan

CALIBRATION_CALLS = 8  # real calls per operation that --calibrate times (the recorders keep that many prompts)

# -- recording models -------------------------------------------------------------------------------
def _placeholder(*parts: Any) -> str:
    """A distinct, parseable reply (distinct so near-copy filters keep it, as they keep real replies)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
    return " ".join(digest[i:i + 7] for i in range(0, 35, 7))


class RecordingLLM:
    """Builds a plan from the calls a job makes; answers with placeholders. Looks like an LLM to jobs."""

    def __init__(self, spec_text: str, plan: Plan, workspace: Any = None, counter: TokenCounter | None = None):
        from tamis.models.base import ModelSpec

        self.spec = ModelSpec.parse(spec_text)
        self.name = str(self.spec)
        self.plan = plan
        self.counter = counter or counter_for(spec_text, workspace)
        self.tokenizer = self.counter.tokenizer
        self._n = 0
        self.samples: dict[str, list[Any]] = {"generate": [], "score": [], "choices": []}
        plan.recorders.append(self)

    identity = property(lambda self: f"dry-run:{self.name}")
    batch_hint = 1

    def apply_chat_template(self, messages: Any, add_generation_prompt: bool = True) -> str:
        if self.counter.scoring is not None:
            return self.counter.scoring.apply_chat_template(messages, add_generation_prompt)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages)

    def generate(self, prompts: list[Any], params: Any) -> list[list[str]]:
        self.plan.add(self.name, "generate", len(prompts) * params.n, sum(self.counter.chat(p) for p in prompts),
                      len(prompts) * params.n * params.max_tokens, self.counter.unit)
        if prompts and len(self.samples["generate"]) < 2:
            self.samples["generate"].append((params, prompts[:CALIBRATION_CALLS]))
        self._n += 1
        return [[_placeholder(self._n, i, j) for j in range(params.n)] for i in range(len(prompts))]

    def logprobs(self, prompts: list[Any], responses: list[str]) -> list[Any]:
        from tamis.models.base import ResponseLogprobs

        self.plan.add(self.name, "score", len(prompts),
                      sum(self.counter.scored(p, r) for p, r in zip(prompts, responses)), 0, self.counter.unit)
        room = CALIBRATION_CALLS - len(self.samples["score"])
        self.samples["score"].extend(list(zip(prompts, responses))[:max(0, room)])
        return [ResponseLogprobs(tokens=("x",), logprobs=(-1.0,)) for _ in prompts]

    def choice_logprobs(self, prompts: list[Any], choices: list[str]) -> Any:
        """What ``signals.choices.choice_logprobs`` asks: one shared forward pass per prompt on the
        transformers backend, else one scored option per (prompt, option)."""
        import numpy as np

        if self.spec.backend != "transformers":
            self.logprobs([p for p in prompts for _ in choices], [c for _ in prompts for c in choices])
        else:
            self.plan.add(self.name, "choices", len(prompts), sum(self.counter.chat(p) for p in prompts), 0,
                          self.counter.unit)
            if prompts and not self.samples["choices"]:
                self.samples["choices"].append((list(choices), prompts[:CALIBRATION_CALLS]))
        return np.zeros((len(prompts), len(choices)))

    def call_stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class RecordingEmbedder:
    """Builds a plan from embedding calls; answers with seeded random unit vectors."""

    dim = 16

    def __init__(self, spec_text: str, plan: Plan, workspace: Any = None):
        from tamis.models.base import ModelSpec

        self.spec = ModelSpec.parse(spec_text, default_backend="sentence-transformers")
        self.name = str(self.spec)
        self.plan = plan
        self.counter = counter_for(spec_text, workspace, embedder=True)
        self.samples: list[str] = []
        plan.recorders.append(self)

    identity = property(lambda self: f"dry-run:{self.name}")

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        self.plan.add(self.name, "embed", len(texts), sum(self.counter.text(t) for t in texts), 0, self.counter.unit)
        self.samples.extend(texts[:max(0, 4 * CALIBRATION_CALLS - len(self.samples))])
        vecs = np.random.default_rng(len(texts)).normal(size=(len(texts), self.dim)).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-9)


# -- training and gradients ------------------------------------------------------------------------
def sft_row_tokens(counter: TokenCounter, examples: list[Any], max_length: int) -> list[int]:
    """Tokens of each SFT row (prompt template + response + end of turn), cut at ``max_length``."""
    return [min(max_length, counter.scored(ex.prompt_messages, ex.response or "")) for ex in examples]


def sft_steps(n_rows: int, settings: Any) -> tuple[int, int, int]:
    """(optimiser steps, training rows, held-out rows) the SFT job would run (``train/sft.py``'s split)."""
    n_eval = int(round(n_rows * settings.eval_fraction)) if n_rows >= 10 else 0
    n_train = n_rows - n_eval
    per_epoch = max(1, math.ceil(n_train / (settings.batch_size * settings.grad_accum)))
    steps = settings.max_steps if settings.max_steps and settings.max_steps > 0 else math.ceil(per_epoch * settings.epochs)
    return steps, n_train, n_eval


def sft_tokens(row_tokens: list[int], steps: int, settings: Any) -> int:
    """Training tokens read in ``steps`` steps: steps x rows per step x mean row tokens."""
    if not row_tokens:
        return 0
    return round(steps * settings.batch_size * settings.grad_accum * sum(row_tokens) / len(row_tokens))
