"""Auto-Filter (CLEAR): keep the examples whose score is good enough, drop the rest with a reason.

The single-signal form of a policy (``tamis.curate.policy``): one signal and CLEAR's default rule,
the median (keeps about half), or a given value, a quantile or a keep fraction. Which side is
better comes from the signal's registered direction: ``FilterRule(signal="ifd")`` keeps the lower
half. Examples without a score go to review (never silently kept or dropped). With ``labels`` the
median (or quantile, or share) is taken within each label (``label_groups``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tamis.curate.decisions import Decision
from tamis.curate.policy import Policy
from tamis.errors import ConfigError
from tamis.records import Example
from tamis.settings import setting
from tamis.signals.registry import SignalSet, SignalTable, get_signal


@dataclass
class FilterRule:
    signal: str = setting("confidence", "Which signal to filter on (its direction comes from the signal registry).")
    threshold: float | None = setting(None, "Keep values at least this good (>= for higher-is-better signals, <= "
                                            "for lower-is-better ones).")
    quantile: float | None = setting(None, "Keep values at least as good as this quantile of the better-is-higher "
                                           "scale [default: the median].", range=(0, 1))
    keep_fraction: float | None = setting(None, "Keep exactly this share, best first (ties by id).", range=(0, 1))

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.threshold, self.quantile, self.keep_fraction)]
        if sum(given) > 1:
            raise ConfigError("give at most one of threshold, quantile and keep_fraction")
        for name in ("quantile", "keep_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")

    def keep_rule(self, available: Iterable[str] = ()) -> str:
        """The policy rule this stands for, oriented by the signal's registered direction."""
        spec = get_signal(self.signal, available)
        if spec is None:
            raise ConfigError(f"signal {self.signal!r} is not registered, so which side is better is unknown; "
                              f"use a policy rule instead (--keep '{self.signal}>=median')")
        higher = spec.sign > 0
        if self.keep_fraction is not None:
            return f"best {self.keep_fraction * 100:g}% {self.signal}"
        if self.threshold is not None:
            return f"{self.signal}{'>=' if higher else '<='}{self.threshold!r}"
        q = 0.5 if self.quantile is None else self.quantile
        if q == 0.5:
            return f"{self.signal}{'>=' if higher else '<='}median"
        return f"{self.signal}{'>=' if higher else '<='}q{q if higher else 1 - q:g}"

    def policy(self, available: Iterable[str] = (), step: str = "filter") -> Policy:
        return Policy(keep=[self.keep_rule(available)], step=step)


def label_groups(examples: Iterable[Example]) -> dict[str, str]:
    """Each example's label for per-label thresholds: its response (classification as generation), else its
    ``label`` field."""
    return {ex.id: (ex.response or ex.label or "").strip() for ex in examples}


def auto_filter(rows: Iterable[Mapping[str, Any]] | SignalTable, rule: FilterRule | None = None, *,
                step: str = "filter", labels: Mapping[str, str] | None = None
                ) -> tuple[list[Decision], float | dict[str, float] | None]:
    """(one decision per row, the threshold used; with ``labels``, id -> label, one threshold per label).
    Rows are signal rows ``{"id": ..., SIGNAL: value}``."""
    rule = rule or FilterRule()
    table = rows if isinstance(rows, SignalTable) else SignalTable.from_rows(rows)
    policy = rule.policy(table.names, step)
    decisions, thresholds = policy.apply(table.ids, SignalSet([table]), allow_empty=True, groups=labels)
    return decisions, next(iter(thresholds.values()), None)
