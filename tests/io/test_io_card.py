"""Every curated output folder gets a dataset card (the Hub's YAML header, then provenance), and
--push-to-hub fails clearly without a token or a network. No test here contacts the network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tamis.cli import app
from tamis.errors import ConfigError
from tamis.pipeline.clear import FilterJob, run_filter
from tamis.pipeline.select import SelectJob, run_select
from tamis.report.card import card_header, dataset_card, push_to_hub, reason_groups, size_category
from tamis.signals.registry import SignalTable

runner = CliRunner()
N = 12


def scored(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "instruction": f"question {i}", "output": f"answer {i}"}) + "\n"
                            for i in range(N)) + "{broken\n")
    run = tmp_path / "score"
    SignalTable.from_rows([{"id": f"e{i}", "confidence": i / N} for i in range(N)]).write(run)
    return data, run


def test_filter_output_has_a_card_with_hub_header_and_provenance(tmp_path: Path):
    data, run = scored(tmp_path)
    result = run_filter(FilterJob(data=str(data), scores=[str(run)], out=str(tmp_path / "f"),
                                  keep=["confidence>=median"]))
    text = (tmp_path / "f" / "README.md").read_text()
    header = card_header(text)
    assert header["license"] == "unknown" and header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["n<1K"] and header["pretty_name"] == "data (filter)"
    assert header["configs"][0]["data_files"][0]["path"] == "kept.jsonl"
    body = text.split("\n---\n", 1)[1]
    assert f"`{data}`" in body and "rows read: 13, usable: 12, rejected as malformed: 1" in body
    assert "policy: keep confidence>=median" in body and "`confidence` (higher is better)" in body
    assert "| keep | 6 |" in body and "| drop | 6 |" in body
    assert "| [keep confidence>=median] | 6 |" in body  # why rows were left out, grouped by rule
    assert "[`manifest.json`](manifest.json)" in body
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["outputs"]["card"].endswith("README.md")
    assert result.data_path.name == "kept.jsonl"


def test_select_output_has_a_card(tmp_path: Path):
    data, _ = scored(tmp_path)
    scores = tmp_path / "influence"
    scores.mkdir()
    ids = [f"e{i}" for i in range(N)]
    (scores / "ids.json").write_text(json.dumps(ids))
    rng = np.random.default_rng(0)
    np.save(scores / "influence_batches.npy", rng.normal(size=(N, 3)))
    np.save(scores / "features.npy", rng.normal(size=(N, 4)))
    result = run_select(SelectJob(candidates=str(data), scores=str(scores), out=str(tmp_path / "s")))
    header = card_header((tmp_path / "s" / "README.md").read_text())
    assert header["tags"] == ["tamis", "select"]
    assert header["configs"][0]["data_files"][0]["path"] == result.data_path.name == "selected.jsonl"


def test_card_text_parses_and_groups_reasons():
    decisions = [{"id": "a", "action": "keep", "reason": "ok", "scores": {"judge": 0.9}, "step": "x"},
                 {"id": "b", "action": "drop", "reason": "judge 0.31 < 0.5", "scores": {"judge": 0.31}, "step": "x"},
                 {"id": "c", "action": "drop", "reason": "judge 0.12 < 0.5", "scores": {"judge": 0.12}, "step": "x"},
                 {"id": "d", "action": "review", "reason": "no judge score", "scores": {}, "step": "x"}]
    text = dataset_card(data_file="kept.parquet", n_rows=1, format="translation", source="wmt.csv", command="x",
                        decisions=decisions, license="cc-by-4.0", pretty_name="WMT | curated")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header == card_header(text)
    assert header["license"] == "cc-by-4.0" and header["task_categories"] == ["translation"]
    assert header["pretty_name"] == "WMT | curated"
    assert "| judge # < # | 2 |" in text and "| no judge score | 1 |" in text
    assert reason_groups(["a [keep x>1] b", "c [keep x>1]"]) == [("[keep x>1]", 2)]
    assert [size_category(n) for n in (0, 999, 1000, 12_345, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
    folder = dataset_card(data_file="kept", n_rows=1, format="labelled", source="d", command="x")
    assert "configs" not in card_header(folder)  # a save_to_disk folder is not a file the Hub loads


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


def test_push_without_a_token_fails_clearly(tmp_path: Path, no_token):
    data, run = scored(tmp_path)
    run_filter(FilterJob(data=str(data), scores=[str(run)], out=str(tmp_path / "f")))
    with pytest.raises(ConfigError, match="no Hugging Face token; set HF_TOKEN"):
        push_to_hub(tmp_path / "f", "me/curated")
    with pytest.raises(ConfigError, match="OWNER/NAME"):
        push_to_hub(tmp_path / "f", "not a repo")
    with pytest.raises(ConfigError, match="has no README.md"):
        push_to_hub(tmp_path, "me/curated")
    res = runner.invoke(app, ["filter", str(data), "-s", str(run), "-o", str(tmp_path / "f"),
                              "--push-to-hub", "me/curated"])
    assert res.exit_code == 2
    assert "no Hugging Face token" in res.output and "nothing was uploaded" in res.output
    assert (tmp_path / "f" / "README.md").is_file()  # the run itself is complete


def test_push_offline_or_unreachable_fails_clearly(tmp_path: Path, monkeypatch):
    data, run = scored(tmp_path)
    run_filter(FilterJob(data=str(data), scores=[str(run)], out=str(tmp_path / "f")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        push_to_hub(tmp_path / "f", "me/curated", token="hf_test")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # a closed port on this machine stands for "no network": nothing leaves the machine
    with pytest.raises(ConfigError, match="the upload failed .*check the token, the network"):
        push_to_hub(tmp_path / "f", "me/curated", token="hf_test", endpoint="http://127.0.0.1:9")
