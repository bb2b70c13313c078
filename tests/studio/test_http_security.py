"""Attacks against a real studio server (uvicorn subprocess): login throttling, CSRF, authorisation,
escaping, cookies, open redirects, secrets in logs."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from studio_support import CSRF_RE, PASSWORD, XSS, claim, login, seed
from tamis.studio.db import Database, LoginSession

pytestmark = pytest.mark.slow


@pytest.fixture()
def running(tmp_path, server_factory):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seeded = seed(url, tmp_path)
    return server_factory(url), seeded


def test_login_is_rate_limited_per_account_and_ip(running):
    server, _ = running
    client = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(client.get("/login").text).group(1)
    for _ in range(5):
        r = client.post("/login", data={"username": "ann", "password": "wrong-password", "csrf": token})
        assert r.status_code == 401 and "Wrong username or password" in r.text
    r = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token})
    assert r.status_code == 429  # even the right password is refused while throttled
    login(server.url, "bob")  # another account from the same address is unaffected
    r = client.post("/login", data={"username": "nobody", "password": "x", "csrf": token})
    assert r.status_code == 401 and "Wrong username or password" in r.text  # same message: names not revealed


def test_login_needs_its_csrf_cookie_and_never_redirects_off_site(running):
    server, _ = running
    r = httpx.post(server.url + "/login", data={"username": "ann", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    client = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token,
                                    "next": "//evil.example/steal"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_cookies_are_httponly_lax_and_secure_when_asked(running, tmp_path, server_factory):
    server, _ = running
    client, _ = login(server.url, "ann")
    client.get("/login")
    raw = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(raw.get("/login").text).group(1)
    r = raw.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token})
    cookie = r.headers["set-cookie"]
    assert "tamis_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http on loopback
    value = re.search(r"tamis_session=([^;]+)", cookie).group(1)
    # the database keeps only a hash of the session id
    database = Database(server.db_url)
    with database.read() as s:
        assert all(value.split(".")[0] not in row.token_hash for row in s.scalars(select(LoginSession)))
    database.dispose()
    # a tampered signature is not a session
    forged = httpx.get(server.url + "/", cookies={"tamis_session": value[:-2] + "00"})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")
    secure = server_factory(server.db_url, "--secure-cookies")
    # (a client then never sends the cookie back over plain http, which is the point)
    assert "Secure" in httpx.get(secure.url + "/login").headers["set-cookie"]


def test_every_state_change_needs_the_sessions_csrf_token(running):
    server, seeded = running
    a = seeded.projects["A"]
    ann, ann_csrf = login(server.url, "ann")
    bob, bob_csrf = login(server.url, "bob")
    aid, page = claim(ann, ann_csrf, a)
    base = re.search(r'name="base" value="(\d+)"', page).group(1)
    save = {"base": base, "turn_1": "edited", "action": "save"}
    for token in (None, "", bob_csrf, "x" * 43):
        data = save | ({"csrf": token} if token is not None else {})
        assert ann.post(f"/p/{a}/a/{aid}/save", data=data).status_code == 403
    for path in (f"/p/{a}/next", f"/p/{a}/a/{aid}/skip", f"/p/{a}/a/{aid}/flag", "/logout"):
        assert ann.post(path, data={"csrf": bob_csrf}).status_code == 403
    assert ann.post(f"/p/{a}/a/{aid}/save", data=save | {"csrf": ann_csrf}).status_code == 303


def test_authorisation_per_project_role_and_owner(running):
    server, seeded = running
    a, b = seeded.projects["A"], seeded.projects["B"]
    ann, ann_csrf = login(server.url, "ann")
    bob, bob_csrf = login(server.url, "bob")
    cat, cat_csrf = login(server.url, "cat")
    rev, rev_csrf = login(server.url, "rev")
    ann_aid, page = claim(ann, ann_csrf, a)
    assert ann.post(f"/p/{a}/a/{ann_aid}/save", data={"csrf": ann_csrf, "base": "0", "turn_1": "ann's secret draft",
                                                     "action": "save"}).status_code == 303
    cat_b, _ = claim(cat, cat_csrf, b)
    # another project: ann is not a member of B
    assert ann.get(f"/p/{b}").status_code == 403
    assert ann.post(f"/p/{b}/next", data={"csrf": ann_csrf}).status_code == 403
    assert ann.get(f"/p/{b}/a/{cat_b}").status_code == 403
    assert ann.post(f"/p/{b}/a/{cat_b}/save", data={"csrf": ann_csrf, "base": "0", "turn_1": "x"}).status_code == 403
    # the same project, another annotator's unsubmitted work: not readable, not writable, not via another path
    r = bob.get(f"/p/{a}/a/{ann_aid}")
    assert r.status_code == 403 and "secret draft" not in r.text
    assert bob.get(f"/p/{b}/a/{ann_aid}").status_code == 403
    assert bob.post(f"/p/{a}/a/{ann_aid}/save", data={"csrf": bob_csrf, "base": "1", "turn_1": "x"}).status_code == 403
    assert bob.post(f"/p/{a}/a/{ann_aid}/skip", data={"csrf": bob_csrf}).status_code == 403
    # reviewers see submitted work only; annotators cannot review; non-admins cannot administer
    r = rev.get(f"/p/{a}/review?all=1")
    assert r.status_code == 200 and "secret draft" not in r.text
    assert ann.get(f"/p/{a}/review").status_code == 403
    assert rev.get(f"/p/{a}/a/{ann_aid}").status_code == 403
    for client, token in ((ann, ann_csrf), (rev, rev_csrf)):
        assert client.get("/admin").status_code == 403
        assert client.post("/admin/users", data={"csrf": token, "username": "mallory",
                                                 "password": "12345678", "is_admin": "on"}).status_code == 403
    # nobody logged in: pages redirect to the login, posts are refused
    anon = httpx.Client(base_url=server.url)
    assert anon.get(f"/p/{a}").status_code == 303
    assert anon.post(f"/p/{a}/a/{ann_aid}/save", data={"base": "1", "turn_1": "x"}).status_code == 401


def test_data_text_is_escaped_and_scripts_are_forbidden(running):
    server, seeded = running
    ann, csrf = login(server.url, "ann")
    aid, page = claim(ann, csrf, seeded.projects["A"])  # item d0 carries script-like text
    assert "<script>alert" not in page and "onerror=\"alert" not in page
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page
    r = ann.post(f"/p/{seeded.projects['A']}/a/{aid}/save",
                 data={"csrf": csrf, "base": "0", "turn_1": XSS + "</textarea><script>alert(2)</script>",
                       "action": "save"}, follow_redirects=True)
    assert "<script>alert(2)" not in r.text and "</textarea><script>" not in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"


def test_no_secrets_in_logs(running):
    server, seeded = running
    raw = httpx.Client(base_url=server.url)
    token = CSRF_RE.search(raw.get("/login").text).group(1)
    raw.post("/login", data={"username": "ann", "password": "wrong-guess-123", "csrf": token})
    r = raw.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": token})
    session = re.search(r"tamis_session=([^;]+)", r.headers["set-cookie"]).group(1)
    client, csrf = login(server.url, "bob")
    claim(client, csrf, seeded.projects["A"])
    log = server.output()
    assert "POST /login" in log  # the access log is on ...
    for secret in (PASSWORD, "wrong-guess-123", session, session.split(".")[0], token, csrf):
        assert secret not in log  # ... and carries none of these
