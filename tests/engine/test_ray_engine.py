"""The Ray engine on a local Ray cluster the tests start (loopback only, 2 CPUs): the same output as the
local engine, a worker killed mid-block retried with identical output, a killed driver resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from tamis.engine import EngineConfig, LocalEngine, ShardStore  # noqa: E402
from tamis.engine.ray_engine import RayEngine  # noqa: E402

SPEC = "transformers:smollm2?commit_every=3"  # 12 blocks of 3 on the 36 demo rows


@pytest.fixture(scope="module")
def cluster() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False, object_store_memory=200 * 1024 * 1024)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the tasks below travel by value
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


class Squares:
    """A fake block task (plumbing only)."""

    name = "squares"

    def fingerprint(self) -> str:
        return "squares"

    def setup(self) -> None:
        self.pid = os.getpid()

    def batch_bound(self) -> int:
        return 2

    def info(self) -> dict[str, Any]:
        return {}

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"key": it["key"], "sq": it["x"] ** 2 + 0.1} for it in items]


class KilledOnce:
    """Wraps a task: the worker process dies (os._exit) in the middle of its first block, once."""

    def __init__(self, inner: Any, marker: str):
        self.inner, self.marker = inner, marker
        self.name = inner.name

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def setup(self) -> None:
        self.inner.setup()

    def batch_bound(self) -> int:
        return self.inner.batch_bound()

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = self.inner(items)  # work done, shard not written yet
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return out


def _items(n: int) -> list[dict[str, Any]]:
    return [{"key": f"k{i}", "x": float(i % 9)} for i in range(n)]


def _size(item: dict[str, Any]) -> int:
    return int(item["x"])


def test_ray_engine_gives_the_local_engines_rows_and_survives_a_killed_worker(cluster, tmp_path):
    local, _ = LocalEngine().map(Squares(), _items(50), ShardStore(tmp_path / "local"), size=_size)
    remote, stats = RayEngine(EngineConfig(engine="ray", workers=2)).map(
        Squares(), _items(50), ShardStore(tmp_path / "ray"), size=_size)
    assert remote == local and stats.workers == 2 and stats.blocks_computed == stats.blocks
    marker = tmp_path / "killed"
    again, _ = RayEngine(EngineConfig(engine="ray", workers=2)).map(
        KilledOnce(Squares(), str(marker)), _items(50), ShardStore(tmp_path / "faulty"), size=_size)
    assert marker.is_file() and again == local


def test_chamfer_by_row_blocks_on_ray_is_the_local_exact_search(cluster, tmp_path):
    """Diversity's exact nearest-other search cut into row blocks across workers: the same indices and
    similarities, to the bit, as the in-process blocked search; a rerun computes no block."""
    import numpy as np

    from tamis.signals.diversity import diversity, nearest_other, nearest_other_on_engine

    x = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    x[17] = x[5]  # a duplicate pair: ties resolve the same way everywhere
    index, sims = nearest_other(x, method="blocked", block=32)
    (l_index, l_sims), _ = nearest_other_on_engine(x, EngineConfig(), ShardStore(tmp_path / "l"), block=32)
    config = EngineConfig(engine="ray", workers=2)
    (r_index, r_sims), stats = nearest_other_on_engine(x, config, ShardStore(tmp_path / "r"), block=32)
    for got_index, got_sims in ((l_index, l_sims), (r_index, r_sims)):
        assert np.array_equal(got_index, index) and np.array_equal(got_sims, sims)
    assert r_index[17] == 5 and r_index[5] == 17
    assert stats.workers == 2 and stats.blocks == 10 and stats.blocks_computed == 10
    _, again = nearest_other_on_engine(x, config, ShardStore(tmp_path / "r"), block=32)
    assert again.blocks_computed == 0 and again.blocks_reused == 10
    # the same blocks give the same floats; another block size sums in another order (last bits differ)
    assert diversity(x, nearest=(r_index, r_sims)).chamfer == diversity(x, nearest=(index, sims)).chamfer
    assert diversity(x, nearest=(r_index, r_sims)).chamfer == pytest.approx(diversity(x, method="blocked").chamfer,
                                                                             rel=1e-6)


# -- with the bundled model ---------------------------------------------------------------------

def _demo() -> str:
    from tamis.pipeline.demo import demo_data_path

    return str(demo_data_path())


@pytest.fixture(scope="module")
def reference(cluster, models_dir, tmp_path_factory) -> Any:
    """The local engine (today's path, call cache) with one torch thread, as each Ray worker has."""
    import torch

    from tamis.pipeline.profile import ProfileConfig, run_profile
    from tamis.store import Workspace

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("local")
        result = run_profile(ProfileConfig(data=_demo(), out=str(root / "out"), model=SPEC, embed=False),
                             Workspace(root / "ws"))
    finally:
        torch.set_num_threads(threads)
    return result


@pytest.mark.slow
def test_profile_on_ray_matches_the_local_engine_exactly(cluster, reference, tmp_path):
    from tamis.pipeline.profile import ProfileConfig, run_profile
    from tamis.store import Workspace

    config = ProfileConfig(data=_demo(), out=str(tmp_path / "out"), model=SPEC, embed=False,
                           engine=EngineConfig(engine="ray", workers=2))
    result = run_profile(config, Workspace(tmp_path / "ws"))
    assert result.table.rows() == reference.table.rows()  # same ids, same order, same floats
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["likelihood_blocks"] == 12 and manifest["counts"]["engine_workers"] == 2
    assert manifest["models"]["llm"].startswith("transformers:smollm2")
    assert len(list((tmp_path / "out" / "shards" / "likelihood").glob("*.done"))) == 12


@pytest.mark.slow
def test_worker_killed_mid_block_is_retried_with_identical_output(cluster, reference, tmp_path, models_dir):
    from tamis.engine.tasks import LikelihoodTask, likelihood_items, likelihood_size
    from tamis.io import read_dataset

    examples = read_dataset(_demo()).examples
    marker = tmp_path / "killed"
    task = KilledOnce(LikelihoodTask(SPEC, str(tmp_path / "ws")), str(marker))
    rows, stats = RayEngine(EngineConfig(engine="ray", workers=2)).map(
        task, likelihood_items(examples), ShardStore(tmp_path / "shards"), size=likelihood_size)
    assert marker.is_file() and stats.blocks_computed == 12
    by_id = {r["id"]: r for r in reference.table.rows()}
    items = likelihood_items(examples)
    scored = [ex for ex in examples if ex.kind == "chat" and ex.response is not None]
    for ex, item in zip(scored, items):
        assert float(sum(rows[item["key"]]["logprobs"])) == by_id[ex.id]["loglik_sum"]


@pytest.mark.slow
def test_killed_driver_resumes_and_recomputes_only_unfinished_blocks(cluster, reference, tmp_path, models_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tamis.cli", "profile", _demo(), "--out", str(out), "--workspace",
           str(tmp_path / "ws"), "--model", SPEC, "--no-embed", "--engine", "ray", "--address", cluster,
           "--workers", "2"]
    env = os.environ | {"TAMIS_MODELS": str(models_dir), "TAMIS_PROGRESS": "0"}
    shards = out / "shards" / "likelihood"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(shards.glob("*.done"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(shards.glob("*.done")))
    assert 2 <= done_before < 12 and not (out / "signals.parquet").exists()

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["likelihood_blocks_reused"] == done_before
    assert counts["likelihood_blocks_computed"] == 12 - done_before
    from tamis.signals.registry import read_signals

    assert read_signals(out).rows() == read_signals(reference.out_dir).rows()


@pytest.mark.slow
def test_profile_embeddings_on_ray_match_the_local_path(cluster, tmp_path):
    """Embeddings go through the engine too: one shard per embedder batch, the local path's vectors
    (to float rounding: a tie in length can pad a text differently) and the same nearest neighbours."""
    import numpy as np

    from tamis.pipeline.profile import ProfileConfig, run_profile
    from tamis.store import Workspace

    embedder = "sentence-transformers:minilm?batch_size=16"
    local = run_profile(ProfileConfig(data=_demo(), out=str(tmp_path / "local"), likelihood=False, embedder=embedder),
                        Workspace(tmp_path / "ws-local"))
    remote = run_profile(ProfileConfig(data=_demo(), out=str(tmp_path / "ray"), likelihood=False, embedder=embedder,
                                       engine=EngineConfig(engine="ray", workers=2)), Workspace(tmp_path / "ws-ray"))
    np.testing.assert_allclose(np.load(remote.out_dir / "embeddings.npy"), np.load(local.out_dir / "embeddings.npy"),
                               atol=1e-5)
    assert [r.get("nn_id") for r in remote.signals] == [r.get("nn_id") for r in local.signals]
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    n_texts = len({r["id"] for r in remote.signals})
    assert manifest["counts"]["embeddings_blocks"] == -(-n_texts // 16)
    assert manifest["models"]["embedder"] == json.loads((tmp_path / "local" / "manifest.json").read_text())["models"]["embedder"]
    assert len(list((tmp_path / "ray" / "shards" / "embeddings").glob("*.done"))) == manifest["counts"]["embeddings_blocks"]
    assert manifest["counts"]["nearest_blocks"] >= 1  # the nearest-neighbour search ran on the workers too
    assert len(list((tmp_path / "ray" / "shards" / "nearest").glob("*.done"))) == manifest["counts"]["nearest_blocks"]


@pytest.mark.slow
def test_confidence_on_ray_matches_the_local_path_exactly(cluster, tmp_path, models_dir):
    """``score confidence --engine ray``: BSDetector's samples and reflections and the baselines' model
    calls run as blocks on two workers (one shard folder per model call), with the local path's values
    bit for bit."""
    import torch

    from tamis.pipeline.clear import ScoreJob, run_score_confidence
    from tamis.signals.confidence import ConfidenceConfig
    from tamis.store import Workspace

    cfg = ConfidenceConfig(k=2, max_tokens=12, similarity="token_f1")

    def job(out: str, **engine: Any) -> ScoreJob:
        return ScoreJob(data=_demo(), out=str(tmp_path / out), model=SPEC, limit=12, confidence=cfg,
                        engine=EngineConfig(**engine))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker has
    try:
        local = run_score_confidence(job("local"), Workspace(tmp_path / "ws-local"))
    finally:
        torch.set_num_threads(threads)
    remote = run_score_confidence(job("ray", engine="ray", workers=2), Workspace(tmp_path / "ws-ray"))
    assert remote.table.rows() == local.table.rows()
    assert (tmp_path / "ray" / "samples.jsonl").read_text() == (tmp_path / "local" / "samples.jsonl").read_text()
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    calls = manifest["engine"]["calls"]
    assert calls[:2] == ["01-generate", "02-choices"] and "likelihood" in calls[2]  # samples, reflection, baselines
    assert manifest["counts"]["engine_blocks_computed"] == manifest["counts"]["engine_blocks"] > 0
    assert manifest["models"]["llm"] == json.loads((tmp_path / "local" / "manifest.json").read_text())["models"]["llm"]


@pytest.mark.slow
def test_a_recipe_steps_model_calls_run_on_the_recipes_engine(cluster, tmp_path, models_dir):
    """A recipe's ``engine: {engine: ray}`` sends its steps' model calls to the cluster (shards in the
    step's folder) with the decisions the local path takes."""
    from tamis.curate.steps import StepContext, get_step
    from tamis.io import read_dataset
    from tamis.store import Workspace

    examples = read_dataset(_demo()).examples
    step, params = get_step("likelihood_filter"), {"model": SPEC, "quantile": 0.25}
    local = step(examples, params, StepContext(Workspace(tmp_path / "ws-local"), tmp_path / "local" / "step0"))
    ctx = StepContext(Workspace(tmp_path / "ws-ray"), tmp_path / "ray" / "step0", engine=EngineConfig(engine="ray", workers=2))
    remote = step(examples, params, ctx)
    assert [(d.id, d.action) for d in remote] == [(d.id, d.action) for d in local]
    assert len(list((tmp_path / "ray" / "step0" / "shards" / "01-likelihood").glob("*.done"))) == 12


@pytest.mark.slow
def test_a_served_models_concurrency_is_one_limit_for_the_whole_cluster(cluster, tmp_path):
    """``openai:...&concurrency=4`` on two Ray workers: each keeps two requests in flight, so the server
    never sees more than four at once (each worker with the whole limit would send up to eight)."""
    import threading

    from stub_server import JsonHandler, serve

    from tamis.engine.llm import EngineLLM
    from tamis.models.base import GenerationParams

    state = {"now": 0, "most": 0, "served": 0}
    lock = threading.Lock()

    class Slow(JsonHandler):
        def do_POST(self) -> None:
            self.body()
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.5)
            with lock:
                state["now"] -= 1
                state["served"] += 1
            self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]})

    stub = serve(Slow)
    server = next(stub)
    try:
        spec = f"openai:m?base_url={server.url}&concurrency=4"
        llm = EngineLLM(spec, EngineConfig(engine="ray", workers=2), tmp_path / "shards")
        prompts = [[{"role": "user", "content": f"question {i:02d}"}] for i in range(48)]
        out = llm.generate(prompts, GenerationParams(max_tokens=4))
    finally:
        next(stub, None)  # shuts the server down
    assert out == [["hi"]] * 48 and state["served"] == 48
    assert 2 < state["most"] <= 4, state  # both workers' shares in flight at once, never more than the spec's


@pytest.mark.slow
def test_generate_instructions_on_ray_matches_the_local_path(cluster, tmp_path, models_dir):
    """``tamis generate instructions --engine ray``: both generation calls (instructions, then their
    responses) run on two workers and give the local path's rows."""
    import torch

    from tamis.generate import InstructionConfig, generate_instructions
    from tamis.io import read_dataset
    from tamis.models import load_llm
    from tamis.store import Workspace

    topics = ["baking bread", "learning to swim"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker has
    try:
        local = generate_instructions(topics, load_llm(SPEC, Workspace(tmp_path / "ws-local")),
                                      InstructionConfig(n_per_topic=2, max_tokens=48))
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "tamis.cli", "generate", "instructions", "--topic", topics[0], "--topic", topics[1],
           "--n-per-topic", "2", "--max-tokens", "48", "--model", SPEC, "--out", str(out), "--workspace",
           str(tmp_path / "ws-ray"), "--engine", "ray", "--address", cluster, "--workers", "2"]
    env = os.environ | {"TAMIS_MODELS": str(models_dir), "TAMIS_PROGRESS": "0"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert local.examples, "the local path generated nothing usable: the comparison would be empty"
    assert res.returncode == 0, res.stderr[-2000:]
    assert [ex.messages for ex in read_dataset(out / "generated.jsonl").examples] == [ex.messages for ex in local.examples]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"]["calls"] == ["01-generate", "02-generate"]


@pytest.mark.slow
def test_influence_features_on_ray_match_the_local_path_exactly(cluster, tmp_path, models_dir):
    """``score influence --engine ray --hessian ekfac``: the candidates' projected gradients and both
    EK-FAC factor passes (sums: each worker sums its blocks, the driver adds them) are computed by two
    workers in the local path's batches: the same factors, features and scores, bit for bit."""
    import numpy as np
    import torch

    from tamis.signals.influence.config import GradientConfig, InfluenceConfig
    from tamis.signals.influence.run import run_influence
    from tamis.store import Workspace

    def config(out: str, **engine: Any) -> InfluenceConfig:
        grads = GradientConfig(params="linear", layer_stride=15, max_length=256, batch_size=4)
        return InfluenceConfig(candidates=_demo(), seed_set=_demo(), model="transformers:smollm2", out=str(tmp_path / out),
                               hessian="ekfac", projection_dim=256, limit=12, gradients=grads,
                               engine=EngineConfig(**engine) if engine else None)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker has; the seed set's gradients are the driver's, in both runs
    try:
        local = run_influence(config("local"), Workspace(tmp_path / "ws-local"))
        remote = run_influence(config("ray", engine="ray", workers=2), Workspace(tmp_path / "ws-ray"))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(np.load(remote.out_dir / "features.npy"), np.load(local.out_dir / "features.npy"))
    assert remote.rows == local.rows
    from safetensors.torch import load_file

    factors = [load_file(next((tmp_path / ws / "influence" / "factors").glob("*.safetensors")))
               for ws in ("ws-local", "ws-ray")]
    assert factors[0].keys() == factors[1].keys() and "0.corrected" in factors[0]
    assert all(torch.equal(factors[0][k], factors[1][k]) for k in factors[0])
    counts = json.loads((tmp_path / "ray" / "manifest.json").read_text())["counts"]
    assert counts["features_blocks"] == 3 and counts["engine_workers"] == 2  # 12 candidates, batches of 4
    assert counts["factors_covariance_blocks"] == 3 and counts["factors_correction_blocks"] == 3


@pytest.mark.slow
def test_score_diversity_on_ray_matches_the_local_command(cluster, tmp_path):
    """`tamis score diversity --engine ray`: embeddings and the Chamfer search on the workers, the local
    command's scores (embeddings to float rounding) and the same nearest neighbours."""
    from typer.testing import CliRunner

    from tamis.cli import app
    from tamis.signals.registry import read_signals

    runner = CliRunner()
    base = ["score", "diversity", _demo(), "-w", str(tmp_path / "ws"), "--by-label"]
    local = runner.invoke(app, base + ["-o", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    remote = runner.invoke(app, base + ["-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
    assert remote.exit_code == 0, remote.output
    mine, theirs = read_signals(tmp_path / "ray").rows(), read_signals(tmp_path / "local").rows()
    assert [r["nearest_id"] for r in mine] == [r["nearest_id"] for r in theirs]
    assert all(abs(a["chamfer"] - b["chamfer"]) < 1e-5 for a, b in zip(mine, theirs))
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["counts"]["nearest_all_blocks"] >= 1 and manifest["counts"]["embeddings_blocks"] >= 1
