"""The attacks of issue 15 against a real studio server (uvicorn subprocess): a login flood beside an
annotator's saves, malformed numbers, forged timings, oversized and too-frequent saves, weak passwords,
look-alike usernames, huge overlaps, path-like project names, the database file's mode, proxies and hosts."""

from __future__ import annotations

import os
import re
import stat
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from studio_support import CSRF_RE, PASSWORD, claim, login, seed, write_dialogues
from tamis.studio import work
from tamis.studio.db import Database, Project, Version

pytestmark = pytest.mark.slow
JSON = {"accept": "application/json"}


@pytest.fixture()
def running(tmp_path, server_factory):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seeded = seed(url, tmp_path)
    return server_factory(url, "--proxy-headers"), seeded


def has_security_headers(r: httpx.Response) -> bool:
    return ("script-src 'self'" in r.headers.get("content-security-policy", "")
            and r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff")


def timed_saves(client: httpx.Client, csrf: str, pid: int, aid: int, base: int, n: int,
                pause: float = 0.05) -> tuple[list[float], int]:
    latencies = []
    for k in range(n):
        t0 = time.perf_counter()
        r = client.post(f"/p/{pid}/a/{aid}/save", headers=JSON,
                        data={"csrf": csrf, "base": str(base), "turn_1": f"edit {base}", "action": "save"})
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:300]
        base = r.json()["version"]
        time.sleep(pause)
    return latencies, base


def test_saves_stay_responsive_under_a_login_flood(running):
    """Six clients flood the login with unknown names, each request from a new address (so no per-client
    throttle can help): argon2 runs off the event loop, one at a time, and saves keep their pace."""
    server, seeded = running
    pid = seeded.projects["A"]
    ann, csrf = login(server.url, "ann")
    aid, page = claim(ann, csrf, pid)
    quiet, base = timed_saves(ann, csrf, pid, aid, 0, 15)
    stop = threading.Event()
    statuses: list[int] = []

    def flood(k: int) -> None:
        client = httpx.Client(base_url=server.url, timeout=300)
        token = CSRF_RE.search(client.get("/login").text).group(1)
        n = 0
        while not stop.is_set():
            r = client.post("/login", headers={"x-forwarded-for": f"10.{k}.{n // 250}.{n % 250 + 1}"},
                            data={"username": f"nobody-{k}-{n}", "password": "guess-guess-1", "csrf": token})
            statuses.append(r.status_code)
            n += 1

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    loaded: list[float] = []
    deadline = time.time() + 150
    while (len(statuses) < 30 or len(loaded) < 30) and time.time() < deadline:  # the 30 logins, or more
        more, base = timed_saves(ann, csrf, pid, aid, base, 5, pause=0.6)  # a person's pace, under the rate limit
        loaded += more
    stop.set()
    for t in threads:
        t.join(300)
    assert len(statuses) >= 30 and set(statuses) <= {401, 503}, statuses[:20]
    print(f"saves: quiet median {statistics.median(quiet) * 1000:.1f} ms, under the flood median "
          f"{statistics.median(loaded) * 1000:.1f} ms, max {max(loaded) * 1000:.1f} ms; {len(statuses)} logins")
    # before the fix: 30 ms -> 2.4 s median; now the flood may cost a little CPU, never seconds
    assert statistics.median(loaded) < max(0.25, 5 * statistics.median(quiet))
    assert max(loaded) < 2.0


def test_one_client_guessing_many_names_is_throttled(running):
    server, _ = running
    client = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(client.get("/login").text).group(1)
    for k in range(20):
        assert client.post("/login", data={"username": f"guess{k}", "password": "x" * 12, "csrf": token}).status_code == 401
    r = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token})
    assert r.status_code == 429 and has_security_headers(r)
    # another client (behind the trusted proxy) is not blocked by this one
    r = client.post("/login", headers={"x-forwarded-for": "10.9.9.9"},
                    data={"username": "ann", "password": PASSWORD, "csrf": token})
    assert r.status_code == 303


def test_malformed_numbers_are_400_with_security_headers(running):
    server, seeded = running
    pid = seeded.projects["A"]
    ann, csrf = login(server.url, "ann")
    aid, page = claim(ann, csrf, pid)
    rev, rev_csrf = login(server.url, "rev")
    bad = [
        ann.post(f"/p/{pid}/a/{aid}/save", data={"csrf": csrf, "base": "0", "turn_²": "x", "action": "save"}),
        ann.post(f"/p/{pid}/a/{aid}/save", data={"csrf": csrf, "base": "0", "turn_1": "x", "action": "submit",
                                                 "rating_naturalness": "--3", "rating_correctness": "3"}),
        ann.post(f"/p/{pid}/a/{aid}/save", data={"csrf": csrf, "base": "--1", "turn_1": "x"}),
        ann.post(f"/p/{pid}/a/{aid}/save", data={"csrf": csrf, "base": "1" * 23, "turn_1": "x"}),
        ann.post(f"/p/{pid}/a/{aid}/save", data={"csrf": csrf, "base": "0", "turn_99999999999999999999": "x"}),
        ann.get("/p/" + "9" * 23),
        ann.get(f"/p/{pid}/a/" + "1" * 23),
        ann.post(f"/p/{pid}/a/{'9' * 23}/save", data={"csrf": csrf, "base": "0"}),
        rev.get(f"/p/{pid}/review?all=abc"),
        rev.post(f"/p/{pid}/review/1", data={"csrf": rev_csrf, "base": "0", "choice": "1e5", "action": "accept"}),
        rev.post(f"/p/{pid}/review/1", data={"csrf": rev_csrf, "base": "x²", "action": "reject"}),
    ]
    for r in bad:
        assert r.status_code == 400, (r.request.url, r.status_code, r.text[:300])
        assert has_security_headers(r), r.request.url


def test_an_unexpected_error_still_carries_the_security_headers(tmp_path):
    from fastapi.testclient import TestClient

    from tamis.studio import create_app

    app = create_app(f"sqlite:///{tmp_path / 's.db'}")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500 and has_security_headers(r) and "a bug" not in r.text


def test_time_spent_is_measured_by_the_server(running):
    server, seeded = running
    pid = seeded.projects["A"]
    ann, csrf = login(server.url, "ann")
    aid, page = claim(ann, csrf, pid)
    opened = re.search(r'name="opened" value="([^"]+)"', page).group(1)
    time.sleep(1.2)
    forged = opened.rsplit(".", 1)[0].split(".")[0] + ".1.deadbeef"  # "opened at 1970" with a made-up signature
    r = ann.post(f"/p/{pid}/a/{aid}/save", headers=JSON, data={"csrf": csrf, "base": "0", "turn_1": "x",
                                                               "opened": forged, "action": "save"})
    assert r.status_code == 200
    r = ann.post(f"/p/{pid}/a/{aid}/save", headers=JSON, data={"csrf": csrf, "base": "1", "turn_1": "y",
                                                               "opened": opened, "opened_at": "-1e308", "action": "save"})
    assert r.status_code == 200
    database = Database(server.db_url)
    with database.read() as s:
        spent = [v.elapsed_s for v in s.scalars(select(Version).where(Version.assignment_id == aid).order_by(Version.number))]
    database.dispose()
    assert 1.0 <= spent[0] < 30  # the forged page time was ignored: measured from the claim
    assert 0 <= spent[1] < 5  # since the previous save, not since the page was opened


def test_save_size_and_rate_limits(running):
    server, seeded = running
    pid = seeded.projects["A"]
    ann, csrf = login(server.url, "ann")
    aid, page = claim(ann, csrf, pid)
    db_file = Path(server.db_url.removeprefix("sqlite:///"))
    size_before = db_file.stat().st_size + Path(f"{db_file}-wal").stat().st_size
    refused = 0
    for _ in range(30):  # the attack: 30 saves of 1 MB each
        r = ann.post(f"/p/{pid}/a/{aid}/save", headers=JSON,
                     data={"csrf": csrf, "base": "0", "turn_1": "x" * 1_000_000, "action": "save"})
        refused += r.status_code == 413 and has_security_headers(r)
    assert refused == 30
    assert db_file.stat().st_size + Path(f"{db_file}-wal").stat().st_size - size_before < 1_000_000
    r = ann.post(f"/p/{pid}/a/{aid}/save", content=b"csrf=" + b"y" * 3_000_000,
                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and has_security_headers(r)  # refused before the form is read
    base, statuses = 0, []
    for _ in range(work.SAVES_PER_MINUTE + 3):
        r = ann.post(f"/p/{pid}/a/{aid}/save", headers=JSON,
                     data={"csrf": csrf, "base": str(base), "turn_1": f"v{base}", "action": "save"})
        statuses.append(r.status_code)
        if r.status_code == 200:
            base = r.json()["version"]
    assert statuses.count(200) == work.SAVES_PER_MINUTE and statuses[-1] == 429
    bob, bob_csrf = login(server.url, "bob")  # per user: bob still saves
    bob_aid, _ = claim(bob, bob_csrf, pid)
    assert bob.post(f"/p/{pid}/a/{bob_aid}/save", headers=JSON,
                    data={"csrf": bob_csrf, "base": "0", "turn_1": "bob", "action": "save"}).status_code == 200


def test_accounts_passwords_and_names(running):
    server, seeded = running
    admin, csrf = login(server.url, "admin")
    for weak in ("12345678", "1234567890", "Password123!", "qwertyuiop"):
        r = admin.post("/admin/users", data={"csrf": csrf, "username": "dora", "password": weak})
        assert r.status_code == 400 and "password" in r.text
    r = admin.post("/admin/users", data={"csrf": csrf, "username": "ANN", "password": "another-horse-9"})
    assert r.status_code == 400 and "exists already" in r.text
    login(server.url, "ANN")  # the same account as ann
    upload = write_dialogues(Path(server.log.parent) / "up.jsonl", 2).read_bytes()
    for name, overlap in (("../../../../tmp/x", "2"), ("x" * 5000, "2"), ("a\x00b", "2"), ("evil\u202egnp", "2"),
                          ("fine", "10000000"), ("fine", "-3")):
        t0 = time.perf_counter()
        r = admin.post("/admin/projects", data={"csrf": csrf, "name": name, "overlap": overlap},
                       files={"data": ("d.jsonl", upload, "application/json")})
        assert r.status_code == 400 and time.perf_counter() - t0 < 5, (name[:20], overlap, r.status_code)
    database = Database(server.db_url)
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 2  # only the seeded ones
    database.dispose()
    mode = stat.S_IMODE(os.stat(server.db_url.removeprefix("sqlite:///")).st_mode)
    assert mode == 0o600


def test_admin_deactivates_and_resets(running):
    server, seeded = running
    admin, csrf = login(server.url, "admin")
    bob, _ = login(server.url, "bob")
    database = Database(server.db_url)
    with database.read() as s:
        bob_id = work.find_user(s, "bob").id
        ann_id = work.find_user(s, "ann").id
    database.dispose()
    assert admin.post(f"/admin/users/{bob_id}/active", data={"csrf": csrf, "active": "0"}).status_code == 303
    assert bob.get("/").status_code == 303  # logged out everywhere
    raw = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(raw.get("/login").text).group(1)
    r = raw.post("/login", data={"username": "bob", "password": PASSWORD, "csrf": token})
    assert r.status_code == 403 and "deactivated" in r.text
    assert admin.post(f"/admin/users/{ann_id}/password", data={"csrf": csrf, "password": "123456789"}).status_code == 400
    assert admin.post(f"/admin/users/{ann_id}/password",
                      data={"csrf": csrf, "password": "fresh-horse-staple"}).status_code == 303
    r = raw.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token})
    assert r.status_code == 401
    login(server.url, "ann", "fresh-horse-staple")


def test_comments_only_for_people_on_the_item(running):
    server, seeded = running
    pid = seeded.projects["A"]
    ann, csrf = login(server.url, "ann")
    aid, _ = claim(ann, csrf, pid)
    bob, bob_csrf = login(server.url, "bob")
    bob_aid, _ = claim(bob, bob_csrf, pid)  # overlap 2: the same item as ann
    cat, cat_csrf = login(server.url, "cat")
    cat_aid, _ = claim(cat, cat_csrf, pid)  # the item is full: cat gets the next one
    database = Database(server.db_url)
    with database.read() as s:
        from tamis.studio.db import Assignment
        item_id = s.get(Assignment, aid).item_id
        assert s.get(Assignment, bob_aid).item_id == item_id != s.get(Assignment, cat_aid).item_id
    database.dispose()
    r = ann.post(f"/p/{pid}/i/{item_id}/comments", data={"csrf": csrf, "body": "<b>is</b> this right?",
                                                        "back": "//evil.example"})
    assert r.status_code == 303 and r.headers["location"].startswith("/#")  # no open redirect
    assert "&lt;b&gt;is&lt;/b&gt; this right?" in bob.get(f"/p/{pid}/a/{bob_aid}").text  # everyone on the item
    assert cat.post(f"/p/{pid}/i/{item_id}/comments", data={"csrf": cat_csrf, "body": "sneaky"}).status_code == 403
    assert "is</b> this" not in cat.get(f"/p/{pid}/a/{cat_aid}").text
    assert httpx.post(f"{server.url}/p/{pid}/i/{item_id}/comments", data={"body": "x"}).status_code == 401
    assert ann.post(f"/p/{pid}/i/{item_id}/comments", data={"csrf": bob_csrf, "body": "x"}).status_code == 403
    assert ann.post(f"/p/{pid}/i/{item_id}/comments", data={"csrf": csrf, "body": "z" * 9000}).status_code == 413


def test_trusted_hosts_and_proxy_headers(tmp_path, server_factory):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seed(url, tmp_path, n=1)
    server = server_factory(url, "--proxy-headers", "--trusted-hosts", "studio.test,127.0.0.1")
    r = httpx.get(server.url + "/login", headers={"host": "evil.test"})
    assert r.status_code == 400 and has_security_headers(r)
    assert httpx.get(server.url + "/login", headers={"host": "studio.test"}).status_code == 200
    # behind the proxy, https is the proxy's: the cookies are Secure
    r = httpx.get(server.url + "/login", headers={"host": "studio.test", "x-forwarded-proto": "https"})
    assert "Secure" in r.headers["set-cookie"]
    assert "Secure" not in httpx.get(server.url + "/login").headers["set-cookie"]
