"""The CLEAR commands end to end on a tiny data set with the bundled model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.curate.decisions import read_decisions
from tamis.signals.registry import read_signals

runner = CliRunner()
ROWS = [("What is the capital of France?", "Paris is the capital of France.", False),
        ("How many legs does a spider have?", "A spider has eight legs.", False),
        ("What colour is the sky on a clear day?", "Paris is the capital of France.", True),
        ("What is 2 + 2?", "A spider has eight legs.", True)]


@pytest.mark.slow
def test_score_filter_correct_evaluate(tmp_path, models_dir):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "instruction": q, "input": "", "output": a,
                                        "swapped": bad}) + "\n" for i, (q, a, bad) in enumerate(ROWS)))
    ws = ["-w", str(tmp_path / "ws")]
    res = runner.invoke(app, ["score", "confidence", str(data), "--k", "2", "--max-tokens", "16",
                              "--out", str(tmp_path / "score"), *ws])
    assert res.exit_code == 0, res.output
    signals = read_signals(tmp_path / "score").rows()
    assert {s["id"] for s in signals} == {"e0", "e1", "e2", "e3"}
    for key in ("confidence", "observed_consistency", "self_reflection", "loglik_mean", "ifd", "judge", "random"):
        assert all(isinstance(s[key], float) for s in signals), key
    manifest = json.loads((tmp_path / "score" / "manifest.json").read_text())
    assert manifest["counts"]["scored"] == 4 and "llm" in manifest["models"]

    res = runner.invoke(app, ["filter", str(data), "--scores", str(tmp_path / "score"), "--out", str(tmp_path / "filter")])
    assert res.exit_code == 0, res.output
    decisions = read_decisions(tmp_path / "filter" / "decisions.jsonl")
    assert sorted(d.action for d in decisions) == ["drop", "drop", "keep", "keep"]
    assert all(d.step == "filter" and "confidence" in d.reason for d in decisions)

    res = runner.invoke(app, ["correct", str(data), "--decisions", str(tmp_path / "filter" / "decisions.jsonl"),
                              "--k", "2", "--max-tokens", "16", "--review-above", "0.0", "--out",
                              str(tmp_path / "correct"), *ws])
    assert res.exit_code == 0, res.output
    corrected = read_decisions(tmp_path / "correct" / "decisions.jsonl")
    assert len(corrected) == 4 and all(d.reason for d in corrected)
    for d in corrected:
        if d.step == "auto_correct":
            assert d.action in ("edit", "review", "drop") and 0 <= d.scores["judge_confidence"] <= 1
            candidate = d.evidence["candidate"]  # text is evidence, never a score
            assert candidate and (d.action == "drop" or d.corrected[-1]["content"] == candidate)

    res = runner.invoke(app, ["evaluate-detector", str(data), "--flag", "swapped", "--scores",
                              str(tmp_path / "score"), "--resamples", "50", "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "eval" / "detection.json").read_text())
    assert report["confidence"]["n"] == 4 and report["confidence"]["n_bad"] == 2
    assert 0 <= report["confidence"]["auroc"]["value"] <= 1


def test_missing_scores_is_a_clear_error(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    res = runner.invoke(app, ["filter", str(data), "--scores", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such signals file" in res.output


@pytest.mark.slow
def test_labelled_data_cannot_be_scored_for_confidence(tmp_path, models_dir):
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": "a"}) + "\n" for i in range(3)))
    res = runner.invoke(app, ["score", "confidence", str(data), "--out", str(tmp_path / "s"), "-w", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "none of the 3 examples can be scored" in res.output
