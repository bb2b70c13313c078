"""The studio's database: SQLAlchemy 2 models and engine setup (SQLite WAL by default, PostgreSQL for teams).

Nothing is ever updated in place where it matters: every edit is a new ``Version`` row and every
review decision a new ``Review`` row. Uniqueness constraints do the concurrency work — two saves
based on the same version race for the same ``(assignment, number)`` and the loser gets a conflict;
two annotators claiming the last slot of an item race for the same ``(item, slot)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        create_engine, event, func, inspect, text, true)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.schema import CreateColumn, CreateIndex

log = logging.getLogger("tamis.studio")

ROLES = ("annotator", "reviewer")
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """An account. Usernames are unique regardless of case (``ANN`` and ``ann`` are one person)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # False: cannot log in
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


Index("uq_users_username_lower", func.lower(User.username), unique=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # [{"name": "naturalness", "min": 1, "max": 5}, ...]
    criteria: Mapped[list[Any]] = mapped_column(JSON)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    edit_roles: Mapped[list[Any]] = mapped_column(JSON)  # which turns people edit, e.g. ["assistant"]
    source: Mapped[str] = mapped_column(Text, default="")
    guidelines: Mapped[str] = mapped_column(Text, default="", server_default="")  # markdown, on every item page
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "example_id"), UniqueConstraint("project_id", "position"))
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    example_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="chat")
    original: Mapped[list[Any]] = mapped_column(JSON)  # [{"role":..., "content":...}]: never changed
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # a model's candidate (Auto-Correct's answer, a generated dialogue): where editing starts, when set
    suggestion: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    suggestion_source: Mapped[str] = mapped_column(String(80), default="", server_default="")


class Assignment(Base):
    """One annotator's work on one item. ``slot`` (0..overlap-1) is freed (NULL) when they skip."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "user_id"), UniqueConstraint("item_id", "slot"))
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | submitted | skipped | flagged
    flag_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Version(Base):
    """An immutable snapshot of an annotator's edit; number 0 is implicit (the original)."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("assignment_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    messages: Mapped[list[Any]] = mapped_column(JSON)
    ratings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)  # server-measured time since the last save
    chars: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # text size (per-user volume limit)
    # against the item's model suggestion: accepted | edited | replaced (None: the item had no suggestion)
    suggestion_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Review(Base):
    """A reviewer's decision on an item; the highest number counts, and every one is kept.

    ``action``: ``accept`` (``version_id``, or the original when None), ``merge`` (the reviewer's own
    version in ``messages``), or ``reject`` (the item should not be used)."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("item_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)  # None: original
    action: Mapped[str] = mapped_column(String(20), default="accept", server_default="accept")
    messages: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)  # the merged version
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Comment(Base):
    """One message in an item's thread, readable by everyone working on the item."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class LoginSession(Base):
    """Server-side session: the cookie carries a random id (signed); only its hash is stored."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)  # hash of (username, client ip), or of the ip alone
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


SYNCHRONOUS_ENV = "TAMIS_STUDIO_SQLITE_SYNCHRONOUS"
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
SINGLE_WRITER = True  # SQLite: the web app's write transactions run one at a time in one thread (Database.write_tx)
BUSY_TIMEOUT_S = 30  # only other processes (the CLI) can make a write wait now: see Database.write_tx
CHECKPOINT_EVERY_S = 1.0  # the web app's background WAL checkpoints (Database(background_checkpoints=True))
# with them, a committing connection checkpoints only if the WAL grows past this many pages (SQLite's default
# is 1000): a safety net should the background thread fall behind
AUTOCHECKPOINT_BEHIND_PAGES = 20000


def sqlite_synchronous_setting(value: str | None = None) -> str:
    """SQLite's ``synchronous`` for the studio: ``value``, else $TAMIS_STUDIO_SQLITE_SYNCHRONOUS, else NORMAL.

    With WAL, NORMAL does not fsync on each commit (only at checkpoints): a committed save survives the
    process crashing or being killed, and only a power loss or an OS crash can lose the last commits.
    FULL fsyncs the WAL on every commit (durable against power loss too, slower)."""
    chosen = (value or os.environ.get(SYNCHRONOUS_ENV) or "NORMAL").strip().upper()
    if chosen not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"{SYNCHRONOUS_ENV}: one of {', '.join(SQLITE_SYNCHRONOUS)}, not {chosen!r}")
    return chosen


def make_engine(url: str, *, sqlite_synchronous: str | None = None, autocheckpoint_pages: int = 1000) -> Engine:
    """An engine for ``url``; SQLite gets WAL, ``synchronous`` (NORMAL unless set: see
    ``sqlite_synchronous_setting``), a busy timeout and ``wal_autocheckpoint``."""
    sqlite_synchronous = sqlite_synchronous_setting(sqlite_synchronous)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
                               pool_size=20, max_overflow=40)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
            cur.close()

        # Writers take the lock up front (BEGIN IMMEDIATE) and queue on busy_timeout, instead of failing
        # when a read transaction upgrades; readers stay concurrent under WAL.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record):  # noqa: ANN001
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tamis_write") else "BEGIN")
        return engine
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _private_file(path: Path) -> None:
    """Create the database file (and its WAL/SHM companions) readable by its owner only: it holds password
    hashes and the session-signing secret. SQLite gives -wal/-shm the main file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if p.exists():
            os.chmod(p, 0o600)


def add_missing_columns(engine: Engine) -> list[str]:
    """Bring a database made by an older studio up to date: add the columns (all nullable or with a server
    default) and indexes it lacks. Returns what was added ("table.column")."""
    added: list[str] = []
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in tables:
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    ddl = CreateColumn(column).compile(dialect=engine.dialect)
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
                    added.append(f"{table.name}.{column.name}")
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            continue
        for index in table.indexes:  # expression indexes are not reflected on SQLite: IF NOT EXISTS instead
            try:
                with engine.begin() as conn:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            except Exception as exc:  # noqa: BLE001 - e.g. old data with 'ANN' and 'ann': keep serving
                log.warning("could not create index %s (%s); remove the duplicates it reports", index.name,
                            type(exc).__name__)
    return added


class Database:
    """Two session factories over one engine: ``read`` for pages, ``write`` for anything that commits; and,
    for SQLite, one writer thread that runs every write transaction of the web app (``write_tx``,
    ``in_writer``), so requests never wait in SQLite's busy handler (it polls with sleeps of up to 100 ms)."""

    def __init__(self, url: str, *, sqlite_synchronous: str | None = None, single_writer: bool | None = None,
                 background_checkpoints: bool = False) -> None:
        self.url = url
        path = sqlite_path(url)
        if path is not None:
            _private_file(path)
        background_checkpoints = background_checkpoints and path is not None
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous,
                                  autocheckpoint_pages=AUTOCHECKPOINT_BEHIND_PAGES if background_checkpoints else 1000)
        Base.metadata.create_all(self.engine)
        add_missing_columns(self.engine)
        if path is not None:
            _private_file(path)
        self.read = sessionmaker(self.engine, expire_on_commit=False)
        self.write = sessionmaker(self.engine.execution_options(tamis_write=True), expire_on_commit=False)
        if single_writer is None:
            single_writer = SINGLE_WRITER and self.engine.dialect.name == "sqlite"
        self._writer_thread: threading.Thread | None = None
        self._writer = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="tamis-writer",
                                           initializer=self._note_writer_thread) if single_writer else None)
        self._stop_checkpoints = threading.Event()
        self.checkpointer: threading.Thread | None = None
        if background_checkpoints:
            assert path is not None
            synchronous = sqlite_synchronous_setting(sqlite_synchronous)
            self.checkpointer = threading.Thread(target=_checkpoints, args=(path, synchronous, self._stop_checkpoints),
                                                 name="tamis-checkpoint", daemon=True)
            self.checkpointer.start()
            weakref.finalize(self, self._stop_checkpoints.set)  # also stops with a Database nobody disposed

    def _note_writer_thread(self) -> None:
        self._writer_thread = threading.current_thread()

    def in_writer_thread(self) -> bool:
        return self._writer is None or threading.current_thread() is self._writer_thread

    def write_tx(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in a write session of its own (``fn`` commits), in the writer thread; blocks
        until it has run and returns its result (or raises its exception). Keep ``fn`` short: look-ups and
        checks that need no lock belong before it, in a read transaction. PostgreSQL: runs here."""
        if self.in_writer_thread():
            with self.write() as session:
                return fn(session, *args)
        return self._writer.submit(self.write_tx, fn, *args).result()  # type: ignore[union-attr]

    def in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (a whole request that writes, e.g. an admin form) in the writer thread; blocks."""
        if self.in_writer_thread():
            return fn(*args)
        return self._writer.submit(fn, *args).result()  # type: ignore[union-attr]

    async def writing(self, fn: Callable[..., T], *args: Any) -> T:
        """``in_writer`` for the event loop: awaits the writer thread (PostgreSQL: a worker thread)."""
        if self._writer is None:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(fn, *args)
        return await asyncio.wrap_future(self._writer.submit(fn, *args))

    def dispose(self) -> None:
        self._stop_checkpoints.set()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        self.engine.dispose()


def _checkpoints(path: Path, synchronous: str, stop: threading.Event) -> None:
    """Copy the WAL into the database file every second, on a connection of its own, until ``stop``.

    SQLite otherwise checkpoints inside the commit that fills the WAL past 1000 pages: the web app's writer
    thread, which then spent tens of ms in the checkpoint's writes and fsyncs while every save and claim
    queued behind it. A PASSIVE checkpoint waits for nobody and blocks nobody (WAL: writers append meanwhile)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA synchronous={synchronous}")
        while not stop.wait(CHECKPOINT_EVERY_S):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # e.g. the file went away (tests); the safety net still checkpoints
                log.warning("background checkpoint failed: %s", exc)
    finally:
        conn.close()
