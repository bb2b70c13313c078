"""Validate influence scores by retraining: the linear datamodeling score per Hessian choice.

``tamis experiment lds CANDIDATES --seed-set SEEDS`` (Bergson's ``validate``, TRAK's LDS):
1. warm-up: LoRA-tune the model on all candidates (G-DIG and LESS take gradients of a model tuned on
   the candidates; a fresh LoRA has B = 0, so its A side carries no signal) and score every
   candidate's influence on every seed example through that adapter, once per Hessian choice
   (``ekfac``, ``kfac``, ``identity``), seed batches of one;
2. retrain from the base model on ``n_subsets`` seeded random subsets (half the candidates each, the
   warm-up's settings) and measure each seed example's mean token loss under each subset model;
3. report the LDS (``tamis.evaluate.lds``) of each Hessian choice and of random scores, with
   bootstrap CIs over seed examples.

Every training goes through ``train_once`` and every subset's losses are written as soon as they are
measured, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamis.errors import ConfigError
from tamis.evaluate.lds import lds, subset_masks
from tamis.io import read_dataset
from tamis.pipeline.crossfit import train_once
from tamis.progress import progress
from tamis.records import Example
from tamis.runs import Run, with_data_paths
from tamis.settings import setting, validate
from tamis.signals.influence.config import STRATEGIES
from tamis.store import Workspace, atomic_write_json, atomic_write_text

DEFAULT_TRAINING = {"epochs": 1.0, "batch_size": 4, "learning_rate": 0.001, "max_length": 128, "eval_fraction": 0.0}


@dataclass
class LDSJob:
    candidates: str = setting("", "Candidate training data (chat examples).")
    seed_set: str = setting("", "Trusted seed set (chat examples): the losses the attributions predict.")
    model: str = setting("transformers:smollm2", "Base model (transformers) the subsets are tuned from.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/lds-NAME].")
    n_subsets: int = setting(32, "Retrainings on random subsets (TRAK and Bergson use >= 32).", range=(3, None))
    fraction: float = setting(0.5, "Share of the candidates in each subset.", range=(0, 1))
    hessians: tuple[str, ...] = setting(("ekfac", "kfac", "identity"), "Hessian choices to validate.")
    projection_dim: int = setting(8192, "Random projection dimension of the gradients (0: none).", range=(0, None))
    train: dict[str, Any] = setting(DEFAULT_TRAINING, "SFT settings of the warm-up and of every subset model.")
    max_length: int = setting(256, "Token limit of the influence gradients.", range=(8, None))
    seed: int = setting(0, "Seed of the subsets, the random baseline and the trainings.")
    n_resamples: int = setting(1000, "Bootstrap resamples over seed examples.", range=(100, None))

    def __post_init__(self) -> None:
        self.hessians = tuple(self.hessians)
        validate(self)
        unknown = sorted(set(self.hessians) - set(STRATEGIES))
        if unknown or not self.hessians:
            raise ConfigError(f"hessians: {unknown or '(none)'}; choose among {', '.join(STRATEGIES)}")


@dataclass
class LDSResult:
    out_dir: Path
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> value, ci_low, ci_high, n


def training_settings(job: LDSJob) -> Any:
    """The SFT settings of the warm-up and of every subset model."""
    from tamis.train.settings import SFTSettings

    return SFTSettings(**({"eval_fraction": 0.0} | dict(job.train) | {"model": job.model, "seed": job.seed}))


def _seed_losses(adapter: Path, seeds: list[Example], workspace: Workspace) -> list[float]:
    """Mean token loss of each seed response under a tuned model (the loss the gradients are of)."""
    from tamis.models import load_llm

    llm = load_llm(f"transformers:{adapter}", workspace)
    scored = llm.logprobs([ex.prompt_messages for ex in seeds], [ex.response or "" for ex in seeds])
    return [-r.total / max(1, r.n_tokens) for r in scored]


def _influence(job: LDSJob, hessian: str, adapter: Path, out: Path, workspace: Workspace) -> np.ndarray:
    """[N candidates, S seeds] influence through the warm-up adapter (positive = lowers the seed loss)."""
    from tamis.signals.influence.config import GradientConfig, InfluenceConfig
    from tamis.signals.influence.run import run_influence

    config = InfluenceConfig(candidates=job.candidates, seed_set=job.seed_set, model=job.model,
                             out=str(out / f"influence-{hessian}"), hessian=hessian,
                             projection_dim=job.projection_dim, seed_set_batch_size=1,
                             gradients=GradientConfig(adapter=str(adapter), max_length=job.max_length))
    return np.asarray(run_influence(config, workspace).batch_scores, dtype=np.float64)


def run_lds(job: LDSJob, workspace: Workspace, *, overwrite: bool = False) -> LDSResult:
    job = with_data_paths(job, workspace, "candidates", "seed_set")
    out = Path(job.out) if job.out else workspace.run_dir(f"lds-{Path(job.candidates).stem}")
    with Run("experiment lds", asdict(job) | {"out": None}, out, inputs=[job.candidates, job.seed_set],
             overwrite=overwrite) as run:
        if run.complete and (out / "lds.json").is_file():
            return LDSResult(out, json.loads((out / "lds.json").read_text(encoding="utf-8"))["lds"])
        manifest = run.manifest
        with manifest.stage("read"):
            candidates = read_dataset(job.candidates).examples
            seeds = read_dataset(job.seed_set).examples
        masks = subset_masks(len(candidates), job.n_subsets, job.fraction, job.seed)
        manifest.count(candidates=len(candidates), seeds=len(seeds), subsets=job.n_subsets,
                       subset_size=int(masks[0].sum()))
        with manifest.stage("warmup"):
            adapter = train_once(candidates, training_settings(job), out / "warmup", workspace)
        scores: dict[str, np.ndarray] = {}
        for hessian in job.hessians:
            with manifest.stage(f"influence_{hessian}"):
                scores[hessian] = _influence(job, hessian, adapter, out, workspace)
        scores["random"] = np.random.default_rng(job.seed).normal(size=scores[job.hessians[0]].shape)
        losses = _subset_losses(job, candidates, seeds, masks, out, workspace, manifest)
        result = {name: lds(masks, s, losses, n_resamples=job.n_resamples, seed=job.seed).to_dict()
                  for name, s in scores.items()}
        atomic_write_json(out / "lds.json", {"lds": result, "sign": "LDS > 0: the attribution predicts which "
                                             "subsets lower the seed loss", "subsets": masks.astype(int).tolist(),
                                             "candidate_ids": [ex.id for ex in candidates],
                                             "seed_ids": [ex.id for ex in seeds]})
        atomic_write_text(out / "summary.md", lds_summary(job, result, len(candidates), len(seeds)))
        manifest.output("lds", out / "lds.json")
        manifest.output("summary", out / "summary.md")
        run.finish()
        return LDSResult(out, result)


def _subset_losses(job: LDSJob, candidates: list[Example], seeds: list[Example], masks: np.ndarray, out: Path,
                   workspace: Workspace, manifest: Any) -> np.ndarray:
    """[M, S] seed losses of the subset models; each subset's row is kept in losses.jsonl as it is measured."""
    path = out / "losses.jsonl"
    done: dict[int, list[float]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[int(row["subset"])] = row["losses"]
    with manifest.stage("subsets"), progress("subset retrainings", len(masks)) as advance:
        for m, mask in enumerate(masks):
            if m not in done:
                subset = [ex for ex, keep in zip(candidates, mask) if keep]
                adapter = train_once(subset, training_settings(job), out / "subsets" / f"{m:03d}", workspace)
                done[m] = _seed_losses(adapter, seeds, workspace)
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"subset": m, "losses": done[m]}) + "\n")
            advance(1)
    manifest.count(subsets_measured=len(done))
    return np.asarray([done[m] for m in range(len(masks))], dtype=np.float64)


def lds_summary(job: LDSJob, result: dict[str, dict[str, float]], n_candidates: int, n_seeds: int) -> str:
    lines = [f"# LDS: {Path(job.candidates).name} -> {Path(job.seed_set).name}", "",
             f"{job.n_subsets} retrainings of {job.model} on random {job.fraction:.0%} subsets of {n_candidates} "
             f"candidates; Spearman over subsets between the summed influence and the negative loss of each of "
             f"{n_seeds} seed examples, averaged (95% bootstrap CI over seed examples). LDS > 0: the scores "
             "predict which subsets lower the seed loss; random scores give ~0.", "",
             "| attribution | LDS | 95% CI | seed examples |", "|---|---|---|---|"]
    for name, r in result.items():
        lines.append(f"| {name} | {r['value']:+.3f} | [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['n']} |")
    return "\n".join(lines) + "\n"
