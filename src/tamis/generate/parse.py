"""Turn a raw model reply into one clean text, or say exactly why it cannot be used.

Small models wrap their answer in chatter ("Sure! Here is a tweet:"), quotes, label tags or several
alternatives. This keeps the text (or the first of several numbered alternatives), strips the wrappers, and cuts over-long texts at a
sentence boundary within the word limit (recording that it did). Nothing is dropped silently: every
failure comes back as a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREAMBLE = re.compile(r"^\s*(sure|okay|ok|certainly|of course|here('s| is| are)|absolutely)\b[^\n]*?(:|!|\.)\s*$", re.I)
LEAD_TAG = re.compile(r"^\s*(\[[^\]]{1,30}\]|\(?(label|text|message|sms|tweet|sentence|output|answer|example|response)"
                      r"\s*\d*\s*\)?\s*[:\-])\s*", re.I)
NUMBERING = re.compile(r"^\s*(\d+[.)]|[-*•])\s+")
REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i apologi[sz]e)", re.I)
QUOTES = "\"'“”‘’`"
MIN_WORDS = 3


@dataclass
class Parsed:
    text: str | None
    problem: str | None = None  # empty | refusal | too_short
    truncated: bool = False


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in QUOTES and text[-1] in QUOTES:
        text = text[1:-1].strip()
    return text.strip(QUOTES + " ") if text.count('"') == 1 else text


def _truncate(text: str, max_words: int) -> tuple[str, bool]:
    words = text.split()
    if len(words) <= max_words:
        return text, False
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept: list[str] = []
    for sentence in sentences:
        if len(" ".join(kept + [sentence]).split()) > max_words:
            break
        kept.append(sentence)
    return (" ".join(kept) if kept else " ".join(words[:max_words])), True


_MARKER = re.compile(r"(?<!\w)text[^\w\n:：]{0,3}[:：]\s*\**\s*", re.I)  # text: / **Text:** / "text":


def split_reasoned(raw: str) -> tuple[str | None, str]:
    """(the text after the last 'text:', the reasoning before it); (None, raw) without a marker."""
    found = list(_MARKER.finditer(raw or ""))
    if not found:
        return None, raw or ""
    last = found[-1]
    return raw[last.end():], raw[:last.start()].strip()


def parse_generated_text(raw: str, max_words: int | None = None, slack: float = 1.5) -> Parsed:
    """The usable text in ``raw``; longer than ``max_words * slack`` words is cut to ``max_words``."""
    if raw is None or not raw.strip():
        return Parsed(None, "empty")
    lines = [ln for ln in raw.strip().splitlines() if ln.strip() and not PREAMBLE.match(ln)]
    numbered = [ln for ln in lines if NUMBERING.match(ln)]
    if len(numbered) >= 2:
        lines = numbered[:1]  # a list of alternatives: the first one
    text = _unquote(" ".join(NUMBERING.sub("", LEAD_TAG.sub("", ln)).strip() for ln in lines))
    if not text:
        return Parsed(None, "empty")
    if REFUSAL.match(text):
        return Parsed(None, "refusal")
    if len(text.split()) < MIN_WORDS:
        return Parsed(None, "too_short")
    truncated = False
    if max_words and len(text.split()) > max_words * slack:
        text, truncated = _truncate(text, max_words)
    return Parsed(text, None, truncated)
