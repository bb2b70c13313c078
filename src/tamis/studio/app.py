"""The studio's FastAPI app: assembles the page routers, the middleware and the error pages.

Every page is rendered on the server by Jinja2 with autoescape on; the only script is a static file
(the Content-Security-Policy forbids inline scripts), so data-set text can never run as code. Shared
request helpers live in ``web.py``; routes in ``pages_auth.py``, ``pages_work.py``, ``pages_review.py``
and ``pages_admin.py`` (each an ``APIRouter``), so nothing imports this module but its callers.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from tamis.studio import pages_admin, pages_auth, pages_review, pages_work, security
from tamis.studio.db import Database
from tamis.studio.markup import markdown_html
from tamis.studio.web import BodyLimit, HTTPProblem, SecurityHeaders, wants_json

HERE = Path(__file__).parent


THREADS_ENV = "TAMIS_STUDIO_THREADS"
# threads serving pages: SQLite's writes go through one writer thread, so more page threads only add GIL
# contention (8 gave a lower p99 than anyio's 40 in four back-to-back pairs, docs/BENCHMARKS.md);
# PostgreSQL keeps 40 (requests wait on the network, not the GIL; not measured with fewer)
DEFAULT_THREADS = {"sqlite": 8}
DEFAULT_THREADS_OTHER = 40


def worker_threads(value: int | None = None, dialect: str = "sqlite") -> int:
    """Threads serving pages: ``value``, else $TAMIS_STUDIO_THREADS, else 8 on SQLite and 40 (anyio's
    default) on PostgreSQL; 1-1000."""
    raw = value if value is not None else (os.environ.get(THREADS_ENV)
                                           or DEFAULT_THREADS.get(dialect, DEFAULT_THREADS_OTHER))
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}: a whole number, not {raw!r}") from None
    if not 1 <= n <= 1000:
        raise ValueError(f"{THREADS_ENV}: from 1 to 1000, not {n}")
    return n


def create_app(db_url: str, *, secure_cookies: bool | None = None, sqlite_synchronous: str | None = None,
               trusted_hosts: list[str] | None = None, threads: int | None = None) -> FastAPI:
    """The studio app on ``db_url``. ``secure_cookies=None`` marks cookies Secure when served over https;
    ``trusted_hosts`` (e.g. ["studio.example.org"]) answers 400 to requests for any other Host;
    ``sqlite_synchronous`` see ``db.sqlite_synchronous_setting``; ``threads`` see ``worker_threads``."""
    database = Database(db_url, sqlite_synchronous=sqlite_synchronous, background_checkpoints=True)
    with database.write() as db:
        secret = security.server_secret(db)
    threads = worker_threads(threads, database.engine.dialect.name)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the threads serving sync pages and database work (anyio's default is 40); the writer thread and
        # the login checks have their own
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        # everything loaded so far (modules, the app, compiled templates and statements) lives as long as the
        # process: keep it out of the collector, whose full passes over it stalled every request 50-90 ms
        gc.freeze()
        yield

    app = FastAPI(title="tamis studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    templates.env.auto_reload = False  # compiled once: no stat() of every template file on every page
    templates.env.filters["markdown"] = markdown_html
    app.state.db, app.state.secret, app.state.templates = database, secret, templates
    app.state.login_limiter = anyio.CapacityLimiter(pages_auth.LOGIN_THREADS)
    app.state.logins_waiting = 0
    app.state.cookie_secure = (lambda request: secure_cookies if secure_cookies is not None
                               else request.url.scheme == "https")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (pages_auth, pages_work, pages_review, pages_admin):
        app.include_router(module.router)

    # the last added runs first: security headers wrap the host check, which wraps the body limit
    app.add_middleware(BodyLimit)
    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)
    app.add_middleware(SecurityHeaders)

    def error_page(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"message": message, "who": None},
                                          status_code=status)

    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> Response:
        if exc.location:
            return RedirectResponse(exc.location, status_code=303)
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "request" for e in exc.errors()[:3])
        return error_page(request, 400, f"Malformed request ({where}).")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_page(request, exc.status_code, str(exc.detail))

    return app


create_studio_app = create_app  # the name in the public tamis namespace
