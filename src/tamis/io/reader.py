"""read_dataset / write_dataset: the front door of the data layer.

Reading never silently drops a row: each rejected row becomes a Problem and (when asked) a line of
the quarantine file holding the original row, so the user can fix it and read it again. A file that
cannot be used at all raises DataError; its rejected rows are still written to the quarantine first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis.io.convert import object_rows, to_hf, to_pandas
from tamis.io.errors import DataError, Problem, RowError
from tamis.io.files import RawRow, TruncatedFile, iter_raw_rows
from tamis.io.writers import write_rows
from tamis.io.formats import FORMATS, detect_format, from_row, to_row
from tamis.records import Example
from tamis.store import to_json, writable_dir, writing

DETECT_ROWS = 200


@dataclass
class ReadResult:
    """What a read produced: the kept examples and an account of every rejected row."""

    examples: list[Example]
    format: str
    source: Path | str  # the file or folder read, or a label for in-memory data ("datasets.Dataset[train]")
    n_read: int
    n_rejected: int
    problems: list[Problem] = field(default_factory=list)
    quarantine_path: Path | None = None
    # the rejected rows as found in the file, in the order of ``problems`` (for write_quarantine)
    rejected: list[RawRow] = field(default_factory=list, repr=False)

    @property
    def n_kept(self) -> int:
        return len(self.examples)

    def summary(self) -> str:
        line = f"read {self.n_read}, kept {self.n_kept}, rejected {self.n_rejected}"
        if self.n_rejected and self.quarantine_path is not None:
            line += f" (quarantine: {self.quarantine_path})"
        return line

    def to_hf(self, format: str | None = None) -> Any:
        """The kept examples as a ``datasets.Dataset`` in ``format`` (default: the format read)."""
        return to_hf(self.examples, format or self.format)

    def to_pandas(self, format: str | None = None) -> Any:
        """The kept examples as a pandas DataFrame in ``format`` (default: the format read)."""
        return to_pandas(self.examples, format or self.format)

    def write_quarantine(self, dest: str | Path) -> Path:
        """Write the rejected rows (original row, file, row number, field, reason, hint) as JSONL."""
        path = _write_quarantine(dest, self.problems, self.rejected)
        assert path is not None
        self.quarantine_path = path
        return path


def read_dataset(
    path: Any,
    *,
    format: str | None = None,
    quarantine: str | Path | None = None,
    id_field: str = "id",
    split: str | None = None,
    limit: int | None = None,
    columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ReadResult:
    """Read a dataset into Examples, reporting and quarantining bad rows.

    `path` is a file or folder, or data already in memory: a ``datasets.Dataset``, ``DatasetDict``
    (``split``, default "train"), ``IterableDataset``, a pandas DataFrame or a list of dicts. Every row
    goes through the same validation and quarantine; in-memory rows are numbered from 1.
    `columns` renames columns before conversion ({"sentence": "text", "ref_A": "target"}) and
    `defaults` fills columns a row lacks ({"source_lang": "de"}), so near-miss layouts need no copy.
    """
    if columns is None:  # the CLI's --columns, when given, applies to every read of the command
        from tamis.settings import COLUMN_MAP

        columns = COLUMN_MAP.get()
    if isinstance(path, (str, os.PathLike)):
        src: Path | str = Path(path)
        name = str(src)
        if not src.exists():
            raise DataError(f"{name}: no such file or folder; check the path")
        rows_of = iter_raw_rows(src, split=split)
    else:
        name, rows_of = object_rows(path, split)
        src = name
    if format is not None and format not in FORMATS:
        raise DataError(f"{name}: unknown format {format!r}; supported formats: {', '.join(FORMATS)}")
    raws: list[RawRow] = []
    truncated: TruncatedFile | None = None
    try:
        for raw in rows_of:
            if limit is not None and len(raws) >= limit:
                break
            if raw.data is not None and (columns or defaults):
                raw.data = _remap(raw.data, columns or {}, defaults or {})
            raws.append(raw)
    except TruncatedFile as err:
        truncated = err
    parsed = [r.data for r in raws if r.data is not None]
    if not raws:
        raise truncated or DataError(f"{name}: the file holds no rows; check that it is the right file")
    if format is None:
        if not parsed:
            qpath = _write_quarantine(quarantine, _problems_only(raws, name), [r for r in raws if r.error])
            raise DataError(f"{name}: no row could be parsed{_kept_in(qpath)}; first problems:\n"
                            + _first(_problems_only(raws, name)))
        try:
            format = detect_format(parsed[:DETECT_ROWS])
        except DataError as e:
            raise DataError(f"{name}: {e}") from None

    examples: list[Example] = []
    problems: list[Problem] = []
    rejected: list[RawRow] = []
    first_seen: dict[str, int | None] = {}
    for raw in raws:
        error = raw.error
        ex = None
        if error is None:
            try:
                ex = from_row(raw.data or {}, format, id_field=id_field)
            except RowError as e:
                error = e
        if ex is not None and ex.id in first_seen:
            if raw.data and raw.data.get(id_field) is not None:
                error = RowError(id_field, f"duplicate id {ex.id!r}",
                                 f"row {first_seen[ex.id]} has it first; give each row a unique id", "duplicate_id")
            else:  # no id column: the id is a content hash, so this is an exact repeat
                error = RowError("id", f"exact duplicate of row {first_seen[ex.id]} (content id {ex.id})",
                                 f"row {first_seen[ex.id]} has the same content; drop the repeat, or give rows ids "
                                 "if it is intended", "duplicate_id")
        if error is not None:
            problems.append(Problem(name, raw.row, error.field, error.message, error.hint, error.kind))
            rejected.append(raw)
            continue
        assert ex is not None
        first_seen[ex.id] = raw.row
        examples.append(ex)

    qpath = _write_quarantine(quarantine, problems, rejected)
    if not examples and truncated is not None:
        raise TruncatedFile(f"{truncated}; no usable row before it{_kept_in(qpath)}", truncated.rows_before)
    if not examples:
        raise DataError(f"{name}: no usable row ({len(raws)} read as {format}, all rejected{_kept_in(qpath)}); "
                        "first problems:\n" + _first(problems))
    result = ReadResult(examples, format, src, len(raws), len(rejected), problems, qpath, rejected)
    if truncated is not None:
        # a damaged file fails loudly; what could be read is reported and handed to library callers
        error = TruncatedFile(f"{truncated} ({result.summary()})", truncated.rows_before)
        error.partial = result
        raise error from None
    return result


def _kept_in(qpath: Path | None) -> str:
    return f"; rejected rows kept in {qpath}" if qpath is not None else ""


def _remap(row: dict[str, Any], columns: Mapping[str, str], defaults: Mapping[str, Any]) -> dict[str, Any]:
    out = {columns.get(k, k): v for k, v in row.items()}
    for k, v in defaults.items():
        if out.get(k) is None:
            out[k] = v
    return out


def _problems_only(raws: list[RawRow], name: str) -> list[Problem]:
    return [Problem(name, r.row, r.error.field, r.error.message, r.error.hint, r.error.kind)
            for r in raws if r.error is not None]


def _first(problems: list[Problem], n: int = 3) -> str:
    lines = [f"  {p}" for p in problems[:n]]
    if len(problems) > n:
        lines.append(f"  ... and {len(problems) - n} more")
    return "\n".join(lines)


def _write_quarantine(dest: str | Path | None, problems: list[Problem], rejected: list[RawRow]) -> Path | None:
    """One JSONL line per rejected row, with the original row; written even when empty (no stale file)."""
    if dest is None:
        return None
    dest = Path(dest)
    writable_dir(dest.parent)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with writing(dest):
            with open(tmp, "w", encoding="utf-8") as f:
                for p, raw in zip(problems, rejected):
                    rec: dict[str, Any] = {"file": p.file, "row": p.row, "field": p.field, "reason": p.message,
                                           "hint": p.hint, "kind": p.kind, "raw": raw.raw}
                    if raw.raw_bytes_b64 is not None:
                        rec["raw_bytes_b64"] = raw.raw_bytes_b64
                    f.write(to_json(rec, default=str) + "\n")
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def write_dataset(examples: Iterable[Example], path: str | Path, *, format: str = "messages") -> Path:
    """Write examples in `format`; the file type follows the suffix (none = datasets folder)."""
    if format not in FORMATS:
        raise DataError(f"{path}: unknown format {format!r}; supported formats: {', '.join(FORMATS)}")
    rows = [to_row(ex, format) for ex in examples]
    return write_rows(rows, Path(path))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file or folder (symlinks and relative paths resolved)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def default_quarantine_path(output: str | Path) -> Path:
    """Where rejected rows go when the user names no quarantine: beside the output, named after it."""
    output = Path(output)
    return output.with_name(output.name + ".quarantine.jsonl")


def examples_from(data: Any, **read_options: Any) -> list[Example]:
    """Examples from anything tamis reads: a list of Examples as is, else ``read_dataset(data)``'s kept
    rows (a path, a datasets Dataset/DatasetDict/IterableDataset, a DataFrame, a list of dicts)."""
    if isinstance(data, list) and data and all(isinstance(x, Example) for x in data):
        return data
    return read_dataset(data, **read_options).examples
