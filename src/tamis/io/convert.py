"""Data already in memory, in and out: Hugging Face ``datasets``, pandas, lists of dicts.

In: ``read_dataset(ds)`` takes a ``datasets.Dataset``, ``DatasetDict`` (a split, default "train"),
``IterableDataset``, pandas DataFrame or list of dicts; :func:`object_rows` turns each into the raw
rows the file readers produce, so validation and quarantine are the same (row numbers count from 1).

Out: :func:`to_hf` / :func:`to_pandas` write examples in any format as a ``datasets.Dataset`` or a
DataFrame; ``meta`` (and any column of dicts) is a struct column when that loses nothing, as in
Parquet and ``save_to_disk`` output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tamis.io.errors import DataError
from tamis.io.files import RawRow, _object_row, _table_rows, hf_dataset_rows
from tamis.io.writers import hf_dataset
from tamis.io.formats import FORMATS, to_row
from tamis.records import Example


def _is_hf(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "datasets"


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "to_dict")


def object_rows(data: Any, split: str | None = None) -> tuple[str, Iterator[RawRow]]:
    """(a name for messages, the raw rows) of in-memory data; anything else is a DataError."""
    if _is_hf(data):
        kind = type(data).__name__
        name = f"datasets.{kind}"
        if kind.endswith("Dict"):
            names = list(data)
            chosen = split or ("train" if "train" in data else (names[0] if len(names) == 1 else None))
            name += f"[{chosen}]" if chosen in data else ""
        return name, hf_dataset_rows(data, split, name)
    if split is not None:
        raise DataError(f"split={split!r} applies to a Hugging Face DatasetDict or a save_to_disk folder, "
                        f"not to a {type(data).__name__}")
    if _is_pandas(data):
        if not hasattr(data, "columns"):
            raise DataError(f"a pandas {type(data).__name__} is not a table; pass a DataFrame")
        if len(set(map(str, data.columns))) != len(data.columns):
            raise DataError("DataFrame: column names repeat; give each column a unique name")
        rows = ({str(k): _plain(v) for k, v in rec.items() if not _missing(v)}
                for rec in data.to_dict(orient="records"))
        return "DataFrame", _table_rows(rows, [])
    if isinstance(data, Mapping):
        raise DataError("got a single dict; pass a list of row dicts (or a DataFrame / datasets.Dataset)")
    if isinstance(data, (str, bytes, Path)) or not isinstance(data, Iterable):
        raise DataError(f"cannot read a {type(data).__name__}; pass a path, a datasets.Dataset/DatasetDict/"
                        "IterableDataset, a pandas DataFrame or a list of dicts")
    return "rows", (_object_row(i, dict(r) if isinstance(r, Mapping) else r) for i, r in enumerate(data, 1))


def _missing(value: Any) -> bool:
    """A DataFrame cell with no value (None, NaN, NaT, pd.NA): the row lacks that column."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (as pandas holds them) as the Python values JSON rows hold."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return _plain(value.tolist())
    return value


def rows_of(examples: Iterable[Example], format: str = "messages") -> list[dict[str, Any]]:
    """The examples as rows of ``format`` (ConversionError when the format cannot hold one)."""
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; supported formats: {', '.join(FORMATS)}")
    return [to_row(ex, format) for ex in examples]


def to_hf(examples: Iterable[Example], format: str = "messages") -> Any:
    """The examples as a ``datasets.Dataset`` in ``format``; ``meta`` is a struct column where that
    loses nothing; ``read_dataset`` reads the result back to the same examples."""
    return hf_dataset(rows_of(examples, format))


def to_pandas(examples: Iterable[Example], format: str = "messages") -> Any:
    """The examples as a pandas DataFrame in ``format`` (one column per field; ``meta`` holds dicts)."""
    import pandas as pd

    rows = rows_of(examples, format)
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return pd.DataFrame.from_records(rows, columns=list(cols))



def is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))


def data_path(data: Any, folder: Path, role: str = "data", split: str | None = None) -> str:
    """``data`` as a path a run folder can record: a path is returned as given; data in memory (a
    ``datasets`` object, a DataFrame, a list of dicts) is written once, row for row as :func:`object_rows`
    gives it, to ``folder/ROLE-HASH.jsonl`` (named by its content), so the job reads, numbers and
    quarantines the rows exactly as it would the object, and a rerun on the same data reuses the run."""
    import hashlib
    import json

    if is_path(data):
        return str(data)
    _, rows = object_rows(data, split)
    lines = "".join(json.dumps(r.data if r.data is not None else r.raw, ensure_ascii=False, default=str) + "\n"
                    for r in rows)
    digest = hashlib.sha256(lines.encode("utf-8")).hexdigest()[:12]
    path = Path(folder) / f"{role}-{digest}.jsonl"
    if not path.is_file():
        from tamis.store import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, lines)
    return str(path)
