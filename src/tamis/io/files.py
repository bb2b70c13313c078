"""File types: turn any supported file into raw rows (with line/row numbers), and rows into files.

Readers never stop at a bad row: they yield a RawRow carrying the error and the original text so
the caller can quarantine it and go on. That includes rows no parser should be trusted with: nesting
deeper than ``MAX_NESTING`` levels (Python's parser would raise RecursionError, and later steps
recurse too) and integers longer than Python's int-string conversion limit (``ValueError``). A
compressed file that ends early raises :class:`TruncatedFile` after the rows before the damage.

Writers are atomic (temp file + os.replace), so a crash never leaves a half-written dataset where a
good one used to be; a folder that cannot be written is a WorkspaceError naming it. JSON output is
valid JSON (NaN and infinities are written as null). CSV/TSV output neutralises spreadsheet formulas
as OWASP recommends: a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets
a leading single quote (``'=HYPERLINK(...)``), so Excel/LibreOffice show it as text instead of running
it; cells that are plain numbers (``-1``, ``+2.5e3``) are left alone. Reading never strips such a
quote: a leading ``'`` in a file may be the user's own data.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import re
import shutil
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from tamis.io.errors import DataError, RowError
from tamis.store import to_json, writable_dir, writing

JSON_COLUMNS_KEY = b"tamis.json_columns"
# struct columns tamis wrote from dicts: an absent key was stored as null, so nulls are dropped on read
STRUCT_COLUMNS_KEY = b"tamis.struct_columns"
HF_DESCRIPTION_PREFIX = "tamis:json_columns="  # older folders: the JSON columns only
HF_COLUMNS_PREFIX = "tamis:columns="  # {"json": [...], "struct": [...]}
# columns that hold structure; when a table stores them as JSON text they are decoded on read
STRUCTURED = ("messages", "conversations", "annotations", "labels", "annotators", "meta")
# deepest nesting of lists/objects a row may have; real chat rows have < 10, and deeper rows would
# hit Python's recursion limit in the JSON parser or in any later step that walks them
MAX_NESTING = 100
# OWASP CSV injection: cells starting with these run as formulas in spreadsheets
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class TruncatedFile(DataError):
    """A compressed file ends early (an interrupted download or copy). ``rows_before`` rows preceded
    the damage; ``read_dataset`` reports them (and attaches what they became as ``partial``)."""

    def __init__(self, message: str, rows_before: int) -> None:
        super().__init__(message)
        self.rows_before = rows_before
        self.partial: Any = None


@dataclass
class RawRow:
    """One row as found in the file: parsed data, or the error that stopped parsing."""

    row: int | None
    data: dict[str, Any] | None
    raw: Any  # the original row (or line text) for the quarantine
    error: RowError | None = None
    raw_bytes_b64: str | None = None  # the exact bytes, when they were not valid UTF-8


def file_kind(path: Path) -> str:
    """'jsonl', 'json', 'csv', 'tsv', 'parquet' or 'hf' (a save_to_disk folder), by name."""
    if path.is_dir() or not path.suffix:
        return "hf"
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1]
    if last == ".gz":
        last = suffixes[-2] if len(suffixes) > 1 else ".jsonl"
    kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".pq": "parquet"}
    if last not in kinds:
        raise DataError(f"{path}: unknown file type {last!r}; use .jsonl, .json, .csv, .tsv, .parquet "
                        "or a Hugging Face datasets folder")
    return kinds[last]


def iter_raw_rows(path: Path, *, split: str | None = None) -> Iterator[RawRow]:
    """Every row of the file, in order; whole-file failures raise DataError."""
    kind = file_kind(path)
    if kind == "jsonl":
        yield from _jsonl_rows(path)
    elif kind == "json":
        yield from _json_rows(path)
    elif kind in ("csv", "tsv"):
        yield from _csv_rows(path, "\t" if kind == "tsv" else ",")
    elif kind == "parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: cannot read as Parquet ({e}); is the file complete?") from None
        meta = table.schema.metadata or {}
        json_cols = json.loads(meta.get(JSON_COLUMNS_KEY, b"[]"))
        struct_cols = json.loads(meta.get(STRUCT_COLUMNS_KEY, b"[]"))
        yield from _table_rows(table.to_pylist(), json_cols, struct_cols)
    else:
        yield from _hf_rows(path, split)


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    compressed = path.suffix.lower() == ".gz"
    lineno = 0
    with (gzip.open if compressed else open)(path, "rb") as f:
        lines = iter(f)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                break
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                # EOFError would otherwise reach click, which prints only "Aborted."
                what = "ends early (truncated)" if isinstance(err, EOFError) else f"is corrupt ({err})"
                raise TruncatedFile(
                    f"{path}: the {'gzip stream' if compressed else 'file'} {what} after line {lineno}; the rows "
                    "before it are intact, the rest is lost; re-download or re-compress the file", lineno) from None
            lineno += 1
            line = line.strip()
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line:
                continue
            try:
                text = line.decode("utf-8", errors="strict")
            except UnicodeDecodeError as e:
                err = RowError(None, f"invalid UTF-8 (byte {e.start} of the line)",
                               "re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8", "invalid_utf8")
                yield RawRow(lineno, None, line.decode("utf-8", "backslashreplace"), err,
                             base64.b64encode(line).decode("ascii"))
                continue
            try:
                data = parse_json(text)
            except RowError as err:
                yield RawRow(lineno, None, text, err)
                continue
            yield _object_row(lineno, data, text)


def parse_json(text: str) -> Any:
    """``json.loads`` that turns the parser's crashes on hostile input into a RowError.

    Nesting beyond Python's recursion limit raises RecursionError, and an integer longer than
    ``sys.get_int_max_str_digits()`` raises ValueError (CVE-2020-10735's limit); both are row
    problems, not reasons to stop reading."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RowError(None, f"malformed JSON: {e.msg} (column {e.colno})",
                       "fix the line so it is one complete JSON object", "malformed_json") from None
    except RecursionError:
        raise _too_deep(parsed=False) from None
    except ValueError as e:  # int-string conversion limit
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        raise RowError(None, f"a number has more than {limit} digits ({e})",
                       "store such a number as a string, or drop the row", "number_too_long") from None


def _too_deep(parsed: bool) -> RowError:
    found = f"more than {MAX_NESTING} levels" if parsed else "deeper than Python's JSON parser allows"
    return RowError(None, f"lists/objects nested {found} (at most {MAX_NESTING} are read)",
                    "flatten the row; no training format needs this depth", "too_deep")


def nesting_depth(value: Any, stop_after: int = MAX_NESTING) -> int:
    """How deeply lists/dicts nest in ``value`` (a scalar is 0), found without recursion; counting
    stops a level past ``stop_after``, which is all a caller needs to know."""
    depth = 0
    level = [value]
    while level and depth <= stop_after:
        nested = [v for v in level if isinstance(v, (dict, list, tuple))]
        if not nested:
            break
        depth += 1
        level = [c for v in nested for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def _object_row(row: int, data: Any, text: str | None = None) -> RawRow:
    """A parsed row; the original text (when there is one) is what a quarantine keeps of a bad row."""
    if isinstance(data, dict):
        if nesting_depth(data) > MAX_NESTING:
            return RawRow(row, None, text if text is not None else _raw_text(data), _too_deep(parsed=True))
        return RawRow(row, data, data)
    err = RowError(None, f"expected a JSON object per row, got {type(data).__name__}",
                   "each row must be an object like {\"messages\": [...]}", "wrong_type")
    if nesting_depth(data) > MAX_NESTING:
        return RawRow(row, None, text if text is not None else _raw_text(data), err)
    return RawRow(row, None, data, err)


def _raw_text(data: Any) -> str | None:
    """A deep row as JSON text for the quarantine (the writer must not recurse into it again)."""
    try:
        return json.dumps(data, ensure_ascii=False)
    except (RecursionError, ValueError):
        return None


def _json_rows(path: Path) -> Iterator[RawRow]:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}; "
                        "fix it, or store one object per line as .jsonl so one bad row cannot spoil the file"
                        ) from None
    except (RecursionError, ValueError) as e:
        # one hostile value spoils a whole JSON document: its parser cannot skip a row
        why = "nests deeper than Python's JSON parser allows" if isinstance(e, RecursionError) else f"has {e}"
        raise DataError(f"{path}: the document {why}; store one object per line as .jsonl so such a row is "
                        "quarantined and the rest is read") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    elif isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        columnar = (doc and len(lists) == len(doc) and len({len(v) for v in lists}) == 1
                    and not {"messages", "conversations"} & set(doc))
        doc = [dict(zip(doc, vals)) for vals in zip(*doc.values())] if columnar else [doc]
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(doc).__name__}")
    for i, item in enumerate(doc, 1):
        yield _object_row(i, item)


def _decode_cell(value: Any, field: str | None = None) -> Any:
    """A text cell holding JSON structure, decoded; other text as is. Hostile JSON is a RowError."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            decoded = parse_json(value)
        except RowError as err:
            if err.kind == "malformed_json":
                return value  # plain text that happens to start with a bracket
            err.field = field
            raise
        if nesting_depth(decoded) > MAX_NESTING:
            err = _too_deep(parsed=True)
            err.field = field
            raise err
        return decoded
    return value


def _csv_rows(path: Path, delimiter: str) -> Iterator[RawRow]:
    bad: list[Any] = []

    def skip(row: Any) -> str:
        bad.append(row)
        return "skip"

    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip)
    try:
        peek = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=lambda r: "skip")
        names = pcsv.open_csv(path, parse_options=peek).schema.names
        # read as bytes so invalid UTF-8 is reported per cell instead of failing the whole file
        convert = pcsv.ConvertOptions(column_types={n: pa.binary() for n in names}, strings_can_be_null=False)
        table = pcsv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, StopIteration) as e:
        raise DataError(f"{path}: cannot parse as {'TSV' if delimiter == chr(9) else 'CSV'}: {e}") from None
    bad_rows = _locate(path, bad)
    for r, line in zip(bad, bad_rows):
        err = RowError(None, f"expected {r.expected_columns} columns, found {r.actual_columns}",
                       "quote fields that contain the delimiter or newlines", "malformed_row")
        yield RawRow(line, None, r.text, err)
    numbers = (n for n in range(1, table.num_rows + len(bad) + 1) if n not in set(bad_rows))
    for i, cells in zip(numbers, table.to_pylist()):
        row: dict[str, Any] = {}
        error = None
        for key, value in cells.items():
            if value is None or (key in STRUCTURED and not value):
                continue  # an empty structured cell means "this row has none"
            try:
                row[key] = _decode_cell(value.decode("utf-8", errors="strict"), key)
            except UnicodeDecodeError as e:
                row[key] = value.decode("utf-8", "backslashreplace")
                error = error or RowError(key, f"invalid UTF-8 (byte {e.start} of the cell)",
                                          "re-save the file as UTF-8", "invalid_utf8")
            except RowError as e:
                row[key] = value.decode("utf-8")  # the cell's text, for the quarantine
                error = error or e
        yield RawRow(i, None if error else row, row, error)


def _locate(path: Path, bad: list[Any]) -> list[int | None]:
    """1-based data-row numbers of rows Arrow skipped (it does not know them with multi-line values)."""
    if not bad:
        return []
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    found: list[int | None] = []
    start = 1
    for r in bad:
        hit = next((i for i in range(start, len(lines)) if lines[i] == r.text), None)
        found.append(hit)  # line index i (0 = header) is data row i when no value spans lines
        start = hit + 1 if hit is not None else start
    return found


def _table_rows(rows: Iterable[dict[str, Any]], json_cols: list[str],
                struct_cols: list[str] | tuple[str, ...] = ()) -> Iterator[RawRow]:
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            yield _object_row(i, row)
            continue
        raw = dict(row)
        try:
            for key in list(row):
                if key in struct_cols:
                    if row[key] is None:  # the row had no such column
                        del row[key]
                    else:
                        row[key] = drop_nulls(row[key])
                elif key in json_cols:
                    if row[key] is None:  # the row had no such column
                        del row[key]
                    else:
                        try:
                            row[key] = parse_json(row[key])
                        except RowError as err:
                            err.field = key
                            raise
                elif key in STRUCTURED:
                    row[key] = _decode_cell(row[key], key)
        except RowError as err:
            yield RawRow(i, None, raw, err)
            continue
        yield _object_row(i, row)


def _hf_rows(path: Path, split: str | None) -> Iterator[RawRow]:
    import datasets

    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path")
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{path}: not a Hugging Face datasets folder (save_to_disk) nor a known file type: {e}"
                        ) from None
    yield from hf_dataset_rows(ds, split, str(path))


def pick_split(ds: Any, split: str | None, name: str) -> Any:
    """One split of a DatasetDict / IterableDatasetDict (``split``, else "train", else the only one)."""
    names = list(ds)
    chosen = split or ("train" if "train" in ds else (names[0] if len(names) == 1 else None))
    if chosen not in ds:
        asked = f"there is no split {split!r}" if split else "choose a split with split=..."
        raise DataError(f"{name}: {asked}; this dataset has the splits {names}")
    return ds[chosen]


def hf_dataset_rows(ds: Any, split: str | None, name: str) -> Iterator[RawRow]:
    """The rows of a datasets Dataset, DatasetDict, IterableDataset or IterableDatasetDict."""
    import datasets

    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        ds = pick_split(ds, split, name)
    elif split is not None and getattr(ds, "split", None) is not None and str(ds.split) != split:
        raise DataError(f"{name}: holds the split {ds.split!s}, not {split!r}")
    info = getattr(ds, "info", None)
    json_cols, struct_cols = hf_column_info((info.description if info is not None else None) or "")
    rows = ds.to_list() if isinstance(ds, datasets.Dataset) else iter(ds)
    yield from _table_rows(rows, json_cols, struct_cols)


def hf_column_info(description: str) -> tuple[list[str], list[str]]:
    """The JSON-text and struct columns a tamis-written HF dataset records in its description."""
    if description.startswith(HF_COLUMNS_PREFIX):
        info = json.loads(description[len(HF_COLUMNS_PREFIX):])
        return list(info.get("json", [])), list(info.get("struct", []))
    if description.startswith(HF_DESCRIPTION_PREFIX):
        return json.loads(description[len(HF_DESCRIPTION_PREFIX):]), []
    return [], []


def drop_nulls(value: Any) -> Any:
    """A struct value with the keys Arrow filled with null (absent in the row) left out again."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


# -- writing ------------------------------------------------------------------------------------------

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
    import datasets
    from datasets.table import InMemoryTable

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
