"""Annotators' work: saving versions (optimistic concurrency, per-user size and rate limits,
server-measured time, model-suggestion outcomes), skipping and flagging, and their own progress and
item list (claiming items: tamis.studio.claims). Each function that writes commits or raises."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from tamis.studio.db import Assignment, Item, Project, User, Version, utcnow
from tamis.studio.errors import Conflict, Invalid, TooMuch, commit_or_conflict

SAVE_MAX_CHARS = 100_000  # text in one save (all turns together)
SAVES_PER_MINUTE = 120  # per user: far above a person's pace (Ctrl+S every half second)
SAVE_CHARS_PER_HOUR = 2_000_000  # per user
TIME_CAP_S = 1800.0  # one save counts at most 30 minutes of work
REPLACED_HTER = 0.6  # an edit this far from the model's suggestion replaced it rather than edited it


def starting_messages(item: Item) -> list[dict[str, str]]:
    """Where editing starts: the model's suggestion when the item has one, else the original."""
    return item.suggestion or item.original


def has_suggestion(item: Item) -> bool:
    return bool(item.suggestion) or item.suggestion_source == "generated"


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


def check_save_budget(db: Session, user: User | int, chars: int) -> None:
    """Per-user limits: one save's size, saves per minute, characters per hour (raises TooMuch)."""
    user_id = user if isinstance(user, int) else user.id
    if chars > SAVE_MAX_CHARS:
        raise TooMuch(f"This save holds {chars:,} characters; the limit is {SAVE_MAX_CHARS:,}.", 413)
    now = utcnow()
    minute_ago = now - timedelta(minutes=1)
    n_minute, volume = db.execute(
        select(func.coalesce(func.sum(case((Version.created_at >= minute_ago, 1), else_=0)), 0),
               func.coalesce(func.sum(Version.chars), 0))
        .join(Assignment, Assignment.id == Version.assignment_id)
        .where(Assignment.user_id == user_id, Version.created_at >= now - timedelta(hours=1))).one()
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


UNKNOWN: Any = object()  # ``latest`` not looked up yet


def save_version(db: Session, project: Project, item: Item, assignment: Assignment, edit: Edit,
                 *, user: User | None = None, write: Callable[..., Any] | None = None,
                 latest: Version | None = UNKNOWN) -> Version:
    """Append a version (optimistic concurrency on ``edit.base``; per-user size and rate limits when
    ``user`` is given); commits before returning.

    ``db`` is a write session (one write transaction), or, with ``write`` (``Database.write_tx``), a read
    session: the new version is worked out in the read transaction, and the write transaction only
    re-checks the base, the item's state and the limits, inserts and commits. ``latest``: the assignment's
    latest version when the caller read it in the same transaction (saves a query; with ``write`` the
    write transaction re-checks it anyway)."""
    if latest is UNKNOWN or write is None:
        latest = latest_version(db, assignment.id)
    version = _new_version(project, item, assignment, edit, latest)
    if write is None:
        return _commit_version(db, assignment, version, edit, user)
    return write(_save_tx, assignment.id, version, edit, user.id if user is not None else None)


def _save_check_query(with_limits: bool) -> Any:
    """The assignment, its latest version number, and (``with_limits``) the user's saves in the last minute
    and characters in the last hour, in one statement."""
    latest_q = (select(func.coalesce(func.max(Version.number), 0))
                .where(Version.assignment_id == bindparam("aid")).scalar_subquery())
    if with_limits:
        recent = (select(Version.created_at.label("at"), Version.chars.label("chars"))
                  .join(Assignment, Assignment.id == Version.assignment_id)
                  .where(Assignment.user_id == bindparam("uid"), Version.created_at >= bindparam("hour_ago"))
                  .subquery())
        minute_q = (select(func.coalesce(func.sum(case((recent.c.at >= bindparam("minute_ago"), 1), else_=0)), 0))
                    .scalar_subquery())
        volume_q = select(func.coalesce(func.sum(recent.c.chars), 0)).scalar_subquery()
    else:
        minute_q = volume_q = select(0).scalar_subquery()
    return select(Assignment, latest_q, minute_q, volume_q).where(Assignment.id == bindparam("aid"))


# built once: under the write lock every microsecond of Python counts, and building it cost more than running it
_SAVE_CHECK = {with_limits: _save_check_query(with_limits) for with_limits in (False, True)}


def _save_tx(db: Session, assignment_id: int, version: Version, edit: Edit, user_id: int | None) -> Version:
    """The write transaction of a save: one query re-checks the base, the item's state and the user's limits
    (each statement under the lock also waits for the GIL, so they are few), then insert and commit."""
    now = utcnow()
    row = db.execute(_SAVE_CHECK[user_id is not None],
                     {"aid": assignment_id, "uid": user_id, "hour_ago": now - timedelta(hours=1),
                      "minute_ago": now - timedelta(minutes=1)}).first()
    if row is None:
        raise Invalid("this item is no longer assigned to you")
    assignment, latest_number, n_minute, volume = row
    if latest_number != edit.base:
        raise Conflict(f"This item was saved elsewhere (version {latest_number}) after the version you were "
                       f"editing (version {edit.base}). Your text is kept below; reload to continue from "
                       "the newer version.", latest_version(db, assignment_id))
    if assignment.status != "open" and assignment.status != "submitted":
        raise Invalid(f"this item was {assignment.status}; it can no longer be edited")
    if n_minute >= SAVES_PER_MINUTE:
        raise TooMuch(f"More than {SAVES_PER_MINUTE} saves in a minute; wait a moment and save again.")
    if volume + version.chars > SAVE_CHARS_PER_HOUR:
        raise TooMuch(f"More than {SAVE_CHARS_PER_HOUR:,} characters saved in an hour; wait and save again.")
    db.add(version)
    if edit.submit:
        assignment.status = "submitted"
    commit_or_conflict(db, "save", lambda: latest_version(db, assignment_id))
    return version


def _new_version(project: Project, item: Item, assignment: Assignment, edit: Edit,
                 latest: Version | None) -> Version:
    """The version ``edit`` makes of ``latest`` (or of the starting messages); raises Conflict, Invalid, TooMuch."""
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
    if chars > SAVE_MAX_CHARS:
        raise TooMuch(f"This save holds {chars:,} characters; the limit is {SAVE_MAX_CHARS:,}.", 413)
    return Version(assignment_id=assignment.id, number=current + 1, messages=messages, ratings=ratings,
                   submitted=edit.submit, elapsed_s=round(time_on_item(assignment, latest, edit.opened_at), 3),
                   chars=chars, suggestion_outcome=suggestion_outcome(item, messages, project.edit_roles))


def _commit_version(db: Session, assignment: Assignment, version: Version, edit: Edit,
                    user: User | int | None) -> Version:
    """Insert ``version`` if it still follows the latest one and the user's limits allow it; commits."""
    latest_number = db.scalar(select(func.max(Version.number)).where(Version.assignment_id == assignment.id)) or 0
    if latest_number != edit.base:
        latest = latest_version(db, assignment.id)
        raise Conflict(f"This item was saved elsewhere (version {latest_number}) after the version you were "
                       f"editing (version {edit.base}). Your text is kept below; reload to continue from "
                       "the newer version.", latest)
    if assignment.status != "open" and assignment.status != "submitted":
        raise Invalid(f"this item was {assignment.status}; it can no longer be edited")
    if user is not None:
        check_save_budget(db, user, version.chars)
    db.add(version)
    if edit.submit:
        assignment.status = "submitted"
    commit_or_conflict(db, "save", lambda: latest_version(db, assignment.id))
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


def _progress_query() -> Any:
    n_items = select(func.count()).select_from(Item).where(Item.project_id == bindparam("pid")).scalar_subquery()
    return (select(Assignment.id, Assignment.status, n_items).join(Item, Item.id == Assignment.item_id)
            .where(Assignment.project_id == bindparam("pid"), Assignment.user_id == bindparam("uid"))
            .order_by(Item.position))


_PROGRESS = _progress_query()  # built once (every edit page runs it)


def progress_and_neighbours(db: Session, project: Project, user: User,
                            assignment: Assignment) -> tuple[dict[str, int], int | None, int | None]:
    """``progress`` and ``neighbours`` in one query (the edit page: one round trip instead of three)."""
    rows = db.execute(_PROGRESS, {"pid": project.id, "uid": user.id}).all()
    if not rows:
        return progress(db, project, user), None, None
    counts: dict[str, int] = {}
    for _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    done = counts.get("submitted", 0) + counts.get("flagged", 0)
    stats = {"total": rows[0][2] or 0, "done": done, "skipped": counts.get("skipped", 0),
             "open": counts.get("open", 0)}
    ids = [r[0] for r in rows]
    k = ids.index(assignment.id) if assignment.id in ids else -1
    if k < 0:
        return stats, None, None
    return stats, (ids[k - 1] if k > 0 else None), (ids[k + 1] if k + 1 < len(ids) else None)


def neighbours(db: Session, project: Project, user: User, assignment: Assignment) -> tuple[int | None, int | None]:
    """The previous and next of the annotator's items (project order), for the edit page's links."""
    ids = [a.id for a in db.scalars(select(Assignment).join(Item, Item.id == Assignment.item_id)
                                    .where(Assignment.project_id == project.id, Assignment.user_id == user.id)
                                    .order_by(Item.position))]
    k = ids.index(assignment.id) if assignment.id in ids else -1
    if k < 0:
        return None, None
    return (ids[k - 1] if k > 0 else None), (ids[k + 1] if k + 1 < len(ids) else None)
