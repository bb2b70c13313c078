"""Policies over several signals: directions from the registry, reasons naming every rule, loud failures."""

from __future__ import annotations

import pytest

from tamis.curate.filter import FilterRule, auto_filter
from tamis.curate.policy import Policy, Rule
from tamis.errors import PolicyError, SignalError
from tamis.signals.registry import SignalSet, SignalTable

IDS = [f"e{i}" for i in range(10)]


def signals() -> SignalSet:
    conf = SignalTable.from_rows([{"id": i, "confidence": n / 10, "ifd": 1 - n / 10} for n, i in enumerate(IDS)],
                                 source="score")
    infl = SignalTable.from_rows([{"id": i, "influence_mean": (-1) ** n * 0.1} for n, i in enumerate(IDS)],
                                 source="influence")
    div = SignalTable.from_rows([{"id": i, "nn_similarity": 0.5 + n / 20} for n, i in enumerate(IDS)], source="profile")
    return SignalSet([conf, infl, div])


def kept(decisions) -> list[str]:
    return [d.id for d in decisions if d.action == "keep"]


def test_rules_parse_and_reject_nonsense():
    assert Rule.parse("keep", "confidence >= median").text == "confidence>=median"
    assert Rule.parse("drop", "worst 5% nn_similarity").op == "worst"
    for bad in ("confidence", "confidence >= banana", "best 150% confidence", "confidence => 1"):
        with pytest.raises(PolicyError):
            Rule.parse("keep", bad)


def test_combined_policy_over_three_runs_names_every_rule():
    policy = Policy(keep=["confidence>=median", "influence_mean>0"], drop=["worst 10% nn_similarity"])
    decisions, thresholds = policy.apply(IDS, signals())
    # confidence >= 0.45 keeps e5..e9; influence > 0 keeps even n; the most redundant (highest nn_similarity) is e9
    assert kept(decisions) == ["e6", "e8"]
    assert thresholds["confidence>=median"] == pytest.approx(0.45)
    by_id = {d.id: d for d in decisions}
    assert "confidence 0.6 >= median 0.45" in by_id["e6"].reason and "influence_mean 0.1 > 0" in by_id["e6"].reason
    assert "nn_similarity 0.8 not in worst 10%" in by_id["e6"].reason
    assert "[keep confidence>=median]" in by_id["e0"].reason  # the failing rule is named
    assert "[drop worst 10% nn_similarity]" in by_id["e9"].reason
    assert set(by_id["e6"].scores) == {"confidence", "influence_mean", "nn_similarity"}


def test_direction_comes_from_the_registry():
    # IFD: lower is better, so the single-signal median filter keeps the LOW half (the old CLI kept the worse half)
    decisions, _ = auto_filter(SignalTable.from_rows([{"id": i, "ifd": n / 10} for n, i in enumerate(IDS)]),
                               FilterRule(signal="ifd"))
    assert kept(decisions) == ["e0", "e1", "e2", "e3", "e4"]
    decisions, _ = Policy(keep=["best 30% ifd"]).apply(IDS, signals())
    assert kept(decisions) == ["e7", "e8", "e9"]  # ifd = 1 - n/10: the three lowest


def test_missing_scores_go_to_review_with_the_signals_notes():
    table = SignalTable.from_rows([{"id": "a", "confidence": 0.9}, {"id": "b", "confidence": 0.1},
                                   {"id": "c", "confidence": None, "notes": ["no assistant response to score"]}])
    decisions, _ = Policy(keep=["confidence>=0.5"]).apply(["a", "b", "c", "d"], SignalSet([table]))
    actions = {d.id: d.action for d in decisions}
    assert actions == {"a": "keep", "b": "drop", "c": "review", "d": "review"}
    reasons = {d.id: d.reason for d in decisions}
    assert "no assistant response" in reasons["c"] and "no row in the scores" in reasons["d"]


def test_policies_that_match_nothing_or_keep_nothing_fail_loudly():
    with pytest.raises(PolicyError, match="none of the 2 examples has a row"):
        Policy(keep=["confidence>=median"]).apply(["x", "y"], signals())
    with pytest.raises(PolicyError, match="keeps none"):
        Policy(keep=["confidence>5"]).apply(IDS, signals())
    with pytest.raises(SignalError, match="did you mean confidence"):
        Policy(keep=["confidance>=median"]).apply(IDS, signals())


def test_filter_rule_forms_keep_the_documented_share():
    rows = [{"id": f"r{i}", "confidence": i / 10} for i in range(10)]
    count = lambda rule: len(kept(auto_filter(rows, rule)[0]))  # noqa: E731
    assert count(FilterRule()) == 5
    assert count(FilterRule(keep_fraction=0.3)) == 3
    assert count(FilterRule(keep_fraction=1.0)) == 10
    assert count(FilterRule(threshold=0.75)) == 2
    assert count(FilterRule(quantile=0.2)) == 8


def test_recipe_filter_step_applies_a_policy_over_scored_runs(tmp_path):
    from tamis.curate.steps import StepContext, get_step
    from tamis.errors import ConfigError
    from tamis.records import chat_example
    from tamis.store import Workspace

    examples = [chat_example([{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}],
                             id=i) for n, i in enumerate(IDS)]
    SignalTable.from_rows([{"id": i, "confidence": n / 10} for n, i in enumerate(IDS)]).write(tmp_path / "score")
    ctx = StepContext(workspace=Workspace(tmp_path / "ws"), out_dir=tmp_path / "step")
    step = get_step("filter")
    decisions = step(examples, {"scores": str(tmp_path / "score"), "keep": "best 20% confidence"}, ctx)
    assert kept(decisions) == ["e8", "e9"] and all(d.step == "filter" for d in decisions)
    decisions = step(examples, {"scores": [str(tmp_path / "score")]}, ctx)  # CLEAR's median rule by default
    assert kept(decisions) == ["e5", "e6", "e7", "e8", "e9"]
    with pytest.raises(ConfigError, match="needs scores"):
        step(examples, {"keep": "confidence>0"}, ctx)
    with pytest.raises(ConfigError, match="did you mean keep"):
        step(examples, {"scores": str(tmp_path / "score"), "kep": "confidence>0"}, ctx)


def test_per_label_rules_compare_within_each_label():
    # a signal carrying a label bias: every "yes" row scores above every "no" row
    labels = {i: ("yes" if n % 2 else "no") for n, i in enumerate(IDS)}
    table = SignalTable.from_rows([{"id": i, "confidence": (0.5 if labels[i] == "yes" else 0.0) + n / 100}
                                   for n, i in enumerate(IDS)])
    decisions, thr = auto_filter(table)  # the global median keeps only "yes" rows
    assert {labels[i] for i in kept(decisions)} == {"yes"}
    decisions, thr = auto_filter(table, labels=labels)
    assert kept(decisions) == ["e4", "e5", "e6", "e7", "e8", "e9"]  # each label's median and above: 3 "no", 3 "yes"
    assert thr == {"no": pytest.approx(0.04), "yes": pytest.approx(0.55)}
    by_id = {d.id: d for d in decisions}
    assert "confidence 0.02 < median of label 'no' 0.04" in by_id["e2"].reason
    decisions, thresholds = Policy(keep=["best 40% confidence"]).apply(IDS, SignalSet([table]), groups=labels)
    assert kept(decisions) == ["e6", "e7", "e8", "e9"]  # two of five per label
    assert set(thresholds["best 40% confidence"]) == {"yes", "no"}


def test_per_label_rules_fail_loudly_where_they_mean_nothing():
    labels = {i: i for i in IDS}  # open-ended responses: every example its own label
    with pytest.raises(PolicyError, match="for classification data: 10 distinct responses"):
        Policy(keep=["confidence>=median"]).apply(IDS, signals(), groups=labels)
    with pytest.raises(PolicyError, match="have none"):
        Policy(keep=["confidence>=median"]).apply(IDS, signals(), groups={"e0": "a"})
    halves = {i: "ab"[n % 2] for n, i in enumerate(IDS)}
    with pytest.raises(PolicyError, match="takes a share"):
        Policy(keep=["best 3 confidence"]).apply(IDS, signals(), groups=halves)


def test_recipe_filter_step_per_label(tmp_path):
    from tamis.curate.steps import StepContext, get_step
    from tamis.records import chat_example
    from tamis.store import Workspace

    examples = [chat_example([{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": "yes" if n % 2 else "no"}],
                             id=i) for n, i in enumerate(IDS)]
    SignalTable.from_rows([{"id": i, "confidence": n / 10 + (1.0 if n % 2 else 0)} for n, i in enumerate(IDS)]
                          ).write(tmp_path / "score")
    ctx = StepContext(workspace=Workspace(tmp_path / "ws"), out_dir=tmp_path / "step")
    step = get_step("filter")
    assert {ex.response for ex in examples if ex.id in kept(step(examples, {"scores": str(tmp_path / "score")}, ctx))
            } == {"yes"}
    decisions = step(examples, {"scores": str(tmp_path / "score"), "per_label": True}, ctx)
    assert kept(decisions) == ["e4", "e5", "e6", "e7", "e8", "e9"]
