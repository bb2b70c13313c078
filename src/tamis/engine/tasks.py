"""The block tasks of the per-example stages (one model per process or actor)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tamis.records import Example


def _content_key(prompt: Any, response: str) -> str:
    return json.dumps([prompt, response], ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def likelihood_items(examples: list[Example]) -> list[dict[str, Any]]:
    """One item per chat example with a response (the rows ``response_likelihood`` scores)."""
    items = []
    for ex in examples:
        if ex.kind == "chat" and ex.response is not None:
            prompt, response = ex.prompt_messages, ex.response or ""
            items.append({"key": _content_key(prompt, response), "prompt": prompt, "response": response})
    return items


def likelihood_size(item: dict[str, Any]) -> int:
    """The call cache's length measure for a (prompt, response) pair: same sort, same batches."""
    return sum(len(m["content"]) for m in item["prompt"]) + len(item["response"])


def generation_key(prompt: Any, params: dict[str, Any]) -> str:
    return json.dumps([prompt, params], ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def prompt_size(item: dict[str, Any]) -> int:
    """The call cache's length measure for a prompt (generation): same sort, same batches."""
    return sum(len(m["content"]) for m in item["prompt"])


@dataclass
class _LLMTask:
    """A block task holding one LLM per process. ``workspace`` is the root whose converted models the
    worker loads (``$TAMIS_MODELS`` wins, as everywhere); calls bypass the SQLite call cache: the
    shards are this engine's storage."""

    model: str
    workspace: str | None = None
    _llm: Any = field(default=None, repr=False, compare=False)
    # workers sharing a served model's ``concurrency`` (set by the Ray engine): each keeps
    # ceil(concurrency / workers_sharing) requests in flight, so the cluster never exceeds the spec's
    workers_sharing: int = 1

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_llm"} | {"_llm": None}

    def worker_spec(self) -> str:
        """The spec this worker loads: an ``openai:`` spec's concurrency is this worker's share."""
        from tamis.models.base import ModelSpec

        spec = ModelSpec.parse(self.model)
        if spec.backend != "openai" or self.workers_sharing <= 1:
            return self.model
        total = int(spec.options.get("concurrency", 8))
        share = max(1, -(-total // self.workers_sharing))
        return str(ModelSpec(spec.backend, spec.model, {**spec.options, "concurrency": str(share)}))

    def setup(self) -> None:
        if self._llm is None:
            from tamis.models import load_llm
            from tamis.store import Workspace

            self._llm = load_llm(self.worker_spec(), Workspace(self.workspace) if self.workspace else None, cache=False)

    def batch_bound(self) -> int:
        """The call cache's chunk for this backend: its batch (``commit_every=`` wins), at least 4; for a
        served model the whole spec's concurrency, not this worker's share (the same blocks whatever
        the number of workers)."""
        from tamis.models.base import ModelSpec
        from tamis.models.cached import MIN_CHUNK, commit_chunk_size

        spec = ModelSpec.parse(self.model)
        every = spec.options.get("commit_every")
        if every is None and spec.backend == "openai":
            return max(MIN_CHUNK, int(spec.options.get("concurrency", 8)))
        return commit_chunk_size(self._llm, int(every) if every else None)

    def info(self) -> dict[str, Any]:
        return {"identity": self._llm.identity, "tokenizer": self._llm.tokenizer}


@dataclass
class LikelihoodTask(_LLMTask):
    """log p(response | prompt) for a block of (prompt, response) items."""

    name: str = "likelihood"

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model}"

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = self._llm.logprobs([it["prompt"] for it in items], [it["response"] for it in items])
        return [{"key": it["key"], "tokens": list(r.tokens), "logprobs": list(r.logprobs), "note": r.note,
                 "context_dropped": r.context_dropped, "skipped": r.skipped} for it, r in zip(items, results)]


@dataclass
class GenerateTask(_LLMTask):
    """``params.n`` completions of each prompt of a block (``params`` as ``GenerationParams.to_dict``)."""

    params: dict[str, Any] = field(default_factory=dict)
    name: str = "generate"

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model}:{json.dumps(self.params, sort_keys=True)}"

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from tamis.models.base import GenerationParams

        params = GenerationParams(**(self.params | {"stop": tuple(self.params.get("stop", ()))}))
        outs = self._llm.generate([it["prompt"] for it in items], params)
        return [{"key": it["key"], "samples": list(samples)} for it, samples in zip(items, outs)]


@dataclass
class ChoicesTask(_LLMTask):
    """log p(first token of each choice | prompt) for a block of prompts (``tamis.signals.choices``: one
    shared forward pass per prompt on the transformers backend, one scored response per choice else)."""

    choices: tuple[str, ...] = ()
    name: str = "choices"

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model}:{json.dumps(list(self.choices))}"

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from tamis.signals.choices import choice_logprobs

        values = choice_logprobs(self._llm, [it["prompt"] for it in items], list(self.choices))
        return [{"key": it["key"], "logprobs": [float(x) for x in row]} for it, row in zip(items, values)]


def influence_items(encoded: list[Any]) -> list[dict[str, Any]]:
    """One item per encoded candidate (``tamis.signals.influence.gradients.Encoded``)."""
    from tamis.signals.influence.features import feature_key

    return [{"key": feature_key(e), "id": e.id, "ids": list(e.ids), "n_context": e.n_context,
             "truncated": e.truncated} for e in encoded]


def factor_items(encoded: list[Any]) -> list[dict[str, Any]]:
    """One item per candidate, repeats included (a sum counts every example): keys by position."""
    return [it | {"key": f"{i}:{it['key']}"} for i, it in enumerate(influence_items(encoded))]


def _tracked_model(model: str, workspace: str | None, gradients: dict[str, Any]) -> Any:
    """The model with hooks on the tracked layers, from a task's picklable settings."""
    from tamis.signals.influence.config import GradientConfig
    from tamis.signals.influence.gradients import load_tracked_model
    from tamis.store import Workspace

    config = GradientConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in gradients.items()})
    return load_tracked_model(model, Workspace(workspace), config)


def _encoded(items: list[dict[str, Any]]) -> list[Any]:
    from tamis.signals.influence.gradients import Encoded

    return [Encoded(it["id"], list(it["ids"]), int(it["n_context"]), bool(it["truncated"])) for it in items]


def influence_size(item: dict[str, Any]) -> int:
    """Tokens: the order in which the local featurisation batches (longest first)."""
    return len(item["ids"])


@dataclass
class InfluenceFeatureTask:
    """Per-example gradients of the tracked layers, projected with the seeded CountSketch, for a block
    of candidates; one block chunk is one gradient batch of the local path."""

    model: str
    workspace: str | None
    gradients: dict[str, Any]
    projection_dim: int
    projection_seed: int
    name: str = "features"
    _tracked: Any = field(default=None, repr=False, compare=False)
    _projection: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_tracked", "_projection")} | {
            "_tracked": None, "_projection": None}

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model}:{json.dumps(self.gradients, sort_keys=True, default=str)}:" \
               f"{self.projection_dim}:{self.projection_seed}"

    def setup(self) -> None:
        if self._tracked is None:
            from tamis.signals.influence.projection import CountSketch

            self._tracked = _tracked_model(self.model, self.workspace, self.gradients)
            self._projection = CountSketch(self._tracked.shapes, self.projection_dim, self.projection_seed)

    def batch_bound(self) -> int:
        return int(self._tracked.config.batch_size)

    def info(self) -> dict[str, Any]:
        return {"identity": self._tracked.identity}

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from tamis.signals.influence.features import featurise

        vectors, _ = featurise(self._tracked, _encoded(items), self._projection, None)
        return [{"key": it["key"], "vector": [float(x) for x in v]} for it, v in zip(items, vectors)]


@dataclass
class FactorSumTask:
    """One pass of K-FAC/EK-FAC factor fitting (``kfac.batch_sums``: covariance, or the EK-FAC correction
    in the given eigenbases) as a sum task: workers sum their blocks' gradient batches, the driver adds
    the block sums (``Engine.reduce``), in the batches and order of the local fit."""

    model: str
    workspace: str | None
    gradients: dict[str, Any]
    kind: str
    eigenvectors: list[Any] | None = None
    name: str = "factors"
    _tracked: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_tracked"} | {"_tracked": None}

    def fingerprint(self) -> str:
        return f"{self.name}:{self.kind}:{self.model}:{json.dumps(self.gradients, sort_keys=True, default=str)}"

    def setup(self) -> None:
        if self._tracked is None:
            self._tracked = _tracked_model(self.model, self.workspace, self.gradients)

    def batch_bound(self) -> int:
        return int(self._tracked.config.batch_size)

    def info(self) -> dict[str, Any]:
        return {"identity": self._tracked.identity}

    def partial(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        from tamis.signals.influence.kfac import batch_sums

        return batch_sums(self._tracked, _encoded(items), self.kind, self.eigenvectors)

    def add(self, total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
        from tamis.signals.influence.kfac import add_sums

        return add_sums(total, part)


def embedding_items(texts: list[str]) -> list[dict[str, Any]]:
    """One item per text (duplicates collapse to one item: the engine returns one row per key)."""
    return [{"key": text, "text": text} for text in texts]


def embedding_size(item: dict[str, Any]) -> int:
    """sentence-transformers' own length measure (characters), so blocks group texts as it batches."""
    return len(item["text"])


@dataclass
class EmbeddingTask:
    """Sentence embeddings for a block of texts, with the embedder loaded once per process (no call
    cache: the shards are this engine's storage)."""

    embedder: str
    name: str = "embeddings"
    _embedder: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "name": self.name, "_embedder": None}

    def fingerprint(self) -> str:
        return f"{self.name}:{self.embedder}"

    def setup(self) -> None:
        if self._embedder is None:
            from tamis.models import load_embedder

            self._embedder = load_embedder(self.embedder, cache=False)

    def batch_bound(self) -> int:
        """One block is one of the embedder's batches."""
        return int(getattr(self._embedder, "batch_size", 64))

    def info(self) -> dict[str, Any]:
        return {"identity": self._embedder.identity}

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        vectors = self._embedder.embed([it["text"] for it in items])
        return [{"key": it["key"], "vector": [float(x) for x in v]} for it, v in zip(items, vectors)]


def row_block_items(n: int, rows: int) -> list[dict[str, Any]]:
    """One item per block of ``rows`` consecutive rows of an n-row matrix (the last one shorter)."""
    return [{"key": f"{start:012d}", "start": start, "stop": min(n, start + rows)} for start in range(0, n, rows)]


@dataclass
class NearestOtherTask:
    """Exact nearest other item (cosine) for blocks of rows of a set of unit vectors: the Chamfer search
    of ``tamis.signals.diversity`` cut across workers. Every item is one row block scored against all
    rows, the same product the local blocked search makes, so the values are the same to the bit. The
    vectors travel with the task (Ray passes numpy buffers through its object store)."""

    vectors: Any  # (n, d) float32 unit rows
    digest: str = ""
    name: str = "nearest"

    def __post_init__(self) -> None:
        if not self.digest:
            import hashlib

            import numpy as np

            self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
            self.digest = hashlib.sha256(self.vectors.tobytes() + str(self.vectors.shape).encode()).hexdigest()[:20]

    def fingerprint(self) -> str:
        return f"{self.name}:{self.digest}"

    def setup(self) -> None:
        pass

    def batch_bound(self) -> int:
        return 1  # one row block per call: it is already a full matrix product

    def info(self) -> dict[str, Any]:
        return {"rows": int(self.vectors.shape[0])}

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from tamis.signals.diversity import nearest_in_rows

        out = []
        for it in items:
            index, sims = nearest_in_rows(self.vectors, int(it["start"]), int(it["stop"]))
            out.append({"key": it["key"], "nearest": index.tolist(), "sim": sims.tolist()})
        return out
