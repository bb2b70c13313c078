"""The curation methods as recipe steps: CLEAR's confidence filter decides every example."""

from __future__ import annotations

import pytest

from tamis.io import read_dataset
from tamis.pipeline.demo import demo_data_path
from tamis.curate.steps import StepContext, get_step

pytestmark = pytest.mark.slow


def test_confidence_filter_step_keeps_about_half_with_reasons(tmp_path, workspace, smollm2):
    examples = read_dataset(demo_data_path()).examples[:6]
    decisions = get_step("confidence_filter")(
        examples, {"k": 2, "max_tokens": 16, "similarity": "token_f1"},
        StepContext(workspace=workspace, out_dir=tmp_path))
    assert [d.id for d in decisions] == [ex.id for ex in examples]
    assert {d.action for d in decisions} == {"keep", "drop"}
    assert sum(d.action == "keep" for d in decisions) == 3  # the median rule
    assert all(d.step == "confidence_filter" and "confidence" in d.scores and d.reason for d in decisions)


def test_weight_by_step_keeps_everything_with_weights_that_reach_training(tmp_path, workspace):
    from tamis.curate.decisions import apply_decisions
    from tamis.records import labelled_example
    from tamis.signals.registry import SignalTable
    from tamis.train.weights import example_weights

    examples = [labelled_example(f"text {i}", "a", id=f"e{i}") for i in range(4)]
    SignalTable.from_rows([{"id": f"e{i}", "perplexity": p} for i, p in enumerate([3.0, 30.0, 1.5, 8.0])]).write(
        tmp_path / "scores")
    step = get_step("weight_by")
    decisions = step(examples, {"signal": "perplexity", "scores": "scores", "floor": 0.25},
                     StepContext(workspace=workspace, out_dir=tmp_path, resolve=lambda r: tmp_path / r))
    assert [d.action for d in decisions] == ["keep"] * 4
    kept, dropped = apply_decisions(examples, decisions)
    assert not dropped and example_weights(kept) == pytest.approx([2 / 3 + 0.25 / 3, 0.25, 1.0, 0.5])
    assert "rank on perplexity" in decisions[0].reason and decisions[1].scores["perplexity"] == 30.0
    assert example_weights(examples) is None  # no weight_by step: plain training
    with pytest.raises(Exception, match="needs signal"):
        step(examples, {"scores": "scores"}, StepContext(workspace=workspace, out_dir=tmp_path))


def test_cross_fitted_confidence_scores_each_example_with_the_fold_model_that_did_not_see_it(
        tmp_path, workspace, smollm2):
    """CLEAR fine-tunes first; cross-fitting (folds: 2) keeps an example's judge from having trained on it."""
    import functools

    from tamis.curate.steps import fold_splits
    from tamis.models import load_llm
    from tamis.pipeline.crossfit import warm_up
    from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence

    examples = read_dataset(demo_data_path()).examples[:6]
    params = {"k": 2, "max_tokens": 8, "similarity": "token_f1", "folds": 2,
              "warmup": {"max_steps": 2, "batch_size": 2, "max_length": 64, "learning_rate": 0.001}}
    ctx = StepContext(workspace=workspace, out_dir=tmp_path, tune=functools.partial(warm_up, workspace=workspace))
    decisions = get_step("confidence_filter")(examples, params, ctx)
    assert [d.id for d in decisions] == [ex.id for ex in examples]
    by_id = {d.id: d for d in decisions}
    cfg = ConfidenceConfig(k=2, max_tokens=8, similarity="token_f1", seed=0)
    base = bsdetector_confidence(examples, smollm2, cfg).table.value_map("confidence")
    differs = 0
    for k, (train, held) in enumerate(fold_splits(len(examples), 2, seed=0)):
        spec = f"transformers:{tmp_path / f'fold{k}' / 'adapter'}"
        assert (tmp_path / f"fold{k}" / "adapter" / "adapter_config.json").is_file()
        scored = [examples[i] for i in held]
        direct = bsdetector_confidence(scored, load_llm(spec, workspace), cfg).table.value_map("confidence")
        for ex in scored:
            d = by_id[ex.id]
            assert d.evidence["confidence_model"] == spec and d.evidence["tuning"] == "cross-fitted"
            assert d.scores["confidence"] == pytest.approx(direct[ex.id])
            differs += abs(direct[ex.id] - base[ex.id]) > 1e-6
        assert not {examples[i].id for i in train} & {ex.id for ex in scored}
    assert differs > 0  # the tuned fold models judge differently from the base model
    assert sum(d.action == "keep" for d in decisions) == 3 and "cross-fitted model" in decisions[0].reason
