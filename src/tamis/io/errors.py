"""Errors and problem reports of the data layer.

A *Problem* is one bad row: it names the file, row and field and says what to do, so a user can fix
the data instead of guessing. A *DataError* is a whole-file failure (nothing usable could be read).
"""

from __future__ import annotations

from dataclasses import dataclass

from tamis.errors import DataError


@dataclass
class Problem:
    """One rejected row: where it is, what is wrong with it, and how to fix it."""

    file: str
    row: int | None
    field: str | None
    message: str
    hint: str
    # machine-readable category (e.g. "malformed_json", "role_order"): lets reports group problems
    kind: str = "invalid"

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        field = f" {self.field}:" if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{field} {self.message}{hint}"


class RowError(ValueError):
    """A row that cannot become an Example; carries the field at fault and a hint."""

    def __init__(self, field: str | None, message: str, hint: str = "", kind: str = "invalid") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.hint = hint
        self.kind = kind


class ConversionError(DataError):
    """An example cannot be expressed in the requested format (e.g. multi-turn as alpaca)."""
