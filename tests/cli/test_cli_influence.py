"""End to end on real data with the bundled model: WMT22 de-en references as seeds, system outputs as candidates."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.signals.registry import read_signals


def _write_wmt(shared_data, tmp_path):
    folder = shared_data / "wmt22_general_zhen_deen"
    src = [json.loads(line) for line in open(folder / "generaltest2022.de-en.jsonl", encoding="utf-8")][:12]
    hyps = [json.loads(line) for line in open(folder / "generaltest2022.de-en.system_outputs.jsonl", encoding="utf-8")]
    by_line = {s["line_no"]: s for s in src}
    seed, cands = tmp_path / "seed.jsonl", tmp_path / "cands.jsonl"
    seed.write_text("".join(json.dumps({"id": f"ref-{s['line_no']}", "source": s["src"], "target": s["ref_A"],
                                        "source_lang": "de", "target_lang": "en"}) + "\n" for s in src[:2]))
    rows = [h for h in hyps if h["line_no"] in (11, 12)][:6]
    cands.write_text("".join(json.dumps({"id": f"{h['line_no']}-{h['system']}", "source": by_line[h["line_no"]]["src"],
                                         "target": h["hyp"], "source_lang": "de", "target_lang": "en"}) + "\n" for h in rows))
    return seed, cands


@pytest.mark.slow
def test_score_influence_then_select(shared_data, tmp_path, models_dir):
    seed, cands = _write_wmt(shared_data, tmp_path)
    out = tmp_path / "out"
    args = ["score", "influence", str(cands), "--seed-set", str(seed), "-w", str(tmp_path / "ws"), "-o", str(out),
            "--hessian", "kfac", "--projection-dim", "512", "--max-length", "96", "--batch-size", "6", "--lora-r", "4"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    table = pq.read_table(out / "influence.parquet").to_pylist()
    signals = read_signals(out)  # the common signal table, beside the G-DIG files
    assert signals.ids == [r["id"] for r in table] and signals.value_map("influence_mean")
    assert len(table) == 6 and all(len(r["influence_batches"]) == 1 for r in table)
    assert len({round(r["influence_mean"], 12) for r in table}) == 6  # real, distinct scores
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["features_computed"] == 6 and "positive" in manifest["sign"]
    from tamis.plan import read_throughput

    measured = read_throughput(tmp_path / "ws")["transformers:smollm2"]["gradients"]  # for --dry-run estimates
    assert measured["calls"] == 6 + 6 + 2 and measured["tokens"] > 0 and measured["seconds"] > 0  # factors, cands, seeds
    plan = runner.invoke(app, args + ["--dry-run", "--json"])
    assert plan.exit_code == 0, plan.output
    (row,) = [op for op in json.loads(plan.output)["operations"] if op["op"] == "gradients"]
    assert row["calls"] == 6 + 6 + 2 and row["seconds"] > 0

    again = runner.invoke(app, args)  # a re-run reuses factors and features
    assert again.exit_code == 0, again.output
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["features_computed"] == 0 and counts["factors_reused"] is True
    assert pq.read_table(out / "influence.parquet").column("influence_mean").to_pylist() == [r["influence_mean"] for r in table]

    short = [{"96": "8", str(out): str(tmp_path / "short")}.get(a, a) for a in args]  # --max-length 8
    refused = runner.invoke(app, short)
    assert refused.exit_code == 2 and "prompt alone is longer than the gradient token limit" in refused.output

    sel = runner.invoke(app, ["select", str(cands), "--scores", str(out), "--rule", "mean", "--budget", "2", "--clusters", "2"])
    assert sel.exit_code == 0, sel.output
    decisions = [json.loads(line) for line in open(out / "select" / "decisions.jsonl")]
    assert len(decisions) == 6 and all(d["reason"] for d in decisions)
    n_selected = sum(d["action"] == "keep" for d in decisions)
    assert n_selected == min(2, sum(r["influence_mean"] > 0 for r in table))
    assert len(open(out / "select" / "selected.jsonl").readlines()) == n_selected
    per_label = runner.invoke(app, ["select", str(cands), "--scores", str(out), "--per-label", "-o", str(tmp_path / "pl")])
    assert per_label.exit_code == 2 and "6 distinct responses among 6 candidates" in per_label.output  # translations
