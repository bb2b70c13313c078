"""Accounts and sessions: argon2 password hashes, signed server-side sessions, CSRF tokens, login throttling.

The cookie holds ``token.signature``: a random token signed with the server's secret (kept in the
database, so every worker of a PostgreSQL deployment agrees). Only a SHA-256 of the token is stored,
so a leaked database does not hand out live sessions. Each session has its own CSRF token, which
every state-changing form must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.studio.db import LoginFailure, LoginSession, Setting, User, utcnow

SESSION_COOKIE = "tamis_session"
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 5
_hasher = PasswordHasher()
# a fixed hash to verify against when the user does not exist: same work, so timing does not reveal names
_DUMMY_HASH = _hasher.hash("tamis-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


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


def load_session(db: Session, secret: bytes, cookie: str | None) -> tuple[LoginSession, User] | None:
    """The live session and its user for a cookie value, or None (bad signature, unknown, expired)."""
    if not cookie or "." not in cookie:
        return None
    token, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature, _sign(secret, token)):
        return None
    row = db.execute(select(LoginSession, User).join(User, User.id == LoginSession.user_id)
                     .where(LoginSession.token_hash == _token_hash(token))).first()
    if row is None or row[0].expires_at < utcnow():
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


def login_blocked(db: Session, username: str, ip: str) -> bool:
    """Too many recent failures for this account from this address."""
    since = utcnow() - LOGIN_WINDOW
    n = db.scalar(select(func.count()).select_from(LoginFailure)
                  .where(LoginFailure.key == _throttle_key(username, ip), LoginFailure.at >= since))
    return (n or 0) >= LOGIN_MAX_FAILURES


def record_login_failure(db: Session, username: str, ip: str) -> None:
    db.add(LoginFailure(key=_throttle_key(username, ip)))
    db.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - LOGIN_WINDOW))
    db.commit()


def clear_login_failures(db: Session, username: str, ip: str) -> None:
    db.execute(delete(LoginFailure).where(LoginFailure.key == _throttle_key(username, ip)))
    db.commit()
