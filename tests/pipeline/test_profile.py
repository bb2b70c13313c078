"""The profiling job and the demo, on the bundled data and models."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.pipeline.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_writes_scored_data_manifest_and_summary(workspace, smollm2):
    result = run_demo(workspace, study=False).profile
    out = result.out_dir
    assert result.counts["read"] == 40 and result.counts["rejected"] == 4 and result.counts["kept"] == 36
    rows = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    assert len(rows) == 36
    for row in rows:
        s = row["signals"]
        assert s["loglik_mean"] < 0 and s["loglik_tokens"] > 0 and s["response_tokens"] > 0
        assert -1 <= s["nn_similarity"] <= 1
    table = pq.read_table(out / "signals.parquet")
    assert table.num_rows == 36 and "perplexity" in table.column_names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["models"]["llm"].startswith("transformers:smollm2")
    assert set(manifest["timings_s"]) >= {"read", "likelihood", "embed", "total"}
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert {q["kind"] for q in quarantined} == {"empty", "malformed_json", "duplicate_id", "wrong_type"}
    # The grossest flaw (a one-word reply to an email request) is the least likely response.
    assert result.flagged[0]["id"] == "demo-035"
    flawed = {r["id"] for r in rows if "flaw" in r.get("meta", {})}
    assert len(flawed & {f["id"] for f in result.flagged[:6]}) >= 3
    assert "Least likely responses" in (out / "summary.md").read_text()


def test_cli_demo_runs_the_main_job_end_to_end(tmp_path, models_dir):
    """`tamis demo` as `make demo` runs it: profile, then curate -> fine-tune -> evaluate -> report."""
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    assert "kept 36" in res.output and "rejected 4" in res.output
    demo = tmp_path / "ws" / "runs" / "demo"
    assert (demo / "manifest.json").is_file()
    study = json.loads((demo / "study" / "manifest.json").read_text())
    from tamis.pipeline.recipe import load_recipe

    recipe = load_recipe("demo-study")
    assert study["counts"]["runs"] == len(recipe.variants) * len(recipe.models) * len(recipe.seeds)
    assert "Does curation pay off" in res.output and (demo / "study" / "report.html").is_file()
    # the verdicts are computed by the run and printed, whatever they say
    assert any(w in res.output for w in ("beats raw", "worse than raw", "no difference detected"))
    assert "flaw detection on the bundled instructions" in res.output
