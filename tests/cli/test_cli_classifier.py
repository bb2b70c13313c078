"""`tamis train classifier`: split, train the bundled MiniLM encoder, metrics with CIs, saved model."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from tamis.cli import app

pytestmark = pytest.mark.slow


def test_train_classifier_end_to_end(tmp_path, models_dir):
    spam = ["WIN a FREE prize now, text CLAIM to 80082", "URGENT! You have won a cash award, call now",
            "Free entry in a weekly competition, reply WIN", "Congratulations, you won a holiday, claim it today"]
    ham = ["Are we still meeting for lunch tomorrow?", "I'll be home late, don't wait for dinner",
           "Can you send me the notes from class?", "Happy birthday! See you at the party tonight"]
    rows = [{"text": f"{t} ({i})", "label": "spam"} for i in range(5) for t in spam]
    rows += [{"text": f"{t} ({i})", "label": "ham"} for i in range(5) for t in ham]
    data = tmp_path / "sms.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "clf"
    res = CliRunner().invoke(app, ["train", "classifier", str(data), "--max-steps", "8", "--batch-size", "8",
                                   "--learning-rate", "3e-4", "--out", str(out), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] == 32 and summary["n_eval"] == 8 and summary["labels"] == ["ham", "spam"]
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["label"] for p in preds) == ["ham"] * 4 + ["spam"] * 4  # stratified split
    macro = f1_score([p["label"] for p in preds], [p["prediction"] for p in preds], average="macro",
                     labels=["ham", "spam"], zero_division=0)
    m = summary["metrics"]["macro_f1"]
    assert m["value"] == pytest.approx(macro) and m["ci_low"] <= m["value"] <= m["ci_high"]
    assert (out / "model" / "config.json").is_file() and (out / "manifest.json").is_file()

    again = CliRunner().invoke(app, ["train", "classifier", str(data), "--max-steps", "8", "--batch-size", "8",
                                     "--learning-rate", "3e-4", "--out", str(out), "--workspace", str(tmp_path / "ws")])
    assert again.exit_code == 0 and "reused: this training was complete" in again.output
    other = CliRunner().invoke(app, ["train", "classifier", str(data), "--max-steps", "9", "--batch-size", "8",
                                     "--learning-rate", "3e-4", "--out", str(out), "--workspace", str(tmp_path / "ws")])
    assert other.exit_code == 2 and "max_steps: 8 then, 9 now" in other.output and "--overwrite" in other.output
