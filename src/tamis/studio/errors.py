"""The studio's errors: what a database operation raises instead of committing."""

from __future__ import annotations

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
