"""Annotator and reviewer pages: claim the next item, edit turn by turn, rate, skip/flag; review disagreements."""

from __future__ import annotations

import difflib
import re
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from tamis.studio import work
from tamis.studio.app import HTTPProblem, Who, check_csrf, project_for, render, roles_in, wants_json, who
from tamis.studio.db import Assignment, Item, Project, Version

_TOKEN = re.compile(r"\s+|[^\s]+")


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


def _own_assignment(w: Who, project_id: int, assignment_id: int) -> tuple[Project, Item, Assignment]:
    """Only the annotator who holds the assignment may see or change it (not other annotators, not admins)."""
    project = project_for(w, project_id, "annotator")
    assignment = w.db.get(Assignment, assignment_id)
    if assignment is None or assignment.project_id != project.id or assignment.user_id != w.user.id:
        raise HTTPProblem(403, "This item is not assigned to you.")
    item = w.db.get(Item, assignment.item_id)
    assert item is not None
    return project, item, assignment


def _edit_page(request: Request, w: Who, project: Project, item: Item, assignment: Assignment, *,
               status_code: int = 200, message: str | None = None, conflict: Version | None = None,
               typed: dict[int, str] | None = None, ratings: dict[str, Any] | None = None) -> Response:
    latest = work.latest_version(w.db, assignment.id)
    current = latest.messages if latest else item.original
    turns = []
    for i, (orig, cur) in enumerate(zip(item.original, current)):
        text = typed.get(i, cur["content"]) if typed else cur["content"]
        turns.append({"index": i, "role": orig["role"], "original": orig["content"], "text": text,
                      "editable": orig["role"] in project.edit_roles, "diff": word_diff(orig["content"], text)})
    return render(request, "edit.html", w, status_code=status_code, project=project, item=item,
                  assignment=assignment, base=latest.number if latest else 0, turns=turns,
                  ratings=ratings if ratings is not None else (latest.ratings if latest else {}),
                  progress=work.progress(w.db, project, w.user), message=message, conflict=conflict,
                  opened_at=f"{time.time():.3f}", saved=request.query_params.get("saved"))


def register(app: FastAPI) -> None:
    @app.get("/p/{project_id}", response_class=HTMLResponse)
    def project_home(request: Request, project_id: int) -> Response:
        with who(request) as w:
            project = project_for(w, project_id, "annotator", "reviewer", "admin")
            return render(request, "project.html", w, project=project, roles=roles_in(w, project_id),
                          progress=work.progress(w.db, project, w.user), done=request.query_params.get("done"))

    @app.post("/p/{project_id}/next")
    async def claim_next(request: Request, project_id: int) -> Response:
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project = project_for(w, project_id, "annotator")
            assignment = work.next_assignment(w.db, project, w.user)
            if assignment is None:
                return RedirectResponse(f"/p/{project_id}?done=1", status_code=303)
            return RedirectResponse(f"/p/{project_id}/a/{assignment.id}", status_code=303)

    @app.get("/p/{project_id}/a/{assignment_id}", response_class=HTMLResponse)
    def edit_page(request: Request, project_id: int, assignment_id: int) -> Response:
        with who(request) as w:
            project, item, assignment = _own_assignment(w, project_id, assignment_id)
            return _edit_page(request, w, project, item, assignment)

    @app.post("/p/{project_id}/a/{assignment_id}/save")
    async def save(request: Request, project_id: int, assignment_id: int) -> Response:
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project, item, assignment = _own_assignment(w, project_id, assignment_id)
            typed = {int(k[5:]): str(v) for k, v in form.items() if k.startswith("turn_") and k[5:].isdigit()}
            ratings = {k[7:]: str(v) for k, v in form.items() if k.startswith("rating_")}
            try:
                base = int(str(form.get("base", "")))
                opened = float(str(form.get("opened_at") or time.time()))
            except ValueError:
                raise HTTPProblem(400, "The form is missing the version it was based on; reload the page.") from None
            edit = work.Edit(base=base, turns=typed, ratings=ratings, submit=form.get("action") == "submit",
                             elapsed_s=time.time() - opened)
            try:
                version = work.save_version(w.db, project, item, assignment, edit)
            except work.Conflict as exc:
                if wants_json(request):
                    latest = exc.latest
                    return JSONResponse({"error": str(exc), "latest": latest.number if latest else 0,
                                         "messages": latest.messages if latest else None}, status_code=409)
                return _edit_page(request, w, project, item, assignment, status_code=409, message=str(exc),
                                  conflict=exc.latest, typed=typed, ratings=ratings)
            except work.Invalid as exc:
                if wants_json(request):
                    return JSONResponse({"error": str(exc)}, status_code=400)
                return _edit_page(request, w, project, item, assignment, status_code=400, message=str(exc),
                                  typed=typed, ratings=ratings)
            if wants_json(request):
                return JSONResponse({"version": version.number, "submitted": version.submitted})
            if not edit.submit:
                return RedirectResponse(f"/p/{project_id}/a/{assignment_id}?saved={version.number}", status_code=303)
            nxt = work.next_assignment(w.db, project, w.user)
            return RedirectResponse(f"/p/{project_id}/a/{nxt.id}" if nxt else f"/p/{project_id}?done=1",
                                    status_code=303)

    @app.post("/p/{project_id}/a/{assignment_id}/{action}")
    async def skip_or_flag(request: Request, project_id: int, assignment_id: int, action: str) -> Response:
        if action not in ("skip", "flag"):
            raise HTTPProblem(404, "No such action.")
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project, item, assignment = _own_assignment(w, project_id, assignment_id)
            try:
                work.close_assignment(w.db, assignment, "skipped" if action == "skip" else "flagged",
                                      str(form.get("note", "")))
            except work.Invalid as exc:
                raise HTTPProblem(409, str(exc)) from None
            nxt = work.next_assignment(w.db, project, w.user)
            return RedirectResponse(f"/p/{project_id}/a/{nxt.id}" if nxt else f"/p/{project_id}?done=1",
                                    status_code=303)

    @app.get("/p/{project_id}/review", response_class=HTMLResponse)
    def review_list(request: Request, project_id: int, all: int = 0) -> Response:
        with who(request) as w:
            project = project_for(w, project_id, "reviewer")
            rows = []
            for item in w.db.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.position)):
                edits = work.submitted_edits(w.db, item)
                reasons = work.disagreement(project, edits)
                if edits and (reasons or all):
                    review = work.latest_review(w.db, item.id)
                    rows.append({"item": item, "n": len(edits), "reasons": reasons, "reviewed": review is not None})
            return render(request, "review_list.html", w, project=project, rows=rows, show_all=bool(all))

    def _review_page(request: Request, w: Who, project: Project, item: Item, status_code: int = 200,
                     message: str | None = None) -> Response:
        edits = work.submitted_edits(w.db, item)
        review = work.latest_review(w.db, item.id)
        shown = [{"assignment": a, "user": u, "version": v,
                  "diffs": [word_diff(o["content"], m["content"]) for o, m in zip(item.original, v.messages)]}
                 for a, u, v in edits]
        return render(request, "review_item.html", w, status_code=status_code, project=project, item=item,
                      edits=shown, review=review, base=review.number if review else 0,
                      reasons=work.disagreement(project, edits), message=message)

    def _review_item(w: Who, project_id: int, item_id: int) -> tuple[Project, Item]:
        project = project_for(w, project_id, "reviewer")
        item = w.db.get(Item, item_id)
        if item is None or item.project_id != project.id:
            raise HTTPProblem(403, "This item is not in this project.")
        return project, item

    @app.get("/p/{project_id}/review/{item_id}", response_class=HTMLResponse)
    def review_item(request: Request, project_id: int, item_id: int) -> Response:
        with who(request) as w:
            project, item = _review_item(w, project_id, item_id)
            return _review_page(request, w, project, item)

    @app.post("/p/{project_id}/review/{item_id}")
    async def review_accept(request: Request, project_id: int, item_id: int) -> Response:
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            project, item = _review_item(w, project_id, item_id)
            choice = str(form.get("choice", ""))
            try:
                base = int(str(form.get("base", "")))
                version_id = None if choice == "original" else int(choice)
            except ValueError:
                return _review_page(request, w, project, item, 400, "Choose a version to accept.")
            try:
                work.accept(w.db, item, w.user, base, version_id, str(form.get("note", "")))
            except work.Conflict as exc:
                return _review_page(request, w, project, item, 409, str(exc))
            except work.Invalid as exc:
                return _review_page(request, w, project, item, 400, str(exc))
            return RedirectResponse(f"/p/{project_id}/review", status_code=303)
