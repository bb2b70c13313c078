"""Accounts and sessions: argon2 password hashes, signed server-side sessions, CSRF tokens, login throttling,
the password policy, and server-signed page-open times (so time spent is measured by the server).

The cookie holds ``token.signature``: a random token signed with the server's secret (kept in the
database, so every worker of a PostgreSQL deployment agrees). Only a SHA-256 of the token is stored,
so a leaked database does not hand out live sessions. Each session has its own CSRF token, which
every state-changing form must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.studio.db import LoginFailure, LoginSession, Setting, User, utcnow

SESSION_COOKIE = "tamis_session"
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 5  # per (account, client)
CLIENT_MAX_FAILURES = 20  # per client, whatever the account names: a flood of guesses stops here
PASSWORD_MIN_LENGTH = 10
HASH_NICENESS = 10


def _lower_priority() -> None:
    """Run this thread (and the lanes libargon2 starts from it, which inherit it) at a lower CPU priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: the single-thread bound still holds
        pass


# argon2 is deliberately slow (tens of ms of CPU, 64 MiB, 4 lanes): every hash runs in this one thread, at a
# lower priority, so a flood of logins queues here and never takes CPU from the threads and the event loop
# that serve everyone's saves
_hash_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tamis-argon2", initializer=_lower_priority)
_hasher = PasswordHasher()
# a fixed hash to verify against when the user does not exist: same work, so timing does not reveal names
_DUMMY_HASH = _hasher.hash("tamis-no-such-user")


def hash_password(password: str) -> str:
    return _hash_thread.submit(_hasher.hash, password).result()


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(user: User | None, password: str) -> bool:
    """Verify (blocks until the argon2 thread has done it: call from a worker thread); unknown users cost
    the same work."""
    ok = _hash_thread.submit(_verify, user.password_hash if user else _DUMMY_HASH, password).result()
    return ok and user is not None


_COMMON_PASSWORDS: frozenset[str] | None = None
_COMMON_STEMS = ("password", "passwort", "motdepasse", "qwerty", "azerty", "qwertz", "letmein", "welcome",
                 "iloveyou", "admin", "monkey", "dragon", "football", "baseball", "sunshine", "princess",
                 "starwars", "superman", "trustno", "master", "shadow", "secret", "changeme", "default",
                 "abc", "asdf", "zxcv", "login", "tamis", "studio", "annotator", "reviewer")


def common_passwords() -> frozenset[str]:
    """The bundled list of leaked/common passwords (lower case)."""
    global _COMMON_PASSWORDS
    if _COMMON_PASSWORDS is None:
        path = Path(__file__).with_name("common_passwords.txt")
        _COMMON_PASSWORDS = frozenset(line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines()
                                      if line.strip() and not line.startswith("#"))
    return _COMMON_PASSWORDS


def _is_run(s: str) -> bool:
    """'1234567890', 'abcdefghij', '9876543210': characters that step by one."""
    steps = {ord(b) - ord(a) for a, b in zip(s, s[1:])}
    return len(s) > 2 and steps in ({1}, {-1})


def password_problem(password: str, username: str = "") -> str | None:
    """Why this password is too weak (None when acceptable): too short, too few distinct characters, the
    username, a common password, or a common word padded with digits and symbols ('Password123!')."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"password: at least {PASSWORD_MIN_LENGTH} characters"
    if len(password) > 1000:
        return "password: at most 1000 characters"
    lowered = password.lower()
    if len(set(lowered)) < 4:
        return "password: too few different characters"
    if username and username.lower() in lowered:
        return "password: must not contain the username"
    stem = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", lowered)
    if (lowered in common_passwords() or stem in common_passwords() or _is_run(lowered)
            or any(stem == w or stem == w + w for w in _COMMON_STEMS) or (stem == "" and len(set(lowered)) < 8)):
        return "password: too common (it appears in lists of leaked passwords); choose a longer phrase"
    return None


def server_secret(db: Session) -> bytes:
    """The signing secret: created once, stored in the database (never logged)."""
    row = db.get(Setting, "session_secret")
    if row is None:
        db.add(Setting(key="session_secret", value=secrets.token_hex(32)))
        try:
            db.commit()
        except IntegrityError:  # another worker created it first
            db.rollback()
        row = db.get(Setting, "session_secret")
    assert row is not None
    return bytes.fromhex(row.value)


def _sign(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(db: Session, secret: bytes, user: User) -> str:
    """A new session for ``user``; returns the cookie value. Commits."""
    token = secrets.token_urlsafe(32)
    db.add(LoginSession(token_hash=_token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                        expires_at=utcnow() + SESSION_LIFETIME))
    db.commit()
    return f"{token}.{_sign(secret, token)}"


# built once: building a statement costs more CPU than running it (every request looks its session up)
_SESSION_AND_USER = (select(LoginSession, User).join(User, User.id == LoginSession.user_id)
                     .where(LoginSession.token_hash == bindparam("token_hash")))


def load_session(db: Session, secret: bytes, cookie: str | None) -> tuple[LoginSession, User] | None:
    """The live session and its user for a cookie value, or None (bad signature, unknown, expired)."""
    if not cookie or "." not in cookie:
        return None
    token, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature, _sign(secret, token)):
        return None
    row = db.execute(_SESSION_AND_USER, {"token_hash": _token_hash(token)}).first()
    if row is None or row[0].expires_at < utcnow() or not row[1].active:
        return None
    return row[0], row[1]


def end_session(db: Session, secret: bytes, cookie: str | None) -> None:
    found = load_session(db, secret, cookie)
    if found:
        db.execute(delete(LoginSession).where(LoginSession.id == found[0].id))
        db.commit()


def csrf_ok(session: LoginSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf_token, submitted or "")


def _throttle_key(username: str, ip: str) -> str:
    return hashlib.sha256(f"{username.lower()}\x00{ip}".encode()).hexdigest()


def _client_key(ip: str) -> str:
    return hashlib.sha256(f"\x01client\x00{ip}".encode()).hexdigest()


_FAILURES = (select(func.count()).select_from(LoginFailure)
             .where(LoginFailure.key == bindparam("key"), LoginFailure.at >= bindparam("since")))


def login_blocked(db: Session, username: str, ip: str) -> bool:
    """Too many recent failures for this account from this client, or from this client at all."""
    since = utcnow() - LOGIN_WINDOW

    def failures(key: str) -> int:
        return db.scalar(_FAILURES, {"key": key, "since": since}) or 0

    return failures(_client_key(ip)) >= CLIENT_MAX_FAILURES or failures(_throttle_key(username, ip)) >= LOGIN_MAX_FAILURES


def record_login_failure(db: Session, username: str, ip: str) -> None:
    db.add(LoginFailure(key=_throttle_key(username, ip)))
    db.add(LoginFailure(key=_client_key(ip)))
    db.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - LOGIN_WINDOW))
    db.commit()


def clear_login_failures(db: Session, username: str, ip: str) -> None:
    """After a good login: that account's failures from this client (not the client's total)."""
    db.execute(delete(LoginFailure).where(LoginFailure.key == _throttle_key(username, ip)))
    db.commit()


def end_user_sessions(db: Session, user_id: int) -> None:
    """Log a user out everywhere (password reset, deactivation). The caller commits."""
    db.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


# -- page-open times: signed by the server, so a client cannot claim hours of work ---------------------------

def opened_token(secret: bytes, assignment_id: int, now: float | None = None) -> str:
    stamp = f"{assignment_id}.{int((now if now is not None else time.time()) * 1000)}"
    return f"{stamp}.{_sign(secret, 'opened:' + stamp)[:32]}"


def opened_at(secret: bytes, assignment_id: int, token: str) -> float | None:
    """When the server handed out this assignment's page (epoch seconds), or None if the token is not ours."""
    stamp, _, signature = token.rpartition(".")
    aid, _, millis = stamp.partition(".")
    if not (aid == str(assignment_id) and millis.isascii() and millis.isdigit() and len(millis) < 16):
        return None
    if not hmac.compare_digest(signature, _sign(secret, "opened:" + stamp)[:32]):
        return None
    return int(millis) / 1000
