"""What people do in the studio, as database operations: projects, claiming items, saving versions, reviewing.

Web routes and CLI commands call these; each function either commits or raises, so an HTTP
response (or a CLI message) is only produced after the data is durable.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.io import DataError, read_dataset
from tamis.studio.db import (ROLES, Assignment, Comment, Item, LoginSession, Membership, Project, Review, User, Version,
                             utcnow)
from tamis.studio.security import hash_password, password_problem

DEFAULT_CRITERIA = "understandability,naturalness,coherence,correctness"
CLAIM_RETRIES = 8
MAX_OVERLAP = 100  # and never more than the project's annotators (see effective_overlap)
PROJECT_NAME_MAX = 80
SAVE_MAX_CHARS = 100_000  # text in one save (all turns together)
SAVES_PER_MINUTE = 120  # per user: far above a person's pace (Ctrl+S every half second)
SAVE_CHARS_PER_HOUR = 2_000_000  # per user
TIME_CAP_S = 1800.0  # one save counts at most 30 minutes of work
COMMENT_MAX_CHARS = 4000
COMMENTS_PER_MINUTE = 20
GUIDELINES_MAX_CHARS = 50_000
REPLACED_HTER = 0.6  # an edit this far from the model's suggestion replaced it rather than edited it


class Conflict(Exception):
    """A save based on an outdated version (or a lost race for the same version number)."""

    def __init__(self, message: str, latest: Any = None) -> None:
        super().__init__(message)
        self.latest = latest


class Invalid(ValueError):
    """The submitted form does not make sense (wrong turn count, rating out of range, ...)."""


class TooMuch(Exception):
    """A per-user size or rate limit: ``status`` 413 (one request too large) or 429 (too many, too fast)."""

    def __init__(self, message: str, status: int = 429) -> None:
        super().__init__(message)
        self.status = status


# -- names, accounts ---------------------------------------------------------------------------------

_PROJECT_NAME = re.compile(r"[^\W_][\w .-]*")


def validate_project_name(name: str) -> str:
    """A project name: 1-80 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit.
    No slashes, control characters or direction overrides, so it is safe on screen and as a folder slug."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name or len(name) > PROJECT_NAME_MAX or not _PROJECT_NAME.fullmatch(name):
        raise Invalid(f"project name: 1-{PROJECT_NAME_MAX} letters, digits, spaces, '.', '_' or '-', starting with a "
                      "letter or digit")
    return name


def slugify(name: str, fallback: str = "project") -> str:
    """A folder name for ``name``: ASCII letters, digits, '.', '_' and '-' only, never '.' or '..', at most 60."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip(".-_")[:60].strip(".-_")
    return slug or fallback


def find_user(db: Session, username: str) -> User | None:
    """The account with this name, whatever its case ('ANN' is 'ann')."""
    return db.scalar(select(User).where(func.lower(User.username) == username.strip().lower())
                     .order_by(User.id).limit(1))


def add_user(db: Session, username: str, password: str, *, admin: bool = False) -> User:
    username = username.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,80}", username):
        raise Invalid("username: 1-80 letters, digits or . _ @ -")
    problem = password_problem(password, username)
    if problem:
        raise Invalid(problem)
    if find_user(db, username) is not None:
        raise Invalid(f"user {username!r} exists already (names are not case-sensitive)")
    user = User(username=username, password_hash=hash_password(password), is_admin=admin)
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Invalid(f"user {username!r} exists already (names are not case-sensitive)") from None
    return user


def reset_password(db: Session, user: User, password: str) -> None:
    """A new password (checked like a new account's); the user's sessions end. Commits."""
    problem = password_problem(password, user.username)
    if problem:
        raise Invalid(problem)
    user.password_hash = hash_password(password)
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    db.commit()


def set_active(db: Session, user: User, active: bool) -> None:
    """Deactivate (cannot log in, logged out everywhere; their work stays) or reactivate. Commits."""
    user.active = active
    if not active:
        db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    db.commit()


def add_member(db: Session, project: Project, user: User, role: str, *, commit: bool = True) -> None:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    exists = db.scalar(select(Membership.id).where(Membership.project_id == project.id,
                                                   Membership.user_id == user.id, Membership.role == role))
    if exists is not None:
        return
    db.add(Membership(project_id=project.id, user_id=user.id, role=role))
    if commit:
        try:
            db.commit()
        except IntegrityError:
            db.rollback()  # added by someone else at the same moment: nothing to do


def remove_member(db: Session, project: Project, user: User, role: str) -> None:
    """The user loses that role in the project; what they already did stays (and is exported). Commits."""
    db.execute(delete(Membership).where(Membership.project_id == project.id, Membership.user_id == user.id,
                                        Membership.role == role))
    if role == "annotator":  # an open claim would hold a slot nobody can fill: free it
        for a in db.scalars(select(Assignment).where(Assignment.project_id == project.id,
                                                     Assignment.user_id == user.id, Assignment.status == "open")):
            if latest_version(db, a.id) is None:
                a.status, a.slot = "skipped", None
    db.commit()


def delete_project(db: Session, project: Project) -> None:
    """The project and everything in it (items, claims, versions, reviews, comments), in one transaction."""
    item_ids = select(Item.id).where(Item.project_id == project.id)
    assignment_ids = select(Assignment.id).where(Assignment.project_id == project.id)
    db.execute(delete(Comment).where(Comment.item_id.in_(item_ids)))
    db.execute(delete(Review).where(Review.item_id.in_(item_ids)))
    db.execute(delete(Version).where(Version.assignment_id.in_(assignment_ids)))
    db.execute(delete(Assignment).where(Assignment.project_id == project.id))
    db.execute(delete(Item).where(Item.project_id == project.id))
    db.execute(delete(Membership).where(Membership.project_id == project.id))
    db.execute(delete(Project).where(Project.id == project.id))
    db.commit()


# -- projects -------------------------------------------------------------------------------------------

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
            m = re.fullmatch(r"\s*([0-9]{1,2})\s*-\s*([0-9]{1,2})\s*", scale)
            if not m or int(m.group(1)) >= int(m.group(2)):
                raise Invalid(f"criterion {name.strip()[:40]!r}: scale {scale[:20]!r} must look like '1-5' (0-99)")
            lo, hi = int(m.group(1)), int(m.group(2))
        if not re.fullmatch(r"[A-Za-z][\w-]{0,39}", name.strip(), re.ASCII):
            raise Invalid(f"criterion name {name.strip()[:40]!r}: use letters, digits, '_' or '-' (max 40)")
        out.append({"name": name.strip(), "min": lo, "max": hi})
    if len({c["name"] for c in out}) != len(out):
        raise Invalid("criterion names must be unique")
    if len(out) > 20:
        raise Invalid("at most 20 criteria")
    return out


def parse_scale_descriptions(text: str, criteria: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Describe criteria and their points, one per line: ``naturalness: how a native speaker would say it``
    and ``naturalness 1: clearly machine-written``. Returns the criteria with ``description``/``points``."""
    by_name = {c["name"]: dict(c, points=dict(c.get("points") or {})) for c in criteria}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([A-Za-z][\w-]*)(?:\s+([0-9]{1,2}))?\s*:\s*(.+?)\s*", line, re.ASCII)
        if not m:
            raise Invalid(f"scale descriptions, line {n}: write 'criterion: text' or 'criterion 3: text'")
        name, point, description = m.group(1), m.group(2), m.group(3)[:500]
        if name not in by_name:
            raise Invalid(f"scale descriptions, line {n}: no criterion {name!r}")
        c = by_name[name]
        if point is None:
            c["description"] = description
        elif not c["min"] <= int(point) <= c["max"]:
            raise Invalid(f"scale descriptions, line {n}: {name} runs from {c['min']} to {c['max']}")
        else:
            c["points"][str(int(point))] = description
    return [by_name[c["name"]] for c in criteria]


def describe_scales(criteria: list[dict[str, Any]]) -> str:
    """The criteria's descriptions in the format parse_scale_descriptions reads (for editing them)."""
    lines = []
    for c in criteria:
        if c.get("description"):
            lines.append(f"{c['name']}: {c['description']}")
        lines += [f"{c['name']} {p}: {d}" for p, d in sorted((c.get("points") or {}).items(), key=lambda x: int(x[0]))]
    return "\n".join(lines)


def _review_rows(decisions_path: Path, actions: set[str]) -> dict[str, dict[str, Any]]:
    from tamis.curate.decisions import read_decisions

    try:
        decisions = read_decisions(decisions_path)
    except (KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{decisions_path}: not a tamis decisions file ({exc})") from None
    return {d.id: d.to_dict() for d in decisions if d.action in actions}


def _suggestion(example_meta: dict[str, Any], decision: dict[str, Any] | None,
                messages: list[dict[str, str]]) -> tuple[list[dict[str, str]] | None, str]:
    """A model's candidate for this item, if it has one: Auto-Correct's answer (an ``edit`` decision's
    corrected turns) or a generated example (``meta.synthetic``), which is wholly a model's."""
    corrected = (decision or {}).get("corrected")
    if corrected and [m.get("role") for m in corrected] == [m["role"] for m in messages]:
        return [{"role": m["role"], "content": str(m["content"])} for m in corrected], \
            (decision or {}).get("step") or "auto-correct"
    if example_meta.get("synthetic"):
        return None, "generated"
    return None, ""


def create_project(db: Session, name: str, data: str | Path, *, criteria: str = DEFAULT_CRITERIA,
                   overlap: int = 2, edit_roles: tuple[str, ...] = ("assistant",), format: str | None = None,
                   decisions: str | Path | None = None, actions: tuple[str, ...] = ("review",),
                   limit: int | None = None, members: dict[str, list[str]] | None = None,
                   guidelines: str = "", scale_descriptions: str = "") -> tuple[Project, int, str]:
    """A project whose items are the chat examples of ``data`` (only those a decisions file marks for
    ``actions``, when given), with its members ({"annotator": [names], "reviewer": [...]}). All or nothing:
    every check runs before anything is written, and it is one transaction. Returns (project, number of
    items, the reader's summary of rejected rows)."""
    name = validate_project_name(name)
    if not 1 <= overlap <= MAX_OVERLAP:
        raise Invalid(f"overlap must be from 1 to {MAX_OVERLAP} (and is never more than the annotators)")
    crit = parse_criteria(criteria)
    if scale_descriptions.strip():
        crit = parse_scale_descriptions(scale_descriptions, crit)
    if len(guidelines) > GUIDELINES_MAX_CHARS:
        raise Invalid(f"guidelines: at most {GUIDELINES_MAX_CHARS:,} characters")
    users: list[tuple[User, str]] = []
    for role, names in (members or {}).items():
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        for username in names:
            user = find_user(db, username)
            if user is None:
                raise Invalid(f"no user {username!r}; create it with `tamis studio add-user` (nothing was created)")
            users.append((user, role))
    if db.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise Invalid(f"project {name!r} exists already")
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
                      source=str(data), guidelines=guidelines)
    db.add(project)
    try:
        db.flush()
        for pos, ex in enumerate(examples):
            meta = dict(ex.meta)
            decision = chosen[ex.id] if chosen is not None else None
            if decision is not None:
                meta["decision"] = decision
            original = [m.to_dict() for m in ex.messages]
            suggestion, source = _suggestion(meta, decision, original)
            db.add(Item(project_id=project.id, position=pos, example_id=ex.id, kind=ex.kind, original=original,
                        meta=meta, suggestion=suggestion, suggestion_source=source))
        for user, role in users:
            add_member(db, project, user, role, commit=False)
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Invalid(f"project {name!r} exists already (or its data has duplicate ids)") from None
    except BaseException:
        db.rollback()
        raise
    return project, len(examples), result.summary()


def starting_messages(item: Item) -> list[dict[str, str]]:
    """Where editing starts: the model's suggestion when the item has one, else the original."""
    return item.suggestion or item.original


def has_suggestion(item: Item) -> bool:
    return bool(item.suggestion) or item.suggestion_source == "generated"


# -- annotators ---------------------------------------------------------------------------------------

def annotator_count(db: Session, project: Project) -> int:
    return db.scalar(select(func.count()).select_from(Membership).where(
        Membership.project_id == project.id, Membership.role == "annotator")) or 0


def effective_overlap(db: Session, project: Project) -> int:
    """Annotators per item: the project's overlap, bounded by how many annotators it has (at least 1)."""
    return max(1, min(project.overlap, MAX_OVERLAP, annotator_count(db, project)))


def _free_slot(db: Session, item_id: int, overlap: int) -> int | None:
    used = set(db.scalars(select(Assignment.slot).where(Assignment.item_id == item_id, Assignment.slot.is_not(None))))
    return next((s for s in range(overlap) if s not in used), None)


def next_assignment(db: Session, project: Project, user: User) -> Assignment | None:
    """The annotator's open item, or a newly claimed one (first item with a free slot), or, when nothing
    new is left, the oldest item they skipped that still has a free slot (skipped items come back)."""
    open_one = db.scalar(select(Assignment).where(Assignment.project_id == project.id,
                                                  Assignment.user_id == user.id, Assignment.status == "open")
                         .order_by(Assignment.id).limit(1))
    if open_one is not None:
        return open_one
    overlap = effective_overlap(db, project)
    for _ in range(CLAIM_RETRIES):
        mine = select(Assignment.item_id).where(Assignment.user_id == user.id, Assignment.project_id == project.id)
        taken = (select(func.count()).select_from(Assignment)
                 .where(Assignment.item_id == Item.id, Assignment.slot.is_not(None)).scalar_subquery())
        item = db.scalar(select(Item).where(Item.project_id == project.id, Item.id.not_in(mine),
                                            taken < overlap).order_by(Item.position).limit(1))
        if item is None:
            return _reopen_skipped(db, project, user, overlap)
        slot = _free_slot(db, item.id, overlap)
        if slot is None:  # the last slot went between our two reads (READ COMMITTED): look again
            db.rollback()
            continue
        assignment = Assignment(item_id=item.id, user_id=user.id, project_id=project.id, slot=slot)
        db.add(assignment)
        try:
            db.commit()
            return assignment
        except IntegrityError:  # someone took that slot (or we raced ourselves in another tab)
            db.rollback()
    return None


def _reopen_skipped(db: Session, project: Project, user: User, overlap: int) -> Assignment | None:
    skipped = list(db.scalars(select(Assignment).where(Assignment.project_id == project.id,
                                                       Assignment.user_id == user.id, Assignment.status == "skipped")
                              .order_by(Assignment.id)))
    for assignment in skipped:
        if reopen(db, assignment, overlap):
            return assignment
    return None


def reopen(db: Session, assignment: Assignment, overlap: int) -> bool:
    """Take a skipped item back (if it still has a free slot); commits. False when others filled it."""
    if assignment.status != "skipped":
        return assignment.status == "open"
    for _ in range(CLAIM_RETRIES):
        slot = _free_slot(db, assignment.item_id, overlap)
        if slot is None:
            db.rollback()
            return False
        assignment.slot, assignment.status = slot, "open"
        try:
            db.commit()
            return True
        except IntegrityError:
            db.rollback()
    return False


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
    # when the server handed out the page this save comes from (epoch s; verified by the caller), if known
    opened_at: float | None = None


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


def time_on_item(assignment: Assignment, latest: Version | None, opened_at: float | None,
                 now: float | None = None) -> float:
    """Seconds of work this save stands for, measured on the server: since the page was handed out, or
    since the previous save / the claim if that was later; capped at 30 minutes."""
    now = time.time() if now is None else now
    since = max(_epoch(latest.created_at) if latest else _epoch(assignment.created_at), opened_at or 0.0)
    return max(0.0, min(now - since, TIME_CAP_S))


def check_save_budget(db: Session, user: User, chars: int) -> None:
    """Per-user limits: one save's size, saves per minute, characters per hour (raises TooMuch)."""
    if chars > SAVE_MAX_CHARS:
        raise TooMuch(f"This save holds {chars:,} characters; the limit is {SAVE_MAX_CHARS:,}.", 413)
    now = utcnow()
    minute_ago = now - timedelta(minutes=1)
    n_minute, volume = db.execute(
        select(func.coalesce(func.sum(case((Version.created_at >= minute_ago, 1), else_=0)), 0),
               func.coalesce(func.sum(Version.chars), 0))
        .join(Assignment, Assignment.id == Version.assignment_id)
        .where(Assignment.user_id == user.id, Version.created_at >= now - timedelta(hours=1))).one()
    if n_minute >= SAVES_PER_MINUTE:
        raise TooMuch(f"More than {SAVES_PER_MINUTE} saves in a minute; wait a moment and save again.")
    if volume + chars > SAVE_CHARS_PER_HOUR:
        raise TooMuch(f"More than {SAVE_CHARS_PER_HOUR:,} characters saved in an hour; wait and save again.")


def suggestion_outcome(item: Item, messages: list[dict[str, str]], edit_roles: list[str]) -> str | None:
    """Against the item's model suggestion: ``accepted`` (unchanged), ``edited``, or ``replaced`` (so far from
    it, HTER >= 0.6, that the person wrote their own); None when the item has no suggestion."""
    if not has_suggestion(item):
        return None
    start = starting_messages(item)
    idx = [i for i, m in enumerate(start) if m["role"] in edit_roles]
    before = [" ".join(start[i]["content"].split()) for i in idx]
    after = [" ".join(messages[i]["content"].split()) for i in idx]
    if before == after:
        return "accepted"
    from tamis.signals.edits import edit_effort

    return "replaced" if edit_effort(before, after).hter >= REPLACED_HTER else "edited"


def save_version(db: Session, project: Project, item: Item, assignment: Assignment, edit: Edit,
                 *, user: User | None = None) -> Version:
    """Append a version (optimistic concurrency on ``edit.base``; per-user size and rate limits when
    ``user`` is given); commits before returning."""
    latest = latest_version(db, assignment.id)
    current = latest.number if latest else 0
    if edit.base != current:
        raise Conflict(f"This item was saved elsewhere (version {current}) after the version you were "
                       f"editing (version {edit.base}). Your text is kept below; reload to continue from "
                       "the newer version.", latest)
    if assignment.status != "open" and assignment.status != "submitted":
        raise Invalid(f"this item was {assignment.status}; it can no longer be edited")
    base_msgs = latest.messages if latest else starting_messages(item)
    messages = [dict(m) for m in base_msgs]
    for idx, text in edit.turns.items():
        if not 0 <= idx < len(messages) or messages[idx]["role"] not in project.edit_roles:
            raise Invalid(f"turn {idx} cannot be edited in this project")
        messages[idx]["content"] = text.replace("\r\n", "\n")
    ratings = _check_ratings(project, edit.ratings, required=edit.submit)
    chars = sum(len(m["content"]) for i, m in enumerate(messages) if i in edit.turns)
    if user is not None:
        check_save_budget(db, user, chars)
    version = Version(assignment_id=assignment.id, number=current + 1, messages=messages, ratings=ratings,
                      submitted=edit.submit, elapsed_s=round(time_on_item(assignment, latest, edit.opened_at), 3),
                      chars=chars, suggestion_outcome=suggestion_outcome(item, messages, project.edit_roles))
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
        if not re.fullmatch(r"[0-9]{1,3}", value) or not c["min"] <= int(value) <= c["max"]:
            raise Invalid(f"{c['name']}: rating must be a whole number from {c['min']} to {c['max']}")
        ratings[c["name"]] = int(value)
    return ratings


def close_assignment(db: Session, assignment: Assignment, status: str, note: str = "") -> None:
    """Skip (frees the slot for someone else; the item comes back later) or flag (done, and the item goes
    to a reviewer with the note)."""
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


@dataclass
class ListedItem:
    assignment: Assignment
    item: Item
    state: str  # open | draft | submitted | skipped | flagged
    versions: int


def my_items(db: Session, project: Project, user: User, *, state: str = "", query: str = "") -> list[ListedItem]:
    """The annotator's items in project order, with their state; filtered by state and by text (in the
    item's id, original or suggestion, case-insensitive)."""
    rows = db.execute(select(Assignment, Item, func.count(Version.id))
                      .join(Item, Item.id == Assignment.item_id)
                      .outerjoin(Version, Version.assignment_id == Assignment.id)
                      .where(Assignment.project_id == project.id, Assignment.user_id == user.id)
                      .group_by(Assignment.id, Item.id).order_by(Item.position)).all()
    out = []
    needle = query.strip().lower()
    for a, item, n in rows:
        label = "draft" if a.status == "open" and n else a.status
        if state and label != state:
            continue
        if needle:
            hay = " ".join([item.example_id] + [m["content"] for m in item.original + (item.suggestion or [])])
            if needle not in hay.lower():
                continue
        out.append(ListedItem(a, item, label, n))
    return out


def neighbours(db: Session, project: Project, user: User, assignment: Assignment) -> tuple[int | None, int | None]:
    """The previous and next of the annotator's items (project order), for the edit page's links."""
    ids = [a.id for a in db.scalars(select(Assignment).join(Item, Item.id == Assignment.item_id)
                                    .where(Assignment.project_id == project.id, Assignment.user_id == user.id)
                                    .order_by(Item.position))]
    k = ids.index(assignment.id) if assignment.id in ids else -1
    if k < 0:
        return None, None
    return (ids[k - 1] if k > 0 else None), (ids[k + 1] if k + 1 < len(ids) else None)


@dataclass
class MemberProgress:
    username: str
    roles: list[str]
    active: bool
    counts: dict[str, int] = field(default_factory=dict)
    time_spent_s: float = 0.0
    last_save: datetime | None = None


def team_progress(db: Session, project: Project) -> list[MemberProgress]:
    """Per member: claims by state, time spent (server-measured) and the last save."""
    members: dict[int, MemberProgress] = {}
    for user, role in db.execute(select(User, Membership.role).join(Membership, Membership.user_id == User.id)
                                 .where(Membership.project_id == project.id).order_by(User.username)):
        members.setdefault(user.id, MemberProgress(user.username, [], user.active)).roles.append(role)
    for user_id, status, n in db.execute(select(Assignment.user_id, Assignment.status, func.count())
                                         .where(Assignment.project_id == project.id)
                                         .group_by(Assignment.user_id, Assignment.status)):
        if user_id in members:
            members[user_id].counts[status] = n
    for user_id, spent, last in db.execute(
            select(Assignment.user_id, func.sum(Version.elapsed_s), func.max(Version.created_at))
            .join(Version, Version.assignment_id == Assignment.id)
            .where(Assignment.project_id == project.id).group_by(Assignment.user_id)):
        if user_id in members:
            members[user_id].time_spent_s, members[user_id].last_save = float(spent or 0), last
    return list(members.values())


# -- comments ----------------------------------------------------------------------------------------------

def can_discuss(db: Session, project: Project, item: Item, user: User) -> bool:
    """Everyone on the item: admins, the project's reviewers, and annotators who claimed it."""
    if user.is_admin:
        return True
    roles = set(db.scalars(select(Membership.role).where(Membership.project_id == project.id,
                                                         Membership.user_id == user.id)))
    if "reviewer" in roles:
        return True
    return "annotator" in roles and db.scalar(select(Assignment.id).where(
        Assignment.item_id == item.id, Assignment.user_id == user.id)) is not None


def comments(db: Session, item: Item) -> list[tuple[Comment, str]]:
    return [(c, name) for c, name in db.execute(select(Comment, User.username).join(User, User.id == Comment.user_id)
                                                .where(Comment.item_id == item.id).order_by(Comment.id))]


def add_comment(db: Session, item: Item, user: User, body: str) -> Comment:
    body = body.replace("\r\n", "\n").strip()
    if not body:
        raise Invalid("write something first")
    if len(body) > COMMENT_MAX_CHARS:
        raise TooMuch(f"a comment holds at most {COMMENT_MAX_CHARS:,} characters", 413)
    recent = db.scalar(select(func.count()).select_from(Comment).where(
        Comment.user_id == user.id, Comment.created_at >= utcnow() - timedelta(minutes=1))) or 0
    if recent >= COMMENTS_PER_MINUTE:
        raise TooMuch(f"More than {COMMENTS_PER_MINUTE} comments in a minute; wait a moment.")
    comment = Comment(item_id=item.id, user_id=user.id, body=body)
    db.add(comment)
    db.commit()
    return comment


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


def flags(db: Session, item: Item) -> list[tuple[str, str]]:
    """(annotator, note) for every flag on the item."""
    return [(u, a.flag_note) for a, u in db.execute(
        select(Assignment, User.username).join(User, User.id == Assignment.user_id)
        .where(Assignment.item_id == item.id, Assignment.status == "flagged").order_by(Assignment.id))]


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


def review_reasons(db: Session, project: Project, item: Item) -> list[str]:
    """Why a reviewer should look at this item: disagreement, or any flag (with its note)."""
    reasons = disagreement(project, submitted_edits(db, item))
    reasons += [f"flagged by {u}" + (f": {note}" if note else "") for u, note in flags(db, item)]
    return reasons


def latest_review(db: Session, item_id: int) -> Review | None:
    return db.scalar(select(Review).where(Review.item_id == item_id).order_by(Review.number.desc()).limit(1))


def review(db: Session, project: Project, item: Item, reviewer: User, base: int, action: str, *,
           version_id: int | None = None, turns: dict[int, str] | None = None, note: str = "") -> Review:
    """Record a reviewer's decision: ``accept`` a submitted version (or the original: ``version_id`` None),
    ``merge`` (their own version, from the original plus ``turns``), or ``reject``. Optimistic on ``base``."""
    current = latest_review(db, item.id)
    number = current.number if current else 0
    if base != number:
        raise Conflict(f"Another review of this item was saved (review {number}) after the one you saw "
                       f"(review {base}); its choice is shown below.", current)
    messages = None
    if action == "accept":
        if version_id is not None and version_id not in {v.id for _, _, v in submitted_edits(db, item)}:
            raise Invalid("that version is not a submitted edit of this item")
    elif action == "merge":
        messages = [dict(m) for m in item.original]
        for idx, text in (turns or {}).items():
            if not 0 <= idx < len(messages) or messages[idx]["role"] not in project.edit_roles:
                raise Invalid(f"turn {idx} cannot be edited in this project")
            messages[idx]["content"] = text.replace("\r\n", "\n")
        if sum(len(m["content"]) for m in messages) > SAVE_MAX_CHARS * 2:
            raise TooMuch(f"the merged version is over {SAVE_MAX_CHARS * 2:,} characters", 413)
        version_id = None
    elif action == "reject":
        version_id = None
    else:
        raise Invalid("action must be accept, merge or reject")
    decision = Review(item_id=item.id, number=number + 1, reviewer_id=reviewer.id, version_id=version_id,
                      action=action, messages=messages, note=note[:2000])
    db.add(decision)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("Another review of this item arrived at the same moment; reload to see it.",
                       latest_review(db, item.id)) from None
    return decision


def accept(db: Session, item: Item, reviewer: User, base: int, version_id: int | None, note: str = "") -> Review:
    """Accept a submitted version of this item (or the original, ``version_id`` None)."""
    project = db.get(Project, item.project_id)
    assert project is not None
    return review(db, project, item, reviewer, base, "accept", version_id=version_id, note=note)
