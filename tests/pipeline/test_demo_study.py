"""The demo's label-noise study end to end at tiny scale on the bundled SMS data and the real bundled
models: option scoring, the cross-fitted label filter, the same-size random control, the clean oracle,
and the study's answer (verdicts, recovered gap share, detection) in comparison.json and the report;
and the label filter's warm-up (cross-fitted) on the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tamis.pipeline.demo import demo_recipe_path
from tamis.pipeline.experiment import run_experiment
from tamis.pipeline.recipe import load_recipe

pytestmark = pytest.mark.slow

TINY = ["data.source.params.n_train=16", "data.source.params.n_test=12", "train.max_steps=2", "train.batch_size=4",
        "variants.label-filter.0.label_filter.warmup.max_steps=1", "eval.n_resamples=50",
        "compare.n_resamples=200", "eval.base_model=true"]


def test_demo_study_tiny(workspace, tmp_path):
    recipe = load_recipe(demo_recipe_path(), TINY)
    result = run_experiment(recipe, workspace, tmp_path / "out")
    out = result.out_dir
    assert [r["variant"] for r in result.rows] == ["raw", "label-filter", "random-same-size", "clean",
                                                    "base (untuned)"]
    n = {r["variant"]: r["n_train"] for r in result.rows}
    assert n["raw"] == n["clean"] == 16 and n["random-same-size"] == n["label-filter"] <= 16
    comparison = json.loads((out / "comparison.json").read_text())
    entry = comparison["models"]["transformers:smollm2"]
    assert comparison["metric"] == "accuracy" and entry["n_items"] == 12 and entry["n_seeds"] == 1
    assert {d["variant"] for d in entry["differences"]} == {"label-filter", "random-same-size", "clean",
                                                            "base (untuned)"}
    for d in entry["differences"]:
        assert d["low"] <= d["diff"] <= d["high"] and 0 <= d["p_value"] <= 1
        assert any(w in d["verdict"] for w in ("beats raw", "worse than raw", "no difference detected"))
    assert {r["variant"] for r in entry["recovered"]} == {"label-filter", "random-same-size"}
    detection = comparison["detection"]
    assert detection["raw"]["n_flagged"] == round(0.3 * 16) and detection["raw"]["n_dropped"] == 0
    assert "label-filter" in detection and "random-same-size" in detection
    assert "auroc" in detection["label-filter"]  # its out-of-fold label_confidence, as a detector
    outputs = [json.loads(x) for x in (out / "runs" / "raw" / "transformers_smollm2" / "seed0" / "eval" /
                                       "outputs.jsonl").read_text().splitlines()]
    assert len(outputs) == 12 and set(outputs[0]["option_logprobs"]) == {"yes", "no"}
    assert outputs[0]["prediction"] == max(outputs[0]["option_logprobs"], key=outputs[0]["option_logprobs"].get)
    # raw, the two fold warm-ups, label-filter, random, clean
    assert len(list((workspace.root / "trained").iterdir())) == 6
    html = (out / "report.html").read_text()
    assert html.index("Verdict") < html.index("Results") < html.index("<details>")
    # a rerun reuses every finished stage and computes the same answer
    again = run_experiment(load_recipe(demo_recipe_path(), TINY), workspace, tmp_path / "out")
    assert json.dumps(again.comparison["models"]) == json.dumps(result.comparison["models"])


def test_cross_fitted_label_filter_scores_each_row_with_a_model_that_did_not_see_it(workspace, tmp_path):
    """folds: 2 trains one warm-up per fold on the other fold and scores each row once, out of fold."""
    import tamis.pipeline.label_curation  # noqa: F401  (registers label_filter)
    from tamis.curate.steps import StepContext, get_step
    from tamis.pipeline.builders import NoisyLabelsParams, noisy_labels
    from tamis.pipeline.demo import demo_sms_path
    from tamis.train.sft import TRAINING_INFO, data_fingerprint

    train = noisy_labels(NoisyLabelsParams(path=str(demo_sms_path()), n_train=8, n_test=2, noise=0.5), Path)["train"]
    ctx = StepContext(workspace=workspace, out_dir=tmp_path / "step")
    decisions = get_step("label_filter")(train, {"folds": 2, "warmup": {"max_steps": 1, "batch_size": 4}}, ctx)
    assert [d.id for d in decisions] == [ex.id for ex in train]
    assert all("cross-fitted" in d.reason for d in decisions)
    assert all(0 <= d.scores["label_confidence"] <= 1 for d in decisions)
    seen = set()
    for k in range(2):
        info = json.loads((tmp_path / "step" / f"fold{k}" / "adapter" / TRAINING_INFO).read_text())
        seen.add(info["data_fingerprint"])
    assert len(seen) == 2 and data_fingerprint(train) not in seen  # each fold trained on part of the data
