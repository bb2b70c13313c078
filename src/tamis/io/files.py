"""File types: turn any supported file into raw rows (with line/row numbers); ``tamis.io.writers`` writes them.

Readers never stop at a bad row: they yield a RawRow carrying the error and the original text so
the caller can quarantine it and go on. That includes rows no parser should be trusted with: nesting
deeper than ``MAX_NESTING`` levels (Python's parser would raise RecursionError, and later steps
recurse too) and integers longer than Python's int-string conversion limit (``ValueError``). A
compressed file that ends early raises :class:`TruncatedFile` after the rows before the damage.

Writers (``tamis.io.writers``) quote spreadsheet formulas in CSV/TSV cells; reading never strips such a
quote: a leading ``'`` in a file may be the user's own data.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
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
