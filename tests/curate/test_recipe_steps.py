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
