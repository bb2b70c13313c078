"""The studio's FastAPI app: factory, who-is-asking, CSRF, escaping, security headers, login/logout.

Every page is rendered on the server by Jinja2 with autoescape on; the only script is a static file
(the Content-Security-Policy forbids inline scripts), so data-set text can never run as code.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from tamis.studio import security
from tamis.studio.db import Database, LoginSession, Membership, Project, User

HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "tamis_login_csrf"
log = logging.getLogger("tamis.studio")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class HTTPProblem(Exception):
    """An error page with a status code (403, 404, 409 ...), or a redirect when ``location`` is set."""

    def __init__(self, status: int, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.location = status, message, location


@dataclass
class Who:
    user: User
    session: LoginSession
    db: Session


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def create_app(db_url: str, *, secure_cookies: bool | None = None, sqlite_synchronous: str = "FULL") -> FastAPI:
    """The studio app on ``db_url``. ``secure_cookies=None`` marks cookies Secure when served over https."""
    database = Database(db_url, sqlite_synchronous=sqlite_synchronous)
    with database.write() as db:
        secret = security.server_secret(db)
    app = FastAPI(title="tamis studio", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    app.state.db, app.state.secret, app.state.templates = database, secret, templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def cookie_secure(request: Request) -> bool:
        return secure_cookies if secure_cookies is not None else request.url.scheme == "https"

    app.state.cookie_secure = cookie_secure

    @app.middleware("http")
    async def headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> Response:
        if exc.location:
            return RedirectResponse(exc.location, status_code=303)
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return templates.TemplateResponse(request, "error.html", {"message": exc.message, "who": None},
                                          status_code=exc.status)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Response:
        token = secrets.token_urlsafe(24)
        response = templates.TemplateResponse(request, "login.html", {"csrf": token, "next": safe_next(next),
                                                                      "error": None, "who": None})
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=cookie_secure(request),
                            max_age=3600)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        next_url = safe_next(str(form.get("next", "/")))
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not token or not secrets.compare_digest(token, str(form.get("csrf", ""))):
            raise HTTPProblem(403, "The login form expired (CSRF check failed); reload the page and try again.")
        ip = request.client.host if request.client else "?"
        with database.write() as db:
            if security.login_blocked(db, username, ip):
                log.warning("login throttled for an account after repeated failures")
                return templates.TemplateResponse(
                    request, "login.html", {"csrf": token, "next": next_url, "who": None,
                                            "error": "Too many failed attempts; wait 15 minutes and try again."},
                    status_code=429)
            user = db.scalar(select(User).where(User.username == username))
            if not security.check_password(user, password):
                security.record_login_failure(db, username, ip)
                return templates.TemplateResponse(
                    request, "login.html", {"csrf": token, "next": next_url, "who": None,
                                            "error": "Wrong username or password."}, status_code=401)
            assert user is not None
            security.clear_login_failures(db, username, ip)
            cookie = security.create_session(db, secret, user)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(security.SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                            secure=cookie_secure(request), max_age=int(security.SESSION_LIFETIME.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        with who(request) as w:
            check_csrf(w, form.get("csrf"))
        with database.write() as db:
            security.end_session(db, secret, request.cookies.get(security.SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        with who(request) as w:
            if w.user.is_admin:
                projects = list(w.db.scalars(select(Project).order_by(Project.id)))
                roles: dict[int, set[str]] = {p.id: {"admin"} for p in projects}
            else:
                rows = w.db.execute(select(Project, Membership.role).join(Membership, Membership.project_id == Project.id)
                                    .where(Membership.user_id == w.user.id).order_by(Project.id)).all()
                roles = {}
                projects = []
                for p, role in rows:
                    if p.id not in roles:
                        projects.append(p)
                    roles.setdefault(p.id, set()).add(role)
            return render(request, "home.html", w, projects=projects, roles=roles)

    from tamis.studio import pages_admin, pages_work

    pages_work.register(app)
    pages_admin.register(app)
    return app


class who:
    """``with who(request) as w``: the logged-in user and a DB session, or a redirect to the login page."""

    def __init__(self, request: Request, *, write: bool = False) -> None:
        self.request, self.write = request, write

    def __enter__(self) -> Who:
        database: Database = self.request.app.state.db
        self.db = (database.write if self.write else database.read)()
        found = security.load_session(self.db, self.request.app.state.secret,
                                      self.request.cookies.get(security.SESSION_COOKIE))
        if found is None:
            self.db.close()
            if wants_json(self.request) or self.request.method != "GET":
                raise HTTPProblem(401, "Log in first.")
            raise HTTPProblem(303, "", location="/login?next=" + quote(self.request.url.path))
        return Who(user=found[1], session=found[0], db=self.db)

    def __exit__(self, *exc: Any) -> None:
        self.db.close()


def safe_next(url: str) -> str:
    """Only same-site paths (no open redirects to //evil.example or https://...)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def check_csrf(w: Who, submitted: Any) -> None:
    if not security.csrf_ok(w.session, str(submitted) if submitted is not None else None):
        raise HTTPProblem(403, "The form's security token is missing or wrong (CSRF check failed); reload the page.")


def roles_in(w: Who, project_id: int) -> set[str]:
    if w.user.is_admin:
        return {"admin", "annotator", "reviewer"}
    return set(w.db.scalars(select(Membership.role).where(Membership.project_id == project_id,
                                                          Membership.user_id == w.user.id)))


def project_for(w: Who, project_id: int, *allowed: str) -> Project:
    """The project, if this user holds one of ``allowed`` roles in it (admins hold all); else 403."""
    project = w.db.get(Project, project_id)
    if project is None or not roles_in(w, project_id) & set(allowed):
        raise HTTPProblem(403, "You do not have access to this project (or it does not exist).")
    return project


def render(request: Request, template: str, w: Who | None, status_code: int = 200, **ctx: Any) -> Response:
    ctx |= {"who": w, "csrf": w.session.csrf_token if w else ""}
    return request.app.state.templates.TemplateResponse(request, template, ctx, status_code=status_code)


create_studio_app = create_app  # the name in the public tamis namespace
