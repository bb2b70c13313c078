"""Accounts: creating users (name and password policy), finding them whatever the case, resetting passwords,
deactivating. Each function commits or raises."""

from __future__ import annotations

import re

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tamis.studio.db import LoginSession, User
from tamis.studio.errors import Invalid
from tamis.studio.security import hash_password, password_problem


def find_user(db: Session, username: str) -> User | None:
    """The account with this name, whatever its case ('ANN' is 'ann')."""
    return db.scalar(select(User).where(func.lower(User.username) == username.strip().lower())
                     .order_by(User.id).limit(1))


def add_user(db: Session, username: str, password: str, *, admin: bool = False) -> User:
    username = username.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,80}", username):
        raise Invalid("username: 1-80 letters, digits or . _ @ -")
    problem = password_problem(password, username)
    if problem:
        raise Invalid(problem)
    if find_user(db, username) is not None:
        raise Invalid(f"user {username!r} exists already (names are not case-sensitive)")
    user = User(username=username, password_hash=hash_password(password), is_admin=admin)
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Invalid(f"user {username!r} exists already (names are not case-sensitive)") from None
    return user


def reset_password(db: Session, user: User, password: str) -> None:
    """A new password (checked like a new account's); the user's sessions end. Commits."""
    problem = password_problem(password, user.username)
    if problem:
        raise Invalid(problem)
    user.password_hash = hash_password(password)
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    db.commit()


def set_active(db: Session, user: User, active: bool) -> None:
    """Deactivate (cannot log in, logged out everywhere; their work stays) or reactivate. Commits."""
    user.active = active
    if not active:
        db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    db.commit()
