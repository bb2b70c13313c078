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
