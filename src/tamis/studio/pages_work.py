"""Annotator pages: claim the next item, edit turn by turn, rate, skip/flag, the item list, comments."""

from __future__ import annotations

import difflib
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Select, and_, bindparam, exists, func, select, true
from sqlalchemy.orm import aliased
from starlette.datastructures import FormData

from tamis.studio import security, work
from tamis.studio.annotation import UNKNOWN
from tamis.studio.db import Assignment, Item, Membership, Project, Version
from tamis.studio.web import (HTTPProblem, Id, Who, blocking, check_csrf, form_text, numbered_fields, parse_uint,
                              project_for, render, roles_in, safe_next, wants_json, who)

router = APIRouter()
_TOKEN = re.compile(r"\s+|[^\s]+")
LONG_DIALOGUE = 8  # turns: beyond this, unchanged turns start collapsed so the ratings stay close
ITEM_STATES = ("open", "draft", "submitted", "skipped", "flagged")


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """[(op, text)] with op in {"=", "-", "+"}: what changed from ``a`` to ``b``, word by word."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", "".join(ta[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(ta[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(tb[j1:j2])))
    return out


def _own_assignment_query(admin: bool) -> Select[Any]:
    """The project, whether the user may annotate in it, their assignment, its item and latest version."""
    may_annotate = (true() if admin else
                    exists().where(Membership.project_id == Project.id, Membership.user_id == bindparam("uid"),
                                   Membership.role == "annotator"))
    older = aliased(Version)
    latest_number = (select(func.max(older.number)).where(older.assignment_id == Assignment.id)
                     .correlate(Assignment).scalar_subquery())
    return (select(Project, may_annotate.label("may_annotate"), Assignment, Item, Version)
            .outerjoin(Assignment, and_(Assignment.id == bindparam("aid"), Assignment.project_id == Project.id,
                                        Assignment.user_id == bindparam("uid")))
            .outerjoin(Item, Item.id == Assignment.item_id)
            .outerjoin(Version, and_(Version.assignment_id == Assignment.id, Version.number == latest_number))
            .where(Project.id == bindparam("pid")))


# built once (for admins and for everyone else): building it took ten times the CPU of running it
_OWN_ASSIGNMENT = {admin: _own_assignment_query(admin) for admin in (False, True)}


def _own_assignment(w: Who, project_id: int, assignment_id: int) -> tuple[Project, Item, Assignment, Version | None]:
    """Only the annotator who holds the assignment may see or change it (not other annotators, not admins).

    One query: the project, whether this user may annotate in it, their assignment, its item and latest
    version (each statement costs a trip out of Python and back through the GIL, so the hot pages ask few)."""
    row = w.db.execute(_OWN_ASSIGNMENT[bool(w.user.is_admin)],
                       {"uid": w.user.id, "aid": assignment_id, "pid": project_id}).first()
    if row is None or not row[1]:
        raise HTTPProblem(403, "You do not have access to this project (or it does not exist).")
    project, _, assignment, item, latest = row
    if assignment is None:
        raise HTTPProblem(403, "This item is not assigned to you.")
    assert item is not None
    return project, item, assignment, latest


def _edit_page(request: Request, w: Who, project: Project, item: Item, assignment: Assignment, *,
               status_code: int = 200, message: str | None = None, conflict: Version | None = None,
               typed: dict[int, str] | None = None, ratings: dict[str, Any] | None = None,
               latest: Version | None = UNKNOWN) -> Response:
    if latest is UNKNOWN:
        latest = work.latest_version(w.db, assignment.id)
    start = work.starting_messages(item)
    current = latest.messages if latest else start
    long_dialogue = len(item.original) > LONG_DIALOGUE
    turns = []
    for i, (orig, begin, cur) in enumerate(zip(item.original, start, current)):
        text = typed.get(i, cur["content"]) if typed else cur["content"]
        editable = orig["role"] in project.edit_roles
        turns.append({"index": i, "role": orig["role"], "original": orig["content"], "start": begin["content"],
                      "text": text, "editable": editable, "changed": text != begin["content"],
                      "suggested": item.suggestion is not None and begin["content"] != orig["content"],
                      "collapsed": long_dialogue and text == begin["content"] and not (typed and i in typed),
                      "diff": word_diff(begin["content"], text)})
    progress, prev_id, next_id = work.progress_and_neighbours(w.db, project, w.user, assignment)
    return render(request, "edit.html", w, status_code=status_code, project=project, item=item,
                  assignment=assignment, base=latest.number if latest else 0, turns=turns,
                  ratings=ratings if ratings is not None else (latest.ratings if latest else {}),
                  progress=progress, message=message, conflict=conflict,
                  opened=security.opened_token(request.app.state.secret, assignment.id),
                  saved=request.query_params.get("saved"), prev_id=prev_id, next_id=next_id,
                  suggestion=work.has_suggestion(item), long_dialogue=long_dialogue,
                  thread=work.comments(w.db, item), back=f"/p/{project.id}/a/{assignment.id}")


def _after_close(w: Who, project: Project, write: Any = None) -> Response:
    nxt = work.next_assignment(w.db, project, w.user, write=write)
    return RedirectResponse(f"/p/{project.id}/a/{nxt.id}" if nxt else f"/p/{project.id}?done=1", status_code=303)


@router.get("/p/{project_id}", response_class=HTMLResponse)
def project_home(request: Request, project_id: Id) -> Response:
    with who(request) as w:
        project = project_for(w, project_id, "annotator", "reviewer", "admin")
        return render(request, "project.html", w, project=project, roles=roles_in(w, project_id),
                      progress=work.progress(w.db, project, w.user), done=request.query_params.get("done"))


@router.post("/p/{project_id}/next")
async def claim_next(request: Request, project_id: Id) -> Response:
    form = await request.form()

    def claim() -> Response:  # look in a read transaction; only the claim is written (in the writer thread)
        with who(request) as w:
            check_csrf(w, form.get("csrf"))
            return _after_close(w, project_for(w, project_id, "annotator"), request.app.state.db.write_tx)

    return await blocking(claim)


@router.get("/p/{project_id}/items", response_class=HTMLResponse)
def item_list(request: Request, project_id: Id, state: str = "", q: str = "") -> Response:
    with who(request) as w:
        project = project_for(w, project_id, "annotator")
        if state and state not in ITEM_STATES:
            raise HTTPProblem(400, f"state must be one of {', '.join(ITEM_STATES)}")
        rows = work.my_items(w.db, project, w.user, state=state, query=q[:200])
        return render(request, "items.html", w, project=project, rows=rows, state=state, q=q[:200],
                      states=ITEM_STATES, progress=work.progress(w.db, project, w.user))


@router.get("/p/{project_id}/a/{assignment_id}", response_class=HTMLResponse)
def edit_page(request: Request, project_id: Id, assignment_id: Id) -> Response:
    with who(request) as w:
        project, item, assignment, latest = _own_assignment(w, project_id, assignment_id)
        return _edit_page(request, w, project, item, assignment, latest=latest)


def _save(request: Request, form: FormData, project_id: int, assignment_id: int) -> Response:
    """Who asks, the checks and the new version in a read transaction; the insert in a short write
    transaction in the writer thread (``Database.write_tx``)."""
    write_tx = request.app.state.db.write_tx
    with who(request) as w:
        check_csrf(w, form.get("csrf"))
        project, item, assignment, latest = _own_assignment(w, project_id, assignment_id)
        typed = numbered_fields(form, "turn_", max_chars=work.SAVE_MAX_CHARS)
        ratings = {k[7:]: form_text(form, k, max_chars=10) for k in form.keys() if k.startswith("rating_")}
        base = parse_uint(form.get("base"), "base (the version you edited)")
        opened = security.opened_at(request.app.state.secret, assignment.id, str(form.get("opened", ""))[:100])
        edit = work.Edit(base=base, turns=typed, ratings=ratings, submit=form.get("action") == "submit",
                         opened_at=opened)
        try:
            version = work.save_version(w.db, project, item, assignment, edit, user=w.user, write=write_tx,
                                        latest=latest)
        except work.Conflict as exc:
            w.db.commit()  # end the read snapshot: the page shows the newer version
            if wants_json(request):
                latest = exc.latest
                return JSONResponse({"error": str(exc), "latest": latest.number if latest else 0,
                                     "messages": latest.messages if latest else None}, status_code=409)
            return _edit_page(request, w, project, item, assignment, status_code=409, message=str(exc),
                              conflict=exc.latest, typed=typed, ratings=ratings)
        except (work.Invalid, work.TooMuch) as exc:
            w.db.commit()
            status = exc.status if isinstance(exc, work.TooMuch) else 400
            if wants_json(request):
                return JSONResponse({"error": str(exc)}, status_code=status)
            return _edit_page(request, w, project, item, assignment, status_code=status, message=str(exc),
                              typed=typed, ratings=ratings)
        if wants_json(request):
            return JSONResponse({"version": version.number, "submitted": version.submitted})
        if not edit.submit:
            return RedirectResponse(f"/p/{project_id}/a/{assignment_id}?saved={version.number}", status_code=303)
        return _after_close(w, project, write_tx)


@router.post("/p/{project_id}/a/{assignment_id}/save")
async def save(request: Request, project_id: Id, assignment_id: Id) -> Response:
    form = await request.form()
    return await blocking(_save, request, form, project_id, assignment_id)


@router.post("/p/{project_id}/a/{assignment_id}/{action}")
async def close_or_reopen(request: Request, project_id: Id, assignment_id: Id, action: str) -> Response:
    if action not in ("skip", "flag", "reopen"):
        raise HTTPProblem(404, "No such action.")
    form = await request.form()

    def act() -> Response:
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project, _, assignment, _ = _own_assignment(w, project_id, assignment_id)
            if action == "reopen":
                if not work.reopen(w.db, assignment, work.effective_overlap(w.db, project)):
                    raise HTTPProblem(409, "Other annotators have filled this item's places since you skipped it.")
                return RedirectResponse(f"/p/{project_id}/a/{assignment_id}", status_code=303)
            try:
                work.close_assignment(w.db, assignment, "skipped" if action == "skip" else "flagged",
                                      form_text(form, "note", max_chars=2000))
            except work.Invalid as exc:
                raise HTTPProblem(409, str(exc)) from None
            return _after_close(w, project)

    return await request.app.state.db.writing(act)


@router.post("/p/{project_id}/i/{item_id}/comments")
async def comment(request: Request, project_id: Id, item_id: Id) -> Response:
    """Add to an item's thread; back to the page it was written on."""
    form = await request.form()

    def add() -> Response:
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project = project_for(w, project_id, "annotator", "reviewer")
            item = w.db.get(Item, item_id)
            if item is None or item.project_id != project.id or not work.can_discuss(w.db, project, item, w.user):
                raise HTTPProblem(403, "You are not working on this item.")
            try:
                work.add_comment(w.db, item, w.user, form_text(form, "body", max_chars=work.COMMENT_MAX_CHARS * 2))
            except work.TooMuch as exc:
                raise HTTPProblem(exc.status, str(exc)) from None
            except work.Invalid as exc:
                raise HTTPProblem(400, str(exc)) from None
            back = safe_next(str(form.get("back", "")) or f"/p/{project_id}")
            return RedirectResponse(back + "#thread", status_code=303)

    return await request.app.state.db.writing(add)
