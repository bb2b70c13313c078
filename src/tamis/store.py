"""The workspace: run folders, converted models, and the call cache that makes runs resumable.

Every model call's result is stored in SQLite (WAL, one transaction per committed chunk) keyed by a
hash of the model identity, the call, its inputs and parameters. A run killed at any point and
started again finds every committed result and recomputes only the rest; failures are never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_WORKSPACE = "tamis-workspace"


def workspace_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: the argument, else $TAMIS_WORKSPACE, else ./tamis-workspace."""
    return Path(path or os.environ.get("TAMIS_WORKSPACE") or DEFAULT_WORKSPACE)


class Workspace:
    """Folders under one root: ``cache/`` (call cache), ``models/`` (converted weights), ``runs/``."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = workspace_root(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
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
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_dir(self, name: str) -> Path:
        """A deterministic run folder, so that re-running the same command resumes in place."""
        path = self.root / "runs" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def cache_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """A persistent key -> JSON value store, safe against kill -9 (SQLite WAL, atomic commits)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "created REAL DEFAULT (unixepoch('subsec')))"
        )
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
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO calls (key, value) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
