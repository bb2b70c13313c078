"""Paired bootstrap statistics on synthetic numbers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.evaluate.paired import (
    format_p,
    paired_difference,
    recovered_share,
    resampled_means,
    two_sided_p,
    verdict,
)


def _accuracy(rng: np.random.Generator, p: float, seeds: int, items: int) -> np.ndarray:
    return (rng.random((seeds, items)) < p).astype(float)


def test_identical_variants_give_p_one_and_a_ci_of_zero() -> None:
    rng = np.random.default_rng(1)
    scores = _accuracy(rng, 0.7, 3, 300)
    d = paired_difference({"a": scores, "b": scores.copy()}, "a", "b", metric="accuracy", n_resamples=2000)
    assert d.diff == 0 and d.low <= 0 <= d.high
    assert d.p_value == pytest.approx(1.0)
    assert not d.detected
    assert "no difference detected at this size" in verdict(d)
    assert "300 test items x 3 seeds" in verdict(d)


def test_a_known_shift_is_detected_with_the_right_size() -> None:
    """Item-level noise shared by both variants (paired) plus a true +10 point gain on a random 10% of
    items: the CI must hold +10 and exclude 0."""
    rng = np.random.default_rng(2)
    base = _accuracy(rng, 0.6, 3, 400)
    better = base.copy()
    flip = (rng.random(base.shape) < 0.25) & (base == 0)  # wrong -> right on ~10% of all items
    better[flip] = 1.0
    true_gain = better.mean() - base.mean()
    d = paired_difference({"curated": better, "raw": base}, "curated", "raw", metric="accuracy", n_resamples=4000)
    assert d.diff == pytest.approx(true_gain)
    assert d.low > 0 and d.low < true_gain < d.high
    assert d.p_value < 0.001
    line = verdict(d)
    assert line.startswith("curated beats raw by +") and "points" in line and "p < " in line


def test_a_loss_reads_as_worse() -> None:
    rng = np.random.default_rng(3)
    base = _accuracy(rng, 0.9, 2, 300)
    worse = np.where(rng.random(base.shape) < 0.3, 0.0, base)
    d = paired_difference({"random": worse, "raw": base}, "random", "raw", metric="accuracy", n_resamples=2000)
    assert d.high < 0 and "is worse than raw by -" in verdict(d)


def test_pairing_detects_what_unpaired_noise_would_hide() -> None:
    """A small consistent gain on top of large item-to-item variance: paired resampling removes the
    shared item difficulty, so a +2 point gain on 500 items is detected."""
    rng = np.random.default_rng(4)
    difficulty = rng.normal(0, 30, 500)
    base = np.atleast_2d(50 + difficulty)
    better = base + 2 + rng.normal(0, 1, base.shape)
    d = paired_difference({"v": better, "b": base}, "v", "b", metric="chrf", n_resamples=2000)
    assert d.low > 1.5 and d.high < 2.5
    assert "points" not in verdict(d)  # chrF is on its own 0-100 scale


def test_no_effect_is_not_detected_in_most_null_experiments() -> None:
    """Calibration: two variants with the same true accuracy, independent noise: the 95% CI should
    exclude 0 in about 5% of experiments (here: at most 9% of 200; measured 3.7% over 300)."""
    rng = np.random.default_rng(5)
    detected = 0
    for _ in range(200):
        a, b = _accuracy(rng, 0.7, 1, 200), _accuracy(rng, 0.7, 1, 200)
        detected += paired_difference({"a": a, "b": b}, "a", "b", n_resamples=500).detected
    assert detected <= 18


def test_seeds_are_resampled_too() -> None:
    """Seed-to-seed variation widens the CI: with seeds that disagree wildly, a difference seen on
    average is less certain than with the same mean difference on every seed."""
    rng = np.random.default_rng(6)
    base = _accuracy(rng, 0.5, 3, 300)
    steady = base.copy()
    steady[:, :30] = 1.0
    swingy = base.copy()
    swingy[0, :90] = 1.0  # one seed gains a lot, the others nothing
    d_steady = paired_difference({"v": steady, "b": base}, "v", "b", n_resamples=3000)
    d_swingy = paired_difference({"v": swingy, "b": base}, "v", "b", n_resamples=3000)
    assert d_steady.high - d_steady.low < d_swingy.high - d_swingy.low


def test_a_one_row_variant_is_constant_over_seeds() -> None:
    rng = np.random.default_rng(7)
    tuned = _accuracy(rng, 0.8, 3, 100)
    untuned = _accuracy(rng, 0.5, 1, 100)
    means = resampled_means({"tuned": tuned, "base": untuned}, n_resamples=500)
    assert means["tuned"].shape == means["base"].shape == (500,)
    with pytest.raises(ValueError, match="same test items"):
        resampled_means({"a": tuned, "b": untuned[:, :50]})
    with pytest.raises(ValueError, match="neither 1 nor 3 seeds"):
        resampled_means({"a": tuned, "b": tuned[:2]})


def test_recovered_share_of_the_noise_gap() -> None:
    """raw 0.6, clean 0.8, curated 0.7 on every item pattern: half the gap recovered."""
    n = 400
    idx = np.arange(n)
    raw = (idx % 10 < 6).astype(float)[None, :]
    clean = (idx % 10 < 8).astype(float)[None, :]
    curated = (idx % 10 < 7).astype(float)[None, :]
    scores = {"raw": raw, "clean": clean, "curated": curated}
    means = resampled_means(scores, n_resamples=2000)
    r = recovered_share(scores, "curated", "raw", "clean", means)
    assert r.share == pytest.approx(0.5)
    assert r.gap == pytest.approx(0.2) and r.gap_detected
    assert r.low < 0.5 < r.high and r.high - r.low < 0.3
    same = recovered_share(scores, "raw", "raw", "clean", means)
    assert same.share == 0 and same.low == 0 == same.high


def test_p_value_edges() -> None:
    assert two_sided_p(np.zeros(10)) == 1.0
    assert two_sided_p(np.ones(10)) == 0.0
    assert two_sided_p(np.array([-1.0, 1, 1, 1])) == pytest.approx(0.5)
    assert format_p(0.0, 10000) == "p < 0.0002"
    assert format_p(0.0123, 10000) == "p = 0.012"
