"""Helpers and fixtures for the studio tests: a throwaway PostgreSQL server, databases over SQLite and
PostgreSQL, seeded projects, a real uvicorn server in a subprocess, Debian's Chromium through Playwright.

Without the system packages (postgresql, chromium) those tests skip with the reason; with
TAMIS_REQUIRE_SYSTEM_DEPS=1 (set by .ci/run) they fail instead, so CI cannot silently skip them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REQUIRE = os.environ.get("TAMIS_REQUIRE_SYSTEM_DEPS") == "1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct-horse-9"


def missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (TAMIS_REQUIRE_SYSTEM_DEPS=1: CI must run this test)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- PostgreSQL ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server from Debian's binaries, run as the postgres user; yields an admin URL prefix."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        missing("PostgreSQL binaries not found (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg and shutil.which("runuser") is None:
        missing("runuser not found: cannot start PostgreSQL as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="tamis-pg-"))
    if as_pg:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    subprocess.run(as_pg + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                            "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(as_pg + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                            f"-p {port} -h 127.0.0.1 -k {root} -c max_connections=300 -c fsync=on", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(as_pg + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fresh_pg_database(server: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    return fresh_pg_database(request.getfixturevalue("postgres_server"))


# -- seeded data -------------------------------------------------------------------------------------

XSS = '<script>alert("xss")</script><img src=x onerror="alert(1)">'


def write_dialogues(path: Path, n: int = 6) -> Path:
    rows = []
    for i in range(n):
        rows.append({"id": f"d{i}", "messages": [
            {"role": "user", "content": f"Question {i}: how do I boil an egg? {XSS if i == 0 else ''}"},
            {"role": "assistant", "content": f"Put the egg in water and boil it for {i + 5} minutes. "
                                             f"{XSS if i == 0 else 'It are ready.'}"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass
class Seeded:
    url: str
    projects: dict[str, int] = field(default_factory=dict)


def seed(url: str, tmp: Path, *, overlap: int = 2, n: int = 6) -> Seeded:
    """Users admin/ann/bob/cat/rev, project A (ann, bob, cat annotate; rev reviews), project B (cat only)."""
    from sqlalchemy import select

    from tamis.studio import work
    from tamis.studio.db import Database, User

    database = Database(url)
    out = Seeded(url)
    with database.write() as s:
        for name in ("admin", "ann", "bob", "cat", "rev"):
            work.add_user(s, name, PASSWORD, admin=name == "admin")
        users = {u.username: u for u in s.scalars(select(User))}
        a, _, _ = work.create_project(s, "A", write_dialogues(tmp / "a.jsonl", n), overlap=overlap,
                                      criteria="naturalness,correctness:1-7")
        b, _, _ = work.create_project(s, "B", write_dialogues(tmp / "b.jsonl", 3), overlap=1)
        for u in ("ann", "bob", "cat"):
            work.add_member(s, a, users[u], "annotator")
        work.add_member(s, a, users["rev"], "reviewer")
        work.add_member(s, b, users["cat"], "annotator")
        out.projects = {"A": a.id, "B": b.id}
    database.dispose()
    return out


# -- a real server ---------------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    db_url: str
    proc: subprocess.Popen
    log: Path
    args: list[str]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(db_url: str, log: Path, *extra: str, port: int | None = None) -> Server:
    port = port or free_port()
    args = [sys.executable, "-m", "tamis.cli", "studio", "serve", "--db", db_url, "--port", str(port), *extra]
    fh = open(log, "ab")
    proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=os.environ | {"TAMIS_PROGRESS": "0"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"studio server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                return Server(url, db_url, proc, log, args)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("studio server did not start within 60 s")


@pytest.fixture()
def server_factory(tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def make(db_url: str, *extra: str, port: int | None = None) -> Server:
        srv = start_server(db_url, tmp_path / "server.log", *extra, port=port)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def login(base: str, username: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A logged-in client and its CSRF token."""
    client = httpx.Client(base_url=base, timeout=20)
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf": CSRF_RE.search(page.text).group(1), "next": "/"})
    assert r.status_code == 303, r.text[:500]
    home = client.get("/")
    return client, CSRF_RE.search(home.text).group(1)


def claim(client: httpx.Client, csrf: str, project_id: int) -> tuple[int, str]:
    """Claim the next item; (assignment id, edit page html)."""
    r = client.post(f"/p/{project_id}/next", data={"csrf": csrf}, follow_redirects=True)
    assert r.status_code == 200
    m = re.search(r"/p/\d+/a/(\d+)$", str(r.url))
    assert m, f"no item claimed: {r.url}"
    return int(m.group(1)), r.text


# -- the browser -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
