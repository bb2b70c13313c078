"""The study end to end at tiny sizes (1 seed, capped steps), through the CLI; then it resumes."""

import json

import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.signals.registry import read_signals

pytestmark = pytest.mark.slow


def test_synthetic_study_cli_writes_table_plots_report_and_resumes(shared_data, workspace, tmp_path):
    out = tmp_path / "study"
    args = ["experiment", "synthetic", "--task", "financial_phrasebank", "--data-root", str(shared_data),
            "--n-per-label", "3", "--test-size", "30", "--seeds", "0", "--max-steps", "2",
            "--out", str(out), "--workspace", str(workspace.root)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("table.md", "report.html", "metrics.png", "diversity.png", "agreement.png", "manifest.json",
                 "train-real.jsonl", "train-zero-shot.jsonl", "train-few-shot.jsonl", "test.jsonl",
                 "rejected-zero-shot.jsonl", "rejected-few-shot.jsonl", "diversity_items.jsonl"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    sets = {r["set"]: r for r in res["table"]}
    assert set(sets) == {"real", "zero-shot", "few-shot"}
    sizes = {r["n_train"] for r in sets.values()}
    assert len(sizes) == 1  # same size
    for r in sets.values():
        assert 0 <= r["macro_f1"] <= 1 and 0 <= r["accuracy"] <= 1 and 0 < r["remote_clique"] <= 2
    agreement = res["agreement"]
    assert agreement["thresholds"] == sorted(agreement["thresholds"]) and agreement["thresholds"][-1] == 1.0
    assert agreement["n_items"][0] == 30 and set(agreement["sets"]) == set(sets)
    gold = [json.loads(line)["label"] for line in open(out / "test.jsonl")]
    for c in res["comparison"]:  # each generated set against real, paired over the same 30 test texts
        assert c["baseline"] == "real" and c["n_items"] == 30 and c["n_seeds"] == 1 and c["low"] <= c["diff"] <= c["high"]
        assert abs(c["diff"] - (sets[c["variant"]]["accuracy"] - sets["real"]["accuracy"])) < 1e-9
        assert c["verdict"] in (out / "table.md").read_text()
        assert " ".join(c["verdict"].split()) in " ".join(result.output.split())  # printed (rich may wrap it)
    assert {c["variant"] for c in res["comparison"]} == {"zero-shot", "few-shot"} and len(gold) == 30
    for name in ("zero-shot", "few-shot"):
        gen = res["generation"][name]
        assert gen["attempts"] == gen["accepted"] + gen["rejected"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["generator"].startswith("llamacpp:")
    assert "train_evaluate" in manifest["timings_s"]
    assert "Table 1" in (out / "table.md").read_text()
    # a second run finds every generation and every trained model's predictions in the cache
    misses = workspace.cache.misses
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "results.json").read_text())["table"] == res["table"]
    assert workspace.cache.misses == misses


def test_score_commands(shared_data, tmp_path):
    runner = CliRunner()
    ratings = shared_data / "lewidi_multi_annotator" / "ArMIS.ratings_long.tsv"
    result = runner.invoke(app, ["score", "agreement", str(ratings), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and (tmp_path / "a" / "manifest.json").is_file()
    rows = read_signals(tmp_path / "a").rows()  # a run folder with signals.parquet
    assert len(rows) == 943 and all(0 < r["agreement"] <= 1 for r in rows)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"x{i}", "text": t, "label": "a"}) + "\n" for i, t in
                            enumerate(["the cat sat", "the cat sat", "stock markets fell sharply today"])))
    result = runner.invoke(app, ["score", "diversity", str(data), "--out", str(tmp_path / "div"),
                                 "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in read_signals(tmp_path / "div").rows()}
    assert rows["x0"]["nearest_id"] == "x1" and rows["x0"]["chamfer"] == pytest.approx(0, abs=1e-6)
    bad = runner.invoke(app, ["score", "agreement", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "no such file" in bad.output
