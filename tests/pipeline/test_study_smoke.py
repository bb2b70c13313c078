"""Each shipped study end to end at tiny scale: the shipped recipe with --set overrides (a handful of
examples, one optimiser step, a tiny eval), real bundled models, real data (skips without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.pipeline.experiment import run_study
from tamis.pipeline.recipe import load_recipe

pytestmark = pytest.mark.slow

TINY = ["train.max_steps=1", "train.batch_size=2", "train.max_length=128", "eval.limit=3", "eval.max_tokens=8",
        "eval.n_resamples=20"]


@pytest.fixture()
def data_root(shared_data, monkeypatch):
    monkeypatch.setenv("TAMIS_DATA_ROOT", str(shared_data))
    return shared_data


def _decisions(out, variant):
    return [json.loads(x) for x in (out / "variants" / variant / "decisions.jsonl").read_text().splitlines()]


def test_clear_study(data_root, workspace, tmp_path):
    recipe = load_recipe("clear", TINY + [
        "data.source.params={n_train: 8, n_test: 3, noise: 0.5, max_chars: 400, seed: 0}",
        "variants.auto-filter.0.confidence_filter={k: 2, max_tokens: 8, similarity: token_f1}",
        ("variants.auto-correct.0.auto_correct={k: 2, max_tokens: 8, similarity: token_f1, judge_k: 1, "
         "answer_max_tokens: 8, eta: 0.0}")])
    result = run_study(recipe, workspace, tmp_path / "out")
    out = result.out_dir
    assert [r["variant"] for r in result.rows] == ["raw", "auto-filter", "auto-correct"]
    n_raw, n_filtered, n_corrected = [r["n_train"] for r in result.rows]
    assert n_raw == 8 and 0 < n_filtered < 8 and n_filtered <= n_corrected <= 8
    assert all(set(r["metrics"]) == {"token_f1", "chrf"} for r in result.rows)
    train = [json.loads(x) for x in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert sum("corruption" in r.get("meta", {}) for r in train) == 4
    corrected = _decisions(out, "auto-correct")
    assert len(corrected) == 8 and {d["action"] for d in corrected} <= {"keep", "edit", "drop"}
    judged = [d for d in corrected if d["step"] == "auto_correct"]
    filtered = [d for d in _decisions(out, "auto-filter") if d["action"] == "drop"]
    assert len(judged) == len(filtered) == 8 - n_filtered  # the same confidence, so the same filter
    assert all("judge_confidence" in d["scores"] and d["reason"] for d in judged)
    # eta 0: every non-empty answer the judge saw replaces its target
    assert any(d["action"] == "edit" and d["corrected"][-1]["role"] == "assistant" for d in judged)
    counts = json.loads((out / "variants/auto-correct/step0-auto_correct/counts.json").read_text())
    assert counts["candidates"] == len(judged)
    assert "token_f1" in result.report.read_text()


def test_clear_spam_study_base_vs_cross_fitted_confidence(workspace, tmp_path):
    """The CLEAR study on a learnable task: base and cross-fitted BSDetector filters, the cross-fitted
    label filter on the same fold models (trained once), the controls, detection for each."""
    warmup = "{max_steps: 1, batch_size: 2, learning_rate: 0.001, eval_fraction: 0.0, max_length: 64}"
    recipe = load_recipe("clear-spam", TINY + [
        "data.source.params.n_train=8", "data.source.params.n_test=4", "seeds=[0]", "eval.base_model=false",
        f"variants.auto-filter-xfit.0.confidence_filter.warmup={warmup}",
        f"variants.label-filter-xfit.0.label_filter.warmup={warmup}"])
    result = run_study(recipe, workspace, tmp_path / "out")
    out = result.out_dir
    assert [r["variant"] for r in result.rows] == ["raw", "auto-filter", "auto-filter-xfit", "weight-xfit",
                                                   "label-filter-xfit", "random-same-size", "clean"]
    sizes = {r["variant"]: r["n_train"] for r in result.rows}
    assert sizes["auto-filter"] == sizes["auto-filter-xfit"] == sizes["random-same-size"] == 4  # the median rule
    xfit = _decisions(out, "auto-filter-xfit")
    assert {d["evidence"]["tuning"] for d in xfit} == {"cross-fitted"}
    assert len({d["evidence"]["confidence_model"] for d in xfit}) == 2  # two fold models
    assert not any("tuning" in (d.get("evidence") or {}) for d in _decisions(out, "auto-filter"))
    weighted = {d["id"]: d["scores"] for d in _decisions(out, "weight-xfit")}  # soft curation on the same signal
    assert sizes["weight-xfit"] == 8 and {i: w["confidence"] for i, w in weighted.items()} == {
        d["id"]: d["scores"]["confidence"] for d in xfit}
    best = max(weighted.values(), key=lambda w: w["confidence"])
    assert best["train_weight"] == 1.0 and min(w["train_weight"] for w in weighted.values()) == pytest.approx(0.1)
    info = "tamis_training.json"
    for k in (0, 1):  # the label filter's fold models are the confidence filter's, reused, not retrained
        mine = out / "variants/label-filter-xfit/step0-label_filter" / f"fold{k}" / "adapter" / info
        theirs = out / "variants/auto-filter-xfit/step0-confidence_filter" / f"fold{k}" / "adapter" / info
        assert json.loads(mine.read_text())["data_fingerprint"] == json.loads(theirs.read_text())["data_fingerprint"]
    detection = json.loads((out / "comparison.json").read_text())["detection"]
    assert detection["auto-filter"]["score"] == detection["auto-filter-xfit"]["score"] == "confidence"
    assert detection["label-filter-xfit"]["score"] == "label_confidence"
    assert all(0 <= detection[v]["auroc"]["value"] <= 1 for v in ("auto-filter", "auto-filter-xfit"))


def test_gdig_study_through_the_cli(data_root, workspace, tmp_path):
    # the shipped selection rules at a budget of 3 of 8 candidates; a cheap influence setting
    influence = ('{seed_set: "split:seed", hessian: kfac, projection_dim: 512, factor_limit: 4, '
                 'gradients: {lora_targets: [q_proj, v_proj]}, warmup: {max_steps: 1, batch_size: 2, max_length: 64}')
    variants = (f"{{quality-3: {{group: quality, x: 3, steps: [{{influence_select: {influence}, rule: topk, "
                "top_k: 3, clusters: 1}}]}, "
                f"gdig-3: {{group: gdig, x: 3, steps: [{{influence_select: {influence}, rule: mean, budget: 3, "
                "clusters: 2}}]}}")
    args = ["experiment", "run", "gdig", "--out", str(tmp_path / "out"), "--workspace", str(workspace.root),
            "--set", "data.source.params.n_candidates=8", "--set", "data.source.params.n_seed=2",
            "--set", "data.source.params.n_test=3", "--set", f"variants={variants}"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["quality-3", "gdig-3"]
    assert all(set(r["metrics"]) == {"bleu", "corpus_chrf", "ter"} for r in rows)  # translation metrics
    assert rows[0]["n_train"] == 3 and 0 < rows[1]["n_train"] <= 3
    # one warm-up adapter (G-DIG tunes on the candidates first) and one influence run shared by both variants
    runs = {(out / "variants" / v / "step0-influence_select" / "influence-run.txt").read_text() for v in ("quality-3", "gdig-3")}
    assert len(runs) == 1
    config = json.loads((Path(runs.pop().strip()) / "config.json").read_text())
    assert config["gradients"]["adapter"].endswith("warmup/adapter")
    quality = _decisions(out, "quality-3")
    assert len(quality) == 8 and sum(d["action"] == "keep" for d in quality) == 3
    assert all("influence_mean" in d["scores"] and d["reason"] for d in quality)
    # both variants used one shared influence run
    runs = {(out / "variants" / v / "step0-influence_select" / "influence-run.txt").read_text() for v in
            ("quality-3", "gdig-3")}
    assert len(runs) == 1
    assert "bleu.png" in (out / "report.html").read_text()


def test_hedit_study(data_root, workspace, tmp_path):
    recipe = load_recipe("hedit", TINY + ["seeds=[0]", "data.source.params.n_train=6", "data.source.params.n_test=3",
                                          "models=['transformers:smollm2?layers=4', 'transformers:smollm2?layers=10']"])
    result = run_study(recipe, workspace, tmp_path / "out")
    out = result.out_dir
    assert [(r["variant"], r["model"]) for r in result.rows] == [
        ("unedited", "transformers:smollm2?layers=4"), ("unedited", "transformers:smollm2?layers=10"),
        ("edited", "transformers:smollm2?layers=4"), ("edited", "transformers:smollm2?layers=10")]
    assert all(set(r["metrics"]) == {"bleu", "corpus_chrf", "ter"} for r in result.rows)
    unedited = [json.loads(x) for x in (out / "variants/unedited/train.jsonl").read_text().splitlines()]
    edited = [json.loads(x) for x in (out / "variants/edited/train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in unedited] == [r["id"] for r in edited]
    assert [r["meta"]["version"] for r in unedited + edited] == ["machine output"] * 6 + ["post-edit"] * 6
    outputs = (out / "runs/edited/transformers_smollm2_layers_10/seed0/eval/outputs.jsonl").read_text().splitlines()
    assert len(outputs) == 3


def test_synthetic_study(data_root, workspace, tmp_path):
    recipe = load_recipe("synthetic", ["n_per_label=3", "test_size=20", "seeds=[0]", "classifier.max_steps=2"])
    result = run_study(recipe, workspace, tmp_path / "out")
    assert {r["set"] for r in result.table} == {"real", "zero-shot", "few-shot"}
    assert (result.out_dir / "report.html").is_file() and result.counts["test"] == 20
