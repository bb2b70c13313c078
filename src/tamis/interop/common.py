"""What the Argilla and Label Studio bridges share: review items out, annotations back in as tamis records.

Export: every chat example with a final assistant turn becomes a ``ReviewItem``: its prompt turns,
the response as it stands (``original``), the text the annotator starts from (``start``: the
correction of an ``edit`` decision, else the original), the decision that sent it (action, step,
reason, scores) and a digest of the example, so an import can tell when the data set changed since.

Import: each tool's reader turns its export into ``Annotation`` rows (one per item and annotator:
status, edited text, keep/drop choice, rating, seconds spent) plus quarantined entries (unknown
ids, items whose shape is wrong) with their reasons. ``combine`` then makes, from those rows and the
data set, the tamis outputs: one ``Decision`` per item (step ``argilla`` or ``label-studio``),
``paired.jsonl`` (original vs each annotator's edit with HTER, word edits and character edit
distance from ``tamis.signals.edits``), and Krippendorff's alpha (``tamis.signals.agreement``) of
the keep/drop choices (nominal), ratings (ordinal) and whether the text was changed (nominal), when
several annotators answered the same item.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tamis.curate.decisions import Decision
from tamis.errors import DataError
from tamis.interop.options import TOOLS
from tamis.records import Example, content_id

#: the choices an annotator makes, as each tool shows them, and the tamis outcome they stand for
CHOICES = {"keep": "keep", "accept": "keep", "drop": "drop", "reject": "drop"}
RATING_SCALE = (1, 2, 3, 4, 5)
#: statuses of one annotator's answer: only ``submitted`` counts towards the outcome
STATUSES = ("submitted", "discarded", "skipped", "draft")


@dataclass(frozen=True)
class ReviewItem:
    id: str
    prompt: list[dict[str, str]]
    original: str
    start: str
    action: str | None = None
    step: str | None = None
    reason: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    def metadata(self) -> dict[str, Any]:
        """What travels with the item so an import can find and check it."""
        row: dict[str, Any] = {"tamis_id": self.id, "tamis_digest": self.digest}
        if self.action:
            row.update(tamis_action=self.action, tamis_step=self.step or "", tamis_reason=self.reason or "")
        return row


@dataclass
class Annotation:
    """One annotator's answer to one item, whatever tool produced it."""

    item: str
    annotator: str
    status: str
    text: str | None = None  # the post-edited response; None: not given (the start text stands)
    choice: str | None = None  # keep / drop
    rating: int | None = None
    seconds: float | None = None
    source: str = ""  # where in the export file it came from (for messages)

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "annotator": self.annotator, "status": self.status, "text": self.text,
                "choice": self.choice, "rating": self.rating, "seconds": self.seconds}


@dataclass
class Parsed:
    """What a tool's export held: annotations per item, the exported start texts, what was quarantined."""

    annotations: list[Annotation]
    starts: dict[str, str]  # item id -> the text the annotator started from (as exported)
    digests: dict[str, str]
    quarantined: list[dict[str, Any]]
    n_items: int
    seen: set[str] = field(default_factory=set)  # every item id the export holds, annotated or not


def example_digest(ex: Example) -> str:
    return content_id("chat", [m.to_dict() for m in ex.messages])


def review_items(examples: Sequence[Example], decisions: Iterable[Decision] | None = None, *,
                 actions: Sequence[str] | None = None) -> tuple[list[ReviewItem], list[dict[str, Any]]]:
    """(items to review, examples left out with the reason).

    Without decisions every chat example with a final assistant turn is an item. With decisions,
    only examples whose decision's action is in ``actions`` (default: every action) are; an edit
    decision's correction is the text the annotator starts from. A decision naming an id the data
    set lacks is a DataError (the decisions belong to another data set)."""
    by_id: dict[str, Decision] | None = None
    if decisions is not None:
        by_id = {d.id: d for d in decisions}
        known = {ex.id for ex in examples}
        missing = [i for i in by_id if i not in known]
        if missing:
            raise DataError(f"{len(missing)} decision(s) name ids the data set lacks (first: {missing[:3]}); "
                            "give the data set the decisions were made on")
    items: list[ReviewItem] = []
    left_out: list[dict[str, Any]] = []
    for ex in examples:
        decision = by_id.get(ex.id) if by_id is not None else None
        if by_id is not None and (decision is None or (actions and decision.action not in actions)):
            continue
        if ex.kind != "chat" or ex.response is None:
            left_out.append({"id": ex.id, "reason": "no final assistant turn to post-edit"})
            continue
        start = ex.response
        if decision is not None and decision.action == "edit" and decision.corrected:
            last = decision.corrected[-1]
            if last.get("role") == "assistant":
                start = str(last.get("content", ""))
        items.append(ReviewItem(
            id=ex.id, prompt=ex.prompt_messages, original=ex.response, start=start,
            action=decision.action if decision else None, step=decision.step if decision else None,
            reason=decision.reason if decision else None,
            scores={k: v for k, v in (decision.scores if decision else {}).items() if v is not None},
            digest=example_digest(ex)))
    if not items:
        raise DataError("nothing to review: no example " + (
            f"with a decision in {', '.join(actions)}" if decisions is not None and actions else
            "has a final assistant turn to post-edit"))
    return items, left_out


def choice_value(value: Any, where: str) -> str:
    text = str(value).strip().lower()
    if text not in CHOICES:
        raise DataError(f"{where}: unknown choice {value!r} (known: {', '.join(CHOICES)})")
    return CHOICES[text]


def rating_value(value: Any, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: rating {value!r} is not a number") from None
    if not number.is_integer() or int(number) not in RATING_SCALE:
        raise DataError(f"{where}: rating {value!r} is outside {RATING_SCALE[0]}-{RATING_SCALE[-1]}")
    return int(number)


def _finite(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _alpha(rows: list[tuple[str, str, str]], level: str) -> dict[str, Any]:
    """Krippendorff's alpha over (item, annotator, value) rows, with how many items were pairable."""
    from tamis.signals.agreement import krippendorff_alpha

    per_item = Counter(item for item, _, _ in rows)
    pairable = sum(1 for n in per_item.values() if n >= 2)
    result: dict[str, Any] = {"level": level, "n_ratings": len(rows), "n_items_rated_twice": pairable,
                              "alpha": None, "degenerate": False}
    if pairable == 0:
        result["note"] = "no item was answered by two annotators"
        return result
    paired_rows = [r for r in rows if per_item[r[0]] >= 2]
    result["alpha"] = _finite(krippendorff_alpha(paired_rows, level))  # type: ignore[arg-type]
    if len({value for _, _, value in paired_rows}) == 1:
        result["degenerate"] = True
        result["note"] = "every answer was the same value: agreement is perfect but says nothing about the scale"
    return result


@dataclass
class Combined:
    decisions: list[Decision]
    paired: list[dict[str, Any]]
    agreement: dict[str, dict[str, Any]]
    quarantined: list[dict[str, Any]]
    counts: dict[str, int]


def combine(parsed: Parsed, examples: Sequence[Example], tool: str, export_name: str) -> Combined:
    """Decisions, paired data and agreement from a tool's parsed export and the data set it came from."""
    from tamis.signals.edits import edit_effort

    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}")
    by_id = {ex.id: ex for ex in examples}
    quarantined = list(parsed.quarantined)
    grouped: dict[str, list[Annotation]] = {}
    for ann in parsed.annotations:
        grouped.setdefault(ann.item, []).append(ann)
    per_item: dict[str, list[Annotation]] = {}
    for item_id, anns in grouped.items():
        ex = by_id.get(item_id)
        where = anns[0].source.split(": annotations")[0].split(": responses")[0]
        problem = None
        if ex is None:
            problem = "is not in the data set"
        elif parsed.digests.get(item_id) and parsed.digests[item_id] != example_digest(ex):
            problem = "differs in the data set from the version exported for review (tamis_digest); re-export it"
        if problem:
            quarantined.append({"id": item_id, "where": where, "reason": f"{export_name}: {where}: item {item_id!r} "
                                f"{problem}", "annotations": [a.to_dict() for a in anns]})
            continue
        latest: dict[str, Annotation] = {}
        for ann in anns:  # an annotator who answered twice (a re-annotation): the last answer counts
            latest[ann.annotator] = ann
        per_item[item_id] = list(latest.values())

    decisions: list[Decision] = []
    paired: list[dict[str, Any]] = []
    choice_rows: list[tuple[str, str, str]] = []
    rating_rows: list[tuple[str, str, str]] = []
    changed_rows: list[tuple[str, str, str]] = []
    counts: Counter[str] = Counter()
    for item_id in [ex.id for ex in examples if ex.id in per_item]:
        ex = by_id[item_id]
        original = ex.response or ""
        start = parsed.starts.get(item_id, original)
        edits = []
        for ann in sorted(per_item[item_id], key=lambda a: a.annotator):
            counts[f"answers_{ann.status}"] += 1
            row: dict[str, Any] = {"annotator": ann.annotator, "status": ann.status, "choice": ann.choice,
                                   "rating": ann.rating, "seconds": ann.seconds}
            if ann.status == "submitted":
                text = ann.text if ann.text is not None else start
                effort = edit_effort([original], [text])
                row.update(text=text, changed=text != original, **{k: (round(v, 6) if isinstance(v, float) else v)
                                                                   for k, v in effort.to_dict().items()})
                if start != original:
                    row["hter_vs_start"] = round(edit_effort([start], [text]).hter, 6)
                if ann.choice is not None:
                    choice_rows.append((item_id, ann.annotator, ann.choice))
                if ann.rating is not None:
                    rating_rows.append((item_id, ann.annotator, str(ann.rating)))
                if ann.choice != "drop":
                    changed_rows.append((item_id, ann.annotator, str(text != original)))
            edits.append(row)
        decision, accepted = _decide(item_id, ex, edits, tool)
        counts[f"decision_{decision.action}"] += 1
        decisions.append(decision)
        paired.append({"id": item_id, "prompt": ex.prompt_messages, "original": original, "start": start,
                       "edits": edits, "accepted": accepted,
                       "decision": {"action": decision.action, "reason": decision.reason}})
    agreement = {"decision": _alpha(choice_rows, "nominal"), "rating": _alpha(rating_rows, "ordinal"),
                 "changed": _alpha(changed_rows, "nominal")}
    counts["items"] = len(paired)
    counts["not_annotated"] = len(parsed.seen - set(grouped))
    counts["quarantined"] = len(quarantined)
    return Combined(decisions, paired, agreement, quarantined, dict(counts))


def _decide(item_id: str, ex: Example, edits: list[dict[str, Any]], tool: str) -> tuple[Decision, dict[str, Any] | None]:
    """One item's outcome from its annotators' answers (only submitted answers decide)."""
    done = [e for e in edits if e["status"] == "submitted"]
    others = [f"{e['status']} by {e['annotator']}" for e in edits if e["status"] != "submitted"]
    note = f" ({'; '.join(others)})" if others else ""
    names = [e["annotator"] for e in done]
    scores: dict[str, Any] = {"n_submitted": len(done)}
    ratings = [e["rating"] for e in done if e["rating"] is not None]
    if ratings:
        scores["rating_mean"] = sum(ratings) / len(ratings)
    evidence: dict[str, Any] = {"annotators": names or [e["annotator"] for e in edits]}
    if not done:
        if edits and all(e["status"] == "discarded" for e in edits):
            return Decision(item_id, "drop", f"discarded by {', '.join(e['annotator'] for e in edits)}", scores,
                            tool, evidence=evidence), None
        return Decision(item_id, "review", f"no submitted answer{note}", scores, tool, evidence=evidence), None
    choices = {e["choice"] or "keep" for e in done}
    if choices == {"drop"}:
        return Decision(item_id, "drop", f"rejected by {', '.join(names)}{note}", scores, tool,
                        evidence=evidence), None
    if len(choices) > 1:
        said = "; ".join(f"{e['annotator']}: {e['choice'] or 'keep'}" for e in done)
        return Decision(item_id, "review", f"annotators disagree ({said}){note}", scores, tool,
                        evidence=evidence), None
    texts = {e["text"] for e in done}
    if len(texts) > 1:
        said = "; ".join(f"{e['annotator']}: HTER {e['hter']:.3f}" for e in done)
        return Decision(item_id, "review", f"annotators' edits differ ({said}){note}", scores, tool,
                        evidence=evidence | {"edits": {e["annotator"]: e["text"] for e in done}}), None
    text = texts.pop()
    by = "agreement" if len(done) > 1 else "single annotator"
    accepted = {"text": text, "by": by, "annotators": names}
    if text == ex.response:
        return Decision(item_id, "keep", f"accepted unchanged by {', '.join(names)}{note}", scores, tool,
                        evidence=evidence), accepted
    scores.update(hter=done[0]["hter"], char_edit_distance=done[0]["char_edit_distance"])
    corrected = ex.prompt_messages + [{"role": "assistant", "content": text}]
    return Decision(item_id, "edit", f"post-edited by {', '.join(names)} (HTER {done[0]['hter']:.3f}){note}",
                    scores, tool, corrected=corrected, evidence=evidence), accepted
