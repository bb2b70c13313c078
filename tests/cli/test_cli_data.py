"""The CLI's data commands and its error handling (no models needed)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import tamis
from tamis.cli import app
from tamis.pipeline.demo import demo_data_path

runner = CliRunner()


def test_public_namespace_resolves():
    for name in tamis.__all__:
        assert getattr(tamis, name) is not None


def test_inspect_reports_format_counts_and_problems(tmp_path):
    res = runner.invoke(app, ["inspect", str(demo_data_path()), "--json", "--quarantine", str(tmp_path / "q.jsonl")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["format"] == "alpaca"
    assert report["counts"]["read"] == 40 and report["counts"]["rejected"] == 4
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 4


def test_inspect_human_output(tmp_path):
    res = runner.invoke(app, ["inspect", str(demo_data_path())])
    assert res.exit_code == 0 and "alpaca" in res.output and "rejected 4" in res.output


def test_convert_round_trips_through_messages(tmp_path):
    messages = tmp_path / "m.parquet"
    back = tmp_path / "a.jsonl"
    assert runner.invoke(app, ["convert", str(demo_data_path()), str(messages), "--to", "messages"]).exit_code == 0
    res = runner.invoke(app, ["convert", str(messages), str(back), "--to", "alpaca"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "a.jsonl.manifest.json").read_text())
    assert manifest["counts"] == {"read": 36, "kept": 36, "rejected": 0} and manifest["detected_format"] == "messages"
    rows = [json.loads(line) for line in back.read_text().splitlines()]
    original = {r["id"]: r for r in map(json.loads, demo_data_path().read_text().splitlines()[:3])}
    for row in rows:
        if row["id"] in original:
            for key in ("instruction", "input", "output"):
                assert row[key] == original[row["id"]][key]


def test_bad_file_is_a_clear_error_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": ""}\nnot json\n')
    res = runner.invoke(app, ["inspect", str(bad)])
    assert res.exit_code == 2
    assert "bad.jsonl" in res.output and "error" in res.output
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "nope.jsonl" in missing.output


def test_unknown_backend_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["profile", str(demo_data_path()), "--model", "transformers:/no/such/model",
                              "--workspace", str(tmp_path), "--no-embed"])
    assert res.exit_code == 2 and "cannot load" in res.output
