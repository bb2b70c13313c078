"""A whole study from a recipe, tiny: variants x model, train, evaluate, report; a rerun skips the work."""

from __future__ import annotations

import json

import pytest

from tamis.errors import OutputConflict
from tamis.pipeline.demo import demo_data_path
from tamis.pipeline.experiment import run_experiment
from tamis.pipeline.recipe import load_recipe

pytestmark = pytest.mark.slow


def test_recipe_runs_reports_and_resumes(tmp_path, workspace, smollm2):
    data_dir = demo_data_path().parent
    recipe_file = tmp_path / "study.yaml"
    recipe_file.write_text(f"""
name: tiny
data: {{train: {data_dir / 'demo_instructions.jsonl'}, test: {data_dir / 'demo_test.jsonl'}}}
variants:
  raw: []
  likelihood-50: [{{likelihood_filter: {{quantile: 0.5}}}}]
  random-10: {{steps: [{{sample: {{n: 10}}}}], group: random, x: 10}}
  random-20: {{steps: [{{sample: {{n: 20}}}}], group: random, x: 20}}
models: [transformers:smollm2]
train: {{max_steps: 1, batch_size: 4, eval_fraction: 0.0, max_length: 64}}
eval: {{metrics: [accuracy], max_tokens: 8, limit: 3, n_resamples: 50, pairwise: {{baseline: raw}}}}
""")
    recipe = load_recipe(recipe_file)
    first = run_experiment(recipe, workspace, tmp_path / "out")
    assert [r["variant"] for r in first.rows] == ["raw", "likelihood-50", "random-10", "random-20"]
    assert [r["n_train"] for r in first.rows] == [36, 18, 10, 20]
    decisions = [json.loads(x) for x in (tmp_path / "out/variants/likelihood-50/decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 36 and all(d["reason"] for d in decisions)
    dropped = (tmp_path / "out/variants/likelihood-50/dropped.jsonl").read_text().splitlines()
    assert len(dropped) == 18
    assert "win_rate" not in first.rows[0]["metrics"]  # the baseline is not judged against itself
    for row in first.rows[1:]:
        win = row["metrics"]["win_rate"]
        assert win["wins"] + win["ties"] + win["losses"] == 3 and win["versus"].endswith("raw/transformers_smollm2/seed0/eval")
    html = first.report.read_text()
    assert "win_rate" in html and "0.5 is parity" in html
    assert "accuracy" in html and "accuracy_curve.png" in html and (tmp_path / "out/accuracy.png").is_file()

    finished = (tmp_path / "out/manifest.json").read_text()
    again = run_experiment(recipe, workspace, tmp_path / "out")
    assert again.rows == first.rows and again.comparison == json.loads((tmp_path / "out/comparison.json").read_text())
    assert (tmp_path / "out/manifest.json").read_text() == finished  # a finished study is returned as it is

    changed = load_recipe(recipe_file, ["eval.limit=2"])
    with pytest.raises(OutputConflict, match="eval.limit: 3 then, 2 now"):
        run_experiment(changed, workspace, tmp_path / "out")
    redone = run_experiment(changed, workspace, tmp_path / "out", overwrite=True)
    timings = json.loads((tmp_path / "out/manifest.json").read_text())["timings_s"]
    assert not [k for k in timings if k.startswith("train:")]  # every adapter was reused
    assert [len((tmp_path / "out" / r["eval_dir"] / "outputs.jsonl").read_text().splitlines())
            for r in redone.rows] == [2, 2, 2, 2]  # every evaluation was redone with the new limit
