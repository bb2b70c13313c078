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
import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from tamis.errors import ModelError, unknown

ChatMessages = list[dict[str, str]]


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
        if sep and len(backend) > 1 and backend.replace("-", "").replace("_", "").isalnum() \
                and backend not in KNOWN_BACKENDS and not rest.startswith(("/", "\\")):
            raise ModelError(unknown("backend", backend, KNOWN_BACKENDS) + f" in model spec {spec!r}")
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
    """Log-probabilities of a given response's tokens under a prompt (natural log).

    A row longer than the model's context is never scored silently: when prompt + response do not
    fit, the prompt is cut from the left (``context_dropped`` tokens, as lm-evaluation-harness does
    for loglikelihood), and when the response alone does not fit nothing is scored (``skipped``,
    every summary NaN). ``note`` says which, in words, for the output row."""

    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    note: str = ""
    context_dropped: int = 0
    skipped: bool = False

    @property
    def total(self) -> float:
        return math.nan if self.skipped else float(sum(self.logprobs))

    @property
    def n_tokens(self) -> int:
        return len(self.logprobs)

    @property
    def mean(self) -> float:
        """Length-normalised log-likelihood; its negative exponent is the perplexity."""
        return self.total / max(1, self.n_tokens)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tokens": list(self.tokens), "logprobs": list(self.logprobs)}
        if self.note:  # only when set, so cached results from before these fields read back unchanged
            out.update(note=self.note, context_dropped=self.context_dropped, skipped=self.skipped)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResponseLogprobs":
        return cls(tokens=tuple(d["tokens"]), logprobs=tuple(float(x) for x in d["logprobs"]),
                   note=str(d.get("note") or ""), context_dropped=int(d.get("context_dropped") or 0),
                   skipped=bool(d.get("skipped", False)))


def fit_to_context(n_context: int, n_response: int, max_tokens: int, *, min_context: int = 1) -> tuple[int, str]:
    """How many context tokens to drop from the left so ``n_context + n_response <= max_tokens``.

    Returns (tokens to drop, note); the note is "" when everything fits. The drop is -1 when even
    ``min_context`` tokens of context (the first response token must be predicted from something)
    plus the response exceed the context: then the row cannot be scored and the note says so."""
    if n_context + n_response <= max_tokens:
        return 0, ""
    if min_context + n_response > max_tokens:
        return -1, (f"skipped: the response has {n_response} tokens, more than the model's {max_tokens}-token "
                    "context can score; not scored")
    drop = n_context + n_response - max_tokens
    return drop, (f"prompt truncated from the left: {drop} of {n_context} context tokens dropped to fit the "
                  f"model's {max_tokens}-token context (as lm-evaluation-harness does for loglikelihood)")


def skipped_logprobs(note: str) -> ResponseLogprobs:
    """The result for a row that cannot be scored at all (see ``fit_to_context``)."""
    return ResponseLogprobs(tokens=(), logprobs=(), note=note, skipped=True)


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

    @property
    def batch_hint(self) -> int:
        """How many items the backend computes together (its batch, or its concurrent requests).

        The caching wrapper commits chunks of ``max(4, batch_hint)`` items: small enough that progress
        moves and a killed run keeps most of its work, big enough to fill a batch."""
        return 1

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
