"""Reviewing and discussion: each item's comment thread, what reviewers see (submitted edits, flags,
disagreement) and their decisions (accept, merge, reject; optimistic concurrency). Writes commit or raise."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from tamis.studio.annotation import SAVE_MAX_CHARS, latest_version
from tamis.studio.db import Assignment, Comment, Item, Membership, Project, Review, User, Version, utcnow
from tamis.studio.errors import Conflict, Invalid, TooMuch, commit_or_conflict

COMMENT_MAX_CHARS = 4000
COMMENTS_PER_MINUTE = 20


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


# built once: every edit page shows the item's thread
_THREAD = (select(Comment, User.username).join(User, User.id == Comment.user_id)
           .where(Comment.item_id == bindparam("item_id")).order_by(Comment.id))


def comments(db: Session, item: Item) -> list[tuple[Comment, str]]:
    return [(c, name) for c, name in db.execute(_THREAD, {"item_id": item.id})]


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
    commit_or_conflict(db, "review", lambda: latest_review(db, item.id))
    return decision


def accept(db: Session, item: Item, reviewer: User, base: int, version_id: int | None, note: str = "") -> Review:
    """Accept a submitted version of this item (or the original, ``version_id`` None)."""
    project = db.get(Project, item.project_id)
    assert project is not None
    return review(db, project, item, reviewer, base, "accept", version_id=version_id, note=note)
