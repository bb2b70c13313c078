"""The manifest written beside every output: config, versions, model identities, timings, counts."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tamis.store import atomic_write_json

TRACKED_PACKAGES = (
    "tamis", "torch", "transformers", "tokenizers", "sentence-transformers", "datasets", "pyarrow",
    "numpy", "llama-cpp-python", "httpx", "gguf",
)


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class Manifest:
    """Collects what a command did; ``write`` saves it as JSON (atomically) next to the output."""

    def __init__(self, command: str, config: dict[str, Any]):
        self.data: dict[str, Any] = {
            "command": command,
            "config": config,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "models": {},
            "counts": {},
            "timings_s": {},
            "outputs": {},
        }
        self._t0 = time.perf_counter()

    def model(self, role: str, identity: str) -> None:
        self.data["models"][role] = identity

    def count(self, **counts: Any) -> None:
        self.data["counts"].update(counts)

    def output(self, name: str, path: str | Path) -> None:
        self.data["outputs"][name] = str(path)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.data["timings_s"][name] = round(time.perf_counter() - start, 3)

    def write(self, path: str | Path) -> Path:
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 3)
        self.data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        path = Path(path)
        atomic_write_json(path, self.data, default=str)
        return path
