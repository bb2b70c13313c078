"""Projected candidate gradients, computed in batches and committed in chunks so a killed run resumes.

Features live in a folder named by a hash of (model identity, gradient config, projection config);
each committed chunk is one ``.npz`` (keys + vectors) written atomically, and a key is a hash of the
example id and its token ids, so an edited example is recomputed and an unchanged one never is.
The candidate features do not depend on the Hessian approximation: identity, K-FAC and EK-FAC scores
all reuse them (the inverse Hessian is applied on the few seed gradients instead).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis.signals.influence.gradients import Encoded, TrackedModel
from tamis.signals.influence.projection import CountSketch
from tamis.store import atomic_write_text, cache_key


class FeatureStore:
    """A folder of committed feature chunks for one configuration."""

    def __init__(self, folder: str | Path, config: dict[str, Any]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = config
        if not (self.folder / "config.json").is_file():
            atomic_write_text(self.folder / "config.json", json.dumps(config, indent=2, default=str) + "\n")
        self._chunks = len(list(self.folder.glob("chunk-*.npz")))

    def load(self) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for path in sorted(self.folder.glob("chunk-*.npz")):
            with np.load(path) as data:
                found.update(zip(data["keys"].tolist(), data["vectors"]))
        return found

    def commit(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        path = self.folder / f"chunk-{self._chunks:06d}-{os.getpid()}.npz"
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, keys=np.array(list(keys)), vectors=vectors.astype(np.float32))
        os.replace(tmp, path)
        self._chunks += 1


def feature_key(enc: Encoded) -> str:
    return cache_key(enc.id, enc.ids, enc.n_context)


def store_for(root: str | Path, tracked: TrackedModel, projection: CountSketch) -> FeatureStore:
    config = {"model": tracked.identity, "gradients": tracked.config.to_dict(), "modules": tracked.names,
              "projection": projection.config()}
    return FeatureStore(Path(root) / cache_key(config)[:20], config)


def featurise(tracked: TrackedModel, encoded: Sequence[Encoded], projection: CountSketch, store: FeatureStore | None,
              *, chunk_size: int = 64, advance: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """(features (N, dim) in input order, number computed now); everything already committed is reused."""
    keys = [feature_key(e) for e in encoded]
    found = store.load() if store is not None else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    todo = [encoded[i] for i in missing]
    pending_keys: list[str] = []
    pending: list[np.ndarray] = []
    for idx in tracked.batches(todo):
        capture, _ = tracked.forward_backward([todo[i] for i in idx])
        vectors = projection(tracked.per_example_grads(capture)).cpu().numpy()
        for row, i in enumerate(idx):
            found[keys[missing[i]]] = vectors[row]
            pending_keys.append(keys[missing[i]])
            pending.append(vectors[row])
        if store is not None and len(pending) >= chunk_size:
            store.commit(pending_keys, np.stack(pending))
            pending_keys, pending = [], []
        if advance:
            advance(len(idx))
    if store is not None and pending:
        store.commit(pending_keys, np.stack(pending))
    if not keys:
        return np.zeros((0, projection.out_dim), dtype=np.float32), 0
    return np.stack([found[k] for k in keys]).astype(np.float32), len(missing)
