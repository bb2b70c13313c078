"""The decision record every curation step writes, and how decisions become a new data set.

A decision is (id, action, reason, scores[, corrected messages]). Decisions are written as JSONL so
people (the post-editing studio) and later steps can take them over; materialising them yields a new
data set whose rows carry their provenance, and a file of everything that was dropped, with reasons.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tamis.records import Example, Message
from tamis.store import atomic_write_text

Action = Literal["keep", "filter", "correct", "select", "reject", "review"]
KEEPS = ("keep", "correct", "select")


@dataclass
class Decision:
    id: str
    action: Action
    reason: str
    scores: dict[str, Any] = field(default_factory=dict)
    step: str = ""
    # for "correct": the replacement conversation (the original stays in the source data set)
    corrected: list[dict[str, str]] | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "action": self.action, "reason": self.reason, "step": self.step,
                               "scores": self.scores}
        if self.corrected is not None:
            row["corrected"] = self.corrected
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Decision":
        return cls(id=str(row["id"]), action=row["action"], reason=row.get("reason", ""),
                   scores=row.get("scores") or {}, step=row.get("step", ""), corrected=row.get("corrected"))


def write_decisions(decisions: Iterable[Decision], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in decisions))
    return path


def read_decisions(path: str | Path) -> list[Decision]:
    with open(path, encoding="utf-8") as fh:
        return [Decision.from_dict(json.loads(line)) for line in fh if line.strip()]


def action_counts(decisions: Iterable[Decision]) -> dict[str, int]:
    return dict(Counter(d.action for d in decisions))


def apply_decisions(examples: list[Example], decisions: Iterable[Decision]) -> tuple[list[Example], list[dict[str, Any]]]:
    """(the kept examples, with corrections applied and provenance in meta; the dropped rows with reasons).

    An example with no decision is kept unchanged; a corrected example keeps its original turns in
    ``meta["original_messages"]`` for audit."""
    by_id = {d.id: d for d in decisions}
    kept: list[Example] = []
    dropped: list[dict[str, Any]] = []
    for ex in examples:
        d = by_id.get(ex.id)
        if d is None:
            kept.append(ex)
            continue
        if d.action not in KEEPS:
            dropped.append(ex.to_dict() | {"decision": d.to_dict()})
            continue
        meta = dict(ex.meta) | {"decision": {"action": d.action, "reason": d.reason, "step": d.step}}
        if d.action == "correct" and d.corrected is not None:
            meta["original_messages"] = [m.to_dict() for m in ex.messages]
            messages = tuple(Message(m["role"], m["content"]) for m in d.corrected)
            kept.append(Example(id=ex.id, kind=ex.kind, messages=messages, meta=meta))
        else:
            kept.append(Example(id=ex.id, kind=ex.kind, messages=ex.messages, text=ex.text, label=ex.label,
                                annotations=ex.annotations, meta=meta))
    return kept, dropped
