"""Checks that turn raw values into valid Example parts, or say exactly what is wrong.

Every check raises RowError naming the field as the user sees it in *their* file (``output``,
``conversations[2].value``), because that is what they have to open and fix.
"""

from __future__ import annotations

from typing import Any

from tamis.io.errors import RowError
from tamis.records import ROLES, Message

SCALARS = (str, int, float, bool)


def require(row: dict[str, Any], key: str, hint: str = "") -> Any:
    """The value of a required column; missing or null is an error."""
    if key not in row or row[key] is None:
        raise RowError(key, "missing required field", hint or f"add a '{key}' value to this row", "missing_field")
    return row[key]


def text_field(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """A string value; rejects other types and (unless allowed) empty or blank strings."""
    if not isinstance(value, str):
        raise RowError(
            field, f"expected a string, got {type(value).__name__}",
            "store this field as plain text (quote numbers; join lists)", "wrong_type",
        )
    if not allow_empty and not value.strip():
        raise RowError(field, "empty text", "fill it in or drop the row", "empty")
    return value


def scalar_text(value: str | int | float | bool) -> str:
    """A scalar as text, JSON-style for booleans so CSV and JSON files agree (True -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def label_value(value: Any, field: str) -> str:
    """A class label as a string: scalars are accepted (1 -> "1"), containers are not."""
    if isinstance(value, str):
        if not value.strip():
            raise RowError(field, "empty label", "give the row a label or remove it", "empty")
        return value
    if isinstance(value, SCALARS):
        return scalar_text(value)
    raise RowError(
        field, f"a label must be a single value, got {type(value).__name__}",
        "for several annotators use an 'annotations' {annotator: label} column or a 'labels' list",
        "wrong_type",
    )


def id_value(value: Any, field: str) -> str:
    """A row id as a string: any scalar, never empty."""
    if isinstance(value, bool) or not isinstance(value, SCALARS):
        raise RowError(field, f"an id must be a string or number, got {type(value).__name__}",
                       "use a unique string per row", "wrong_type")
    text = str(value)
    if not text.strip():
        raise RowError(field, "empty id", "give every row a unique id, or drop the id column", "empty")
    return text


def check_turns(
    turns: Any,
    base: str,
    *,
    role_key: str = "role",
    content_key: str = "content",
    role_map: dict[str, str] | None = None,
) -> tuple[tuple[Message, ...], list[str]]:
    """Validate a list of turns; returns the messages and each turn's original role name.

    Why strict: a chat used for training must start with the user, alternate, and end with the
    assistant turn the model learns to produce; anything else silently trains the wrong thing.
    """
    if not isinstance(turns, list):
        raise RowError(base, f"expected a list of turns, got {type(turns).__name__}",
                       f'write {base} as [{{"{role_key}": ..., "{content_key}": ...}}, ...]', "wrong_type")
    if not turns:
        raise RowError(base, "no turns", "a training chat needs at least a user and an assistant turn", "empty")
    messages: list[Message] = []
    originals: list[str] = []
    for i, turn in enumerate(turns):
        where = f"{base}[{i}]"
        if not isinstance(turn, dict):
            raise RowError(where, f"expected an object, got {type(turn).__name__}",
                           f'each turn is {{"{role_key}": ..., "{content_key}": ...}}', "wrong_type")
        raw_role = turn.get(role_key)
        if raw_role is None:
            raise RowError(f"{where}.{role_key}", "missing role", f"set {role_key} to one of the known roles",
                           "missing_field")
        if not isinstance(raw_role, str):
            raise RowError(f"{where}.{role_key}", f"expected a string, got {type(raw_role).__name__}",
                           "roles are strings", "wrong_type")
        role = role_map.get(raw_role.lower(), raw_role) if role_map else raw_role
        if role not in ROLES:
            known = sorted(role_map) if role_map else list(ROLES)
            hint = ("tool/function turns are not supported for training data; drop them or fold them into "
                    "the assistant turn" if raw_role.lower() in ("tool", "function", "ipython")
                    else f"use one of: {', '.join(known)}")
            raise RowError(f"{where}.{role_key}", f"unknown role {raw_role!r}", hint, "bad_role")
        if content_key not in turn or turn[content_key] is None:
            raise RowError(f"{where}.{content_key}", "missing content", "every turn needs text", "missing_field")
        content = text_field(turn[content_key], f"{where}.{content_key}")
        messages.append(Message(role, content))
        originals.append(raw_role)
    check_order(messages, base, role_key)
    return tuple(messages), originals


def check_order(messages: list[Message] | tuple[Message, ...], base: str, role_key: str = "role") -> None:
    """System only first; then user, assistant, user, ...; the last turn is the assistant's."""
    expected = "user"
    for i, m in enumerate(messages):
        field = f"{base}[{i}].{role_key}"
        if m.role == "system":
            if i != 0:
                raise RowError(field, f"system turn at index {i}", "a system turn may only come first", "role_order")
            continue
        if m.role != expected:
            what = "the first non-system turn must be 'user'" if expected == "user" and i <= 1 else (
                f"turn {i} should be '{expected}' (user and assistant alternate)")
            raise RowError(field, f"role {m.role!r} out of order", what, "role_order")
        expected = "assistant" if expected == "user" else "user"
    if not messages or messages[-1].role != "assistant":
        last = len(messages) - 1
        raise RowError(f"{base}[{last}].{role_key}", "chat does not end with an assistant turn",
                       "a training chat ends with the answer the model should learn; add it or drop the row",
                       "role_order")
