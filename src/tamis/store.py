"""The workspace: run folders, converted models, and the call cache that makes runs resumable.

Every model call's result is stored in SQLite (WAL, one transaction per committed chunk) keyed by a
hash of the model identity, the call, its inputs and parameters. A run killed at any point and
started again finds every committed result and recomputes only the rest; failures are never stored.

Writing helpers live here too, so that every output obeys two rules: a folder that cannot be
written is a :class:`~tamis.errors.WorkspaceError` naming it (not a traceback), and JSON written
to a file is valid JSON (NaN and infinities become ``null``; Python's ``json`` would write the
invalid tokens ``NaN``/``Infinity`` that other readers reject).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tamis.errors import WorkspaceError

DEFAULT_WORKSPACE = "tamis-workspace"


def workspace_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: the argument, else $TAMIS_WORKSPACE, else ./tamis-workspace."""
    return Path(path or os.environ.get("TAMIS_WORKSPACE") or DEFAULT_WORKSPACE)


WRITE_HINTS = {
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.EROFS: "it is on a read-only file system",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way of a folder",
    errno.EISDIR: "it is a folder, not a file",
}


def cannot_write(path: str | os.PathLike[str], err: OSError | sqlite3.Error) -> WorkspaceError:
    """The WorkspaceError for an OSError met while writing under ``path``: which path, and why."""
    why = WRITE_HINTS.get(getattr(err, "errno", None) or 0) or str(getattr(err, "strerror", None) or err)
    return WorkspaceError(f"cannot write {path}: {why}; choose a writable folder (e.g. --workspace DIR or "
                          "another output path) or fix its permissions")


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError raised while writing under ``path`` into a WorkspaceError naming it.

    FileNotFoundError is translated too: when writing, it means a folder vanished or cannot exist."""
    try:
        yield
    except WorkspaceError:
        raise
    except OSError as err:
        raise cannot_write(getattr(err, "filename", None) or path, err) from err


def writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create the folder (and parents) if needed; a WorkspaceError if that is impossible."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise cannot_write(path, PermissionError(errno.EACCES, "permission denied", str(path)))
    return path


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/infinite float replaced by None (valid JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(value: Any, *, indent: int | None = None, default: Any = None, sort_keys: bool = False) -> str:
    """JSON text that any reader accepts: non-finite floats are written as ``null``.

    The fast path dumps with ``allow_nan=False``; only when that fails is the value walked and
    NaN/inf mapped to None. Objects ``json`` cannot encode go through ``default`` (e.g. ``str``)."""
    kwargs: dict[str, Any] = {"ensure_ascii": False, "indent": indent, "default": default, "sort_keys": sort_keys,
                              "allow_nan": False}
    try:
        return json.dumps(value, **kwargs)
    except ValueError as err:
        if "Out of range float" not in str(err):
            raise
        if default is not None:  # non-finite floats may hide inside what ``default`` converts
            value = json.loads(json.dumps(value, ensure_ascii=False, default=default))
        return json.dumps(json_safe(value), **kwargs)


def to_jsonl(rows: Iterable[Any], *, default: Any = None) -> str:
    """One ``to_json`` line per row."""
    return "".join(to_json(row, default=default) + "\n" for row in rows)


class Workspace:
    """Folders under one root: ``cache/`` (call cache), ``models/`` (converted weights), ``runs/``.

    A root (or cache, models, runs folder) that cannot be written raises WorkspaceError naming it."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = writable_dir(workspace_root(root).resolve())
        self._cache: CallCache | None = None

    @property
    def cache(self) -> "CallCache":
        if self._cache is None:
            self._cache = CallCache(self.root / "cache" / "calls.sqlite")
        return self._cache

    @property
    def models_dir(self) -> Path:
        """Converted model weights; $TAMIS_MODELS shares one folder between workspaces."""
        path = Path(os.environ.get("TAMIS_MODELS") or self.root / "models")
        # a shared, read-only folder of converted models is fine for loading them
        return path if path.is_dir() else writable_dir(path)

    def run_dir(self, name: str) -> Path:
        """A deterministic run folder, so that re-running the same command resumes in place."""
        return writable_dir(self.root / "runs" / name)


def cache_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """A persistent key -> JSON value store, safe against kill -9 (SQLite WAL, atomic commits).

    Values are stored with Python's own JSON dialect (NaN and infinities kept): the cache is read
    back only by tamis, and a -inf log-probability must come back as -inf, not as null."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        writable_dir(self.path.parent)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "created REAL DEFAULT (unixepoch('subsec')))"
            )
        except sqlite3.OperationalError as err:  # "unable to open database file", "readonly database"
            raise cannot_write(self.path, err) from err
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._conn.execute(
                    f"SELECT key, value FROM calls WHERE key IN ({marks})", chunk
                ):
                    found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        """Store all items in one transaction: after a crash either all are there or none."""
        rows = [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise cannot_write(self.path, err) from err
            try:
                self._conn.executemany("INSERT OR REPLACE INTO calls (key, value) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as err:
                self._conn.execute("ROLLBACK")
                if "readonly" in str(err) or "disk" in str(err) or "unable to open" in str(err):
                    raise cannot_write(self.path, err) from err
                raise
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM calls")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path = Path(path)
    writable_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with writing(path):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2, default: Any = None) -> None:
    """``value`` as valid JSON (see ``to_json``), written atomically."""
    atomic_write_text(path, to_json(value, indent=indent, default=default) + "\n")


def atomic_write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any], *, default: Any = None) -> None:
    """One valid JSON line per row (see ``to_json``), written atomically."""
    atomic_write_text(path, to_jsonl(rows, default=default))
