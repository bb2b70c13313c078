"""The Example schema: the one shape every reader produces and every step consumes.

Two canonical forms share one record type:
- generative examples carry OpenAI-style ``messages`` (system/user/assistant turns);
- classification examples carry ``text`` and ``label`` (and, optionally, every annotator's label).

Every example has a stable ``id`` (given by the data, or a hash of its content) and keeps all the
fields tamis does not interpret in ``meta``, so writing it back loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
Kind = Literal["chat", "labelled"]


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(slots=True)
class Example:
    """One training example. Immutable by convention: steps create new examples, never edit."""

    id: str
    kind: Kind
    messages: tuple[Message, ...] = ()
    text: str | None = None
    label: str | None = None
    # annotator id -> label, for data that keeps every rater's judgement
    annotations: dict[str, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # -- convenient views on chat examples -------------------------------------------------
    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """Every turn before the final assistant turn: what the model is conditioned on."""
        msgs = list(self.messages)
        if msgs and msgs[-1].role == "assistant":
            msgs = msgs[:-1]
        return [m.to_dict() for m in msgs]

    @property
    def response(self) -> str | None:
        """The final assistant turn: the target a model is trained to produce."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1].content
        return None

    @property
    def prompt_text(self) -> str:
        """The user-visible prompt as plain text (the last user turn; system turns excluded)."""
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else ""

    def to_dict(self) -> dict[str, Any]:
        """The canonical serialised form (tamis's own JSONL)."""
        row: dict[str, Any] = {"id": self.id}
        if self.kind == "chat":
            row["messages"] = [m.to_dict() for m in self.messages]
        else:
            row["text"] = self.text
            row["label"] = self.label
            if self.annotations:
                row["annotations"] = dict(self.annotations)
        if self.meta:
            row["meta"] = self.meta
        return row


def content_id(kind: str, payload: Any) -> str:
    """A stable id from content: same content, same id, on every machine and run."""
    blob = json.dumps([kind, payload], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def chat_example(
    messages: list[dict[str, str]] | list[Message],
    *,
    id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Example:
    """Build a chat example; the id defaults to a hash of the messages."""
    msgs = tuple(m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages)
    ex_id = id if id is not None else content_id("chat", [m.to_dict() for m in msgs])
    return Example(id=ex_id, kind="chat", messages=msgs, meta=dict(meta or {}))


def labelled_example(
    text: str,
    label: str | None,
    *,
    id: str | None = None,
    annotations: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Example:
    """Build a labelled-text example; the id defaults to a hash of text and label."""
    ex_id = id if id is not None else content_id("labelled", [text, label])
    return Example(
        id=ex_id, kind="labelled", text=text, label=label, annotations=annotations, meta=dict(meta or {})
    )


def data_fingerprint(examples: list[Example]) -> str:
    """A hash of the exact training conversations (or labelled rows), saved beside what was trained on them."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict()["messages"] if ex.kind == "chat" else ex.to_dict(), sort_keys=True,
                            ensure_ascii=False).encode())
    return h.hexdigest()[:16]
