"""Metrics and bootstrap CIs (no models)."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from tamis.evaluate.bootstrap import bootstrap, mean_ci
from tamis.evaluate.metrics import contains_answer, exact_match, score_outputs, token_f1


def test_short_answer_metrics():
    assert exact_match("The Paris.", "paris") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0
    assert contains_answer("It is Paris, of course.", "Paris") == 1.0
    assert contains_answer("Parisian food", "Paris") == 0.0
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))


def test_corpus_metrics_match_sacrebleu_and_have_cis():
    preds = ["the cat is on the mat", "there is a dog", "hello world", "a b c d e f"]
    refs = ["the cat sat on the mat", "there is a big dog", "hello there world", "a b c d e g"]
    rows, summary = score_outputs(preds, refs, ["bleu", "corpus_chrf", "ter", "exact_match"], n_resamples=200)
    assert summary["bleu"]["value"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert summary["ter"]["value"] == pytest.approx(sacrebleu.corpus_ter(preds, [refs]).score)
    for name in ("bleu", "corpus_chrf", "ter"):
        assert summary[name]["ci_low"] <= summary[name]["value"] <= summary[name]["ci_high"]
    assert set(rows[0]) == {"bleu", "chrf", "ter", "exact_match"}


def test_bootstrap_interval_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = mean_ci(rng.normal(1.0, 1.0, 30))
    large = mean_ci(rng.normal(1.0, 1.0, 3000))
    assert small.low < 1.0 < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert np.isnan(bootstrap(0, lambda idx: 0.0).value)


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match="unknown metric"):
        score_outputs(["a"], ["a"], ["rouge9"])


def test_length_matched_auroc_removes_a_length_only_detector():
    import numpy as np

    from tamis.evaluate.detection import evaluate_signals

    rng = np.random.default_rng(0)
    n = 400
    bad = rng.random(n) < 0.3
    lengths = np.where(bad, rng.normal(300, 60, n), rng.normal(200, 60, n)).round()  # wrong answers run longer
    real = np.where(bad, 0.0, 1.0) + rng.normal(0, 0.7, n)  # knows badness, not length (higher = better)
    rows = [{"id": str(i), "brevity": -float(lengths[i]), "detector": float(real[i])} for i in range(n)]
    bad_ids = {str(i) for i in range(n) if bad[i]}
    results = evaluate_signals(rows, bad_ids, {"brevity": 1, "detector": 1}, n_resamples=200, lengths=list(lengths))
    baseline = results["response_length"]
    assert baseline["baseline"] == "longer = worse" and baseline["auroc"]["value"] > 0.8
    assert results["brevity"]["auroc"]["value"] > 0.8  # looks like a detector...
    matched = results["brevity"]["length_matched_auroc"]
    assert matched["ci_low"] < 0.6 and matched["value"] < 0.65  # ...until length is held fixed
    assert results["detector"]["length_matched_auroc"]["value"] > 0.75  # a real detector survives matching
