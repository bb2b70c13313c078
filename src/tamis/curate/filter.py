"""Auto-Filter (CLEAR): keep examples whose score reaches a threshold, drop the rest with a reason.

The threshold is CLEAR's default, the median (keeps about half), or a given value, a quantile of the
scores, or a keep fraction (exactly that share, ties broken by id). Examples without a score go to
"review" (never silently kept or dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis.curate.decisions import Decision


@dataclass
class FilterRule:
    signal: str = "confidence"
    threshold: float | None = None
    quantile: float | None = None
    keep_fraction: float | None = None
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.threshold, self.quantile, self.keep_fraction)]
        if sum(given) > 1:
            raise ValueError("give at most one of threshold, quantile and keep_fraction")
        for name in ("quantile", "keep_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")

    def describe(self) -> str:
        if self.threshold is not None:
            return f"threshold {self.threshold:g}"
        if self.keep_fraction is not None:
            return f"keep fraction {self.keep_fraction:g}"
        return f"quantile {0.5 if self.quantile is None else self.quantile:g}" + (" (median)" if self.quantile is None else "")


def _score(row: dict[str, Any], signal: str) -> float | None:
    value = row.get(signal)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def auto_filter(rows: list[dict[str, Any]], rule: FilterRule | None = None) -> tuple[list[Decision], float | None]:
    """(one decision per row, the threshold used on the 'higher is better' scale)."""
    rule = rule or FilterRule()
    sign = 1.0 if rule.higher_is_better else -1.0
    scored = {r["id"]: sign * s for r in rows if (s := _score(r, rule.signal)) is not None}
    values = np.array(list(scored.values()), dtype=float)
    keep_ids: set[str]
    threshold: float | None = None
    if values.size and rule.keep_fraction is not None:
        n_keep = int(round(rule.keep_fraction * values.size))
        ranked = sorted(scored, key=lambda i: (-scored[i], i))
        keep_ids = set(ranked[:n_keep])
        threshold = min((scored[i] for i in keep_ids), default=None)
    else:
        if rule.threshold is not None:
            threshold = sign * rule.threshold
        elif values.size:
            threshold = float(np.quantile(values, 0.5 if rule.quantile is None else rule.quantile))
        keep_ids = {i for i, v in scored.items() if threshold is not None and v >= threshold}
    shown = None if threshold is None else sign * threshold
    decisions = []
    for row in rows:
        score = _score(row, rule.signal)
        scores = {rule.signal: score}
        if score is None:
            note = "; ".join(row.get("notes") or []) or "no score"
            decisions.append(Decision(row["id"], "review", f"no {rule.signal} score ({note})", scores, "auto-filter"))
        elif row["id"] in keep_ids:
            decisions.append(Decision(row["id"], "keep", f"{rule.signal} {score:.3f} passes {rule.describe()} "
                                      f"({shown:.3f})", scores, "auto-filter"))
        else:
            decisions.append(Decision(row["id"], "filter", f"{rule.signal} {score:.3f} fails {rule.describe()} "
                                      f"({shown:.3f})", scores, "auto-filter"))
    return decisions, shown
