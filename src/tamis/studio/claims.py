"""Claiming items: who gets which item next (overlap bounded by the team, skipped items coming back), a
claim's short write transaction through the writer thread, and reopening. Each function that writes
commits or raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.studio.db import Assignment, Item, Membership, Project, User
from tamis.studio.projects import MAX_OVERLAP

CLAIM_RETRIES = 8


# -- annotators ---------------------------------------------------------------------------------------

# built once: a claim runs each of these, and building a statement costs more CPU than running it
_ANNOTATORS = (select(func.count()).select_from(Membership)
               .where(Membership.project_id == bindparam("pid"), Membership.role == "annotator"))
_USED_SLOTS = select(Assignment.slot).where(Assignment.item_id == bindparam("item_id"), Assignment.slot.is_not(None))
_OPEN = (select(Assignment).where(Assignment.project_id == bindparam("pid"), Assignment.user_id == bindparam("uid"),
                                  Assignment.status == "open").order_by(Assignment.id).limit(1))
_FIRST_FREE = (select(Item).where(
    Item.project_id == bindparam("pid"),
    Item.id.not_in(select(Assignment.item_id).where(Assignment.user_id == bindparam("uid"),
                                                    Assignment.project_id == bindparam("pid"))),
    select(func.count()).select_from(Assignment).where(Assignment.item_id == Item.id, Assignment.slot.is_not(None))
    .scalar_subquery() < bindparam("overlap")).order_by(Item.position).limit(1))


def annotator_count(db: Session, project: Project) -> int:
    return db.scalar(_ANNOTATORS, {"pid": project.id}) or 0


def effective_overlap(db: Session, project: Project) -> int:
    """Annotators per item: the project's overlap, bounded by how many annotators it has (at least 1)."""
    return max(1, min(project.overlap, MAX_OVERLAP, annotator_count(db, project)))


def _free_slot(db: Session, item_id: int, overlap: int) -> int | None:
    used = set(db.scalars(_USED_SLOTS, {"item_id": item_id}))
    return next((s for s in range(overlap) if s not in used), None)


def _open_assignment(db: Session, project_id: int, user_id: int) -> Assignment | None:
    return db.scalar(_OPEN, {"pid": project_id, "uid": user_id})


def _first_free_item(db: Session, project: Project, user: User, overlap: int) -> Item | None:
    return db.scalar(_FIRST_FREE, {"pid": project.id, "uid": user.id, "overlap": overlap})


def next_assignment(db: Session, project: Project, user: User, *,
                    write: Callable[..., Any] | None = None) -> Assignment | None:
    """The annotator's open item, or a newly claimed one (first item with a free slot), or, when nothing
    new is left, the oldest item they skipped that still has a free slot (skipped items come back).

    ``db`` is a write session (everything in one write transaction), or, with ``write`` (``Database.write_tx``),
    a read session: the choice is made in read transactions and only the claim itself is written (the
    unique (item, slot) and (item, user) constraints settle races; a lost race looks again)."""
    if write is not None:
        return _claim_short(db, project, user, write)
    open_one = _open_assignment(db, project.id, user.id)
    if open_one is not None:
        return open_one
    overlap = effective_overlap(db, project)
    for _ in range(CLAIM_RETRIES):
        item = _first_free_item(db, project, user, overlap)
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


def _claim_short(db: Session, project: Project, user: User, write: Callable[..., Any]) -> Assignment | None:
    project_id, user_id = project.id, user.id
    for _ in range(CLAIM_RETRIES):
        db.commit()  # end the read snapshot: see what others have claimed since
        open_one = _open_assignment(db, project_id, user_id)
        if open_one is not None:
            return open_one
        overlap = effective_overlap(db, project)
        item = _first_free_item(db, project, user, overlap)
        if item is None:
            return write(_reopen_skipped_tx, project_id, user_id, overlap)
        slot = _free_slot(db, item.id, overlap)
        if slot is None:
            continue
        return write(_claim_tx, project_id, user_id, item.id, slot)
    return write(_claim_tx_full, project_id, user_id)


def _claim_tx_full(db: Session, project_id: int, user_id: int) -> Assignment | None:
    project, user = db.get(Project, project_id), db.get(User, user_id)
    return next_assignment(db, project, user) if project is not None and user is not None else None


def _claim_tx(db: Session, project_id: int, user_id: int, item_id: int, slot: int) -> Assignment | None:
    """Write transaction: claim ``slot`` of the item, unless this user got an open item meanwhile (another
    tab). When the slot was taken since it was chosen, choose again here, under the write lock (with the
    one writer of SQLite nobody can take it meanwhile); None only when nothing is left."""
    open_one = _open_assignment(db, project_id, user_id)
    if open_one is not None:
        return open_one
    assignment = Assignment(item_id=item_id, user_id=user_id, project_id=project_id, slot=slot)
    db.add(assignment)
    try:
        db.commit()
        return assignment
    except IntegrityError:
        db.rollback()
    project, user = db.get(Project, project_id), db.get(User, user_id)
    return next_assignment(db, project, user) if project is not None and user is not None else None


def _reopen_skipped_tx(db: Session, project_id: int, user_id: int, overlap: int) -> Assignment | None:
    project, user = db.get(Project, project_id), db.get(User, user_id)
    if project is None or user is None:
        return None
    return _open_assignment(db, project_id, user_id) or _reopen_skipped(db, project, user, overlap)


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
