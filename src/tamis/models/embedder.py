"""Sentence embeddings via sentence-transformers; the bundled all-MiniLM-L6-v2 by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamis.models.base import Embedder, ModelError, ModelSpec
from tamis.models.bundled import file_digest, is_minilm, minilm_path
from tamis.models.hf import best_device


class SentenceTransformerEmbedder(Embedder):
    """Batched, L2-normalised embeddings. Options: batch_size, device, max_seq_length."""

    def __init__(self, spec: ModelSpec, workspace: Any = None):
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        path = str(minilm_path()) if is_minilm(spec.model) else spec.model
        self.batch_size = int(spec.options.get("batch_size", 64))
        device = spec.options.get("device") or str(best_device())
        try:
            self.model = SentenceTransformer(path, device=device)
        except OSError as err:
            raise ModelError(f"cannot load sentence-transformers model {spec.model!r}: {err}") from err
        if "max_seq_length" in spec.options:
            self.model.max_seq_length = int(spec.options["max_seq_length"])
        weights = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
        digest = file_digest(str(weights[0])) if weights else spec.model
        name = "all-MiniLM-L6-v2" if is_minilm(spec.model) else spec.model
        self._identity = f"sentence-transformers:{name}@{digest}:len{self.model.max_seq_length}"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
