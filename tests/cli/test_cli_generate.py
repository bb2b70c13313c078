"""`tamis generate` writes a run folder (data, rejections with reasons, manifest), reuses a finished run
and refuses a folder made with other settings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tamis.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_generate_instructions_run_folder_reuse_and_conflict(tmp_path, models_dir):
    out = tmp_path / "gen"
    args = ["generate", "instructions", "--topic", "baking bread", "--n-per-topic", "1", "-o", str(out),
            "-w", str(tmp_path / "ws")]
    first = runner.invoke(app, args)
    assert first.exit_code in (0, 2), first.output  # 2: the 135M model gave nothing usable, said in one line
    assert (out / "rejected.jsonl").is_file() and (out / "settings.json").is_file()
    if first.exit_code == 0:
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["accepted"] == sum(1 for _ in open(out / "generated.jsonl"))
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and "reused" in again.output
    other = runner.invoke(app, args[:-2] + ["--seed", "1", "-w", str(tmp_path / "ws")])
    assert other.exit_code == 2 and "other settings" in other.output and "seed: 0 then, 1 now" in other.output
