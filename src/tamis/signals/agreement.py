"""Agreement among annotators, from long-format ratings (item, annotator, label).

- instance agreement a_i = max_y (# annotators choosing y) / K_i (Li et al. 2023): the share of the
  majority label among item i's K_i ratings;
- Krippendorff's alpha (the ``krippendorff`` package) for nominal, ordinal or interval labels;
- a task-level subjectivity summary (mean a, alpha, share of unanimous items).

``krippendorff_alpha(rows, level)`` is the one function the post-editing studio needs: give it
(item, annotator, label) rows, get a float back.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tamis.io import DataError
from tamis.signals.registry import SignalTable, register_signal

register_signal("agreement", "higher", "share of annotators who gave the majority label", range=(0.0, 1.0),
                needs=("annotations",), produced_by="tamis score agreement")
register_signal("n_ratings", "none", "number of ratings of the item", range=(0.0, None), needs=("annotations",),
                produced_by="tamis score agreement")

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS = ("nominal", "ordinal", "interval", "ratio")
ITEM_FIELDS = ("item", "item_id", "id")
ANNOTATOR_FIELDS = ("annotator", "rater", "annotator_id", "worker")
LABEL_FIELDS = ("label", "rating", "value")


@dataclass(frozen=True, slots=True)
class Rating:
    item: str
    annotator: str
    label: str


def as_ratings(rows: Iterable[Any]) -> list[Rating]:
    """Accept Rating objects, (item, annotator, label) tuples or dicts with those fields."""
    out: list[Rating] = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, Rating):
            out.append(row)
        elif isinstance(row, dict):
            out.append(Rating(*(str(_field(row, names, n)) for names in (ITEM_FIELDS, ANNOTATOR_FIELDS, LABEL_FIELDS))))
        else:
            try:
                item, annotator, label = row
            except (TypeError, ValueError):
                raise DataError(f"rating {n}: expected (item, annotator, label), got {row!r}") from None
            out.append(Rating(str(item), str(annotator), str(label)))
    return out


def _field(row: dict[str, Any], names: Sequence[str], n: int, where: str = "rating") -> Any:
    for name in names:
        if name in row and row[name] is not None and str(row[name]) != "":
            return row[name]
    raise DataError(f"{where} {n}: missing field {names[0]!r} (also accepted: {', '.join(names[1:])}); got {sorted(row)}")


def read_ratings(path: str | Path) -> list[Rating]:
    """Read long-format ratings from TSV/CSV (header row) or JSONL; errors name file, row and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected long-format ratings (item, annotator, label)")
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        if path.suffix in (".jsonl", ".json"):
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}: line {n}: not valid JSON ({err.msg})") from None
        else:
            dialect = "excel-tab" if path.suffix in (".tsv", ".tab") else "excel"
            rows = list(csv.DictReader(fh, dialect=dialect))
    if not rows:
        raise DataError(f"{path}: holds no ratings")
    out = []
    for n, row in enumerate(rows, 2 if path.suffix not in (".jsonl", ".json") else 1):
        vals = [str(_field(row, names, n, f"{path}: row")) for names in (ITEM_FIELDS, ANNOTATOR_FIELDS, LABEL_FIELDS)]
        out.append(Rating(*vals))
    return out


def ratings_from_examples(examples: Iterable[Any]) -> list[Rating]:
    """Ratings from labelled Examples that keep every annotator's label (``annotations``)."""
    return [Rating(ex.id, str(a), str(lab)) for ex in examples for a, lab in (ex.annotations or {}).items()]


def instance_agreement(rows: Iterable[Any]) -> SignalTable:
    """Per item: a (majority share), the majority label, K (number of ratings), label counts (JSON).

    Ties are broken by the label that sorts first, so the result does not depend on row order."""
    return SignalTable.from_rows({k: (json.dumps(v) if k == "label_counts" else v) for k, v in row.items()}
                                 for row in _per_item(rows).values())


def _per_item(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    by_item: dict[str, Counter[str]] = defaultdict(Counter)
    for r in as_ratings(rows):
        by_item[r.item][r.label] += 1
    out = {}
    for item, counts in by_item.items():
        k = sum(counts.values())
        top = max(counts.values())
        majority = sorted(lab for lab, c in counts.items() if c == top)[0]
        out[item] = {"id": item, "agreement": top / k, "majority_label": majority, "n_ratings": k,
                     "label_counts": dict(sorted(counts.items()))}
    return out


def _numeric(label: str, level: str) -> float:
    try:
        return float(label)
    except ValueError:
        raise DataError(f"label {label!r} is not a number; {level} alpha needs numeric labels (use nominal)") from None


def krippendorff_alpha(rows: Iterable[Any], level: Level = "nominal") -> float:
    """Krippendorff's alpha of (item, annotator, label) rows.

    Nominal labels may be any strings; ordinal/interval/ratio labels must be numbers (ordinal ranks
    are the sorted distinct values). When every rating carries the same value, alpha is formally
    0/0; raters agree perfectly, so this returns 1.0. Fewer than one pairable item gives NaN."""
    import krippendorff

    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    ratings = as_ratings(rows)
    if not ratings:
        return float("nan")
    items = sorted({r.item for r in ratings})
    raters = sorted({r.annotator for r in ratings})
    values = sorted({r.label for r in ratings}, key=(lambda v: _numeric(v, level)) if level != "nominal" else str)
    if level == "nominal":
        code = {v: float(i) for i, v in enumerate(values)}
    else:
        code = {v: _numeric(v, level) for v in values}
    matrix = np.full((len(raters), len(items)), np.nan)
    item_col = {it: j for j, it in enumerate(items)}
    rater_row = {a: i for i, a in enumerate(raters)}
    for r in ratings:
        matrix[rater_row[r.annotator], item_col[r.item]] = code[r.label]
    pairable = (np.sum(~np.isnan(matrix), axis=0) >= 2).sum()
    if pairable == 0:
        return float("nan")
    if len({code[v] for v in values}) == 1:
        return 1.0
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level,
                                    value_domain=sorted(set(code.values()))))


def subjectivity_summary(rows: Iterable[Any], level: Level = "nominal") -> dict[str, Any]:
    """Task-level summary: how much annotators agree, per item and overall (Table 2 of Li et al.)."""
    ratings = as_ratings(rows)
    per_item = _per_item(ratings)
    a = np.array([r["agreement"] for r in per_item.values()]) if per_item else np.array([])
    k = np.array([r["n_ratings"] for r in per_item.values()]) if per_item else np.array([])
    alpha = krippendorff_alpha(ratings, level)
    return {
        "n_items": len(per_item),
        "n_annotators": len({r.annotator for r in ratings}),
        "n_ratings": len(ratings),
        "ratings_per_item": float(k.mean()) if len(k) else float("nan"),
        "single_rating_items": int((k < 2).sum()),
        "mean_agreement": float(a.mean()) if len(a) else float("nan"),
        "median_agreement": float(np.median(a)) if len(a) else float("nan"),
        "unanimous_share": float((a == 1).mean()) if len(a) else float("nan"),
        "alpha": alpha,
        "level": level,
        "labels": dict(Counter(r.label for r in ratings).most_common()),
        "reading": _reading(alpha),
    }


def _reading(alpha: float) -> str:
    """Krippendorff's own rule of thumb: >= 0.8 reliable, >= 0.667 tentative, below: subjective."""
    if math.isnan(alpha):
        return "undefined (no item has two ratings)"
    if alpha >= 0.8:
        return "objective: annotators agree reliably"
    if alpha >= 0.667:
        return "moderately subjective: tentative agreement"
    return "subjective: annotators often disagree"
