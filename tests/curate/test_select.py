"""G-DIG selection: quality rules, clustering, budget, and a decision with a reason for every candidate."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.curate.select import SelectionConfig, quality_mask, round_robin, select


def test_quality_rules():
    scores = np.array([[1.0, 2.0], [3.0, -0.5], [-1.0, -2.0], [0.5, 0.1]])
    assert quality_mask(scores, "all").tolist() == [True, False, False, True]
    assert quality_mask(scores, "mean").tolist() == [True, True, False, True]
    assert quality_mask(scores, "topk", top_k=2).tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        quality_mask(scores, "topk")


def test_round_robin_spreads_the_budget_over_clusters():
    labels = np.array([0, 0, 0, 0, 1, 2])
    priority = np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    assert round_robin(labels, priority, 4) == [0, 4, 5, 1]


def test_select_every_candidate_gets_a_decision():
    rng = np.random.default_rng(0)
    # two well-separated gradient directions, 10 candidates each; half of each group helps all seed batches
    features = np.concatenate([rng.normal([5, 0, 0], 0.1, (10, 3)), rng.normal([0, 5, 0], 0.1, (10, 3))])
    batches = np.where(np.arange(20)[:, None] % 2 == 0, 1.0, -1.0) * np.ones((20, 3)) + rng.normal(0, 0.01, (20, 3))
    ids = [f"c{i}" for i in range(20)]
    decisions = select(ids, batches, features, SelectionConfig(rule="all", budget=4, clusters=2))
    assert [d.id for d in decisions] == ids
    chosen = [d for d in decisions if d.action == "keep"]
    assert len(chosen) == 4
    assert {d.scores["cluster"] for d in chosen} == {0, 1} and all(int(d.id[1:]) % 2 == 0 for d in chosen)
    failing = [d for d in decisions if d.scores["influence_n_positive"] == 0]
    assert failing and all(d.action == "drop" and "0/3 seed batches" in d.reason for d in failing)
    unsampled = [d for d in decisions if d.action == "drop" and d.scores["influence_n_positive"] == 3]
    assert len(unsampled) == 6 and all("not sampled" in d.reason for d in unsampled)


def test_per_label_selection_removes_a_label_offset_and_keeps_the_label_balance():
    # what the gdig-spam study measured: every "no" candidate has a positive mean influence and every "yes"
    # candidate a negative one (the tuned model favours "no"), while within each label the wrong rows
    # (the last 3 of each label here) score lowest
    rng = np.random.default_rng(1)
    labels = ["no"] * 10 + ["yes"] * 10
    within = np.tile(np.r_[np.linspace(3, 1, 7), -2.0, -2.5, -3.0], 2)
    offset = np.where(np.array(labels) == "no", 100.0, -100.0)
    batches = (offset + within)[:, None] + rng.normal(0, 0.01, (20, 4))
    features = rng.normal(0, 1, (20, 5))
    ids = [f"c{i}" for i in range(20)]
    wrong = {f"c{i}" for i in (7, 8, 9, 17, 18, 19)}

    plain = select(ids, batches, features, SelectionConfig(rule="mean", budget=8, clusters=2))
    assert {labels[ids.index(d.id)] for d in plain if d.action == "keep"} == {"no"}  # one label only

    per_label = select(ids, batches, features, SelectionConfig(rule="mean", budget=8, clusters=2, per_label=True),
                       labels=labels)
    kept = [d for d in per_label if d.action == "keep"]
    assert len(kept) == 8
    assert sorted(labels[ids.index(d.id)] for d in kept) == ["no"] * 4 + ["yes"] * 4
    assert not wrong & {d.id for d in kept}
    assert all(d.scores["influence_mean"] == pytest.approx(batches[ids.index(d.id)].mean()) for d in per_label)
    assert all("relative to its label's median" in d.reason for d in per_label if d.action == "keep")
    with pytest.raises(ValueError, match="label"):
        select(ids, batches, features, SelectionConfig(per_label=True))


def test_split_budget_is_proportional_and_respects_room():
    from tamis.curate.select import split_budget

    assert split_budget(10, {"a": 30, "b": 10}, {"a": 30, "b": 10}) == {"a": 8, "b": 2}  # 7.5 / 2.5: ties by name
    assert split_budget(10, {"a": 30, "b": 10}, {"a": 3, "b": 10}) == {"a": 3, "b": 7}
    assert split_budget(5, {"a": 1, "b": 1, "c": 1}, {"a": 0, "b": 5, "c": 5}) in ({"a": 0, "b": 3, "c": 2},
                                                                                   {"a": 0, "b": 2, "c": 3})
