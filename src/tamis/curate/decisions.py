"""The decision record every curation step writes, and how decisions become a new data set.

One record, four outcomes: ``keep`` (unchanged), ``drop`` (with its reason), ``edit`` (the example's
turns replaced; the original kept in meta) and ``review`` (a person must decide: the studio takes
these over). ``step`` is the registered name of what decided, ``scores`` holds only numbers (the
signals and thresholds that decided), ``evidence`` any text (judge verdicts, candidate answers).
Decisions are written as JSONL so people and later steps can take them over; materialising them
yields a new data set whose rows carry their provenance, and a file of everything that was dropped,
with reasons.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from tamis.errors import DataError
from tamis.records import Example, Message
from tamis.store import atomic_write_jsonl

Action = Literal["keep", "drop", "edit", "review"]
ACTIONS: tuple[str, ...] = get_args(Action)
KEEPS = ("keep", "edit")
#: the names older runs and tools wrote, read back as the outcome they stood for
LEGACY_ACTIONS = {"filter": "drop", "reject": "drop", "correct": "edit", "select": "keep"}


def _is_number(value: Any) -> bool:
    return value is None or isinstance(value, (int, float))


@dataclass
class Decision:
    id: str
    action: Action
    reason: str
    scores: dict[str, float | int | None] = field(default_factory=dict)
    step: str = ""
    # for "edit": the replacement conversation (the original stays in the source data set)
    corrected: list[dict[str, str]] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.action = LEGACY_ACTIONS.get(self.action, self.action)  # type: ignore[assignment]
        if self.action not in ACTIONS:
            raise ValueError(f"decision {self.id}: action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        # numbers stay scores; anything else (text, lists, dicts) is evidence, so tables of scores stay numeric
        for key in [k for k, v in self.scores.items() if not _is_number(v)]:
            self.evidence[key] = self.scores.pop(key)
        for key, value in self.scores.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.scores[key] = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "action": self.action, "step": self.step, "reason": self.reason,
                               "scores": self.scores}
        if self.evidence:
            row["evidence"] = self.evidence
        if self.corrected is not None:
            row["corrected"] = self.corrected
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Decision":
        return cls(id=str(row["id"]), action=row["action"], reason=row.get("reason", ""),
                   scores=dict(row.get("scores") or {}), step=row.get("step", ""), corrected=row.get("corrected"),
                   evidence=dict(row.get("evidence") or {}))


def write_decisions(decisions: Iterable[Decision], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_jsonl(path, (d.to_dict() for d in decisions))
    return path


def read_decisions(path: str | Path) -> list[Decision]:
    """Decisions from a decisions.jsonl file or a run folder holding one; bad lines name file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / "decisions.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no decisions file; give the decisions.jsonl of a curation run (or its folder)")
    decisions = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                decisions.append(Decision.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{n}: not a tamis decision ({exc})") from None
    return decisions


def action_counts(decisions: Iterable[Decision]) -> dict[str, int]:
    return dict(Counter(d.action for d in decisions))


def apply_decisions(examples: list[Example], decisions: Iterable[Decision]) -> tuple[list[Example], list[dict[str, Any]]]:
    """(the kept examples, with edits applied and provenance in meta; the dropped rows with reasons).

    An example with no decision is kept unchanged; ``review`` is not a keep (a person has not decided
    yet), so it goes with the dropped rows, its reason saying why. An edited example keeps its
    original turns in ``meta["original_messages"]`` for audit."""
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
        if "train_weight" in d.scores:  # soft curation: the weight travels with the kept example
            meta["train_weight"] = d.scores["train_weight"]
        if d.action == "edit" and d.corrected is not None:
            meta["original_messages"] = [m.to_dict() for m in ex.messages]
            messages = tuple(Message(m["role"], m["content"]) for m in d.corrected)
            kept.append(Example(id=ex.id, kind=ex.kind, messages=messages, meta=meta))
        else:
            kept.append(Example(id=ex.id, kind=ex.kind, messages=ex.messages, text=ex.text, label=ex.label,
                                annotations=ex.annotations, meta=meta))
    return kept, dropped
