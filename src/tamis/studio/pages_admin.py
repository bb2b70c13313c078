"""Admin pages: accounts (create, reset password, deactivate), projects (create from an uploaded file, list,
delete, guidelines and scale descriptions, export download) and members with the team's progress."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.datastructures import FormData, UploadFile

from tamis.io import DataError
from tamis.studio import work
from tamis.studio.db import Item, Project, User
from tamis.studio.web import (MAX_UPLOAD, HTTPProblem, Id, Who, admin_only, check_csrf, form_text,
                              parse_uint, render, who)

router = APIRouter()


def _overview(request: Request, w: Who, status_code: int = 200, message: str | None = None,
              ok: str | None = None) -> Response:
    users = list(w.db.scalars(select(User).order_by(User.username)))
    counts = dict(w.db.execute(select(Item.project_id, func.count()).group_by(Item.project_id)).all())
    projects = [(p, counts.get(p.id, 0)) for p in w.db.scalars(select(Project).order_by(Project.id))]
    return render(request, "admin.html", w, status_code=status_code, users=users, projects=projects,
                  message=message, ok=ok, default_criteria=work.DEFAULT_CRITERIA)


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request) -> Response:
    with who(request) as w:
        admin_only(w)
        return _overview(request, w, ok=request.query_params.get("ok"))


def _admin_form(request: Request, form: FormData, action) -> Response:  # noqa: ANN001
    """Run ``action(w)`` for a logged-in admin with a valid CSRF token (in a worker thread)."""
    with who(request, write=True) as w:
        check_csrf(w, form.get("csrf"))
        admin_only(w)
        return action(w)


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    form = await request.form()

    def create(w: Who) -> Response:
        try:
            user = work.add_user(w.db, form_text(form, "username", max_chars=200),
                                 form_text(form, "password", max_chars=2000), admin=form.get("is_admin") == "on")
        except work.Invalid as exc:
            return _overview(request, w, 400, str(exc))
        return RedirectResponse(f"/admin?ok=user+{user.username}+created", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, create)


def _user(w: Who, user_id: int) -> User:
    user = w.db.get(User, user_id)
    if user is None:
        raise HTTPProblem(404, "No such user.")
    return user


@router.post("/admin/users/{user_id}/password")
async def reset_password(request: Request, user_id: Id) -> Response:
    form = await request.form()

    def reset(w: Who) -> Response:
        user = _user(w, user_id)
        try:
            work.reset_password(w.db, user, form_text(form, "password", max_chars=2000))
        except work.Invalid as exc:
            return _overview(request, w, 400, str(exc))
        return RedirectResponse(f"/admin?ok=password+of+{user.username}+reset", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, reset)


@router.post("/admin/users/{user_id}/active")
async def set_active(request: Request, user_id: Id) -> Response:
    form = await request.form()

    def toggle(w: Who) -> Response:
        user = _user(w, user_id)
        active = form.get("active") == "1"
        if user.id == w.user.id and not active:
            return _overview(request, w, 400, "You cannot deactivate your own account.")
        work.set_active(w.db, user, active)
        state = "reactivated" if active else "deactivated"
        return RedirectResponse(f"/admin?ok={user.username}+{state}", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, toggle)


@router.post("/admin/projects")
async def create_project(request: Request) -> Response:
    form = await request.form(max_part_size=MAX_UPLOAD)

    def create(w: Who) -> Response:
        upload = form.get("data")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _overview(request, w, 400, "Choose a data file to upload.")
        suffix = "".join(s for s in Path(upload.filename).suffixes[-2:] if s.isascii() and len(s) <= 10) or ".jsonl"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("upload" + suffix)
            upload.file.seek(0)
            path.write_bytes(upload.file.read())
            try:
                roles = ("user", "assistant") if form.get("edit_roles") == "all" else ("assistant",)
                overlap = parse_uint(form.get("overlap") or "2", "annotators per item")
                project, _, _ = work.create_project(
                    w.db, form_text(form, "name", max_chars=10_000).strip() or Path(upload.filename).stem, path,
                    criteria=form_text(form, "criteria", max_chars=2000) or work.DEFAULT_CRITERIA,
                    overlap=overlap, edit_roles=roles,
                    guidelines=form_text(form, "guidelines", max_chars=work.GUIDELINES_MAX_CHARS),
                    scale_descriptions=form_text(form, "scales", max_chars=work.GUIDELINES_MAX_CHARS))
            except (work.Invalid, DataError, HTTPProblem) as exc:
                w.db.rollback()
                text = exc.message if isinstance(exc, HTTPProblem) else str(exc)
                return _overview(request, w, 400, text.replace(str(path), upload.filename))
        project.source = upload.filename[:500]
        w.db.commit()
        return RedirectResponse(f"/admin/p/{project.id}", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, create)


def _project(w: Who, project_id: int) -> Project:
    project = w.db.get(Project, project_id)
    if project is None:
        raise HTTPProblem(404, "No such project.")
    return project


def _project_page(request: Request, w: Who, project_id: int, status_code: int = 200,
                  message: str | None = None, ok: str | None = None) -> Response:
    project = _project(w, project_id)
    n_items = w.db.scalar(select(func.count()).select_from(Item).where(Item.project_id == project_id)) or 0
    users = list(w.db.scalars(select(User.username).where(User.active.is_(True)).order_by(User.username)))
    return render(request, "admin_project.html", w, status_code=status_code, project=project,
                  team=work.team_progress(w.db, project), n_items=n_items, users=users, message=message, ok=ok,
                  overlap=work.effective_overlap(w.db, project), scales=work.describe_scales(project.criteria))


@router.get("/admin/p/{project_id}", response_class=HTMLResponse)
def project_admin(request: Request, project_id: Id) -> Response:
    with who(request) as w:
        admin_only(w)
        return _project_page(request, w, project_id, ok=request.query_params.get("ok"))


@router.post("/admin/p/{project_id}/members")
async def add_member(request: Request, project_id: Id) -> Response:
    form = await request.form()

    def add(w: Who) -> Response:
        project = _project(w, project_id)
        user = work.find_user(w.db, form_text(form, "username", max_chars=200))
        if user is None:
            return _project_page(request, w, project_id, 400, "No such user.")
        try:
            work.add_member(w.db, project, user, str(form.get("role", "")))
        except work.Invalid as exc:
            return _project_page(request, w, project_id, 400, str(exc))
        return RedirectResponse(f"/admin/p/{project_id}", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, add)


@router.post("/admin/p/{project_id}/members/remove")
async def remove_member(request: Request, project_id: Id) -> Response:
    form = await request.form()

    def remove(w: Who) -> Response:
        project = _project(w, project_id)
        user = work.find_user(w.db, form_text(form, "username", max_chars=200))
        if user is None:
            return _project_page(request, w, project_id, 400, "No such user.")
        work.remove_member(w.db, project, user, str(form.get("role", "")))
        return RedirectResponse(f"/admin/p/{project_id}?ok={user.username}+removed", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, remove)


@router.post("/admin/p/{project_id}/settings")
async def project_settings(request: Request, project_id: Id) -> Response:
    """Guidelines (markdown) and the descriptions of the rating scales."""
    form = await request.form()

    def update(w: Who) -> Response:
        project = _project(w, project_id)
        try:
            project.criteria = work.parse_scale_descriptions(
                form_text(form, "scales", max_chars=work.GUIDELINES_MAX_CHARS),
                [{k: v for k, v in c.items() if k in ("name", "min", "max")} for c in project.criteria])
        except work.Invalid as exc:
            w.db.rollback()
            return _project_page(request, w, project_id, 400, str(exc))
        project.guidelines = form_text(form, "guidelines", max_chars=work.GUIDELINES_MAX_CHARS)
        w.db.commit()
        return RedirectResponse(f"/admin/p/{project_id}?ok=saved", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, update)


@router.post("/admin/p/{project_id}/delete")
async def delete_project(request: Request, project_id: Id) -> Response:
    form = await request.form()

    def delete(w: Who) -> Response:
        project = _project(w, project_id)
        if form_text(form, "confirm", max_chars=200).strip() != project.name:
            return _project_page(request, w, project_id, 400, "Type the project's name to delete it.")
        name = project.name
        work.delete_project(w.db, project)
        return RedirectResponse(f"/admin?ok=project+{work.slugify(name)}+deleted", status_code=303)

    return await request.app.state.db.writing(_admin_form, request, form, delete)


@router.get("/admin/p/{project_id}/export.zip")
def export_download(request: Request, project_id: Id) -> Response:
    """The export (paired data, decisions, effort, agreement, report) as a zip, built on request."""
    from tamis.studio.export import export_project

    with who(request) as w:
        admin_only(w)
        project = _project(w, project_id)
        name = project.name
    slug = work.slugify(name)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        result = export_project(request.app.state.db, name, tmp)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(result.out_dir.iterdir()):
                zf.write(path, f"studio-{slug}/{path.name}")
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={"content-disposition": f'attachment; filename="studio-{slug}.zip"'})
