"""The LDS arithmetic on synthetic attributions whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.evaluate.lds import lds, per_seed_lds, predicted_outcomes, subset_masks


def test_subsets_are_seeded_halves():
    masks = subset_masks(10, 32, 0.5, seed=1)
    assert masks.shape == (32, 10) and (masks.sum(axis=1) == 5).all()
    assert (subset_masks(10, 32, 0.5, seed=1) == masks).all() and not (subset_masks(10, 32, 0.5, seed=2) == masks).all()
    with pytest.raises(ValueError, match="choose a subset"):
        subset_masks(3, 4, 0.1)


def test_an_exact_linear_attribution_scores_one_and_a_random_one_about_zero():
    rng = np.random.default_rng(0)
    n, s, m = 40, 6, 64
    truth = rng.normal(size=(n, s))  # positive = lowers the seed loss
    masks = subset_masks(n, m, seed=0)
    losses = 5.0 - predicted_outcomes(masks, truth) + rng.normal(scale=0.01, size=(m, s))
    exact = lds(masks, truth, losses)
    assert exact.value > 0.99 and exact.low > 0.95
    flipped = lds(masks, -truth, losses)  # the wrong sign convention is caught
    assert flipped.value < -0.99
    random = lds(masks, rng.normal(size=(n, s)), losses, n_resamples=200)
    assert abs(random.value) < 0.3


def test_a_seed_whose_loss_never_moves_is_left_out():
    masks = subset_masks(6, 8, seed=0)
    losses = np.ones((8, 2))
    losses[:, 1] = np.arange(8)
    values = per_seed_lds(predicted_outcomes(masks, np.ones((6, 2))), losses)
    assert np.isnan(values[0])  # constant loss (and constant prediction: every subset has 3 candidates)
    assert np.isnan(values[1])
