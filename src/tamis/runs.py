"""The one job skeleton every command uses: a run folder with its settings, manifest and completion mark.

``with Run(command, settings, out, inputs=[...]) as run:`` creates the folder (a clear error when it
cannot be written), saves ``settings.json`` and refuses to reuse a folder made by another command or
with other settings (naming each setting that differs; ``overwrite=True`` replaces it). When the same
settings and unchanged inputs already completed there, ``run.complete`` is true and the job can
return the stored result instead of recomputing. ``run.finish()`` writes ``manifest.json`` and the
completion mark, last, so a killed run is never mistaken for a finished one (kronfluence saves its
arguments beside its factors the same way; DataTrove marks each finished task).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tamis.errors import OutputConflict, WorkspaceError
from tamis.manifest import Manifest
from tamis.store import atomic_write_json, atomic_write_text

SETTINGS_FILE = "settings.json"
COMPLETE_FILE = ".complete"


PACKAGE_DIR = str(Path(__file__).resolve().parent)


def with_data_paths(job: Any, workspace: Any, *fields: str) -> Any:
    """The job with each data field that holds data in memory (a ``datasets`` object, a DataFrame, a list
    of dicts) replaced by the path it is written to in ``WORKSPACE/inputs`` (``tamis.io.convert.data_path``:
    once, named by its content), so every job takes what ``read_dataset`` takes and its run folder still
    records a file to fingerprint and resume from. Paths are left as they are."""
    from dataclasses import replace

    from tamis.io.convert import data_path, is_path

    changes = {}
    for name in fields:
        value = getattr(job, name)
        if value is None or is_path(value):
            continue
        if workspace is None:
            from tamis.store import Workspace

            workspace = Workspace()
        changes[name] = data_path(value, workspace.root / "inputs", name)
    return replace(job, **changes) if changes else job


def _normalised(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON would give them back (tuples -> lists, paths -> strings); files shipped inside the
    package are recorded as ``<tamis>/...``, so a workspace reused from another checkout matches."""
    plain = json.loads(json.dumps(dict(settings), default=str, sort_keys=True))
    return _package_relative(plain)


def _package_relative(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(PACKAGE_DIR):
        return "<tamis>" + value[len(PACKAGE_DIR):]
    if isinstance(value, dict):
        return {k: _package_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_package_relative(v) for v in value]
    return value


def input_fingerprint(paths: Sequence[str | Path]) -> list[list[Any]]:
    """(path, size, mtime) of each input file or folder: a changed input means recompute, not reuse."""
    prints = []
    for p in paths:
        path = Path(p)
        try:
            if path.is_dir():
                stats = [f.stat() for f in sorted(path.rglob("*")) if f.is_file()]
                prints.append([str(path), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)])
            else:
                st = path.stat()
                prints.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            prints.append([str(path), None, None])
    return prints


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two settings mappings (nested keys dotted)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += settings_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} then, {b!r} now")
    return diffs


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents); a read-only or blocked location is a WorkspaceError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WorkspaceError(f"{path}: exists and is not a folder; choose another output folder") from None
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkspaceError(f"{path}: the output folder is not writable; choose another with --out")
    return path


class Run:
    """A command's output folder (see the module docstring)."""

    def __init__(self, command: str, settings: Mapping[str, Any], out: str | Path, *,
                 inputs: Sequence[str | Path] = (), overwrite: bool = False):
        from tamis.settings import COLUMN_MAP

        self.command = command
        column_map = COLUMN_MAP.get()  # --columns changes what every read sees: another mapping, another run
        self.settings = _normalised(dict(settings) | ({"columns": column_map} if column_map else {}))
        self.out = Path(out)
        self.inputs = list(inputs)
        self.overwrite = overwrite
        self.complete = False
        self.replaced = False  # true when ``overwrite`` replaced a run made with other settings
        self.manifest = Manifest(command, self.settings)

    def __enter__(self) -> "Run":
        ensure_writable_dir(self.out)
        saved_path = self.out / SETTINGS_FILE
        if saved_path.is_file():
            saved = json.loads(saved_path.read_text(encoding="utf-8"))
            if saved.get("command") != self.command or saved.get("settings") != self.settings:
                if not self.overwrite:
                    what = (f"a `tamis {saved.get('command')}` run" if saved.get("command") != self.command
                            else "a run with other settings: " + "; ".join(settings_diff(saved.get("settings", {}),
                                                                                        self.settings)))
                    raise OutputConflict(f"{self.out} already holds {what}. Choose another --out, or pass "
                                         "--overwrite to replace it")
                (self.out / COMPLETE_FILE).unlink(missing_ok=True)
                self.replaced = True
        digest = self._digest()
        marker = self.out / COMPLETE_FILE
        self.complete = marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest
        if not self.complete:
            marker.unlink(missing_ok=True)
        atomic_write_json(saved_path, {"command": self.command, "settings": self.settings})
        return self

    def _digest(self) -> str:
        text = json.dumps([self.command, self.settings, input_fingerprint(self.inputs)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def path(self, name: str) -> Path:
        return self.out / name

    def stored_manifest(self) -> dict[str, Any]:
        """The manifest of the completed run in this folder."""
        return json.loads((self.out / "manifest.json").read_text(encoding="utf-8"))

    def finish(self) -> dict[str, Any]:
        """Write the manifest, then the completion mark (last: a killed run stays unfinished)."""
        self.manifest.data["settings_file"] = SETTINGS_FILE
        self.manifest.write(self.out / "manifest.json")
        atomic_write_text(self.out / COMPLETE_FILE, self._digest() + "\n")
        return self.manifest.data
