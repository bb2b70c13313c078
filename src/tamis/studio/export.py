"""``tamis studio export``: the paired data set, edit effort, agreement and a report, from the studio database.

Outputs (one folder):
- ``paired.jsonl``: per item the original, every annotator's submitted edit (with ratings, HTER,
  character edit distance, time spent, number of saves) and the accepted version with its source;
- ``accepted.jsonl``: the accepted conversations as a tamis data set (provenance in ``meta.studio``);
- ``decisions.jsonl``: correct/keep/reject/review decisions (``tamis.curate.decisions``) so the
  result plugs into ``apply_decisions`` like any curation step;
- ``suggestions.json``: for items that started from a model's suggestion, how often people accepted,
  edited or replaced it, and the edit effort (HTER against the suggestion);
- ``effort.csv``, ``agreement.json``, ``report.html`` with PNG plots, ``manifest.json``.

Everything goes into ``OUT/studio-<slug>/``: the slug is made from the project name, so a name can never
steer the files outside the chosen output folder.
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
    if assignment.status == "flagged":
        row["flag_note"] = assignment.flag_note
    if submitted:
        v = submitted[-1]
        idx = [i for i, m in enumerate(item.original) if m["role"] in project.edit_roles]
        effort = edit_effort([item.original[i]["content"] for i in idx], [v.messages[i]["content"] for i in idx])
        row |= {"version": v.number, "version_id": v.id, "messages": v.messages, "ratings": v.ratings,
                "hter": round(effort.hter, 6), "char_edit_distance": effort.char_distance,
                "char_edit_ratio": round(effort.char_ratio, 6)}
        if v.suggestion_outcome is not None:
            start = work.starting_messages(item)
            on_suggestion = edit_effort([start[i]["content"] for i in idx], [v.messages[i]["content"] for i in idx])
            row |= {"suggestion_outcome": v.suggestion_outcome, "suggestion_hter": round(on_suggestion.hter, 6),
                    "suggestion_char_edit_distance": on_suggestion.char_distance}
    return row


def _accepted(db, item: Item, edits: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The accepted conversation and how it was chosen. Only a reviewer accepts a flagged item."""
    review = work.latest_review(db, item.id)
    if review is not None:
        if review.action == "reject":
            return None, "rejected by reviewer"
        if review.action == "merge":
            return {"source": "reviewer merge", "by": "reviewer", "messages": review.messages,
                    "note": review.note}, "reviewed"
        if review.version_id is None:
            return {"source": "original", "by": "reviewer", "messages": item.original}, "reviewed"
        chosen = next((e for e in edits if e.get("version_id") == review.version_id), None)
        if chosen is not None:
            return {"source": chosen["annotator"], "by": "reviewer", "messages": chosen["messages"]}, "reviewed"
        v = db.get(Version, review.version_id)  # accepted, then re-submitted by its author: keep the accepted text
        return {"source": "reviewed-version", "by": "reviewer", "messages": v.messages}, "reviewed"
    if any(e["status"] == "flagged" for e in edits):
        return None, "flagged; waiting for a reviewer"
    done = [e for e in edits if "messages" in e]
    if not done:
        return None, "no submitted edit"
    texts = {json.dumps([" ".join(m["content"].split()) for m in e["messages"]]) for e in done}
    if len(texts) == 1:
        return {"source": done[0]["annotator"], "by": "agreement" if len(done) > 1 else "single annotator",
                "messages": done[0]["messages"]}, "agreed"
    return None, "annotators disagree and no reviewer has decided"


def export_folder(out_root: str | Path, project_name: str) -> Path:
    """``OUT/studio-<slug>``: always a direct child of the chosen output folder."""
    return Path(out_root) / f"studio-{work.slugify(project_name)}"


def export_project(database: Database, project_name: str, out_root: str | Path) -> ExportResult:
    """Write the export of one project to ``out_root/studio-<slug>/`` (overwrites the files it writes)."""
    manifest = Manifest("studio export", {"project": project_name, "db": _redact(database.url)})
    with database.read() as db:
        project = db.scalar(select(Project).where(Project.name == project_name))
        if project is None:
            names = ", ".join(sorted(db.scalars(select(Project.name)))[:50]) or "none"
            raise DataError(f"no studio project named {project_name[:100]!r} (projects: {names})")
        out = export_folder(out_root, project.name)
        out.mkdir(parents=True, exist_ok=True)
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
        suggestions = suggestion_summary(paired, {i.example_id: i.suggestion_source for i in items})
    atomic_write_text(out / "suggestions.json", json.dumps(suggestions, indent=2))
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
        write_report(out, project.name, paired, agreement, ratings, criteria, dict(counts), suggestions)
    manifest.count(items=len(items), **{k.replace(" ", "_"): v for k, v in counts.items()})
    manifest.output("paired", str(out / "paired.jsonl"))
    manifest.write(out / "manifest.json")
    return ExportResult(out_dir=out, counts=dict(counts) | {"items": len(items)}, agreement=agreement)


EFFORT_FIELDS = ["id", "annotator", "status", "version", "saves", "time_spent_s", "hter", "char_edit_distance",
                 "char_edit_ratio", "suggestion_outcome", "suggestion_hter"]
OUTCOMES = ("accepted", "edited", "replaced")


def suggestion_summary(paired: list[dict[str, Any]], sources: dict[str, str]) -> dict[str, Any]:
    """Acceptance rates and edit effort on model suggestions, overall and per source (auto-correct, generated)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in paired:
        for e in row["edits"]:
            if e.get("suggestion_outcome"):
                groups["all"].append(e)
                groups[sources.get(row["id"]) or "model"].append(e)

    def summarise(edits: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(edits)
        hters = np.array([e["suggestion_hter"] for e in edits], dtype=float)
        out: dict[str, Any] = {"n_edits": n}
        for outcome in OUTCOMES:
            k = sum(e["suggestion_outcome"] == outcome for e in edits)
            out[outcome] = k
            out[f"{outcome}_rate"] = round(k / n, 4) if n else None
        out["hter_mean"] = round(float(hters.mean()), 4) if n else None
        out["hter_median"] = round(float(np.median(hters)), 4) if n else None
        out["time_spent_s_mean"] = round(float(np.mean([e["time_spent_s"] for e in edits])), 2) if n else None
        return out

    return {name: summarise(edits) for name, edits in sorted(groups.items())} or {"all": summarise([])}


def _decision(item: Item, edits: list[dict[str, Any]], accepted: dict[str, Any] | None, state: str) -> Decision:
    scores = {"hter": [e["hter"] for e in edits if "hter" in e], "flags": sum(e["status"] == "flagged" for e in edits)}
    if accepted is None:
        if state == "rejected by reviewer":
            return Decision(item.example_id, "drop", state, scores, step="studio")
        flagged = edits and all(e["status"] == "flagged" for e in edits)
        notes = "; ".join(e["flag_note"] for e in edits if e.get("flag_note"))
        return Decision(item.example_id, "drop" if flagged else "review",
                        ("flagged by every annotator" if flagged else state) + (f" ({notes})" if notes else ""),
                        scores, step="studio")
    if accepted["messages"] == item.original:
        return Decision(item.example_id, "keep", f"post-editors left it unchanged ({accepted['by']})", scores,
                        step="studio")
    return Decision(item.example_id, "edit", f"post-edited by {accepted['source']} ({accepted['by']})", scores,
                    step="studio", corrected=accepted["messages"])


def _redact(url: str) -> str:
    """A database URL without its password (for manifests and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL we can parse: show nothing of it
        return "<database>"


export_studio_project = export_project  # the name in the public tamis namespace
