"""Nearest-neighbour similarity on embeddings: how close each example is to its closest other one."""

from __future__ import annotations

import numpy as np


def nearest_neighbours(vectors: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For unit vectors, each row's most cosine-similar other row: (indices, similarities).

    Blocked matrix products keep memory at block x n, so this scales to large n without an index."""
    n = len(vectors)
    index = np.full(n, -1, dtype=np.int64)
    sims = np.full(n, np.nan, dtype=np.float32)
    if n < 2:
        return index, sims
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        s = x[start:stop] @ x.T
        s[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never your own neighbour
        index[start:stop] = s.argmax(axis=1)
        sims[start:stop] = s[np.arange(stop - start), index[start:stop]]
    return index, sims
