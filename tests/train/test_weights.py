"""Soft curation: weights from a signal's rank in its registered direction, and the sampler that uses them."""

from __future__ import annotations

import pytest

from tamis.errors import SignalError
from tamis.records import labelled_example
from tamis.signals.registry import SignalTable
from tamis.train.sft import WEIGHT_COLUMN, _weighted_trainer, check_trackers
from tamis.train.weights import signal_weights, weight_summary


@pytest.fixture
def scored(tmp_path):
    examples = [labelled_example(f"text {i}", "a", id=f"e{i}") for i in range(5)]
    # loglik_mean: higher is better; perplexity: lower is better (directions come from the registry)
    table = SignalTable.from_rows([{"id": f"e{i}", "loglik_mean": float(v), "perplexity": float(p)}
                                   for i, (v, p) in enumerate(zip([-3, -1, -2, -1, -5], [9, 2, 5, 2, 40]))])
    table.write(tmp_path / "run")
    return examples, tmp_path / "run"


def test_weights_follow_the_rank_in_the_signals_direction(scored):
    examples, run = scored
    by_loglik = signal_weights(examples, [run], "loglik_mean", floor=0.2)
    assert by_loglik[4] == pytest.approx(0.2) and by_loglik[1] == by_loglik[3] == max(by_loglik)  # ties share
    assert by_loglik[2] > by_loglik[0] > by_loglik[4]
    by_perplexity = signal_weights(examples, [run], "perplexity", floor=0.2)  # lower is better: same order
    assert by_perplexity == pytest.approx(by_loglik)
    summary = weight_summary(by_loglik)
    assert summary["min"] == pytest.approx(0.2) and 1 < summary["effective_n"] < 5


def test_weights_refuse_unknown_signals_and_unscored_examples(scored):
    examples, run = scored
    with pytest.raises(SignalError, match="did you mean"):
        signal_weights(examples, [run], "loglik_mea")
    extra = examples + [labelled_example("unscored", "a", id="e9")]
    with pytest.raises(SignalError, match="no value for 1 of 6 training examples \\(e.g. e9\\)"):
        signal_weights(extra, [run], "loglik_mean")


def test_weighted_sampler_draws_only_weighted_examples():
    def sampled() -> list[int]:
        trainer = _weighted_trainer(object, seed=0)()
        trainer.train_dataset = {WEIGHT_COLUMN: [0.0, 1.0, 0.0, 3.0]}  # the column TRL's preprocessing kept
        return list(trainer._get_train_sampler())

    drawn = sampled()
    assert len(drawn) == 4 and set(drawn) <= {1, 3}
    assert drawn == sampled()  # seeded


def test_trackers_are_checked_before_training():
    from tamis.errors import ConfigError

    assert check_trackers(()) == []
    with pytest.raises(ConfigError, match="did you mean tensorboard"):
        check_trackers(("tensorbord",))
