"""``tamis studio ...``: serve the post-editing studio, manage accounts and projects, export the results."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from tamis.cli.app import WorkspaceOpt, app, err, friendly_errors, out, workspace_from

studio_app = typer.Typer(help="The post-editing studio: people correct data, tamis keeps both versions.",
                         no_args_is_help=True)
app.add_typer(studio_app, name="studio")

DbOpt = typer.Option(None, "--db", envvar="TAMIS_STUDIO_DB",
                     help="Database URL, e.g. postgresql+psycopg://user@host/db [default: SQLite in the workspace].")


def studio_db_url(db: Optional[str], workspace: Optional[str]) -> str:
    """The database URL: --db, or SQLite at WORKSPACE/studio/studio.db."""
    if db:
        return db
    path = workspace_from(workspace).root / "studio" / "studio.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _database(db: Optional[str], workspace: Optional[str]):
    from tamis.studio.db import Database

    return Database(studio_db_url(db, workspace))


def _password(password_env: str) -> str:
    """From the named environment variable, else stdin when piped, else an interactive prompt."""
    if os.environ.get(password_env):
        return os.environ[password_env]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


@studio_app.command("serve")
@friendly_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (use a reverse proxy with https for teams)."),
    port: int = typer.Option(8765, help="Port."),
    db: Optional[str] = DbOpt,
    secure_cookies: Optional[bool] = typer.Option(None, "--secure-cookies/--no-secure-cookies",
                                                  help="Mark cookies Secure [default: when the request is https]."),
    proxy_headers: bool = typer.Option(False, help="Trust X-Forwarded-Proto/For from a local reverse proxy."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Start the web app (SQLite in the workspace unless --db is given)."""
    import uvicorn

    from tamis.studio import create_app

    url = studio_db_url(db, workspace)
    application = create_app(url, secure_cookies=secure_cookies)
    from tamis.studio.export import _redact

    out.print(f"studio on http://{host}:{port}  (database {_redact(url)})")
    uvicorn.run(application, host=host, port=port, proxy_headers=proxy_headers, log_level="info",
                timeout_graceful_shutdown=5)


@studio_app.command("add-user")
@friendly_errors
def add_user(
    username: str = typer.Argument(..., help="Login name."),
    admin: bool = typer.Option(False, "--admin", help="Give admin rights (create projects and accounts)."),
    password_env: str = typer.Option("TAMIS_STUDIO_PASSWORD", help="Environment variable holding the password "
                                     "(else read from stdin, else prompted)."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Create an account (the password is never echoed or logged)."""
    from tamis.studio import work

    database = _database(db, workspace)
    with database.write() as s:
        try:
            work.add_user(s, username, _password(password_env), admin=admin)
        except work.Invalid as exc:
            _fail(exc)
    out.print(f"created {'admin ' if admin else ''}user [bold]{username}[/]")


@studio_app.command("create-project")
@friendly_errors
def create_project(
    name: str = typer.Argument(..., help="Project name."),
    data: Path = typer.Argument(..., help="Data file: dialogues, instruction pairs or translations."),
    criteria: str = typer.Option("understandability,naturalness,coherence,correctness",
                                 help="Rating criteria, comma-separated; a scale per criterion like name:1-7 "
                                      "(default 1-5)."),
    overlap: int = typer.Option(2, help="Annotators per item (2+ to measure agreement)."),
    edit: str = typer.Option("assistant", help="Which turns people edit: assistant | all."),
    decisions: Optional[Path] = typer.Option(None, help="A tamis decisions file: only its items are loaded."),
    actions: str = typer.Option("review", help="With --decisions: which actions to load, comma-separated."),
    annotator: list[str] = typer.Option([], "--annotator", "-a", help="Add this user as annotator (repeatable)."),
    reviewer: list[str] = typer.Option([], "--reviewer", "-r", help="Add this user as reviewer (repeatable)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Input format, if auto-detection fails."),
    limit: Optional[int] = typer.Option(None, help="Load at most this many rows."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Create a project from a data file and invite annotators and reviewers."""
    from sqlalchemy import select

    from tamis.studio import work
    from tamis.studio.db import User

    if edit not in ("assistant", "all"):
        _fail(ValueError("--edit must be 'assistant' or 'all'"))
    database = _database(db, workspace)
    with database.write() as s:
        try:
            project, n, summary = work.create_project(
                s, name, data, criteria=criteria, overlap=overlap, format=format, limit=limit,
                edit_roles=("user", "assistant") if edit == "all" else ("assistant",), decisions=decisions,
                actions=tuple(a.strip() for a in actions.split(",") if a.strip()))
            for role, names in (("annotator", annotator), ("reviewer", reviewer)):
                for username in names:
                    user = s.scalar(select(User).where(User.username == username))
                    if user is None:
                        raise work.Invalid(f"no user {username!r}; create it with `tamis studio add-user`")
                    work.add_member(s, project, user, role)
        except work.Invalid as exc:
            _fail(exc)
    out.print(f"project [bold]{name}[/]: {n} items, {overlap} annotators per item ({summary})")


@studio_app.command("add-member")
@friendly_errors
def add_member(
    project: str = typer.Argument(..., help="Project name."),
    username: str = typer.Argument(..., help="User to add."),
    role: str = typer.Option("annotator", help="annotator | reviewer."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Give a user a role in a project."""
    from sqlalchemy import select

    from tamis.studio import work
    from tamis.studio.db import Project, User

    database = _database(db, workspace)
    with database.write() as s:
        p = s.scalar(select(Project).where(Project.name == project))
        u = s.scalar(select(User).where(User.username == username))
        if p is None or u is None:
            _fail(ValueError(f"no project {project!r}" if p is None else f"no user {username!r}"))
        try:
            work.add_member(s, p, u, role)
        except work.Invalid as exc:
            _fail(exc)
    out.print(f"{username} is {role} in {project}")


@studio_app.command("export")
@friendly_errors
def export(
    project: str = typer.Argument(..., help="Project name."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/studio-NAME]."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Paired data set, edit effort (HTER, character edits, time), agreement per criterion, report."""
    from tamis.studio.export import export_project

    out_dir = output or workspace_from(workspace).run_dir(f"studio-{project}")
    result = export_project(_database(db, workspace), project, out_dir)
    out.print("  ".join(f"[bold]{k}[/] {v}" for k, v in result.counts.items()))
    for c, a in result.agreement.items():
        out.print(f"  {c}: alpha {a['alpha'] if a['alpha'] is not None else 'n/a'}"
                  + (f" ({a['note']})" if a.get("note") else ""))
    out.print(f"outputs in [bold]{result.out_dir}[/] (paired.jsonl, accepted.jsonl, decisions.jsonl, effort.csv, "
              "agreement.json, report.html, manifest.json)")
