"""The studio's errors: what a database operation raises instead of committing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Conflict(Exception):
    """A save based on an outdated version (or a lost race for the same version number)."""

    def __init__(self, message: str, latest: Any = None) -> None:
        super().__init__(message)
        self.latest = latest


class Invalid(ValueError):
    """The submitted form does not make sense (wrong turn count, rating out of range, ...)."""


class TooMuch(Exception):
    """A per-user size or rate limit: ``status`` 413 (one request too large) or 429 (too many, too fast)."""

    def __init__(self, message: str, status: int = 429) -> None:
        super().__init__(message)
        self.status = status


def commit_or_conflict(db: Any, what: str, latest: Callable[[], Any]) -> None:
    """Commit; when a unique number was taken by a concurrent writer, roll back and raise Conflict with
    the newest record (``latest()``), so the person sees what arrived first."""
    from sqlalchemy.exc import IntegrityError

    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"Another {what} of this item arrived at the same moment; reload to see it.",
                       latest()) from None
