"""The bundled all-MiniLM-L6-v2 embedder, and the cache in front of it."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.models import load_embedder

pytestmark = pytest.mark.slow


def test_vectors_are_normalised_and_meaningful(minilm):
    v = minilm.embed(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply today."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_cached_embeddings_equal_fresh_ones(workspace, minilm):
    cached = load_embedder("minilm", workspace)
    texts = ["one", "two", "three", "one"]
    first = cached.embed(texts)
    assert workspace.cache.misses == 3  # duplicates are embedded once
    second = cached.embed(texts)
    assert workspace.cache.hits == 3
    assert np.array_equal(first, second)
    assert np.allclose(first, minilm.embed(texts), atol=1e-6)
