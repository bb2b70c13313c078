"""``tamis studio export``: the paired data set, edit effort, agreement and a report, from the studio database.

Outputs (one folder):
- ``paired.jsonl``: per item the original, every annotator's submitted edit (with ratings, HTER,
  character edit distance, time spent, number of saves) and the accepted version with its source;
- ``accepted.jsonl``: the accepted conversations as a tamis data set (provenance in ``meta.studio``);
- ``decisions.jsonl``: correct/keep/reject/review decisions (``tamis.curate.decisions``) so the
  result plugs into ``apply_decisions`` like any curation step;
- ``effort.csv``, ``agreement.json``, ``report.html`` with PNG plots, ``manifest.json``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from tamis.curate.decisions import Decision, write_decisions
from tamis.io import DataError, write_dataset
from tamis.manifest import Manifest
from tamis.progress import progress
from tamis.records import chat_example
from tamis.signals.edits import edit_effort
from tamis.store import atomic_write_text
from tamis.studio import work
from tamis.studio.db import Assignment, Database, Item, Project, User, Version


@dataclass
class ExportResult:
    out_dir: Path
    counts: dict[str, int]
    agreement: dict[str, dict[str, Any]]


def ordinal_alpha(ratings: list[tuple[str, str, int]], scale: tuple[int, int]) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal) of (item, annotator, value) ratings, with the cases alpha cannot cover.

    Uses ``tamis.signals.agreement`` when present; otherwise calls ``krippendorff`` directly. When every
    rating is identical, observed and expected disagreement are both 0: alpha is reported as 1.0 and
    flagged ``degenerate`` (perfect agreement, but no evidence the scale discriminates)."""
    per_item: dict[str, int] = defaultdict(int)
    for item, _, _ in ratings:
        per_item[item] += 1
    pairable = sum(1 for n in per_item.values() if n >= 2)
    out: dict[str, Any] = {"n_ratings": len(ratings), "n_items_pairable": pairable, "degenerate": False}
    if pairable == 0:
        return out | {"alpha": None, "note": "no item has two ratings (set overlap >= 2)"}
    if len({v for _, _, v in ratings}) == 1:
        return out | {"alpha": 1.0, "degenerate": True, "note": "every rating is identical"}
    try:
        from tamis.signals.agreement import krippendorff_alpha

        alpha = krippendorff_alpha([(i, a, str(v)) for i, a, v in ratings], level="ordinal")
    except ImportError:
        import krippendorff

        items = sorted(per_item)
        coders = sorted({a for _, a, _ in ratings})
        matrix = np.full((len(coders), len(items)), np.nan)
        for i, a, v in ratings:
            matrix[coders.index(a), items.index(i)] = v
        alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal",
                                         value_domain=list(range(scale[0], scale[1] + 1))))
    return out | {"alpha": None if math.isnan(alpha) else round(float(alpha), 4)}


def _edit_row(project: Project, item: Item, assignment: Assignment, user: User,
              versions: list[Version]) -> dict[str, Any]:
    submitted = [v for v in versions if v.submitted]
    row: dict[str, Any] = {"annotator": user.username, "status": assignment.status, "saves": len(versions),
                           "time_spent_s": round(sum(v.elapsed_s for v in versions), 2)}
    if assignment.flag_note:
        row["flag_note"] = assignment.flag_note
    if submitted:
        v = submitted[-1]
        idx = [i for i, m in enumerate(item.original) if m["role"] in project.edit_roles]
        effort = edit_effort([item.original[i]["content"] for i in idx], [v.messages[i]["content"] for i in idx])
        row |= {"version": v.number, "version_id": v.id, "messages": v.messages, "ratings": v.ratings,
                "hter": round(effort.hter, 6), "char_edit_distance": effort.char_distance,
                "char_edit_ratio": round(effort.char_ratio, 6)}
    return row


def _accepted(db, item: Item, edits: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    review = work.latest_review(db, item.id)
    if review is not None:
        if review.version_id is None:
            return {"source": "original", "by": "reviewer", "messages": item.original}, "reviewed"
        chosen = next((e for e in edits if e.get("version_id") == review.version_id), None)
        if chosen is not None:
            return {"source": chosen["annotator"], "by": "reviewer", "messages": chosen["messages"]}, "reviewed"
        v = db.get(Version, review.version_id)  # accepted, then re-submitted by its author: keep the accepted text
        return {"source": "reviewed-version", "by": "reviewer", "messages": v.messages}, "reviewed"
    done = [e for e in edits if "messages" in e]
    if not done:
        return None, "no submitted edit"
    texts = {json.dumps([" ".join(m["content"].split()) for m in e["messages"]]) for e in done}
    if len(texts) == 1:
        return {"source": done[0]["annotator"], "by": "agreement" if len(done) > 1 else "single annotator",
                "messages": done[0]["messages"]}, "agreed"
    return None, "annotators disagree and no reviewer has decided"


def export_project(database: Database, project_name: str, out_dir: str | Path) -> ExportResult:
    """Write the export of one project to ``out_dir`` (overwrites the files it writes)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("studio export", {"project": project_name, "db": _redact(database.url)})
    with database.read() as db:
        project = db.scalar(select(Project).where(Project.name == project_name))
        if project is None:
            names = ", ".join(db.scalars(select(Project.name))) or "none"
            raise DataError(f"no studio project named {project_name!r} (projects: {names})")
        items = list(db.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.position)))
        users = {u.id: u for u in db.scalars(select(User))}
        by_item: dict[int, list[Assignment]] = defaultdict(list)
        for a in db.scalars(select(Assignment).where(Assignment.project_id == project.id).order_by(Assignment.id)):
            by_item[a.item_id].append(a)
        versions: dict[int, list[Version]] = defaultdict(list)
        for v in db.scalars(select(Version).join(Assignment, Assignment.id == Version.assignment_id)
                            .where(Assignment.project_id == project.id).order_by(Version.number)):
            versions[v.assignment_id].append(v)
        paired, accepted_examples, decisions, effort_rows = [], [], [], []
        counts: dict[str, int] = defaultdict(int)
        with manifest.stage("pair"), progress("exporting items", len(items)) as advance:
            for item in items:
                edits = [_edit_row(project, item, a, users[a.user_id], versions[a.id]) for a in by_item[item.id]]
                accepted, state = _accepted(db, item, edits)
                counts[state] += 1
                paired.append({"id": item.example_id, "original": item.original, "edits": edits,
                               "accepted": accepted, "accepted_state": state, "meta": item.meta})
                effort_rows += [{"id": item.example_id, **{k: e.get(k) for k in EFFORT_FIELDS if k != "id"}}
                                for e in edits]
                decisions.append(_decision(item, edits, accepted, state))
                if accepted is not None:
                    accepted_examples.append(chat_example(
                        accepted["messages"], id=item.example_id,
                        meta=item.meta | {"studio": {"project": project.name, "source": accepted["source"],
                                                     "by": accepted["by"]}}))
                advance(1)
        criteria = {c["name"]: (c["min"], c["max"]) for c in project.criteria}
        ratings: dict[str, list[tuple[str, str, int]]] = {c: [] for c in criteria}
        for row in paired:
            for e in row["edits"]:
                for c, v in (e.get("ratings") or {}).items():
                    if c in ratings:
                        ratings[c].append((row["id"], e["annotator"], int(v)))
        agreement = {c: ordinal_alpha(r, criteria[c]) for c, r in ratings.items()}
    atomic_write_text(out / "paired.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in paired))
    if accepted_examples:
        write_dataset(accepted_examples, out / "accepted.jsonl")
    else:
        atomic_write_text(out / "accepted.jsonl", "")
    write_decisions(decisions, out / "decisions.jsonl")
    with open(out / "effort.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=EFFORT_FIELDS)
        writer.writeheader()
        writer.writerows(effort_rows)
    atomic_write_text(out / "agreement.json", json.dumps(agreement, indent=2))
    from tamis.studio.report import write_report

    with manifest.stage("report"):
        write_report(out, project.name, paired, agreement, ratings, criteria, dict(counts))
    manifest.count(items=len(items), **{k.replace(" ", "_"): v for k, v in counts.items()})
    manifest.output("paired", str(out / "paired.jsonl"))
    manifest.write(out / "manifest.json")
    return ExportResult(out_dir=out, counts=dict(counts) | {"items": len(items)}, agreement=agreement)


EFFORT_FIELDS = ["id", "annotator", "status", "version", "saves", "time_spent_s", "hter", "char_edit_distance",
                 "char_edit_ratio"]


def _decision(item: Item, edits: list[dict[str, Any]], accepted: dict[str, Any] | None, state: str) -> Decision:
    scores = {"hter": [e["hter"] for e in edits if "hter" in e], "flags": sum(e["status"] == "flagged" for e in edits)}
    if accepted is None:
        flagged = edits and all(e["status"] == "flagged" for e in edits)
        return Decision(item.example_id, "reject" if flagged else "review",
                        "flagged by every annotator" if flagged else state, scores, step="studio")
    if accepted["messages"] == item.original:
        return Decision(item.example_id, "keep", f"post-editors left it unchanged ({accepted['by']})", scores,
                        step="studio")
    return Decision(item.example_id, "correct", f"post-edited by {accepted['source']} ({accepted['by']})", scores,
                    step="studio", corrected=accepted["messages"])


def _redact(url: str) -> str:
    """A database URL without its password (for manifests and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL we can parse: show nothing of it
        return "<database>"


export_studio_project = export_project  # the name in the public tamis namespace
