"""The signal registry and the one table type every signal returns.

A *signal* is one number per example (a column keyed by example id). Each is registered once, by
the module that computes it, with its direction (is a higher value a better example?), its range
and what it needs. Everything that consumes scores (``tamis filter``, recipe steps, reports) looks
signals up here, so the direction is never asked of the user again and a typo is an error that
lists the known names.

Adding a signal takes one file: a module under ``tamis/signals/`` that calls ``register_signal``
at import and returns a ``SignalTable`` (see docs/ARCHITECTURE.md, "Adding a signal"). Modules in
this package are discovered on first lookup; code outside it registers by importing its module.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tamis.errors import DataError, SignalError, unknown

Direction = Literal["higher", "lower", "none"]
SIGNALS_FILE = "signals.parquet"


@dataclass(frozen=True)
class SignalSpec:
    """What a consumer must know about a signal to use it without asking the user."""

    name: str
    direction: Direction  # "higher": a higher value means a better example; "none": not an ordering
    description: str
    range: tuple[float | None, float | None] = (None, None)
    needs: tuple[str, ...] = ()  # e.g. ("llm",), ("embedder",), ("llm", "seed set")
    produced_by: str = ""  # the command that writes it

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better (multiply to get 'higher is better')."""
        if self.direction == "none":
            raise SignalError(f"signal {self.name!r} has no direction (it is {self.description}); "
                              "compare it with an explicit threshold instead")
        return 1.0 if self.direction == "higher" else -1.0


_REGISTRY: dict[str, SignalSpec] = {}
_discovered = False


def register_signal(name: str, direction: Direction, description: str, *, range: tuple[float | None, float | None] = (None, None),
                    needs: Sequence[str] = (), produced_by: str = "") -> SignalSpec:
    """Declare a signal (once; registering the same name with other facts is an error)."""
    if direction not in ("higher", "lower", "none"):
        raise ValueError(f"signal {name!r}: direction must be higher, lower or none, got {direction!r}")
    spec = SignalSpec(name, direction, description, range, tuple(needs), produced_by)
    known = _REGISTRY.get(name)
    if known is not None and known != spec:
        raise ValueError(f"signal {name!r} is already registered with other facts: {known}")
    _REGISTRY[name] = spec
    return spec


def _discover() -> None:
    """Import every module of this package once (top level; a subpackage's ``__init__``), so each registers
    its signals."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import tamis.signals as package

    for module in pkgutil.iter_modules(package.__path__, prefix="tamis.signals."):
        importlib.import_module(module.name)


def signal_specs() -> dict[str, SignalSpec]:
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get_signal(name: str, available: Iterable[str] | None = None) -> SignalSpec | None:
    """The registered spec of ``name``. A name that is neither registered nor among ``available`` (the
    columns of the runs at hand) is an error listing what is known; an unregistered column gives None."""
    specs = signal_specs()
    if name in specs:
        return specs[name]
    columns = set(available or ())
    if name in columns:
        return None
    raise SignalError(unknown("signal", name, columns or specs))


@dataclass
class SignalTable:
    """Signals of examples: one row per example id, one column per signal, notes and counts beside.

    The one shape every signal returns and every scoring command writes (``signals.parquet``)."""

    ids: list[str]
    columns: dict[str, list[Any]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # id -> why a value is missing or odd
    counts: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was read from, for messages

    def __post_init__(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"{self.source or 'signal table'}: duplicate example ids")
        for name, values in self.columns.items():
            if len(values) != len(self.ids):
                raise ValueError(f"signal column {name!r} has {len(values)} values for {len(self.ids)} ids")

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], counts: Mapping[str, Any] | None = None,
                  source: str = "") -> "SignalTable":
        """From rows like ``{"id": ..., "signal": value, ..., "notes": [...]}`` (missing values -> None)."""
        rows = list(rows)
        names: dict[str, None] = {}
        for row in rows:
            names.update((k, None) for k in row if k not in ("id", "notes"))
        ids = [str(r["id"]) for r in rows]
        columns = {n: [_clean(r.get(n)) for r in rows] for n in names}
        notes = {str(r["id"]): list(r["notes"]) for r in rows if r.get("notes")}
        return cls(ids, columns, notes, dict(counts or {}), source)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, ex_id in enumerate(self.ids):
            row = {"id": ex_id} | {n: v[i] for n, v in self.columns.items()}
            if ex_id in self.notes:
                row["notes"] = self.notes[ex_id]
            out.append(row)
        return out

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def value_map(self, name: str) -> dict[str, float]:
        """id -> finite numeric value of one signal (missing, NaN and non-numeric values left out)."""
        values = self.columns[name]
        return {i: float(v) for i, v in zip(self.ids, values)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}

    def update(self, other: "SignalTable") -> "SignalTable":
        """Add the columns of another table on the same ids (rows matched by id, values of ``other`` win)."""
        index = {i: n for n, i in enumerate(other.ids)}
        for name, values in other.columns.items():
            column = self.columns.setdefault(name, [None] * len(self.ids))
            for n, ex_id in enumerate(self.ids):
                if ex_id in index:
                    column[n] = values[index[ex_id]]
        mine = set(self.ids)
        for ex_id, notes in other.notes.items():
            if ex_id in mine:
                self.notes.setdefault(ex_id, []).extend(notes)
        self.counts.update(other.counts)
        return self

    def write(self, folder: str | Path) -> Path:
        """Write ``signals.parquet`` into a run folder (atomically); returns its path."""
        import os

        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(folder) / SIGNALS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(self.rows_for_parquet()), tmp)
        os.replace(tmp, path)
        return path

    def rows_for_parquet(self) -> list[dict[str, Any]]:
        rows = self.rows()
        for row in rows:
            row.setdefault("notes", [])
        return rows


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return _clean(value.item())
    return value


# the files older runs wrote, still read so their signals stay usable
_LEGACY_FILES = ("signals.jsonl", "influence.parquet", "diversity.jsonl", "agreement.jsonl")


def read_signals(path: str | Path) -> SignalTable:
    """The signals of a run folder (its ``signals.parquet``) or of a file with an ``id`` column
    (.parquet, .jsonl, .csv/.tsv), e.g. scores computed elsewhere."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / SIGNALS_FILE] + [path / name for name in _LEGACY_FILES]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(f"{path}: no {SIGNALS_FILE} in this folder; give the output folder of a scoring command "
                            "(tamis profile, tamis score ...) or a file of scores with an id column")
        path = found
    if not path.is_file():
        raise DataError(f"{path}: no such signals file or run folder")
    rows = _read_rows(path)
    for n, row in enumerate(rows, 1):
        if "id" not in row or row["id"] in (None, ""):
            raise DataError(f"{path}:{n}: id: missing (a signals file needs an id column naming each example)")
    counts: dict[str, Any] = {}
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            counts = json.loads(manifest.read_text(encoding="utf-8")).get("counts", {})
        except (OSError, ValueError):
            counts = {}
    return SignalTable.from_rows(rows, counts, source=str(path))


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        return rows
    if suffix in (".csv", ".tsv"):
        import csv

        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            return [{k: _number(v) if k != "id" else v for k, v in row.items()} for row in reader]
    raise DataError(f"{path}: signals must be .parquet, .jsonl or .csv/.tsv with an id column")


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


class SignalSet:
    """Signals of several runs for one data set, looked up by name (``tamis filter --scores A --scores B``).

    A name found in several runs is usable only where the runs agree on its values (e.g. the same
    model's log-likelihood from profile and from score confidence); otherwise it is ambiguous."""

    def __init__(self, tables: Sequence[SignalTable]):
        if not tables:
            raise SignalError("no signals given: pass --scores RUN (a scoring command's output folder)")
        self.tables = list(tables)

    @classmethod
    def read(cls, paths: Iterable[str | Path]) -> "SignalSet":
        return cls([read_signals(p) for p in paths])

    @property
    def names(self) -> list[str]:
        return sorted({n for t in self.tables for n in t.columns})

    @property
    def ids(self) -> set[str]:
        return {i for t in self.tables for i in t.ids}

    def spec(self, name: str) -> SignalSpec | None:
        return get_signal(name, self.names)

    def values(self, name: str) -> dict[str, float]:
        """id -> value of one signal across the runs; an unknown or ambiguous name is an error."""
        holders = [t for t in self.tables if name in t.columns]
        if not holders:
            self.spec(name)  # an unknown name: the error lists the known ones
            runs = ", ".join(t.source for t in self.tables)
            raise SignalError(f"signal {name!r} is registered but not in the given runs ({runs}); "
                              f"they hold: {', '.join(self.names)}")
        merged: dict[str, float] = {}
        for table in holders:
            for ex_id, value in table.value_map(name).items():
                if ex_id in merged and not math.isclose(merged[ex_id], value, rel_tol=1e-6, abs_tol=1e-9):
                    raise SignalError(f"signal {name!r} differs between runs for example {ex_id} "
                                      f"({', '.join(t.source for t in holders)}); pass only the run you mean")
                merged[ex_id] = value
        return merged

    def notes(self, ex_id: str) -> list[str]:
        return [note for t in self.tables for note in t.notes.get(ex_id, [])]
