"""Reviewer pages: the queue (disagreements and flags, each with why), and per item: accept a version,
write a merged one, or reject; the item's comment thread."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from tamis.studio import work
from tamis.studio.db import Item, Project
from tamis.studio.pages_work import word_diff
from tamis.studio.web import (HTTPProblem, Id, Who, check_csrf, form_text, numbered_fields, parse_uint,
                              project_for, render, who)

router = APIRouter()


@router.get("/p/{project_id}/review", response_class=HTMLResponse)
def review_list(request: Request, project_id: Id, all: int = 0) -> Response:
    with who(request) as w:
        project = project_for(w, project_id, "reviewer")
        rows = []
        for item in w.db.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.position)):
            edits = work.submitted_edits(w.db, item)
            reasons = work.review_reasons(w.db, project, item)
            if reasons or (all and edits):
                review = work.latest_review(w.db, item.id)
                rows.append({"item": item, "n": len(edits), "reasons": reasons,
                             "reviewed": review.action if review else None})
        return render(request, "review_list.html", w, project=project, rows=rows, show_all=bool(all))


def _review_page(request: Request, w: Who, project: Project, item: Item, status_code: int = 200,
                 message: str | None = None, merge_typed: dict[int, str] | None = None) -> Response:
    edits = work.submitted_edits(w.db, item)
    review = work.latest_review(w.db, item.id)
    shown = [{"assignment": a, "user": u, "version": v,
              "diffs": [word_diff(o["content"], m["content"]) for o, m in zip(item.original, v.messages)]}
             for a, u, v in edits]
    # the merge form starts from the last merge, else the first submitted edit, else the suggestion/original
    start = (review.messages if review is not None and review.messages else
             edits[0][2].messages if edits else work.starting_messages(item))
    merge = [{"index": i, "role": o["role"], "original": o["content"],
              "text": (merge_typed or {}).get(i, s["content"]), "editable": o["role"] in project.edit_roles,
              "diff": word_diff(o["content"], (merge_typed or {}).get(i, s["content"]))}
             for i, (o, s) in enumerate(zip(item.original, start))]
    merged_diff = ([word_diff(o["content"], m["content"]) for o, m in zip(item.original, review.messages)]
                   if review is not None and review.messages else None)
    return render(request, "review_item.html", w, status_code=status_code, project=project, item=item,
                  edits=shown, review=review, base=review.number if review else 0, merged_diff=merged_diff,
                  reasons=work.review_reasons(w.db, project, item), flags=work.flags(w.db, item),
                  message=message, merge=merge, thread=work.comments(w.db, item),
                  back=f"/p/{project.id}/review/{item.id}")


def _review_item(w: Who, project_id: int, item_id: int) -> tuple[Project, Item]:
    project = project_for(w, project_id, "reviewer")
    item = w.db.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise HTTPProblem(403, "This item is not in this project.")
    return project, item


@router.get("/p/{project_id}/review/{item_id}", response_class=HTMLResponse)
def review_item(request: Request, project_id: Id, item_id: Id) -> Response:
    with who(request) as w:
        project, item = _review_item(w, project_id, item_id)
        return _review_page(request, w, project, item)


def _decide(request: Request, form: FormData, project_id: int, item_id: int) -> Response:
    with who(request, write=True) as w:
        check_csrf(w, form.get("csrf"))
        project, item = _review_item(w, project_id, item_id)
        action = str(form.get("action", "accept"))
        base = parse_uint(form.get("base"), "base (the review you saw)")
        note = form_text(form, "note", max_chars=2000)
        turns = numbered_fields(form, "merge_turn_", max_chars=work.SAVE_MAX_CHARS) if action == "merge" else None
        version_id = None
        if action == "accept":
            choice = str(form.get("choice", ""))
            if not choice:
                return _review_page(request, w, project, item, 400, "Choose a version to accept.")
            version_id = None if choice == "original" else parse_uint(choice, "choice")
        try:
            work.review(w.db, project, item, w.user, base, action, version_id=version_id, turns=turns, note=note)
        except work.Conflict as exc:
            return _review_page(request, w, project, item, 409, str(exc), merge_typed=turns)
        except work.TooMuch as exc:
            return _review_page(request, w, project, item, exc.status, str(exc), merge_typed=turns)
        except work.Invalid as exc:
            return _review_page(request, w, project, item, 400, str(exc), merge_typed=turns)
        return RedirectResponse(f"/p/{project_id}/review", status_code=303)


@router.post("/p/{project_id}/review/{item_id}")
async def review_decide(request: Request, project_id: Id, item_id: Id) -> Response:
    form = await request.form()
    return await request.app.state.db.writing(_decide, request, form, project_id, item_id)
