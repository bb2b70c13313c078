"""Cheap per-example statistics: lengths and turn counts (in characters, words and tokens)."""

from __future__ import annotations

from typing import Any, Protocol

from tamis.records import Example
from tamis.signals.registry import SignalTable, register_signal

for _name, _what in (("n_turns", "number of messages"), ("prompt_chars", "prompt length in characters"),
                     ("response_chars", "response length in characters (a length-only baseline: longer ranks higher)"),
                     ("response_words", "response length in words"), ("prompt_tokens", "prompt length in tokens"),
                     ("response_tokens", "response length in tokens (a length-only baseline: longer ranks higher)"),
                     ("text_chars", "text length in characters"), ("text_words", "text length in words"),
                     ("text_tokens", "text length in tokens")):
    register_signal(_name, "higher" if _name.startswith("response_") else "none", _what, range=(0.0, None),
                    produced_by="tamis profile")


class Tokenizer(Protocol):
    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def _n_tokens(tokenizer: Tokenizer | None, text: str) -> int | None:
    if tokenizer is None:
        return None
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def example_stats(examples: list[Example], tokenizer: Tokenizer | None = None) -> SignalTable:
    """One row per example: turn count and prompt/response (or text) lengths."""
    rows = []
    for ex in examples:
        if ex.kind == "chat":
            prompt = "\n".join(m["content"] for m in ex.prompt_messages)
            response = ex.response or ""
            row: dict[str, Any] = {
                "id": ex.id,
                "n_turns": len(ex.messages),
                "prompt_chars": len(prompt),
                "response_chars": len(response),
                "response_words": len(response.split()),
            }
            if tokenizer is not None:
                row["prompt_tokens"] = _n_tokens(tokenizer, prompt)
                row["response_tokens"] = _n_tokens(tokenizer, response)
        else:
            text = ex.text or ""
            row = {"id": ex.id, "text_chars": len(text), "text_words": len(text.split())}
            if tokenizer is not None:
                row["text_tokens"] = _n_tokens(tokenizer, text)
        rows.append(row)
    return SignalTable.from_rows(rows)
