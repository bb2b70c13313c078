"""What every studio page needs: who is asking, CSRF, rendering, strict form parsing, error pages, security
headers and body-size limits. The page modules (``pages_*.py``) import this; ``app.py`` assembles them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path as PathParam
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tamis.studio import security
from tamis.studio.db import Database, LoginSession, Membership, Project, User

log = logging.getLogger("tamis.studio")

MAX_ID = 2**31 - 1  # ids are 32-bit everywhere (PostgreSQL INTEGER); a 23-digit id is a bad request, not a crash
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]
MAX_BODY = 2 * 1024 * 1024  # any form but the data upload
MAX_UPLOAD = 200 * 1024 * 1024
UPLOAD_PATHS = ("/admin/projects",)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]


class HTTPProblem(Exception):
    """An error page with a status code (400, 403, 404, 409 ...), or a redirect when ``location`` is set."""

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


def client_ip(request: Request) -> str:
    """The client's address (the proxy's X-Forwarded-For when uvicorn runs with --proxy-headers)."""
    return request.client.host if request.client else "?"


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


async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run database work in the thread pool: a write waiting for SQLite's lock must not stall the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


def safe_next(url: str) -> str:
    """Only same-site paths (no open redirects to //evil.example or https://...)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def check_csrf(w: Who, submitted: Any) -> None:
    if not security.csrf_ok(w.session, str(submitted) if submitted is not None else None):
        raise HTTPProblem(403, "The form's security token is missing or wrong (CSRF check failed); reload the page.")


# built once (building a statement costs more CPU than running it; these run on most pages)
_ROLES = select(Membership.role).where(Membership.project_id == bindparam("pid"),
                                      Membership.user_id == bindparam("uid"))
_PROJECT = select(Project).where(Project.id == bindparam("pid"))


def roles_in(w: Who, project_id: int) -> set[str]:
    if w.user.is_admin:
        return {"admin", "annotator", "reviewer"}
    return set(w.db.scalars(_ROLES, {"pid": project_id, "uid": w.user.id}))


def project_for(w: Who, project_id: int, *allowed: str) -> Project:
    """The project, if this user holds one of ``allowed`` roles in it (admins hold all); else 403."""
    project = w.db.scalar(_PROJECT, {"pid": project_id})
    if project is None or not roles_in(w, project_id) & set(allowed):
        raise HTTPProblem(403, "You do not have access to this project (or it does not exist).")
    return project


def admin_only(w: Who) -> None:
    if not w.user.is_admin:
        raise HTTPProblem(403, "Only admins can do this.")


def render(request: Request, template: str, w: Who | None, status_code: int = 200, **ctx: Any) -> Response:
    ctx |= {"who": w, "csrf": w.session.csrf_token if w else ""}
    return request.app.state.templates.TemplateResponse(request, template, ctx, status_code=status_code)


# -- strict form parsing: anything malformed is a 400 with a message, never a 500 ----------------------------

_UINT = re.compile(r"[0-9]{1,9}")


def parse_uint(value: Any, what: str) -> int:
    """A non-negative whole number written in ASCII digits (no '²', no '--3', no 23 digits)."""
    text = str(value if value is not None else "").strip()
    if not _UINT.fullmatch(text):
        raise HTTPProblem(400, f"{what}: expected a whole number, got {text[:20]!r}")
    return int(text)


def form_text(form: FormData, key: str, *, max_chars: int, default: str = "") -> str:
    value = form.get(key, default)
    if not isinstance(value, str):
        raise HTTPProblem(400, f"{key}: expected text")
    if len(value) > max_chars:
        raise HTTPProblem(413, f"{key}: at most {max_chars:,} characters")
    return value


def numbered_fields(form: FormData, prefix: str, *, max_chars: int) -> dict[int, str]:
    """``turn_0``, ``turn_3`` ... -> {0: text, 3: text}; a malformed number after the prefix is a 400."""
    out: dict[int, str] = {}
    for key in form.keys():
        if key.startswith(prefix):
            out[parse_uint(key[len(prefix):], key)] = form_text(form, key, max_chars=max_chars)
    return out


# -- ASGI middleware ----------------------------------------------------------------------------------------

class SecurityHeaders:
    """Security headers on every response, including 400s from the host check, 413s and unexpected 500s
    (Starlette would otherwise answer those outside the app's middleware, without the headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:  # noqa: BLE001 - answer, log the type and where (never form bodies)
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_with_headers({"type": "http.response.start", "status": 500,
                                         "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": b"Internal error; it has been logged."})


class BodyLimit:
    """Refuse request bodies over the limit (413) before anything reads them: 2 MiB for forms, more for the
    admin's data upload. Counts streamed bytes too, so a missing Content-Length does not get around it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_UPLOAD if scope.get("path") in UPLOAD_PATHS else MAX_BODY
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await _too_large(send, limit)


class BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": f"Request too large (limit {limit:,} bytes).".encode()})
