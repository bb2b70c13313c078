"""Diversity of a set of texts on embeddings: Remote Clique and Chamfer, exact and fast at scale.

With cosine distance d(i, j) = 1 - cos(e_i, e_j) and j != i (Li et al. 2023; a peer package keeps
the zero self-distance and is biased by (N-1)/N):

- Remote Clique of item i = mean_{j != i} d(i, j). For unit vectors this is
  1 - (e_i . S - 1) / (N - 1) with S = sum_j e_j, so the whole set costs O(N d), not O(N^2 d).
- Chamfer of item i = min_{j != i} d(i, j) = 1 - (largest similarity to another item): exact, by
  blocked matrix products (memory block x N) or a FAISS exact inner-product index searched with k=2.

Each item's own value is its contribution to the set's score (the score is their mean): the items
with the smallest Chamfer values are the redundant ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from tamis.signals.registry import SignalTable, register_signal

register_signal("remote_clique", "higher", "mean cosine distance of the example to every other (its Remote Clique "
                "contribution)", range=(0.0, 2.0), needs=("embedder",), produced_by="tamis score diversity")
register_signal("chamfer", "higher", "cosine distance to the nearest other example (its Chamfer contribution; small = "
                "redundant)", range=(0.0, 2.0), needs=("embedder",), produced_by="tamis score diversity")
register_signal("nn_similarity", "lower", "cosine similarity to the nearest other example (near 1 = near-duplicate)",
                range=(-1.0, 1.0), needs=("embedder",), produced_by="tamis profile")

ChamferMethod = Literal["auto", "blocked", "faiss"]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero) so dot products are cosines."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {x.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.where(norms == 0, 1, norms)


def remote_clique_contributions(vectors: np.ndarray, normalise: bool = True) -> np.ndarray:
    """Each item's mean cosine distance to every other item; O(N d) via the sum of unit vectors."""
    x = unit_rows(vectors) if normalise else np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.full(n, np.nan)
    total = x.sum(axis=0, dtype=np.float64)  # the sum in float64: exact enough for millions of rows
    self_sim = np.einsum("ij,ij->i", x, x).astype(np.float64)  # 1 for unit rows, 0 for zero rows
    # float32 dot products against the float64 sum keep the error near 1e-7 of |S| / (N - 1)
    mean_sim_others = ((x @ total.astype(np.float32)).astype(np.float64) - self_sim) / (n - 1)
    return 1.0 - mean_sim_others


def nearest_in_rows(x: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, similarity) of the nearest other row for rows ``start:stop`` of unit rows ``x``: one
    block of the exact search (the local loop below and the engines' ``NearestOtherTask`` share it)."""
    s = x[start:stop] @ x.T
    rows = np.arange(stop - start)
    s[rows, rows + start] = -np.inf  # j != i
    index = s.argmax(axis=1)
    return index.astype(np.int64), s[rows, index].astype(np.float32)


def _nearest_blocked(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    index = np.empty(n, dtype=np.int64)
    sims = np.empty(n, dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        index[start:stop], sims[start:stop] = nearest_in_rows(x, start, stop)
    return index, sims


def nearest_other_on_engine(vectors: np.ndarray, engine: Any, shards: Any, block: int = 2048,
                            normalise: bool = True) -> tuple[tuple[np.ndarray, np.ndarray], Any]:
    """``nearest_other`` by exact blocked search with the row blocks spread over an engine's workers
    (``tamis.engine``: shards in ``shards``, a finished block is not recomputed); the same values as
    ``nearest_other(method="blocked", block=block)``. Returns ((index, similarity), engine stats)."""
    from tamis.engine import get_engine
    from tamis.engine.tasks import NearestOtherTask, row_block_items

    x = unit_rows(vectors) if normalise else np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return nearest_other(x, normalise=False), None
    items = row_block_items(len(x), block)
    rows, stats = get_engine(engine).map(NearestOtherTask(x), items, shards, size=lambda it: 0,
                                         description="nearest other (Chamfer)")
    index = np.concatenate([np.asarray(rows[it["key"]]["nearest"], dtype=np.int64) for it in items])
    sims = np.concatenate([np.asarray(rows[it["key"]]["sim"], dtype=np.float32) for it in items])
    return (index, sims), stats


def _nearest_faiss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])  # exact inner product = cosine on unit rows
    index.add(x)
    sims, ids = index.search(x, 2)
    # The best hit is normally the item itself; with exact duplicates it may be the twin instead.
    own = ids[:, 0] == np.arange(len(x))
    nearest = np.where(own, ids[:, 1], ids[:, 0])
    best = np.where(own, sims[:, 1], sims[:, 0])
    return nearest.astype(np.int64), best.astype(np.float32)


def nearest_other(vectors: np.ndarray, method: ChamferMethod = "auto", block: int = 2048,
                  normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(index, cosine similarity) of each item's most similar other item, exactly."""
    x = unit_rows(vectors) if normalise else np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return np.full(len(x), -1, dtype=np.int64), np.full(len(x), np.nan, dtype=np.float32)
    if method == "auto":
        method = "faiss" if len(x) > 20_000 else "blocked"
    if method == "faiss":
        return _nearest_faiss(x)
    if method == "blocked":
        return _nearest_blocked(x, block)
    raise ValueError(f"unknown Chamfer method {method!r}; use auto, blocked or faiss")


def chamfer_contributions(vectors: np.ndarray, method: ChamferMethod = "auto", block: int = 2048) -> np.ndarray:
    """Each item's cosine distance to its nearest other item."""
    _, sims = nearest_other(vectors, method=method, block=block)
    return 1.0 - sims.astype(np.float64)


@dataclass
class Diversity:
    """Set-level scores (higher = more diverse) and each item's contribution."""

    n: int
    remote_clique: float
    chamfer: float
    rc_items: np.ndarray
    chamfer_items: np.ndarray
    nearest: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "remote_clique": self.remote_clique, "chamfer": self.chamfer}


def diversity(vectors: np.ndarray, method: ChamferMethod = "auto",
              nearest: tuple[np.ndarray, np.ndarray] | None = None) -> Diversity:
    """Remote Clique and Chamfer of a set of embeddings (cosine distance, j != i); ``nearest`` takes
    a nearest-other search already made (e.g. ``nearest_other_on_engine``)."""
    rc = remote_clique_contributions(vectors)
    nearest, sims = nearest if nearest is not None else nearest_other(vectors, method=method)
    ch = 1.0 - sims.astype(np.float64)
    mean = (lambda a: float(np.mean(a)) if len(a) > 1 else float("nan"))
    return Diversity(len(rc), mean(rc), mean(ch), rc, ch, nearest)


def diversity_table(ids: Sequence[str], result: Diversity) -> SignalTable:
    """One row per item, keyed by example id: its contributions and its nearest other item."""
    return SignalTable.from_rows(
        ({"id": ids[i], "remote_clique": float(result.rc_items[i]), "chamfer": float(result.chamfer_items[i]),
          "nearest_id": ids[int(result.nearest[i])] if result.nearest[i] >= 0 else None}
         for i in range(result.n)), result.summary())


def text_diversity(texts: Sequence[str], embedder: Any) -> Diversity:
    """Diversity of texts on an embedder's vectors (the bundled MiniLM by default in the CLI)."""
    return diversity(embedder.embed(list(texts)))
