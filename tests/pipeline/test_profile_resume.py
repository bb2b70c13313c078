"""A run killed with SIGKILL at any point and started again recomputes nothing that was done and
writes exactly what an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tamis.pipeline.demo import demo_data_path

pytestmark = pytest.mark.slow


def _profile_cmd(workspace: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tamis.cli", "profile", str(demo_data_path()), "--out", str(out),
            "--workspace", str(workspace), "--model", "transformers:smollm2?commit_every=3", "--no-embed"]


def _cached_calls(workspace: Path) -> int:
    db = workspace / "cache" / "calls.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_minus_nine_then_resume_matches_uninterrupted_run(tmp_path, models_dir, smollm2):
    env = os.environ | {"TAMIS_MODELS": str(models_dir), "TAMIS_PROGRESS": "0"}
    killed_ws, clean_ws = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(_profile_cmd(killed_ws, killed_ws / "out"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _cached_calls(killed_ws) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"run finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _cached_calls(killed_ws)
    assert 6 <= done_before < 36
    assert not (killed_ws / "out" / "scored.jsonl").exists()

    subprocess.run(_profile_cmd(killed_ws, killed_ws / "out"), env=env, check=True, capture_output=True)
    manifest = json.loads((killed_ws / "out" / "manifest.json").read_text())
    assert manifest["counts"]["likelihood_cached"] == done_before  # nothing done is recomputed
    assert _cached_calls(killed_ws) == 36

    subprocess.run(_profile_cmd(clean_ws, clean_ws / "out"), env=env, check=True, capture_output=True)
    for name in ("scored.jsonl", "quarantine.jsonl", "summary.md"):
        resumed = (killed_ws / "out" / name).read_text().replace(str(killed_ws), "WS")
        clean = (clean_ws / "out" / name).read_text().replace(str(clean_ws), "WS")
        assert resumed == clean, name
