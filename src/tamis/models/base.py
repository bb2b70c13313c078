"""The interfaces every model backend implements, and the spec strings that choose one.

A backend is chosen everywhere by one spec string, ``BACKEND:MODEL?key=value&key=value``:

- ``transformers:smollm2`` (the bundled SmolLM2-135M-Instruct), ``transformers:HuggingFaceTB/SmolLM2-360M``,
  ``transformers:/path/to/model?dtype=bfloat16``
- ``llamacpp:smollm2``, ``llamacpp:/path/to/model.gguf?n_ctx=4096``
- ``openai:MODEL?base_url=http://127.0.0.1:8000/v1`` (vLLM, Ollama, llama.cpp server, OpenAI)
- ``sentence-transformers:minilm`` (the bundled all-MiniLM-L6-v2) for embedders

Results of every call are cached by :class:`tamis.store.CallCache`, keyed by the backend's
``identity`` (model and everything that changes its outputs), the inputs and the parameters.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

ChatMessages = list[dict[str, str]]


class ModelError(RuntimeError):
    """A model could not be loaded or called; the message says what to do."""


class LogprobsUnavailable(ModelError):
    """The backend (typically a remote server) does not return the log-probabilities a feature needs."""


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    model: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str, default_backend: str = "transformers") -> "ModelSpec":
        """Parse ``BACKEND:MODEL?k=v&k=v``; a bare name uses ``default_backend``."""
        spec = spec.strip()
        if not spec:
            raise ModelError("empty model spec; expected BACKEND:MODEL, e.g. 'transformers:smollm2'")
        backend, sep, rest = spec.partition(":")
        # "C:/..." or "/abs/path" or "org/name": no backend given
        if not sep or "/" in backend or backend not in KNOWN_BACKENDS:
            backend, rest = default_backend, spec
        model, _, query = rest.partition("?")
        if not model:
            raise ModelError(f"model spec {spec!r} names no model; expected BACKEND:MODEL")
        return cls(backend=backend, model=model, options=dict(parse_qsl(query, keep_blank_values=True)))

    def __str__(self) -> str:
        opts = "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.backend}:{self.model}" + (f"?{opts}" if opts else "")


KNOWN_BACKENDS = ("transformers", "llamacpp", "openai", "sentence-transformers")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters. ``temperature == 0`` means greedy decoding (then ``n`` copies agree)."""

    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResponseLogprobs:
    """Log-probabilities of a given response's tokens under a prompt (natural log)."""

    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))

    @property
    def n_tokens(self) -> int:
        return len(self.logprobs)

    @property
    def mean(self) -> float:
        """Length-normalised log-likelihood; its negative exponent is the perplexity."""
        return self.total / max(1, self.n_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "logprobs": list(self.logprobs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResponseLogprobs":
        return cls(tokens=tuple(d["tokens"]), logprobs=tuple(float(x) for x in d["logprobs"]))


class LLM(abc.ABC):
    """A chat language model. Implementations batch internally; callers pass whole lists."""

    spec: ModelSpec
    #: a Hugging Face-style tokenizer when the backend has one (token counts, templates); else None
    tokenizer: Any = None

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """Everything that determines outputs (model file hash or name+revision, dtype, ...)."""

    @abc.abstractmethod
    def generate(self, prompts: list[ChatMessages], params: GenerationParams) -> list[list[str]]:
        """For each prompt, ``params.n`` completions of the next assistant turn."""

    @abc.abstractmethod
    def logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        """Log-probabilities of each response as the next assistant turn after its prompt.

        Every backend scores the same tokens: the response plus the template's end-of-turn token
        (whether the model would stop there is part of how likely the response is). A prompt with
        no messages scores the response unconditionally, as BOS + response + EOS (IFD's PPL(y))."""

    @abc.abstractmethod
    def apply_chat_template(self, messages: ChatMessages, add_generation_prompt: bool = True) -> str:
        """The exact text the model sees for these messages."""

    def call_stats(self) -> dict[str, int]:
        """Counters of the backend's own calls for the manifest (HTTP requests, retries); {} if none."""
        return {}

    def close(self) -> None:  # pragma: no cover - default no-op
        """Release resources (servers, files)."""


class Embedder(abc.ABC):
    """A text embedder returning L2-normalised float32 vectors."""

    spec: ModelSpec

    @property
    @abc.abstractmethod
    def identity(self) -> str: ...

    @property
    @abc.abstractmethod
    def dim(self) -> int: ...

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, unit norm."""
