"""The profiling job (the first version of the main job): read -> measure -> write, resumably.

Reads a data set (quarantining bad rows), measures every example (length statistics, the
response's log-likelihood under an LLM, an embedding and its nearest neighbour) and writes a scored
data set, a signal table, the embeddings, a manifest and a short summary. Every model call goes
through the workspace cache, so a killed run started again recomputes nothing that was done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamis.engine.base import EngineConfig, stage_shards
from tamis.io import read_dataset
from tamis.models import DEFAULT_EMBEDDER, DEFAULT_LLM, load_embedder, load_llm
from tamis.records import Example
from tamis.signals.likelihood import response_likelihood
from tamis.signals.diversity import nearest_other, nearest_other_on_engine
from tamis.signals.stats import example_stats
from tamis.runs import Run, with_data_paths
from tamis.settings import setting
from tamis.signals.registry import SignalTable
from tamis.store import Workspace, atomic_write_jsonl, atomic_write_text

NEAR_DUPLICATE = 0.95


@dataclass
class ProfileConfig:
    data: str = setting("", "Data set to profile.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/profile-NAME].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    model: str = setting(DEFAULT_LLM, "LLM spec for log-likelihoods.")
    embedder: str = setting(DEFAULT_EMBEDDER, "Embedder spec.")
    likelihood: bool = setting(True, "Score each response's log-likelihood.")
    embed: bool = setting(True, "Embed examples and find near-duplicates.")
    limit: int | None = setting(None, "Read at most this many rows.", range=(1, None))
    # where the per-example work runs: not a saved setting (it changes how fast, never what)
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass
class ProfileResult:
    out_dir: Path
    counts: dict[str, int]
    table: SignalTable | None = None
    signals: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def embedding_text(ex: Example) -> str:
    """What an example is 'about': prompt and response for chat, the text for labelled data."""
    if ex.kind == "labelled":
        return ex.text or ""
    return "\n".join(m.content for m in ex.messages if m.role != "system")


def default_out_dir(workspace: Workspace, data: str) -> Path:
    return workspace.run_dir(f"profile-{Path(data).stem}")


def run_profile(config: ProfileConfig, workspace: Workspace, *, overwrite: bool = False) -> ProfileResult:
    config = with_data_paths(config, workspace, "data")
    out = Path(config.out) if config.out else default_out_dir(workspace, config.data)
    settings = {k: v for k, v in asdict(config).items() if k not in ("out", "engine")}
    with Run("profile", settings, out, inputs=[config.data], overwrite=overwrite) as run:
        return _profile(config, workspace, run)


def _profile(config: ProfileConfig, workspace: Workspace, run: Run) -> ProfileResult:
    out, manifest = run.out, run.manifest
    with manifest.stage("read"):
        read = read_dataset(config.data, format=config.format, quarantine=out / "quarantine.jsonl", limit=config.limit)
    examples = read.examples
    manifest.count(read=read.n_read, kept=read.n_kept, rejected=read.n_rejected)
    manifest.data["format"] = read.format

    rows: dict[str, dict[str, Any]] = {ex.id: {"id": ex.id} for ex in examples}
    tokenizer = None
    if config.likelihood:
        if config.engine.engine == "local":
            with manifest.stage("load_llm"):
                llm = load_llm(config.model, workspace)
            manifest.model("llm", llm.identity)
            tokenizer = llm.tokenizer
            with manifest.stage("likelihood"):
                hits0 = workspace.cache.hits
                scored = response_likelihood(examples, llm)
                manifest.count(likelihood_cached=workspace.cache.hits - hits0, **scored.counts)
        else:
            with manifest.stage("likelihood"):
                scored, info = engine_likelihood(examples, config, workspace, run)
            manifest.model("llm", info["identity"])
            tokenizer = info["tokenizer"]
        for row in scored.rows():
            rows[row["id"]].update(row)
    with manifest.stage("stats"):
        for row in example_stats(examples, tokenizer).rows():
            rows[row["id"]].update(row)

    near: list[tuple[str, str, float]] = []
    if config.embed and examples:
        texts = [embedding_text(ex) for ex in examples]
        if config.engine.engine == "local":
            with manifest.stage("load_embedder"):
                embedder = load_embedder(config.embedder, workspace)
            manifest.model("embedder", embedder.identity)
            with manifest.stage("embed"):
                vectors = embedder.embed(texts)
        else:
            with manifest.stage("embed"):
                vectors, identity = engine_embeddings(texts, config, run)
            manifest.model("embedder", identity)
        with manifest.stage("nearest"):
            if config.engine.engine == "local":
                nn_index, nn_sim = nearest_other(vectors)
            else:  # the exact search's row blocks on the engine's workers
                from tamis.engine import ShardStore

                (nn_index, nn_sim), stats = nearest_other_on_engine(
                    vectors, config.engine, ShardStore(stage_shards(config.engine, run.out, "nearest")))
                if stats is not None:
                    manifest.count(**stats.counts("nearest"))
        for i, ex in enumerate(examples):
            if nn_index[i] >= 0:
                rows[ex.id].update(nn_id=examples[nn_index[i]].id, nn_similarity=float(nn_sim[i]))
                if nn_sim[i] >= NEAR_DUPLICATE and i < nn_index[i]:
                    near.append((ex.id, examples[nn_index[i]].id, float(nn_sim[i])))
        np.save(out / "embeddings.npy", vectors)
        manifest.output("embeddings", out / "embeddings.npy")

    with manifest.stage("write"):
        signals = [rows[ex.id] for ex in examples]
        table = SignalTable.from_rows(signals)
        atomic_write_jsonl(out / "scored.jsonl", (ex.to_dict() | {"signals": rows[ex.id]} for ex in examples))
        table.write(out)
        flagged = lowest_likelihood(signals, examples)
        result = ProfileResult(out, manifest.data["counts"], table, signals, flagged, near,
                               [str(p) for p in read.problems])
        atomic_write_text(out / "summary.md", summary_markdown(result, read.summary(), manifest.data["models"]))
    for name in ("scored.jsonl", "signals.parquet", "summary.md"):
        manifest.output(name.split(".")[0], out / name)
    if read.n_rejected:
        manifest.output("quarantine", out / "quarantine.jsonl")
    manifest.count(near_duplicates=len(near))
    run.finish()
    return result


def engine_likelihood(examples: list[Example], config: ProfileConfig, workspace: Workspace,
                      run: Run) -> tuple[SignalTable, dict[str, Any]]:
    """The likelihood signals computed block by block on ``config.engine`` (shards in the run folder):
    the same table, values, ids and order as the local path, resumable per block."""
    from tamis.engine import ShardStore, get_engine
    from tamis.engine.tasks import LikelihoodTask, likelihood_items, likelihood_size
    from tamis.models.base import ResponseLogprobs

    items = likelihood_items(examples)
    store = ShardStore(stage_shards(config.engine, run.out, "likelihood"))
    task = LikelihoodTask(config.model, str(workspace.root))
    by_key, stats = get_engine(config.engine).map(task, items, store, size=likelihood_size,
                                                  description="scoring log-likelihood")

    class Precomputed:  # the rows response_likelihood builds, from the shards
        def logprobs(self, prompts: list[Any], responses: list[str]) -> list[ResponseLogprobs]:
            from tamis.engine.tasks import _content_key

            out = []
            for p, r in zip(prompts, responses):
                row = by_key[_content_key(p, r)]
                out.append(ResponseLogprobs(tokens=tuple(row["tokens"]), logprobs=tuple(row["logprobs"]),
                                            note=row["note"] or "", context_dropped=int(row["context_dropped"] or 0),
                                            skipped=bool(row["skipped"])))
            return out

    table = response_likelihood(examples, Precomputed())  # type: ignore[arg-type]
    run.manifest.count(**table.counts, **stats.counts("likelihood"), engine_workers=stats.workers)
    run.manifest.data["engine"] = {"engine": config.engine.engine, "address": config.engine.address,
                                   "workers": stats.workers, "shards": store.url}
    return table, stats.extra["info"]


def engine_embeddings(texts: list[str], config: ProfileConfig, run: Run) -> tuple[np.ndarray, str]:
    """The embeddings computed block by block on ``config.engine`` (shards in the run folder), in text
    order. Equal to the local path's to float rounding: blocks batch texts as sentence-transformers
    does, but ties in length may fall into neighbouring batches, which pads them differently."""
    from tamis.engine import ShardStore, get_engine
    from tamis.engine.tasks import EmbeddingTask, embedding_items, embedding_size

    store = ShardStore(stage_shards(config.engine, run.out, "embeddings"))
    by_key, stats = get_engine(config.engine).map(EmbeddingTask(config.embedder), embedding_items(texts), store,
                                                  size=embedding_size, description="embedding")
    run.manifest.count(**stats.counts("embeddings"))
    run.manifest.data.setdefault("engine", {"engine": config.engine.engine, "address": config.engine.address,
                                            "workers": stats.workers, "shards": store.url})
    vectors = np.asarray([by_key[t]["vector"] for t in texts], dtype=np.float32)
    return vectors.reshape(len(texts), -1), stats.extra["info"]["identity"]


def lowest_likelihood(signals: list[dict[str, Any]], examples: list[Example], k: int = 8) -> list[dict[str, Any]]:
    """The examples the model finds least likely: the first place to look for bad targets."""
    by_id = {ex.id: ex for ex in examples}
    scored = [s for s in signals if s.get("loglik_mean") is not None]
    scored.sort(key=lambda s: s["loglik_mean"])
    return [
        {"id": s["id"], "loglik_mean": s["loglik_mean"], "prompt": by_id[s["id"]].prompt_text,
         "response": by_id[s["id"]].response or "", "meta": by_id[s["id"]].meta}
        for s in scored[:k]
    ]


def _clip(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def summary_markdown(result: ProfileResult, read_summary: str, models: dict[str, str]) -> str:
    lines = ["# tamis profile", "", f"- data: {read_summary}"]
    lines += [f"- {role}: `{identity}`" for role, identity in models.items()]
    scored = [s for s in result.signals if s.get("loglik_mean") is not None]
    if scored:
        means = np.array([s["loglik_mean"] for s in scored])
        lines += [f"- response log-likelihood per token: median {np.median(means):.3f}, "
                  f"min {means.min():.3f}, max {means.max():.3f}"]
    if result.flagged:
        lines += ["", "## Least likely responses (look here first)", "",
                  "| id | loglik/token | prompt | response |", "|---|---|---|---|"]
        lines += [f"| {f['id']} | {f['loglik_mean']:.3f} | {_clip(f['prompt'])} | {_clip(f['response'])} |"
                  for f in result.flagged]
    if result.near_duplicates:
        lines += ["", f"## Near-duplicates (cosine >= {NEAR_DUPLICATE})", ""]
        lines += [f"- {a} ~ {b} ({s:.3f})" for a, b, s in result.near_duplicates]
    return "\n".join(lines) + "\n"
