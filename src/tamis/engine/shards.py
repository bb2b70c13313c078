"""Block outputs as Parquet shards with completion markers, on a local path or any fsspec URL.

``ShardStore(url)`` holds one Parquet file per finished block (``NAME.parquet``) and, written after
it, an empty marker (``NAME.done``). A block counts as finished only when its marker exists, so a
shard half-written by a killed worker or driver is recomputed, on object stores too (where a rename
is not atomic). Local paths are written to a temporary name and renamed; ``s3://``, ``gs://`` and
other fsspec URLs work the same way when their fsspec implementation is installed.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tamis.errors import WorkspaceError

SHARD_SUFFIX = ".parquet"
DONE_SUFFIX = ".done"


def _split(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a local path or a URL."""
    import fsspec

    if "://" not in url:
        url = str(Path(url).resolve())
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


class ShardStore:
    """Finished blocks of one stage (see the module docstring). Picklable: workers write to it too."""

    def __init__(self, url: str | os.PathLike[str]):
        self.url = str(url)
        self._fs: Any = None
        self._root = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._root = _split(self.url)
            try:
                self._fs.makedirs(self._root, exist_ok=True)
            except OSError as exc:
                raise WorkspaceError(f"{self.url}: cannot create the shard folder ({exc})") from None
        return self._fs

    def _path(self, name: str, suffix: str) -> str:
        self.fs  # noqa: B018 (resolves the root)
        return f"{self._root.rstrip('/')}/{name}{suffix}"

    def done(self) -> set[str]:
        """Names of the blocks whose shard is complete."""
        fs = self.fs
        try:
            names = fs.ls(self._root, detail=False)
        except FileNotFoundError:
            return set()
        return {os.path.basename(n)[: -len(DONE_SUFFIX)] for n in names if str(n).endswith(DONE_SUFFIX)}

    def names(self) -> set[str]:
        """Names of every block with a shard or a marker, finished or not."""
        out = set()
        for n in self.fs.ls(self._root, detail=False):
            base = os.path.basename(str(n))
            for suffix in (SHARD_SUFFIX, DONE_SUFFIX):
                if base.endswith(suffix) and not base.startswith("."):
                    out.add(base[: -len(suffix)])
        return out

    def write(self, name: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> None:
        """The block's rows as a shard, then its marker (last)."""
        table = pa.Table.from_pylist(rows, schema=schema)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        fs, final = self.fs, self._path(name, SHARD_SUFFIX)
        from fsspec.implementations.local import LocalFileSystem

        if isinstance(fs, LocalFileSystem):  # write aside, then rename: readers never see half a file
            tmp = self._path(f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}", SHARD_SUFFIX)
            with fs.open(tmp, "wb") as fh:
                fh.write(buf.getvalue())
            fs.mv(tmp, final)
        else:
            with fs.open(final, "wb") as fh:
                fh.write(buf.getvalue())
        with fs.open(self._path(name, DONE_SUFFIX), "wb") as fh:
            fh.write(b"")

    def read(self, name: str) -> list[dict[str, Any]]:
        with self.fs.open(self._path(name, SHARD_SUFFIX), "rb") as fh:
            return pq.read_table(fh).to_pylist()

    def remove(self, name: str) -> None:
        for suffix in (DONE_SUFFIX, SHARD_SUFFIX):
            path = self._path(name, suffix)
            if self.fs.exists(path):
                self.fs.rm(path)
