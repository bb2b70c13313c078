"""Curation policies over several signals: keep/drop rules, each decision naming every rule that decided.

A policy is a list of rules over named signals (from any runs; see ``tamis.signals.registry``):

- comparisons ``SIGNAL OP VALUE`` with OP one of ``>= > <= <`` and VALUE a number, ``median``,
  ``mean`` or a quantile ``qF`` (F in [0, 1]) of that signal over the data being curated:
  ``confidence>=median``, ``influence_mean>0``, ``ifd<=q0.5``;
- ranks ``best F SIGNAL`` / ``worst F SIGNAL``, F a share (``30%`` or ``0.3``) or a count (``100``):
  ``worst 5% nn_similarity``. "Best" follows the signal's registered direction, so
  ``best 50% ifd`` keeps the lower half (lower IFD is better); ties are broken by example id.

An example is kept when it passes every keep rule and matches no drop rule; an example without a
value for a rule's signal goes to review (never silently kept or dropped). A policy that matches
no example id, or keeps nothing, is an error: that is a wrong file, not a result.

Per label (``groups``, for classification as generation): medians, means, quantiles and shares are taken
within each label, as confident learning's per-class thresholds are. A signal that carries a tuned
model's label bias (every "yes" row more confident than every "no" row) then cannot keep one label only.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tamis.curate.decisions import Decision
from tamis.errors import PolicyError
from tamis.signals.registry import SignalSet

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, ">": operator.gt, "<=": operator.le,
                                                    "<": operator.lt}
_NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">="}
_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w.:-]*)\s*(>=|<=|>|<)\s*(\S+)\s*$")
_RANK = re.compile(r"^\s*(best|worst)\s+(\d+(?:\.\d+)?%?)\s+([A-Za-z_][\w.:-]*)\s*$", re.IGNORECASE)
_QUANTILE = re.compile(r"^q(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$")


@dataclass(frozen=True)
class Rule:
    """One keep or drop rule; ``text`` is how the user wrote it (and how reasons quote it)."""

    kind: Literal["keep", "drop"]
    signal: str
    op: str  # a comparison operator, or "best" / "worst"
    value: str  # a number, median, mean, qF; or the share/count of a rank rule
    text: str

    @classmethod
    def parse(cls, kind: Literal["keep", "drop"], text: str) -> "Rule":
        if m := _RANK.match(text):
            how, amount, signal = m.groups()
            _amount(amount, text)  # validate now, not after scoring
            return cls(kind, signal, how.lower(), amount, f"{how.lower()} {amount} {signal}")
        if m := _COMPARISON.match(text):
            signal, op, value = m.groups()
            value = value.lower() if value.lower() in ("median", "mean") else value
            if value not in ("median", "mean") and not _QUANTILE.match(value):
                try:
                    float(value)
                except ValueError:
                    raise PolicyError(f"rule {text!r}: {value!r} is not a number, median, mean or a quantile qF "
                                      "(e.g. q0.25)") from None
            return cls(kind, signal, op, value, f"{signal}{op}{value}")
        raise PolicyError(f"cannot read the rule {text!r}; write SIGNAL OP VALUE (confidence>=median, "
                          "influence_mean>0, ifd<=q0.5) or best|worst SHARE SIGNAL (worst 5% nn_similarity)")


def _amount(amount: str, text: str) -> tuple[float, bool]:
    """(the share or count of a rank rule, whether it is a share)."""
    if amount.endswith("%"):
        share = float(amount[:-1]) / 100
    elif "." in amount:
        share = float(amount)
    else:
        return float(int(amount)), False
    if not 0 <= share <= 1:
        raise PolicyError(f"rule {text!r}: a share must lie in [0%, 100%]")
    return share, True


@dataclass
class Outcome:
    """A rule applied to the data: which ids pass (keep rule) or match (drop rule), and its threshold
    (one per label when the rule was applied within labels)."""

    rule: Rule
    threshold: float
    hits: set[str]
    values: dict[str, float]
    group_of: dict[str, str] | None = None  # id -> label, when thresholds are per label
    group_thresholds: dict[str, float] = field(default_factory=dict)

    def explain(self, ex_id: str) -> str:
        v, rule = self.values[ex_id], self.rule
        thr = self.group_thresholds[self.group_of[ex_id]] if self.group_of is not None else self.threshold
        within = f" of label {self.group_of[ex_id]!r}" if self.group_of is not None else ""
        hit = ex_id in self.hits
        if rule.op in ("best", "worst"):
            where = "in" if hit else "not in"
            return f"{rule.signal} {_fmt(v)} {where} {rule.op} {rule.value}{within} (cut {_fmt(thr)})"
        shown = rule.value if rule.value in ("median", "mean") or rule.value.startswith("q") else ""
        op = rule.op if hit else _NEGATED[rule.op]
        return f"{rule.signal} {_fmt(v)} {op} {shown + within + ' ' if shown else ''}{_fmt(thr)}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class Policy:
    keep: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    step: str = "filter"

    def __post_init__(self) -> None:
        self.rules = [Rule.parse("keep", t) for t in self.keep] + [Rule.parse("drop", t) for t in self.drop]
        if not self.rules:
            raise PolicyError("a policy needs at least one --keep or --drop rule")

    @property
    def signals(self) -> list[str]:
        return list(dict.fromkeys(r.signal for r in self.rules))

    def describe(self) -> str:
        parts = [f"keep {r.text}" for r in self.rules if r.kind == "keep"]
        parts += [f"drop {r.text}" for r in self.rules if r.kind == "drop"]
        return "; ".join(parts)

    def apply(self, ids: Sequence[str], signals: SignalSet, *, allow_empty: bool = False,
              groups: Mapping[str, str] | None = None
              ) -> tuple[list[Decision], dict[str, float | dict[str, float]]]:
        """(one decision per id, each rule's threshold). Thresholds are computed on the ids given; with
        ``groups`` (id -> label) within each label, and each rule's threshold is then ``{label: value}``."""
        values = {name: signals.values(name) for name in self.signals}  # unknown/ambiguous names fail here
        wanted = set(ids)
        if not wanted & signals.ids:
            raise PolicyError(f"none of the {len(wanted)} examples has a row in the given scores (first id: "
                              f"{next(iter(ids), '-')}); were they scored from this file, in this format?")
        if groups is not None:
            check_groups(ids, groups)
        outcomes = [_outcome(rule, {i: v for i, v in values[rule.signal].items() if i in wanted}, signals)
                    if groups is None else
                    _grouped_outcome(rule, {i: v for i, v in values[rule.signal].items() if i in wanted}, signals,
                                     groups)
                    for rule in self.rules]
        decisions = []
        for ex_id in ids:
            scores: dict[str, float | None] = {name: values[name].get(ex_id) for name in self.signals}
            missing = [name for name, v in scores.items() if v is None]
            if missing:
                notes = "; ".join(signals.notes(ex_id)) or ("no row in the scores" if ex_id not in signals.ids
                                                            else "no value")
                decisions.append(Decision(ex_id, "review", f"no {', '.join(missing)} score ({notes})", scores,
                                          self.step))
                continue
            failed = [o for o in outcomes if (o.rule.kind == "keep") != (ex_id in o.hits)]
            action = "drop" if failed else "keep"
            because = [f"{o.explain(ex_id)} [{o.rule.kind} {o.rule.text}]" for o in failed]
            others = [o.explain(ex_id) for o in outcomes if o not in failed]
            reason = "; ".join(because + others) if failed else "; ".join(others)
            decisions.append(Decision(ex_id, action, reason, scores, self.step))
        if not allow_empty and not any(d.action == "keep" for d in decisions):
            raise PolicyError(f"the policy ({self.describe()}) keeps none of the {len(ids)} examples")
        return decisions, {o.rule.text: o.threshold if o.group_of is None else dict(o.group_thresholds)
                           for o in outcomes}


def check_groups(ids: Sequence[str], groups: Mapping[str, str]) -> None:
    """Per-label thresholds need a label for every example and labels shared by several examples."""
    missing = [i for i in ids if i not in groups]
    if missing:
        raise PolicyError(f"per-label rules need each example's label; {len(missing)} have none (first: {missing[0]})")
    distinct = {groups[i] for i in ids}
    if len(distinct) > max(1, len(ids) // 2):
        raise PolicyError(f"per-label rules are for classification data: {len(distinct)} distinct responses among "
                          f"{len(ids)} examples leave no label to compare within")


def _grouped_outcome(rule: Rule, values: dict[str, float], signals: SignalSet, groups: Mapping[str, str]) -> Outcome:
    """The rule applied within each label; the labels' outcomes merged into one."""
    if rule.op in ("best", "worst") and not _amount(rule.value, rule.text)[1]:
        raise PolicyError(f"rule {rule.text!r}: within labels a rank rule takes a share (best 50% ...), not a count")
    if not values:
        raise PolicyError(f"rule {rule.text!r}: no example has a {rule.signal} value")
    by_group: dict[str, dict[str, float]] = {}
    for i, v in values.items():
        by_group.setdefault(groups[i], {})[i] = v
    merged = Outcome(rule, math.nan, set(), dict(values), group_of={i: groups[i] for i in values})
    for g, vals in by_group.items():
        part = _outcome(rule, vals, signals)
        merged.hits |= part.hits
        merged.group_thresholds[g] = part.threshold
    return merged


def _outcome(rule: Rule, values: dict[str, float], signals: SignalSet) -> Outcome:
    if not values:
        raise PolicyError(f"rule {rule.text!r}: no example has a {rule.signal} value")
    arr = np.fromiter(values.values(), dtype=float, count=len(values))
    if rule.op in ("best", "worst"):
        spec = signals.spec(rule.signal)
        if spec is None:
            raise PolicyError(f"rule {rule.text!r}: {rule.signal!r} is not a registered signal, so which end is "
                              f"better is unknown; write a comparison instead ({rule.signal}>=median)")
        sign = spec.sign * (1.0 if rule.op == "best" else -1.0)
        amount, is_share = _amount(rule.value, rule.text)
        n = int(round(amount * len(values))) if is_share else min(int(amount), len(values))
        ranked = sorted(values, key=lambda i: (-sign * values[i], i))
        hits = set(ranked[:n])
        threshold = values[ranked[n - 1]] if n else math.nan
        return Outcome(rule, threshold, hits, values)
    if rule.value == "median":
        threshold = float(np.median(arr))
    elif rule.value == "mean":
        threshold = float(arr.mean())
    elif rule.value.startswith("q"):
        threshold = float(np.quantile(arr, float(rule.value[1:])))
    else:
        threshold = float(rule.value)
    compare = _OPS[rule.op]
    return Outcome(rule, threshold, {i for i, v in values.items() if compare(v, threshold)}, values)
