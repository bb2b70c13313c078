"""The influence job: candidates + trusted seed set -> per-candidate influence scores, features, manifest.

Steps: read both data sets; load the model and hook the tracked layers; fit (or reuse) K-FAC/EK-FAC
factors on the candidates; featurise candidates (projected gradients, chunk-committed, resumable);
precondition and project the seed gradients; score. The identity-Hessian (TracIn/LESS-style) scores
are always written beside the chosen approximation, as the baseline.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tamis.io import read_dataset
from tamis.runs import Run, with_data_paths
from tamis.settings import validate
from tamis.progress import progress
from tamis.signals.influence.features import featurise, store_for
from tamis.signals.influence.config import InfluenceConfig
from tamis.signals.influence.gradients import load_tracked_model
from tamis.signals.influence.kfac import Factors, fit_factors
from tamis.signals.influence.projection import CountSketch
from tamis.signals.registry import SignalTable
from tamis.signals.influence.scores import influence_scores, per_batch, seed_batches, seed_features, summary_columns
from tamis.store import Workspace, atomic_write_text, cache_key

SIGN_NOTE = "positive = training on the candidate lowers the seed loss (g_seed^T H^-1 g_cand)"


@dataclass
class InfluenceResult:
    out_dir: Path
    ids: list[str]
    rows: list[dict[str, Any]]
    batch_scores: np.ndarray
    counts: dict[str, Any]


def run_influence(config: InfluenceConfig, workspace: Workspace, *, overwrite: bool = False) -> InfluenceResult:
    config = with_data_paths(config, workspace, "candidates", "seed_set")
    validate(config)
    out = Path(config.out) if config.out else workspace.run_dir(f"influence-{Path(config.candidates).stem}")
    settings = {k: v for k, v in asdict(config).items() if k not in ("out", "engine")}
    with Run("score influence", settings, out, inputs=[config.candidates, config.seed_set], overwrite=overwrite) as run:
        return _influence(config, workspace, run)


def engine_features(encoded: list[Any], config: InfluenceConfig, workspace: Workspace, run: Run) -> np.ndarray:
    """The candidates' projected gradients computed block by block on ``config.engine`` (one model per
    worker, shards in the run folder), in the batches the local path makes, so the same features."""
    from tamis.engine import ShardStore, get_engine
    from tamis.engine.base import stage_shards
    from tamis.engine.tasks import InfluenceFeatureTask, influence_items, influence_size

    task = InfluenceFeatureTask(config.model, str(workspace.root), asdict(config.gradients), config.projection_dim,
                                config.projection_seed)
    store = ShardStore(stage_shards(config.engine, run.out, "features"))
    items = influence_items(encoded)
    by_key, stats = get_engine(config.engine).map(task, items, store, size=influence_size,
                                                  description="candidate gradients")
    run.manifest.count(**stats.counts("features"), engine_workers=stats.workers)
    run.manifest.data["engine"] = {"engine": config.engine.engine, "address": config.engine.address,
                                   "workers": stats.workers, "shards": store.url}
    return np.asarray([by_key[it["key"]]["vector"] for it in items], dtype=np.float32).reshape(len(items), -1)


def engine_sum_pass(encoded: list[Any], config: InfluenceConfig, workspace: Workspace, run: Run) -> Any:
    """K-FAC/EK-FAC factor passes on ``config.engine``: workers sum gradient batches, the driver adds them
    (``kfac.fit_factors``'s ``sum_pass``), the same floats as the local fit."""
    from tamis.engine import get_engine
    from tamis.engine.tasks import FactorSumTask, factor_items, influence_size

    engine, items = get_engine(config.engine), factor_items(encoded)

    def sum_pass(kind: str, eigenvectors: list[Any] | None) -> dict[str, Any]:
        task = FactorSumTask(config.model, str(workspace.root), asdict(config.gradients), kind, eigenvectors)
        total, stats = engine.reduce(task, items, size=influence_size, description=f"{kind} sums")
        run.manifest.count(**{f"factors_{kind}_blocks": stats.blocks}, engine_workers=stats.workers)
        return total

    return sum_pass


def _influence(config: InfluenceConfig, workspace: Workspace, run: Run) -> InfluenceResult:
    out, manifest = run.out, run.manifest
    manifest.data["sign"] = SIGN_NOTE
    with manifest.stage("read"):
        cands = read_dataset(config.candidates, format=config.format, quarantine=out / "quarantine.jsonl",
                             limit=config.limit)
        seeds = read_dataset(config.seed_set, format=config.seed_set_format or config.format,
                             quarantine=out / "seed_quarantine.jsonl")
    manifest.count(candidates=cands.n_kept, candidates_rejected=cands.n_rejected, seeds=seeds.n_kept,
                   seeds_rejected=seeds.n_rejected)
    with manifest.stage("load_model"):
        tracked = load_tracked_model(config.model, workspace, config.gradients)
    manifest.model("llm", tracked.identity)
    manifest.count(tracked_layers=len(tracked.names), tracked_params=tracked.n_params)
    enc_c = tracked.encode(cands.examples)
    enc_s = tracked.encode(seeds.examples)
    manifest.count(truncated=sum(e.truncated for e in enc_c) + sum(e.truncated for e in enc_s))
    root = workspace.root / "influence"

    meter = _GradientMeter()
    factors = None
    if config.hessian != "identity":
        subset = enc_c[: config.factor_limit] if config.factor_limit else enc_c
        key = cache_key(tracked.identity, tracked.config.to_dict(), config.hessian, [(e.id, e.ids) for e in subset])[:20]
        path = root / "factors" / key
        with manifest.stage("factors"):
            factors = Factors.load(path)
            manifest.count(factors_reused=factors is not None)
            if factors is None:
                passes = 2 if config.hessian == "ekfac" else 1
                on_engine = config.engine is not None and config.engine.engine != "local"
                sum_pass = engine_sum_pass(subset, config, workspace, run) if on_engine else None
                timed = nullcontext() if on_engine else meter.timing([e for _ in range(passes) for e in subset])
                with progress(f"fitting {config.hessian} factors", passes * len(subset)) as advance, timed:
                    factors = fit_factors(tracked, subset, config.hessian, advance, sum_pass)
                factors.save(path, {"model": tracked.identity, "gradients": tracked.config.to_dict(),
                                    "strategy": config.hessian, "n_examples": len(subset)})
        manifest.output("factors", path.with_suffix(".safetensors"))

    projection = CountSketch(tracked.shapes, config.projection_dim, config.projection_seed)
    with manifest.stage("featurise"):
        if config.engine is None or config.engine.engine == "local":
            store = store_for(root / "features", tracked, projection)
            with progress("candidate gradients", len(enc_c)) as advance, meter.timing(enc_c) as timing:
                feats, computed = featurise(tracked, enc_c, projection, store, advance=advance)
                timing.share = computed / max(len(enc_c), 1)  # reused features cost nothing
            manifest.count(features_computed=computed, features_reused=len(enc_c) - computed)
        else:
            feats = engine_features(enc_c, config, workspace, run)
    with manifest.stage("seeds"), meter.timing(enc_s):
        grads = tracked.gradients(enc_s)
        seed_id = seed_features(grads, projection)
        seed_h = seed_features(grads, projection, factors, config.damping) if factors is not None else seed_id
    batches = seed_batches(len(enc_s), config.seed_set_batch_size)
    scored = per_batch(influence_scores(feats, seed_h), batches)
    baseline = per_batch(influence_scores(feats, seed_id), batches)

    with manifest.stage("write"):
        columns = {"id": [e.id for e in enc_c]} | {k: v.tolist() for k, v in summary_columns(scored).items()}
        columns |= {k: v.tolist() for k, v in summary_columns(baseline, "tracin").items()}
        columns["n_seed_batches"] = [len(batches)] * len(enc_c)
        columns["influence_batches"] = scored.tolist()
        rows = [dict(zip(columns, vals)) for vals in zip(*columns.values())]
        pq.write_table(pa.table(columns), out / "influence.parquet")
        SignalTable.from_rows([{k: v for k, v in r.items() if k != "influence_batches"} for r in rows]).write(out)
        np.save(out / "features.npy", feats)
        np.save(out / "seed_features.npy", seed_h)
        np.save(out / "influence_batches.npy", scored)
        atomic_write_text(out / "ids.json", json.dumps([e.id for e in enc_c]) + "\n")
        atomic_write_text(out / "config.json", json.dumps(
            {"hessian": config.hessian, "damping": config.damping, "sign": SIGN_NOTE, "seed_batches":
             [[enc_s[i].id for i in b] for b in batches], "projection": projection.config(),
             "modules": tracked.names, "model": tracked.identity, "gradients": tracked.config.to_dict()}, indent=2) + "\n")
    for name in ("signals.parquet", "influence.parquet", "features.npy", "seed_features.npy", "influence_batches.npy", "ids.json", "config.json"):
        manifest.output(name.split(".")[0], out / name)
    manifest.count(seed_batches=len(batches), positive_on_all=int((scored > 0).all(axis=1).sum()))
    meter.record(workspace, config.model, tracked)
    run.finish()
    return InfluenceResult(out, [e.id for e in enc_c], rows, scored, manifest.data["counts"])


class _GradientMeter:
    """Gradient passes of this run (factor fitting, candidates, seeds): examples, tokens and seconds, recorded
    as the model's ``gradients`` throughput for ``--dry-run`` estimates (``plan_influence`` counts the same
    passes in the same unit: tokens of each example up to the gradient length)."""

    def __init__(self) -> None:
        self.calls, self.tokens, self.seconds = 0, 0, 0.0

    @contextmanager
    def timing(self, encoded: list[Any]) -> Iterator[Any]:
        timing = SimpleNamespace(share=1.0)
        start = time.perf_counter()
        yield timing
        self.seconds += time.perf_counter() - start
        self.calls += round(timing.share * len(encoded))
        self.tokens += round(timing.share * sum(len(e.ids) for e in encoded))

    def record(self, workspace: Workspace, model: str, tracked: Any) -> None:
        from tamis.models.base import ModelSpec
        from tamis.plan import record_throughput

        if self.calls:
            device = next(tracked.model.parameters()).device.type
            record_throughput(workspace, str(ModelSpec.parse(model)), "gradients", calls=self.calls,
                              tokens=self.tokens, seconds=self.seconds, unit="tokens", device=device)
