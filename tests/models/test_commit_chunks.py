"""Committed chunks are one backend batch (scoring: SCORE_BATCHES_PER_CALL of them, or ``commit_every``):
progress moves per chunk, and a run killed with SIGKILL keeps every finished chunk and, resumed, produces
exactly the floats of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tamis.models import cached as cached_module
from tamis.models.base import ModelSpec
from tamis.models.cached import MIN_CHUNK, SCORE_BATCHES_PER_CALL, CachedLLM, commit_chunk_size

pytestmark = pytest.mark.slow

N_ROWS = 20  # the run that used to lose all of its work: one 32-item chunk


def rows(n: int = N_ROWS) -> tuple[list[list[dict[str, str]]], list[str]]:
    """Prompts and responses of differing lengths (so the length sort matters)."""
    prompts = [[{"role": "user", "content": f"Describe city {i}."}] for i in range(n)]
    responses = [" ".join(f"City {i} has {k} old bridges." for k in range(1 + i % 4)) for i in range(n)]
    return prompts, responses


def test_chunk_is_one_backend_batch(smollm2):
    from tamis.models.openai_http import OpenAILLM
    from tamis.store import CallCache

    cache = CallCache(":memory:")
    assert CachedLLM(smollm2, cache).chunk_size == smollm2.batch_size == 8
    assert CachedLLM(smollm2, cache, chunk_size=3).chunk_size == 3  # commit_every= in the spec
    assert CachedLLM(smollm2, cache).score_chunk_size == 8 * SCORE_BATCHES_PER_CALL  # a scoring call shares more
    assert CachedLLM(smollm2, cache, chunk_size=3).score_chunk_size == 3
    http = OpenAILLM(ModelSpec.parse("openai:m?base_url=http://127.0.0.1:9/v1&concurrency=16"))
    assert commit_chunk_size(http) == 16
    one_at_a_time = type("OneAtATime", (), {"batch_hint": 1})()
    assert commit_chunk_size(one_at_a_time) == MIN_CHUNK


def test_progress_advances_once_per_batch(smollm2, workspace, monkeypatch):
    advances: list[int] = []

    @contextmanager
    def recording(description: str, total: int):
        assert total == N_ROWS
        yield advances.append

    monkeypatch.setattr(cached_module, "progress", recording)
    prompts, responses = rows()
    CachedLLM(smollm2, workspace.cache, chunk_size=8).logprobs(prompts, responses)
    assert advances == [8, 8, 4]


SCORE = """
import json, sys
sys.path.insert(0, {tests!r})
from test_commit_chunks import rows
from tamis.models import load_llm
from tamis.store import Workspace

ws = Workspace(sys.argv[1])
llm = load_llm("transformers:smollm2?commit_every=8", ws)
out = llm.logprobs(*rows())
print(json.dumps({{"hits": ws.cache.hits, "logprobs": [list(r.logprobs) for r in out]}}))
"""


def _committed(workspace: Path) -> int:
    db = workspace / "cache" / "calls.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _score(workspace: Path, env: dict[str, str]) -> dict:
    script = SCORE.format(tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script, str(workspace)], env=env, capture_output=True, text=True,
                          check=True, timeout=600)
    return json.loads(done.stdout.splitlines()[-1])


def test_kill_minus_nine_keeps_committed_batches_and_resumes_identically(tmp_path, models_dir, smollm2):
    env = os.environ | {"TAMIS_MODELS": str(models_dir), "TAMIS_PROGRESS": "0"}
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    script = SCORE.format(tests=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _committed(killed) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _committed(killed)
    assert kept in (8, 16)  # whole batches, committed before the kill; at most one batch lost

    resumed = _score(killed, env)
    assert resumed["hits"] == kept  # nothing committed is computed again
    assert _committed(killed) == N_ROWS
    uninterrupted = _score(clean, env)
    assert resumed["logprobs"] == uninterrupted["logprobs"]  # identical batches, identical floats
