"""Admin pages: accounts, projects from an uploaded data file, members and their progress."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.datastructures import UploadFile

from tamis.io import DataError
from tamis.studio import work
from tamis.studio.app import HTTPProblem, Who, check_csrf, render, who
from tamis.studio.db import Assignment, Item, Membership, Project, User

MAX_UPLOAD = 200 * 1024 * 1024


def _admin(w: Who) -> None:
    if not w.user.is_admin:
        raise HTTPProblem(403, "Only admins can do this.")


def _overview(request: Request, w: Who, status_code: int = 200, message: str | None = None,
              ok: str | None = None) -> Response:
    users = list(w.db.scalars(select(User).order_by(User.username)))
    projects = list(w.db.scalars(select(Project).order_by(Project.id)))
    return render(request, "admin.html", w, status_code=status_code, users=users, projects=projects,
                  message=message, ok=ok, default_criteria=work.DEFAULT_CRITERIA)


def register(app: FastAPI) -> None:
    @app.get("/admin", response_class=HTMLResponse)
    def admin_home(request: Request) -> Response:
        with who(request) as w:
            _admin(w)
            return _overview(request, w, ok=request.query_params.get("ok"))

    @app.post("/admin/users")
    async def create_user(request: Request) -> Response:
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            _admin(w)
            try:
                user = work.add_user(w.db, str(form.get("username", "")), str(form.get("password", "")),
                                     admin=form.get("is_admin") == "on")
            except work.Invalid as exc:
                return _overview(request, w, 400, str(exc))
            return RedirectResponse(f"/admin?ok=user+{user.username}+created", status_code=303)

    @app.post("/admin/projects")
    async def create_project(request: Request) -> Response:
        form = await request.form(max_part_size=MAX_UPLOAD)
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            _admin(w)
            upload = form.get("data")
            if not isinstance(upload, UploadFile) or not upload.filename:
                return _overview(request, w, 400, "Choose a data file to upload.")
            suffix = "".join(Path(upload.filename).suffixes[-2:]) or ".jsonl"
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / ("upload" + suffix)
                path.write_bytes(await upload.read())
                try:
                    roles = ("user", "assistant") if form.get("edit_roles") == "all" else ("assistant",)
                    project, _, _ = work.create_project(
                        w.db, str(form.get("name", "")).strip() or Path(upload.filename).stem, path,
                        criteria=str(form.get("criteria") or work.DEFAULT_CRITERIA),
                        overlap=int(str(form.get("overlap") or 2)), edit_roles=roles)
                except (work.Invalid, DataError, ValueError) as exc:
                    w.db.rollback()
                    return _overview(request, w, 400, str(exc).replace(str(path), upload.filename))
            project.source = upload.filename
            w.db.commit()
            return RedirectResponse(f"/admin/p/{project.id}", status_code=303)

    @app.get("/admin/p/{project_id}", response_class=HTMLResponse)
    def project_admin(request: Request, project_id: int) -> Response:
        with who(request) as w:
            _admin(w)
            return _project_page(request, w, project_id)

    @app.post("/admin/p/{project_id}/members")
    async def add_member(request: Request, project_id: int) -> Response:
        form = await request.form()
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            _admin(w)
            project = w.db.get(Project, project_id)
            user = w.db.scalar(select(User).where(User.username == str(form.get("username", ""))))
            if project is None or user is None:
                return _project_page(request, w, project_id, 400, "No such user.")
            try:
                work.add_member(w.db, project, user, str(form.get("role", "")))
            except work.Invalid as exc:
                return _project_page(request, w, project_id, 400, str(exc))
            return RedirectResponse(f"/admin/p/{project_id}", status_code=303)


def _project_page(request: Request, w: Who, project_id: int, status_code: int = 200,
                  message: str | None = None) -> Response:
    project = w.db.get(Project, project_id)
    if project is None:
        raise HTTPProblem(404, "No such project.")
    members = w.db.execute(select(User.username, Membership.role).join(Membership, Membership.user_id == User.id)
                           .where(Membership.project_id == project_id).order_by(User.username)).all()
    counts: dict[str, dict[str, int]] = {}
    for username, status, n in w.db.execute(
            select(User.username, Assignment.status, func.count()).join(User, User.id == Assignment.user_id)
            .where(Assignment.project_id == project_id).group_by(User.username, Assignment.status)):
        counts.setdefault(username, {})[status] = n
    n_items = w.db.scalar(select(func.count()).select_from(Item).where(Item.project_id == project_id)) or 0
    users = list(w.db.scalars(select(User.username).order_by(User.username)))
    return render(request, "admin_project.html", w, status_code=status_code, project=project, members=members,
                  counts=counts, n_items=n_items, users=users, message=message)
