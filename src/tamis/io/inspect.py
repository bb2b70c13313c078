"""A first look at a dataset: sizes, lengths, duplicates, labels and what was rejected.

Returns a plain JSON-serialisable dict so the CLI, the report and tests can all use it as is.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from typing import Any

from tamis.io.reader import ReadResult
from tamis.records import Example

MAX_DUP_GROUPS = 10
MAX_PROBLEM_EXAMPLES = 5


def length_stats(values: list[int]) -> dict[str, float] | None:
    """min/mean/median/p95/max of a list of lengths (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"min": ordered[0], "mean": round(statistics.fmean(ordered), 2),
            "median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def count_tokens(tokenizer: Any, text: str) -> int:
    """Token count with anything tokenizer-like: `.encode(text)` or `tokenizer(text)`."""
    if hasattr(tokenizer, "encode"):
        out = tokenizer.encode(text)
    else:
        out = tokenizer(text)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    if hasattr(out, "ids"):  # a `tokenizers.Encoding`
        out = out.ids
    return len(out)


def _prompt(ex: Example) -> str:
    return "\n".join(m["content"] for m in ex.prompt_messages)


def _content_key(ex: Example) -> str:
    if ex.kind == "chat":
        return json.dumps([m.to_dict() for m in ex.messages], ensure_ascii=False)
    return json.dumps([ex.text, ex.label], ensure_ascii=False)


def inspect_dataset(result: Any, tokenizer: Any = None) -> dict[str, Any]:
    """Summarise a read: counts, kinds, turns, char/token lengths, duplicates, labels, problems.

    ``result`` is a ReadResult, or anything ``read_dataset`` takes (a path, a datasets.Dataset, a
    DataFrame, a list of dicts), which is read first."""
    if not isinstance(result, ReadResult):
        from tamis.io.reader import read_dataset

        result = read_dataset(result)
    exs = result.examples
    chat = [e for e in exs if e.kind == "chat"]
    lab = [e for e in exs if e.kind == "labelled"]
    report: dict[str, Any] = {
        "source": str(result.source),
        "format": result.format,
        "counts": {"read": result.n_read, "kept": result.n_kept, "rejected": result.n_rejected},
        "kinds": dict(Counter(e.kind for e in exs)),
    }
    texts: dict[str, list[str]] = {}
    if chat:
        report["turns"] = length_stats([len(e.messages) for e in chat])
        report["system_prompts"] = sum(1 for e in chat if e.messages and e.messages[0].role == "system")
        texts["prompt"] = [_prompt(e) for e in chat]
        texts["response"] = [e.response or "" for e in chat]
    if lab:
        texts["text"] = [e.text or "" for e in lab]
        labels = Counter(e.label for e in lab if e.label is not None)
        report["labels"] = dict(labels.most_common())
        annotated = [e for e in lab if e.annotations]
        if annotated:
            report["annotations"] = {
                "examples": len(annotated),
                "annotators": len({a for e in annotated for a in (e.annotations or {})}),
                "per_example": length_stats([len(e.annotations or {}) for e in annotated]),
                "labels": dict(Counter(v for e in annotated for v in (e.annotations or {}).values()).most_common()),
            }
    report["chars"] = {k: length_stats([len(t) for t in v]) for k, v in texts.items()}
    if tokenizer is not None:
        report["tokens"] = {k: length_stats([count_tokens(tokenizer, t) for t in v]) for k, v in texts.items()}
    report["duplicates"] = _duplicates(exs)
    report["problems"] = _problems(result)
    return report


def _duplicates(exs: list[Example]) -> dict[str, Any]:
    groups: dict[str, list[str]] = defaultdict(list)
    for e in exs:
        groups[_content_key(e)].append(e.id)
    dups = [ids for ids in groups.values() if len(ids) > 1]
    return {"groups": len(dups), "examples": sum(len(g) - 1 for g in dups), "ids": dups[:MAX_DUP_GROUPS]}


def _problems(result: ReadResult) -> dict[str, Any]:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for p in result.problems:
        by_kind[p.kind].append(str(p))
    return {k: {"count": len(v), "examples": v[:MAX_PROBLEM_EXAMPLES]} for k, v in sorted(by_kind.items())}
