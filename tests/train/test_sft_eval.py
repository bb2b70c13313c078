"""LoRA SFT on the bundled model, resuming from its checkpoint, then evaluating the adapter."""

from __future__ import annotations

import json

import pytest

from tamis.errors import OutputConflict
from tamis.evaluate.run import EvalSettings, run_eval
from tamis.io import read_dataset
from tamis.models import GenerationParams, load_llm
from tamis.pipeline.demo import demo_data_path
from tamis.train.sft import SFTSettings, train_sft

pytestmark = pytest.mark.slow


def test_lora_sft_saves_resumes_and_loads(tmp_path, workspace):
    examples = read_dataset(demo_data_path()).examples[:12]
    settings = SFTSettings(max_steps=2, batch_size=4, eval_fraction=0.0, save_steps=1, max_length=128)
    first = train_sft(examples, settings, tmp_path / "sft", workspace)
    assert first.resumed_from is None and (first.model_dir / "adapter_model.safetensors").is_file()
    info = json.loads((first.model_dir / "tamis_training.json").read_text())
    assert info["data_fingerprint"] and info["base_model"] == "transformers:smollm2" and info["n_train"] == 12
    assert 0 < first.metrics["train_loss"] < 10

    again = train_sft(examples, settings, tmp_path / "sft", workspace)  # finished: returned as it is
    assert again.reused and again.model_dir == first.model_dir and again.metrics == first.metrics

    (tmp_path / "sft" / ".complete").unlink()  # as if killed after its last checkpoint
    second = train_sft(examples, settings, tmp_path / "sft", workspace)
    assert second.resumed_from and second.resumed_from.endswith("checkpoint-2") and not second.reused
    assert json.loads((tmp_path / "sft" / "manifest.json").read_text())["resumed_from"] == second.resumed_from

    longer = SFTSettings(max_steps=3, batch_size=4, eval_fraction=0.0, save_steps=1, max_length=128)
    with pytest.raises(OutputConflict, match="max_steps: 2 then, 3 now"):
        train_sft(examples, longer, tmp_path / "sft", workspace)
    with pytest.raises(OutputConflict, match="data_fingerprint"):
        train_sft(examples[:10], settings, tmp_path / "sft", workspace)

    tuned = load_llm(f"transformers:{second.model_dir}", workspace, cache=False)
    assert "+adapter@" in tuned.identity
    [[answer]] = tuned.generate([[{"role": "user", "content": "What is the capital of France?"}]],
                                GenerationParams(max_tokens=16))
    assert answer.strip()


def test_eval_scores_outputs_with_cis_and_joins_human_ratings(tmp_path, workspace, smollm2):
    data = tmp_path / "test.jsonl"
    rows = [{"id": "q1", "instruction": "What is the capital of France? Answer with one word.", "output": "Paris"},
            {"id": "q2", "instruction": "What is 2 + 2? Answer with a number.", "output": "4"},
            {"id": "q3", "instruction": "Name the largest planet in the solar system, one word.", "output": "Jupiter"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("id,rater,score\nq1,ann1,5\nq1,ann2,4\nq2,ann1,2\n")
    result = run_eval(EvalSettings(model="transformers:smollm2", data=str(data), max_tokens=16,
                                   ratings=str(ratings), n_resamples=100), workspace)
    m = result.summary["metrics"]
    assert set(m) == {"exact_match", "accuracy", "token_f1", "chrf", "human_rating"}
    assert m["accuracy"]["value"] >= 1 / 3  # it knows the capital of France
    assert m["human_rating"]["value"] == pytest.approx((4.5 + 2) / 2)
    out_rows = [json.loads(line) for line in (result.out_dir / "outputs.jsonl").read_text().splitlines()]
    assert out_rows[0]["human"] == {"mean": 4.5, "n": 2} and "prediction" in out_rows[0]
    assert (result.out_dir / "manifest.json").is_file() and (result.out_dir / "settings.json").is_file()

    again = run_eval(EvalSettings(model="transformers:smollm2", data=str(data), max_tokens=16,
                                  ratings=str(ratings), n_resamples=100), workspace)
    assert again.reused and again.summary == result.summary and again.rows == out_rows
    with pytest.raises(OutputConflict, match="max_tokens: 16 then, 8 now"):
        run_eval(EvalSettings(model="transformers:smollm2", data=str(data), max_tokens=8, ratings=str(ratings),
                              n_resamples=100), workspace)
    ratings.write_text("id,rater,score\nq1,ann1,1\n")  # a changed input is recomputed, not reused
    changed = run_eval(EvalSettings(model="transformers:smollm2", data=str(data), max_tokens=16,
                                    ratings=str(ratings), n_resamples=100), workspace)
    assert not changed.reused and changed.summary["metrics"]["human_rating"]["value"] == 1


def test_weighted_sft_records_its_weights(tmp_path, workspace):
    examples = read_dataset(demo_data_path()).examples[:8]
    settings = SFTSettings(max_steps=1, batch_size=4, eval_fraction=0.0, max_length=64)
    weights = [0.1, 1.0, 0.5, 0.5, 1.0, 0.1, 0.2, 0.9]
    result = train_sft(examples, settings, tmp_path / "weighted", workspace, weights=weights)
    manifest = json.loads((tmp_path / "weighted" / "manifest.json").read_text())
    assert manifest["weights"]["min"] == pytest.approx(0.1) and manifest["weights"]["max"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "weighted" / "settings.json").read_text())["settings"]["weights_fingerprint"]
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    with pytest.raises(OutputConflict, match="weights_fingerprint"):  # other weights: another training
        train_sft(examples, settings, tmp_path / "weighted", workspace, weights=weights[::-1])
