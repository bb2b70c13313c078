"""Model backends behind one interface (see base.py), chosen by spec strings, cached by default."""

from __future__ import annotations

import os
from typing import Any

from tamis.extras import require

from tamis.models.base import (
    LLM,
    Embedder,
    GenerationParams,
    LogprobsUnavailable,
    ModelError,
    ModelSpec,
    ResponseLogprobs,
)

DEFAULT_LLM = "transformers:smollm2"
DEFAULT_EMBEDDER = "sentence-transformers:minilm"

__all__ = [
    "DEFAULT_EMBEDDER", "DEFAULT_LLM", "LLM", "Embedder", "GenerationParams", "LogprobsUnavailable",
    "ModelError", "ModelSpec", "ResponseLogprobs", "load_embedder", "load_llm",
]


def _quiet_libraries() -> None:
    """Library progress bars and warnings drown tamis's own progress; keep errors only."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def load_llm(spec: str | ModelSpec = DEFAULT_LLM, workspace: Any = None, *, cache: bool = True) -> LLM:
    """Load an LLM from a spec string; with a workspace and ``cache``, calls go through its cache."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    _quiet_libraries()
    llm: LLM
    if spec.backend == "transformers":
        require("models", "the transformers backend")
        from tamis.models.hf import TransformersLLM

        llm = TransformersLLM(spec, workspace)
    elif spec.backend == "llamacpp":
        require("llamacpp", "the llama.cpp backend")
        from tamis.models.llamacpp import LlamaCppLLM

        llm = LlamaCppLLM(spec, workspace)
    elif spec.backend == "openai":
        from tamis.models.openai_http import OpenAILLM

        llm = OpenAILLM(spec, workspace)
    else:
        raise ModelError(f"{spec.backend!r} is not an LLM backend; use transformers, llamacpp or openai")
    if cache and workspace is not None:
        from tamis.models.cached import CachedLLM

        commit_every = spec.options.get("commit_every")
        llm = CachedLLM(llm, workspace.cache, chunk_size=int(commit_every) if commit_every else None)
    return llm


def load_embedder(spec: str | ModelSpec = DEFAULT_EMBEDDER, workspace: Any = None, *, cache: bool = True) -> Embedder:
    """Load a sentence embedder from a spec string (``sentence-transformers:NAME_OR_PATH``)."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec, default_backend="sentence-transformers")
    _quiet_libraries()
    if spec.backend != "sentence-transformers":
        raise ModelError(f"{spec.backend!r} is not an embedder backend; use sentence-transformers")
    require("models", "sentence embedders")
    from tamis.models.embedder import SentenceTransformerEmbedder

    embedder: Embedder = SentenceTransformerEmbedder(spec, workspace)
    if cache and workspace is not None:
        from tamis.models.cached import CachedEmbedder

        embedder = CachedEmbedder(embedder, workspace.cache)
    return embedder
