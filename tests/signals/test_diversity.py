"""Remote Clique and Chamfer: exact against a naive all-pairs computation (sklearn)."""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from tamis.signals.diversity import (chamfer_contributions, diversity, diversity_table, nearest_other,
                                     remote_clique_contributions)


def naive(x):
    d = pairwise_distances(x, metric="cosine")
    np.fill_diagonal(d, np.nan)  # j != i
    return np.nanmean(d, axis=1), np.nanmin(d, axis=1)


@pytest.mark.parametrize("method", ["blocked", "faiss"])
def test_matches_naive_all_pairs(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 24)).astype(np.float32)
    rc, ch = naive(x)
    np.testing.assert_allclose(remote_clique_contributions(x), rc, atol=1e-5)
    np.testing.assert_allclose(chamfer_contributions(x, method=method, block=128), ch, atol=1e-5)
    d = diversity(x, method=method)
    assert d.remote_clique == pytest.approx(rc.mean(), abs=1e-6)
    assert d.chamfer == pytest.approx(ch.mean(), abs=1e-6)


@pytest.mark.parametrize("method", ["blocked", "faiss"])
def test_duplicates_are_nearest_and_self_is_excluded(method):
    x = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    idx, sims = nearest_other(x, method=method)
    assert idx[0] == 1 and idx[1] == 0
    ch = chamfer_contributions(x, method=method)
    assert ch[0] == pytest.approx(0) and ch[2] == pytest.approx(1)
    # item 0: distances 0, 1, 1 to the others -> 2/3 (a self-inclusive mean would give 1/2)
    assert remote_clique_contributions(x)[0] == pytest.approx(2 / 3)


def test_less_diverse_set_scores_lower_and_rows_name_neighbours():
    rng = np.random.default_rng(1)
    spread = rng.normal(size=(200, 16))
    clustered = rng.normal(size=(1, 16)) + 0.05 * rng.normal(size=(200, 16))
    a, b = diversity(spread), diversity(clustered)
    assert b.remote_clique < a.remote_clique and b.chamfer < a.chamfer
    rows = diversity_table([f"e{i}" for i in range(200)], a).rows()
    assert rows[0]["id"] == "e0" and rows[0]["nearest_id"] != "e0"
    assert np.mean([r["chamfer"] for r in rows]) == pytest.approx(a.chamfer)


def test_degenerate_sizes():
    assert np.isnan(diversity(np.ones((1, 4))).remote_clique)
    assert diversity(np.zeros((0, 4))).n == 0
    with pytest.raises(ValueError):
        nearest_other(np.ones((3, 2)), method="annoy")
