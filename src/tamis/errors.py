"""The one exception hierarchy of tamis.

Every *expected* failure (bad data, a bad option value, an unusable model, an output folder made
with other settings) derives from ``TamisError``: the CLI turns it into one line on stderr and exit
code 2, and library users can catch one class. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TamisError(Exception):
    """An expected failure whose message says what is wrong and what to do."""


class DataError(TamisError, ValueError):
    """A whole input cannot be used: missing, unknown format, or no usable row."""


class ConfigError(TamisError, ValueError):
    """A setting, option value or recipe key is invalid."""


class SignalError(ConfigError):
    """A signal name that no run and no registry entry knows, or a signal that cannot be used here."""


class PolicyError(ConfigError):
    """A curation policy that cannot be applied (e.g. it would keep nothing, or matches no id)."""


class OutputConflict(TamisError):
    """An output folder already holds a run made with different settings."""


class WorkspaceError(TamisError, OSError):
    """The workspace or an output folder cannot be written (read-only, full, not a folder)."""


class ModelError(TamisError, RuntimeError):
    """A model could not be loaded or called; the message says what to do."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """'; did you mean X?' for the closest known choice, or '' when nothing is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def unknown(kind: str, value: str, choices: Iterable[str]) -> str:
    """The message for an unknown name: what was given, the closest match, and every known name."""
    known = sorted(set(choices))
    return f"unknown {kind} {value!r}{did_you_mean(value, known)} (known: {', '.join(known)})"
