"""Writing rows to files: every file type tamis reads, atomically.

Writers are atomic (temp file + os.replace), so a crash never leaves a half-written dataset where a
good one used to be; a folder that cannot be written is a WorkspaceError naming it. JSON output is
valid JSON (NaN and infinities are written as null). CSV/TSV output neutralises spreadsheet formulas
as OWASP recommends: a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets
a leading single quote (``'=HYPERLINK(...)``), so Excel/LibreOffice show it as text instead of running
it; cells that are plain numbers (``-1``, ``+2.5e3``) are left alone. Parquet and Hugging Face folders
store dict columns as Arrow structs when that is lossless, other untypable columns as JSON text, and
record which is which so ``tamis.io.files`` reads them back.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from tamis.io.files import (FORMULA_START, HF_COLUMNS_PREFIX, JSON_COLUMNS_KEY, PLAIN_NUMBER, STRUCT_COLUMNS_KEY,
                            drop_nulls, file_kind)
from tamis.store import to_json, writable_dir, writing


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows to `path` (type from the suffix; no suffix = datasets folder), atomically."""
    kind = "hf" if not path.suffix else file_kind(path)
    writable_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with writing(path):
            if kind == "jsonl":
                opener = gzip.open if path.suffix.lower() == ".gz" else open
                with opener(tmp, "wt", encoding="utf-8") as f:
                    for row in rows:
                        f.write(to_json(row) + "\n")
            elif kind == "json":
                tmp.write_text(to_json(rows, indent=1), encoding="utf-8")
            elif kind in ("csv", "tsv"):
                cols = _columns(rows)
                data = {c: pa.array([_csv_cell(r.get(c)) for r in rows], pa.string()) for c in cols}
                opts = pcsv.WriteOptions(delimiter="\t" if kind == "tsv" else ",")
                pcsv.write_csv(pa.table(data), tmp, write_options=opts)
            elif kind == "parquet":
                table, json_cols, struct_cols = arrow_table(rows, structs=True)
                pq.write_table(table.replace_schema_metadata({JSON_COLUMNS_KEY: json.dumps(json_cols),
                                                              STRUCT_COLUMNS_KEY: json.dumps(struct_cols)}), tmp)
            else:
                _save_hf(rows, tmp)
            _replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return path


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _cell(value: Any) -> str | None:
    """A CSV cell: text as is, a missing value (None, NaN, inf) empty, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return to_json(value)


def neutralise_formula(text: str) -> str:
    """OWASP's CSV-injection defence: a cell a spreadsheet would run as a formula gets a leading
    single quote; plain numbers (``-1``, ``+2.5``) are data, not formulas, and stay as they are."""
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_cell(value: Any) -> str | None:
    text = _cell(value)
    return text if text is None else neutralise_formula(text)


def arrow_table(rows: list[dict[str, Any]], *, structs: bool = False) -> Any:
    """An Arrow table of the rows; columns Arrow cannot type faithfully are stored as JSON text.

    Returns (table, json_columns), or with ``structs`` (table, json_columns, struct_columns): then a
    column of dicts (``meta``, chat turns with extra keys) becomes an Arrow struct column when that
    loses nothing: the keys a row lacks are stored as null and dropped again on read, so it is used
    only when no row holds an explicit null there and every value reads back with its type."""
    data: dict[str, pa.Array] = {}
    json_cols: list[str] = []
    struct_cols: list[str] = []
    for col in _columns(rows):
        values = [r.get(col) for r in rows]
        sparse = any(col not in r for r in rows)  # Arrow would turn "absent" into null
        if not sparse and not _needs_json(values):
            try:
                data[col] = pa.array(values)
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                pass
        if structs:
            array = _struct_array([r[col] if col in r else _ABSENT for r in rows])
            if array is not None:
                struct_cols.append(col)
                data[col] = array
                continue
        # JSON text: a present value (even null) is text, an absent one is null, so nothing is invented
        json_cols.append(col)
        data[col] = pa.array([to_json(r[col]) if col in r else None for r in rows], pa.string())
    if structs:
        return pa.table(data), json_cols, struct_cols
    return pa.table(data), json_cols


_ABSENT = object()


def _struct_array(values: list[Any]) -> pa.Array | None:
    """The values as an Arrow array holding structs, or None when that would change any of them."""
    present = [v for v in values if v is not _ABSENT]
    if not any(isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v))
               for v in present):
        return None
    if _has_null(present):  # an explicit null could not be told from an absent key
        return None
    try:
        array = pa.array([None if v is _ABSENT else v for v in values])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError,
            ValueError):
        return None
    if _has_empty_struct(array.type):  # Parquet cannot store a struct without fields
        return None
    back = [drop_nulls(v) for v, orig in zip(array.to_pylist(), values) if orig is not _ABSENT]
    return array if all(_same(a, b) for a, b in zip(back, present)) else None


def _has_null(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None:
            return True
        if isinstance(v, float) and not math.isfinite(v):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def _has_empty_struct(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_empty_struct(t.value_type)
    return pa.types.is_null(t)


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types (1 is not 1.0, True is not 1); a struct may order keys differently."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _needs_json(values: list[Any]) -> bool:
    """Dicts (free keys) and lists of dicts with differing keys would gain null-filled keys in Arrow."""
    keysets = set()
    for v in values:
        if isinstance(v, dict):
            return True
        if isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    keysets.add(tuple(sorted(item)))
                    if any(isinstance(x, (dict, list)) for x in item.values()):
                        return True
    return len(keysets) > 1


def _save_hf(rows: list[dict[str, Any]], tmp: Path) -> None:
    hf_dataset(rows).save_to_disk(str(tmp))


def hf_dataset(rows: list[dict[str, Any]]) -> Any:
    """A datasets.Dataset of the rows: dict columns (``meta``) as structs where that loses nothing,
    other columns Arrow cannot type as JSON text (recorded in the description, so tamis reads them back)."""
    import datasets
    from datasets.table import InMemoryTable

    table, json_cols, struct_cols = arrow_table(rows, structs=True)
    info = datasets.DatasetInfo(description=HF_COLUMNS_PREFIX + json.dumps({"json": json_cols, "struct": struct_cols}))
    return datasets.Dataset(InMemoryTable(table), info=info)


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    else:
        os.replace(tmp, path)
