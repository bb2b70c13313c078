"""Projects: names and folder slugs, criteria and their scale descriptions, creation (all or nothing), members,
the team's progress, deletion. Each function that writes commits or raises."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.io import DataError, read_dataset
from tamis.studio.accounts import find_user
from tamis.studio.db import ROLES, Assignment, Comment, Item, Membership, Project, Review, User, Version
from tamis.studio.errors import Invalid

DEFAULT_CRITERIA = "understandability,naturalness,coherence,correctness"
MAX_OVERLAP = 100  # and never more than the project's annotators (see claims.effective_overlap)
PROJECT_NAME_MAX = 80
GUIDELINES_MAX_CHARS = 50_000

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
            if db.scalar(select(Version.id).where(Version.assignment_id == a.id).limit(1)) is None:
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
