"""Reject generated texts that copy real examples or earlier generations.

Two tests, each optional: cosine similarity of sentence embeddings (catches paraphrases) and
ROUGE-L F1 (``rouge-score``; catches copied wording). A text is a near-copy when either score
against any reference or any earlier accepted text reaches its threshold. ROUGE-L is computed
against the few references the embedding finds closest (or all of them without an embedder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tamis.settings import setting


@dataclass
class NearCopyConfig:
    embedding_threshold: float | None = setting(0.95, "Reject at this cosine similarity to a real or accepted text "
                                                      "(omit the test: -1).")
    rouge_threshold: float | None = setting(0.7, "Reject at this ROUGE-L F1 (omit the test: -1).")
    rouge_candidates: int = setting(20, "ROUGE-L against this many closest texts when embeddings exist.",
                                    range=(1, None))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NearCopyFilter:
    """Holds reference texts (real data) and accepted generations; ``check`` a batch in order."""

    def __init__(self, config: NearCopyConfig, references: Sequence[tuple[str, str]] = (), embedder: Any = None):
        from rouge_score import rouge_scorer

        self.config = config
        self.embedder = embedder
        self.ids: list[str] = [i for i, _ in references]
        self.texts: list[str] = [t for _, t in references]
        self.exact = {t.strip().lower() for t in self.texts}
        self.vectors = embedder.embed(self.texts) if self.embedder is not None and self.texts else None
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def _add(self, id_: str, text: str, vector: np.ndarray | None) -> None:
        self.ids.append(id_)
        self.texts.append(text)
        self.exact.add(text.strip().lower())
        if vector is not None:
            self.vectors = vector[None] if self.vectors is None else np.vstack([self.vectors, vector[None]])

    def check_batch(self, candidates: Sequence[tuple[str, str]]) -> list[tuple[str | None, dict[str, Any]]]:
        """For each (id, text): (reason or None, scores). Accepted texts join the references."""
        vectors = self.embedder.embed([t for _, t in candidates]) if self.embedder is not None and candidates else None
        out = []
        for k, (id_, text) in enumerate(candidates):
            vec = vectors[k] if vectors is not None else None
            reason, scores = self._check(text, vec)
            if reason is None:
                self._add(id_, text, vec)
            out.append((reason, scores))
        return out

    def _check(self, text: str, vec: np.ndarray | None) -> tuple[str | None, dict[str, Any]]:
        scores: dict[str, Any] = {}
        if text.strip().lower() in self.exact:
            return "duplicate", scores
        if not self.texts:
            return None, scores
        order: Sequence[int] = range(len(self.texts))
        if vec is not None and self.vectors is not None:
            sims = self.vectors @ vec
            best = int(sims.argmax())
            scores |= {"max_cosine": round(float(sims[best]), 4), "closest_id": self.ids[best]}
            thr = self.config.embedding_threshold
            if thr is not None and sims[best] >= thr:
                return "near_copy_embedding", scores
            order = np.argsort(-sims)[: self.config.rouge_candidates].tolist()
        if self.config.rouge_threshold is not None:
            best_r, best_id = 0.0, None
            for j in order:
                r = self.scorer.score(self.texts[j], text)["rougeL"].fmeasure
                if r > best_r:
                    best_r, best_id = r, self.ids[j]
            scores |= {"max_rouge_l": round(best_r, 4), "rouge_closest_id": best_id}
            if best_r >= self.config.rouge_threshold:
                return "near_copy_rouge", scores
        return None, scores
