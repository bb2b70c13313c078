"""bench/gpu_check.py, the prepared GPU script, runs its code paths on the CPU with a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # builds a tiny model and trains it for two steps (~40 s on 2 cores)


def test_gpu_check_passes_on_cpu_with_a_tiny_model(tmp_path):
    env = os.environ | {"OUT": str(tmp_path), "TAMIS_PROGRESS": "0"}
    res = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu", "--small"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["checks"]
    assert set(checks) == {"likelihood", "sampling", "influence", "sft", "embeddings", "ray_engine"}
    assert all(c["status"] in ("ok", "skipped") for c in checks.values())
    assert checks["likelihood"]["status"] == "ok" and checks["likelihood"]["tokens_per_s"] > 0
    assert checks["influence"]["examples_per_s"] > 0
