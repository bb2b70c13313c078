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
