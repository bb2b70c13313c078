"""An LLM whose calls run as blocks on an engine: what the call cache is to one process, for a cluster.

``EngineLLM`` implements the ``LLM`` interface (generate, logprobs) by planning each call's distinct
items into blocks of whole backend batches, exactly the chunks ``CachedLLM`` computes, and mapping
them over the engine's workers with Parquet shards as storage. Any stage written against the LLM
interface (BSDetector confidence, the quality baselines, the judge) therefore runs on a Ray cluster
unchanged and gives the local path's values. Each call gets its own shard folder, numbered in call
order (``01-generate``, ``02-choices``, ...): a stage makes the same calls in the same order when it
is run again, so a rerun after a killed driver finds the finished blocks of every call.

Each call starts its own actors (one model load per actor per call) and frees them when it ends, so
the GPUs are never held between calls; for a handful of calls per stage that is a fixed cost of
seconds, next to minutes of sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tamis.engine.base import EngineConfig, EngineStats
from tamis.engine.tasks import (ChoicesTask, GenerateTask, LikelihoodTask, _content_key, generation_key,
                                likelihood_size, prompt_size)
from tamis.models.base import LLM, ChatMessages, GenerationParams, ModelSpec, ResponseLogprobs


class EngineLLM(LLM):
    """``model`` (a spec string) served by ``engine``'s workers; shards under ``shards``."""

    def __init__(self, model: str, engine: EngineConfig, shards: str | Path, workspace: str | None = None):
        from tamis.engine import get_engine

        self.spec = ModelSpec.parse(model)
        self.model = model
        self.config = engine
        self.shards = str(shards).rstrip("/")
        self.workspace = workspace
        self._engine = get_engine(engine)
        self._info: dict[str, Any] | None = None
        self.calls: list[tuple[str, EngineStats]] = []

    # -- what the stage asks of a model ------------------------------------------------------------
    def generate(self, prompts: list[ChatMessages], params: GenerationParams) -> list[list[str]]:
        p = params.to_dict()
        items = [{"key": generation_key(prompt, p), "prompt": prompt} for prompt in prompts]
        rows = self._map(GenerateTask(self.model, self.workspace, params=p), items, prompt_size, "generating")
        return [list(rows[it["key"]]["samples"]) for it in items]

    def logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        items = [{"key": _content_key(p, r), "prompt": p, "response": r} for p, r in zip(prompts, responses)]
        rows = self._map(LikelihoodTask(self.model, self.workspace), items, likelihood_size,
                         "scoring log-likelihood")
        out = []
        for it in items:
            row = rows[it["key"]]
            out.append(ResponseLogprobs(tokens=tuple(row["tokens"]), logprobs=tuple(float(x) for x in row["logprobs"]),
                                        note=row["note"] or "", context_dropped=int(row["context_dropped"] or 0),
                                        skipped=bool(row["skipped"])))
        return out

    def choice_logprobs(self, prompts: list[ChatMessages], choices: list[str]) -> Any:
        """``tamis.signals.choices.choice_logprobs`` computed by the workers, chunk by chunk as the local
        path's call cache does (so the same shared forward passes give the same numbers)."""
        import numpy as np

        items = [{"key": generation_key(p, choices), "prompt": p} for p in prompts]
        rows = self._map(ChoicesTask(self.model, self.workspace, choices=tuple(choices)), items, prompt_size,
                         "reading choice probabilities")
        return np.asarray([rows[it["key"]]["logprobs"] for it in items], dtype=np.float64).reshape(len(prompts), -1)

    @property
    def identity(self) -> str:
        return self.info["identity"]

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        return self.info["tokenizer"]

    def apply_chat_template(self, messages: ChatMessages, add_generation_prompt: bool = True) -> str:
        if self.tokenizer is None:
            from tamis.models.base import ModelError

            raise ModelError(f"{self.model}: no tokenizer to apply a chat template with")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    # -- the engine --------------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """The backend's identity and tokenizer, asked of one worker (a call with no items) if no call
        has run yet."""
        if self._info is None:
            self._map(LikelihoodTask(self.model, self.workspace), [], likelihood_size, "", record=False)
        assert self._info is not None
        return self._info

    def _map(self, task: Any, items: list[dict[str, Any]], size: Any, description: str, *,
             record: bool = True) -> dict[str, dict[str, Any]]:
        from tamis.engine.shards import ShardStore  # pyarrow: loaded when a call runs, not at import

        name = f"{len(self.calls) + 1:02d}-{task.name}" if record else "info"
        rows, stats = self._engine.map(task, items, ShardStore(f"{self.shards}/{name}"), size=size,
                                       description=description)
        self._info = self._info or stats.extra["info"]
        if record:
            self.calls.append((name, stats))
        return rows

    def counts(self) -> dict[str, int]:
        """For the manifest: calls, blocks, blocks reused and computed, and the most workers used."""
        return {"engine_calls": len(self.calls), "engine_blocks": sum(s.blocks for _, s in self.calls),
                "engine_blocks_reused": sum(s.blocks_reused for _, s in self.calls),
                "engine_blocks_computed": sum(s.blocks_computed for _, s in self.calls),
                "engine_workers": max((s.workers for _, s in self.calls), default=0)}


def stage_llm(model: str, workspace: Any, engine: EngineConfig | None, shards: str | Path) -> LLM:
    """A stage's model: through the workspace's call cache in this process (``engine`` local or None),
    or an ``EngineLLM`` on the engine with its shards under ``shards``."""
    if engine is None or engine.engine == "local":
        from tamis.models import load_llm

        return load_llm(model, workspace)
    return EngineLLM(model, engine, shards, str(workspace.root) if workspace is not None else None)


def record_engine(manifest: Any, llm: LLM) -> None:
    """An engine-served model's calls and blocks in a run's manifest (nothing for a local model)."""
    if isinstance(llm, EngineLLM):
        manifest.count(**llm.counts())
        manifest.data["engine"] = {"engine": llm.config.engine, "address": llm.config.address, "shards": llm.shards,
                                   "calls": [name for name, _ in llm.calls]}
