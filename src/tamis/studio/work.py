"""What people do in the studio, as database operations: projects, claiming items, saving versions, reviewing.

Web routes and CLI commands call these; each function either commits or raises, so an HTTP
response (or a CLI message) is only produced after the data is durable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.io import DataError, read_dataset
from tamis.studio.db import ROLES, Assignment, Item, Membership, Project, Review, User, Version
from tamis.studio.security import hash_password

DEFAULT_CRITERIA = "understandability,naturalness,coherence,correctness"
CLAIM_RETRIES = 8


class Conflict(Exception):
    """A save based on an outdated version (or a lost race for the same version number)."""

    def __init__(self, message: str, latest: Any = None) -> None:
        super().__init__(message)
        self.latest = latest


class Invalid(ValueError):
    """The submitted form does not make sense (wrong turn count, rating out of range, ...)."""


# -- projects and accounts --------------------------------------------------------------------------

def parse_criteria(spec: str) -> list[dict[str, Any]]:
    """'naturalness, coherence:1-7' -> [{"name": "naturalness", "min": 1, "max": 5}, {..., "max": 7}]."""
    out: list[dict[str, Any]] = []
    for part in re.split(r"[,\n]", spec):
        part = part.strip()
        if not part:
            continue
        name, _, scale = part.partition(":")
        lo, hi = 1, 5
        if scale:
            m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", scale)
            if not m or int(m.group(1)) >= int(m.group(2)):
                raise Invalid(f"criterion {name.strip()!r}: scale {scale!r} must look like '1-5'")
            lo, hi = int(m.group(1)), int(m.group(2))
        if not re.fullmatch(r"[A-Za-z][\w-]{0,39}", name.strip()):
            raise Invalid(f"criterion name {name.strip()!r}: use letters, digits, '_' or '-' (max 40)")
        out.append({"name": name.strip(), "min": lo, "max": hi})
    if len({c["name"] for c in out}) != len(out):
        raise Invalid("criterion names must be unique")
    return out


def add_user(db: Session, username: str, password: str, *, admin: bool = False) -> User:
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,80}", username):
        raise Invalid("username: 1-80 letters, digits or . _ @ -")
    if len(password) < 8:
        raise Invalid("password: at least 8 characters")
    user = User(username=username, password_hash=hash_password(password), is_admin=admin)
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Invalid(f"user {username!r} exists already") from None
    return user


def add_member(db: Session, project: Project, user: User, role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    db.add(Membership(project_id=project.id, user_id=user.id, role=role))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # already a member in that role: nothing to do


def _review_rows(decisions_path: Path, actions: set[str]) -> dict[str, dict[str, Any]]:
    from tamis.curate.decisions import read_decisions

    try:
        decisions = read_decisions(decisions_path)
    except (KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{decisions_path}: not a tamis decisions file ({exc})") from None
    return {d.id: d.to_dict() for d in decisions if d.action in actions}


def create_project(db: Session, name: str, data: str | Path, *, criteria: str = DEFAULT_CRITERIA,
                   overlap: int = 2, edit_roles: tuple[str, ...] = ("assistant",), format: str | None = None,
                   decisions: str | Path | None = None, actions: tuple[str, ...] = ("review",),
                   limit: int | None = None) -> tuple[Project, int, str]:
    """A project whose items are the chat examples of ``data`` (only those a decisions file marks for
    ``actions``, when given). Returns (project, number of items, the reader's summary of rejected rows)."""
    if overlap < 1:
        raise Invalid("overlap must be at least 1")
    crit = parse_criteria(criteria)
    result = read_dataset(data, format=format, limit=limit)
    chosen = _review_rows(Path(decisions), set(actions)) if decisions else None
    examples = [ex for ex in result.examples if chosen is None or ex.id in chosen]
    non_chat = [ex.id for ex in examples if ex.kind != "chat"]
    if non_chat:
        raise DataError(f"{data}: {len(non_chat)} examples are labelled text (e.g. id {non_chat[0]!r}); "
                        "the studio post-edits conversations, instruction pairs and translations")
    if not examples:
        raise DataError(f"{data}: no examples to post-edit" + (f" (no decision with action in {actions})"
                                                               if chosen is not None else ""))
    project = Project(name=name, criteria=crit, overlap=overlap, edit_roles=list(edit_roles),
                      source=str(data))
    db.add(project)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Invalid(f"project {name!r} exists already") from None
    for pos, ex in enumerate(examples):
        meta = dict(ex.meta)
        if chosen is not None:
            meta["decision"] = chosen[ex.id]
        db.add(Item(project_id=project.id, position=pos, example_id=ex.id, kind=ex.kind,
                    original=[m.to_dict() for m in ex.messages], meta=meta))
    db.commit()
    return project, len(examples), result.summary()


# -- annotators ---------------------------------------------------------------------------------------

def next_assignment(db: Session, project: Project, user: User) -> Assignment | None:
    """The annotator's open item, or a newly claimed one (first item with a free slot), or None."""
    open_one = db.scalar(select(Assignment).where(Assignment.project_id == project.id,
                                                  Assignment.user_id == user.id, Assignment.status == "open")
                         .order_by(Assignment.id).limit(1))
    if open_one is not None:
        return open_one
    for _ in range(CLAIM_RETRIES):
        mine = select(Assignment.item_id).where(Assignment.user_id == user.id, Assignment.project_id == project.id)
        taken = (select(func.count()).select_from(Assignment)
                 .where(Assignment.item_id == Item.id, Assignment.slot.is_not(None)).scalar_subquery())
        item = db.scalar(select(Item).where(Item.project_id == project.id, Item.id.not_in(mine),
                                            taken < project.overlap).order_by(Item.position).limit(1))
        if item is None:
            return None
        used = set(db.scalars(select(Assignment.slot).where(Assignment.item_id == item.id,
                                                            Assignment.slot.is_not(None))))
        free = [s for s in range(project.overlap) if s not in used]
        if not free:  # the last slot went between our two reads (READ COMMITTED): look again
            db.rollback()
            continue
        slot = free[0]
        assignment = Assignment(item_id=item.id, user_id=user.id, project_id=project.id, slot=slot)
        db.add(assignment)
        try:
            db.commit()
            return assignment
        except IntegrityError:  # someone took that slot (or we raced ourselves in another tab)
            db.rollback()
    return None


def latest_version(db: Session, assignment_id: int, *, submitted_only: bool = False) -> Version | None:
    q = select(Version).where(Version.assignment_id == assignment_id)
    if submitted_only:
        q = q.where(Version.submitted.is_(True))
    return db.scalar(q.order_by(Version.number.desc()).limit(1))


@dataclass
class Edit:
    base: int
    turns: dict[int, str]
    ratings: dict[str, str]
    submit: bool
    elapsed_s: float


def save_version(db: Session, project: Project, item: Item, assignment: Assignment, edit: Edit) -> Version:
    """Append a version (optimistic concurrency on ``edit.base``); commits before returning."""
    latest = latest_version(db, assignment.id)
    current = latest.number if latest else 0
    if edit.base != current:
        raise Conflict(f"This item was saved elsewhere (version {current}) after the version you were "
                       f"editing (version {edit.base}). Your text is kept below; reload to continue from "
                       "the newer version.", latest)
    if assignment.status != "open" and assignment.status != "submitted":
        raise Invalid(f"this item was {assignment.status}; it can no longer be edited")
    base_msgs = latest.messages if latest else item.original
    messages = [dict(m) for m in base_msgs]
    for idx, text in edit.turns.items():
        if not 0 <= idx < len(messages) or messages[idx]["role"] not in project.edit_roles:
            raise Invalid(f"turn {idx} cannot be edited in this project")
        messages[idx]["content"] = text.replace("\r\n", "\n")
    ratings = _check_ratings(project, edit.ratings, required=edit.submit)
    version = Version(assignment_id=assignment.id, number=current + 1, messages=messages, ratings=ratings,
                      submitted=edit.submit, elapsed_s=max(0.0, min(float(edit.elapsed_s), 1800.0)))
    db.add(version)
    if edit.submit:
        assignment.status = "submitted"
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("Another save of this item arrived at the same moment; reload to see it.",
                       latest_version(db, assignment.id)) from None
    return version


def _check_ratings(project: Project, raw: dict[str, str], *, required: bool) -> dict[str, int]:
    ratings: dict[str, int] = {}
    for c in project.criteria:
        value = (raw.get(c["name"]) or "").strip()
        if not value:
            if required:
                raise Invalid(f"rate {c['name']} before submitting")
            continue
        if not value.lstrip("-").isdigit() or not c["min"] <= int(value) <= c["max"]:
            raise Invalid(f"{c['name']}: rating must be a whole number from {c['min']} to {c['max']}")
        ratings[c["name"]] = int(value)
    return ratings


def close_assignment(db: Session, assignment: Assignment, status: str, note: str = "") -> None:
    """Skip (frees the slot for someone else) or flag (counts as done, with a note)."""
    if assignment.status != "open":
        raise Invalid(f"this item is already {assignment.status}")
    assignment.status = status
    assignment.flag_note = note[:2000]
    if status == "skipped":
        assignment.slot = None
    db.commit()


def progress(db: Session, project: Project, user: User) -> dict[str, int]:
    rows = db.execute(select(Assignment.status, func.count()).where(
        Assignment.project_id == project.id, Assignment.user_id == user.id).group_by(Assignment.status)).all()
    counts = {status: n for status, n in rows}
    n_items = db.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id)) or 0
    done = counts.get("submitted", 0) + counts.get("flagged", 0)
    return {"total": n_items, "done": done, "skipped": counts.get("skipped", 0), "open": counts.get("open", 0)}


# -- reviewers -----------------------------------------------------------------------------------------

def submitted_edits(db: Session, item: Item) -> list[tuple[Assignment, User, Version]]:
    """Each annotator's latest submitted version of ``item`` (never anyone's drafts)."""
    out = []
    for a, u in db.execute(select(Assignment, User).join(User, User.id == Assignment.user_id)
                           .where(Assignment.item_id == item.id).order_by(Assignment.id)).all():
        v = latest_version(db, a.id, submitted_only=True)
        if v is not None:
            out.append((a, u, v))
    return out


def disagreement(project: Project, edits: list[tuple[Assignment, User, Version]], *, rating_gap: int = 2) -> list[str]:
    """Why these submitted edits disagree (different text, ratings apart by >= rating_gap); [] if they agree."""
    reasons: list[str] = []
    if len(edits) < 2:
        return reasons
    texts = {json.dumps([" ".join(m["content"].split()) for m in v.messages]) for _, _, v in edits}
    if len(texts) > 1:
        reasons.append("different edits")
    for c in project.criteria:
        values = [v.ratings[c["name"]] for _, _, v in edits if c["name"] in v.ratings]
        if values and max(values) - min(values) >= rating_gap:
            reasons.append(f"{c['name']} {min(values)}-{max(values)}")
    return reasons


def latest_review(db: Session, item_id: int) -> Review | None:
    return db.scalar(select(Review).where(Review.item_id == item_id).order_by(Review.number.desc()).limit(1))


def accept(db: Session, item: Item, reviewer: User, base: int, version_id: int | None, note: str = "") -> Review:
    """Record the reviewer's choice (a submitted version of this item, or None for the original)."""
    current = latest_review(db, item.id)
    number = current.number if current else 0
    if base != number:
        raise Conflict(f"Another review of this item was saved (review {number}) after the one you saw "
                       f"(review {base}); its choice is shown below.", current)
    if version_id is not None and version_id not in {v.id for _, _, v in submitted_edits(db, item)}:
        raise Invalid("that version is not a submitted edit of this item")
    review = Review(item_id=item.id, number=number + 1, reviewer_id=reviewer.id, version_id=version_id,
                    note=note[:2000])
    db.add(review)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("Another review of this item arrived at the same moment; reload to see it.",
                       latest_review(db, item.id)) from None
    return review
