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


@studio_app.callback()
def _studio_extra() -> None:
    from rich.markup import escape

    from tamis.extras import MissingExtra, require

    try:
        require("studio", "the post-editing studio")
    except MissingExtra as exc:  # one line and exit 2, as friendly_errors does
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None

DbOpt = typer.Option(None, "--db", envvar="TAMIS_STUDIO_DB",
                     help="Database URL, e.g. postgresql+psycopg://user@host/db [default: SQLite in the workspace].")


def studio_db_url(db: Optional[str], workspace: Optional[str]) -> str:
    """The database URL: --db, or SQLite at WORKSPACE/studio/studio.db."""
    if db:
        return db
    path = workspace_from(workspace).root / "studio" / "studio.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # the database holds password hashes and the session secret
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
    proxy_headers: bool = typer.Option(False, help="Behind a reverse proxy: take the client address and https "
                                       "from its X-Forwarded-For/-Proto (only from --forwarded-allow-ips)."),
    forwarded_allow_ips: str = typer.Option("127.0.0.1", help="With --proxy-headers: the proxy's addresses, "
                                            "comma-separated."),
    trusted_hosts: Optional[str] = typer.Option(None, help="Host names this studio answers to, comma-separated "
                                                "(e.g. studio.example.org); other Host headers get 400."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Start the web app (SQLite in the workspace unless --db is given)."""
    import uvicorn

    from tamis.studio import create_app

    url = studio_db_url(db, workspace)
    hosts = [h.strip() for h in (trusted_hosts or "").split(",") if h.strip()] or None
    application = create_app(url, secure_cookies=secure_cookies, trusted_hosts=hosts)
    from tamis.studio.export import _redact

    out.print(f"studio on http://{host}:{port}  (database {_redact(url)})")
    uvicorn.run(application, host=host, port=port, proxy_headers=proxy_headers,
                forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None, log_level="info",
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
    guidelines: Optional[Path] = typer.Option(None, help="A markdown file shown on every item page."),
    scale_descriptions: Optional[Path] = typer.Option(
        None, help="A text file describing the criteria and their points, one per line: "
                   "'naturalness: ...' and 'naturalness 1: clearly machine-written'."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Create a project from a data file and invite annotators and reviewers (all or nothing)."""
    from tamis.studio import work

    if edit not in ("assistant", "all"):
        _fail(ValueError("--edit must be 'assistant' or 'all'"))
    database = _database(db, workspace)
    with database.write() as s:
        try:
            project, n, summary = work.create_project(
                s, name, data, criteria=criteria, overlap=overlap, format=format, limit=limit,
                edit_roles=("user", "assistant") if edit == "all" else ("assistant",), decisions=decisions,
                actions=tuple(a.strip() for a in actions.split(",") if a.strip()),
                members={"annotator": annotator, "reviewer": reviewer},
                guidelines=guidelines.read_text(encoding="utf-8") if guidelines else "",
                scale_descriptions=scale_descriptions.read_text(encoding="utf-8") if scale_descriptions else "")
        except work.Invalid as exc:
            _fail(exc)
        effective = work.effective_overlap(s, project)
    note = f" (at most {effective} until more annotators join)" if annotator and effective < overlap else ""
    out.print(f"project [bold]{project.name}[/]: {n} items, {overlap} annotators per item{note} ({summary})")


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
    from tamis.studio import work

    database = _database(db, workspace)
    with database.write() as s:
        p, u = _project_and_user(s, project, username)
        try:
            work.add_member(s, p, u, role)
        except work.Invalid as exc:
            _fail(exc)
    out.print(f"{u.username} is {role} in {project}")


def _project_and_user(s, project: str, username: str):  # noqa: ANN001, ANN202
    from sqlalchemy import select

    from tamis.studio import work
    from tamis.studio.db import Project

    p = s.scalar(select(Project).where(Project.name == project))
    u = work.find_user(s, username)
    if p is None or u is None:
        _fail(ValueError(f"no project {project!r}" if p is None else f"no user {username!r}"))
    return p, u


@studio_app.command("remove-member")
@friendly_errors
def remove_member(
    project: str = typer.Argument(..., help="Project name."),
    username: str = typer.Argument(..., help="User to remove."),
    role: str = typer.Option("annotator", help="annotator | reviewer."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Take a role in a project away (work already done stays and is exported)."""
    from tamis.studio import work

    with _database(db, workspace).write() as s:
        p, u = _project_and_user(s, project, username)
        work.remove_member(s, p, u, role)
    out.print(f"{u.username} is no longer {role} in {project}")


@studio_app.command("projects")
@friendly_errors
def list_projects(db: Optional[str] = DbOpt, workspace: Optional[str] = WorkspaceOpt) -> None:
    """List the projects: name, items, annotators per item, members."""
    from sqlalchemy import func, select

    from tamis.studio import work
    from tamis.studio.db import Item, Membership, Project

    with _database(db, workspace).read() as s:
        for p in s.scalars(select(Project).order_by(Project.id)):
            n = s.scalar(select(func.count()).select_from(Item).where(Item.project_id == p.id))
            m = s.scalar(select(func.count()).select_from(Membership).where(Membership.project_id == p.id))
            out.print(f"{p.name}\t{n} items\toverlap {p.overlap} (effective {work.effective_overlap(s, p)})\t"
                      f"{m} memberships")


@studio_app.command("delete-project")
@friendly_errors
def delete_project(
    project: str = typer.Argument(..., help="Project name."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Delete a project and all its work (export it first)."""
    from sqlalchemy import select

    from tamis.studio import work
    from tamis.studio.db import Project

    with _database(db, workspace).write() as s:
        p = s.scalar(select(Project).where(Project.name == project))
        if p is None:
            _fail(ValueError(f"no project {project!r}"))
        if not yes and not typer.confirm(f"Delete {project!r} and every edit in it?"):
            raise typer.Exit(1)
        work.delete_project(s, p)
    out.print(f"deleted project {project}")


@studio_app.command("reset-password")
@friendly_errors
def reset_password(
    username: str = typer.Argument(..., help="Login name."),
    password_env: str = typer.Option("TAMIS_STUDIO_PASSWORD", help="Environment variable holding the new password "
                                     "(else read from stdin, else prompted)."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Set a new password (the user is logged out everywhere)."""
    from tamis.studio import work

    with _database(db, workspace).write() as s:
        user = work.find_user(s, username)
        if user is None:
            _fail(ValueError(f"no user {username!r}"))
        try:
            work.reset_password(s, user, _password(password_env))
        except work.Invalid as exc:
            _fail(exc)
    out.print(f"password of {username} reset")


@studio_app.command("deactivate")
@friendly_errors
def deactivate(
    username: str = typer.Argument(..., help="Login name."),
    undo: bool = typer.Option(False, "--undo", help="Reactivate instead."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Stop an account from logging in (their work stays); --undo lets it in again."""
    from tamis.studio import work

    with _database(db, workspace).write() as s:
        user = work.find_user(s, username)
        if user is None:
            _fail(ValueError(f"no user {username!r}"))
        work.set_active(s, user, undo)
    out.print(f"{username} {'reactivated' if undo else 'deactivated'}")


@studio_app.command("export")
@friendly_errors
def export(
    project: str = typer.Argument(..., help="Project name."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Where the export folder studio-<slug of the "
                                          "name> goes [default: workspace/runs]."),
    db: Optional[str] = DbOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Paired data set, edit effort (HTER, character edits, time), agreement per criterion, report."""
    from tamis.studio.export import export_project

    out_root = output or workspace_from(workspace).root / "runs"
    result = export_project(_database(db, workspace), project, out_root)
    out.print("  ".join(f"[bold]{k}[/] {v}" for k, v in result.counts.items()))
    for c, a in result.agreement.items():
        out.print(f"  {c}: alpha {a['alpha'] if a['alpha'] is not None else 'n/a'}"
                  + (f" ({a['note']})" if a.get("note") else ""))
    out.print(f"outputs in [bold]{result.out_dir}[/] (paired.jsonl, accepted.jsonl, decisions.jsonl, effort.csv, "
              "agreement.json, suggestions.json, report.html, manifest.json)")
