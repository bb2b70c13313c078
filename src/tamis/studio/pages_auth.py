"""Login, logout and the home page. Password checks run in worker threads behind a small limiter, so a
login flood costs at most one core of argon2 and never delays anyone's saves on the event loop."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tamis.studio import security
from tamis.studio.db import Database, Membership, Project, User
from tamis.studio.web import HTTPProblem, check_csrf, client_ip, log, render, safe_next, who
from tamis.studio.work import find_user

router = APIRouter()
LOGIN_CSRF_COOKIE = "tamis_login_csrf"
LOGIN_THREADS = 2  # logins being checked at once (each waits for the argon2 slot inside)
MAX_LOGINS_WAITING = 16  # beyond this, answer 503 at once instead of queueing


@dataclass
class LoginOutcome:
    status: str  # ok | wrong | blocked | inactive
    cookie: str = ""


def attempt_login(database: Database, secret: bytes, username: str, password: str, ip: str) -> LoginOutcome:
    """Throttle check, password check (argon2, same work for unknown names), session: blocking, in a thread."""
    with database.read() as db:
        if security.login_blocked(db, username, ip):
            return LoginOutcome("blocked")
        user = find_user(db, username)
    if not security.check_password(user, password):
        database.write_tx(security.record_login_failure, username, ip)
        return LoginOutcome("wrong")
    assert user is not None
    return database.write_tx(_logged_in, secret, user, username, ip)


def _logged_in(db: Session, secret: bytes, user: User, username: str, ip: str) -> LoginOutcome:
    """Write transaction after a good password: clear this account's failures, open a session."""
    security.clear_login_failures(db, username, ip)
    if not user.active:
        return LoginOutcome("inactive")
    return LoginOutcome("ok", security.create_session(db, secret, user))


def _login_form(request: Request, token: str, next_url: str, error: str | None, status_code: int) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "login.html", {"csrf": token, "next": next_url, "who": None, "error": error}, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    response = _login_form(request, token, safe_next(next), None, 200)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.app.state.cookie_secure(request), max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", ""))[:80].strip()
    password = str(form.get("password", ""))[:1000]
    next_url = safe_next(str(form.get("next", "/")))
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not token or not secrets.compare_digest(token, str(form.get("csrf", ""))):
        raise HTTPProblem(403, "The login form expired (CSRF check failed); reload the page and try again.")
    state = request.app.state
    if state.logins_waiting >= MAX_LOGINS_WAITING:
        return _login_form(request, token, next_url, "The server is busy checking other logins; try again in a "
                           "few seconds.", 503)
    state.logins_waiting += 1
    try:
        outcome = await anyio.to_thread.run_sync(attempt_login, state.db, state.secret, username, password,
                                                 client_ip(request), limiter=state.login_limiter)
    finally:
        state.logins_waiting -= 1
    if outcome.status == "blocked":
        log.warning("login throttled after repeated failures")
        return _login_form(request, token, next_url, "Too many failed attempts; wait 15 minutes and try again.", 429)
    if outcome.status == "wrong":
        return _login_form(request, token, next_url, "Wrong username or password.", 401)
    if outcome.status == "inactive":
        return _login_form(request, token, next_url, "This account is deactivated; ask an admin.", 403)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(security.SESSION_COOKIE, outcome.cookie, httponly=True, samesite="lax",
                        secure=state.cookie_secure(request), max_age=int(security.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()

    def end() -> None:
        with who(request, write=True) as w:
            check_csrf(w, form.get("csrf"))
            security.end_session(w.db, request.app.state.secret, request.cookies.get(security.SESSION_COOKIE))

    await request.app.state.db.writing(end)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
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
