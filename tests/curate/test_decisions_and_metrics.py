"""Detector metrics, Auto-Filter rules, corruption and the answer parsers (no models)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tamis.curate.filter import FilterRule, auto_filter
from tamis.evaluate.corruption import swap_responses
from tamis.evaluate.detection import detection_metrics, evaluate_signals
from tamis.pipeline.clear import bad_ids_from
from tamis.records import Message, chat_example
from tamis.signals.confidence import extract_answer, normalise_answer, parse_letter, token_f1


def _examples(n: int):
    return [chat_example([Message("user", f"question {i}"), Message("assistant", "word " * (i + 1))], id=f"e{i}")
            for i in range(n)]


def test_auroc_and_auprc_match_sklearn_with_cis():
    rng = np.random.default_rng(0)
    bad = rng.random(80) < 0.3
    scores = rng.normal(size=80) - 2.0 * bad  # bad examples score lower
    m = detection_metrics(scores, bad, n_resamples=300)
    assert m["auroc"]["value"] == pytest.approx(roc_auc_score(bad, -scores))
    assert m["auprc"]["value"] == pytest.approx(average_precision_score(bad, -scores))
    assert m["auroc"]["ci_low"] < m["auroc"]["value"] < m["auroc"]["ci_high"]
    assert m["auroc"]["value"] > 0.7
    flipped = detection_metrics(-scores, bad, higher_is_better=False, n_resamples=50)
    assert flipped["auroc"]["value"] == pytest.approx(m["auroc"]["value"])


def test_filter_precision_recall_and_missing_scores():
    bad = np.array([1, 1, 0, 0, 0, 0])
    scores = np.array([0.1, np.nan, 0.2, 0.9, 0.8, 0.7])
    m = detection_metrics(scores, bad, flagged=[True, True, True, False, False, False], n_resamples=50)
    assert m["n"] == 5 and m["n_missing_score"] == 1
    assert m["precision"]["value"] == pytest.approx(0.5)  # flagged among scored: e0 (bad), e2 (good)
    assert m["recall"]["value"] == pytest.approx(1.0)
    assert "error" in detection_metrics([0.1, 0.2], [0, 0])


def test_evaluate_signals_respects_direction():
    rows = [{"id": f"e{i}", "confidence": float(i), "ifd": float(-i)} for i in range(10)]
    res = evaluate_signals(rows, {"e0", "e1", "e2"}, {"confidence": 1, "ifd": -1}, n_resamples=50)
    assert res["confidence"]["auroc"]["value"] == 1.0
    assert res["ifd"]["auroc"]["value"] == 1.0  # low IFD is good: -i is low for the good ones


def test_filter_median_quantile_fraction_threshold_and_review():
    rows = [{"id": f"e{i}", "confidence": i / 10} for i in range(10)] + [{"id": "none", "notes": ["empty response"]}]
    decisions, thr = auto_filter(rows)
    assert len(decisions) == 11 and thr == pytest.approx(0.45)
    actions = {d.id: d.action for d in decisions}
    assert sum(a == "keep" for a in actions.values()) == 5 and actions["none"] == "review"
    assert "empty response" in [d for d in decisions if d.id == "none"][0].reason
    assert all(d.reason and d.step == "filter" for d in decisions)
    kept = lambda rule: sum(d.action == "keep" for d in auto_filter(rows, rule)[0])  # noqa: E731
    assert kept(FilterRule(keep_fraction=0.3)) == 3
    assert kept(FilterRule(threshold=0.75)) == 2
    assert kept(FilterRule(quantile=0.2)) == 8
    ifd_rows = [{"id": f"e{i}", "ifd": i / 10} for i in range(10)]
    assert sum(d.action == "keep" for d in auto_filter(ifd_rows, FilterRule(signal="ifd", threshold=0.25))[0]) == 3
    with pytest.raises(ValueError):
        FilterRule(threshold=0.5, quantile=0.5)


def test_swap_responses_is_seeded_and_never_keeps_own_response():
    exs = _examples(20)
    a, bad = swap_responses(exs, 0.25, seed=3)
    b, bad2 = swap_responses(exs, 0.25, seed=3)
    assert bad == bad2 and len(bad) == 5 and [x.response for x in a] == [x.response for x in b]
    for orig, new in zip(exs, a):
        if orig.id in bad:
            assert new.response != orig.response and new.meta["corruption"]["kind"] == "swapped_response"
        else:
            assert new.response == orig.response
    matched, mbad = swap_responses(exs, 0.5, seed=1, length_matched=True)
    gap = lambda out, ids: np.mean([abs(len(o.response) - len(n.response)) for o, n in zip(exs, out) if o.id in ids])  # noqa: E731
    shuffled, sbad = swap_responses(exs, 0.5, seed=1)
    assert gap(matched, mbad) < gap(shuffled, sbad)


def test_bad_ids_from_meta_field():
    exs = [chat_example([Message("user", "q"), Message("assistant", "a")], id=f"e{i}", meta={"status": s})
           for i, s in enumerate(["ok", "blacklist", "too similar", "ok"])]
    bad, evaluated = bad_ids_from(exs, "status", ["blacklist"], ["ok"])
    assert bad == {"e1"} and evaluated == {"e0", "e1", "e3"}


def test_parsers():
    assert extract_answer("explanation: because.\nanswer: Paris") == "Paris"
    assert extract_answer("explanation: it is Paris") == "it is Paris"
    assert parse_letter("explanation: sure, answer: (B)") == "B"
    assert parse_letter("A") == "A" and parse_letter("I cannot tell") is None
    assert normalise_answer("The  Paris!") == "paris"
    assert token_f1("the capital is Paris", "Paris") == pytest.approx(0.5)  # "the" dropped: p=1/3, r=1
