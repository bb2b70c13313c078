"""Influence commands: ``tamis score influence`` (G-DIG scores on a seed set) and ``tamis select``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tamis.cli.app import (CalibrateOpt, DryRunOpt, EngineOptions, FormatOpt, OverwriteOpt, PlanJsonOpt, WorkspaceOpt,
                           app, check_plan_flags, experiment_app, friendly_errors, opt, out, score_app, show_plan,
                           workspace_from)
from tamis.cli.clear import PushOpt, push_output
from tamis.curate.select import SelectionConfig
from tamis.engine.base import EngineConfig
from tamis.pipeline.lds import DEFAULT_TRAINING, LDSJob
from tamis.signals.influence.config import GradientConfig, InfluenceConfig


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


@score_app.command("influence")
@friendly_errors
def score_influence(
    candidates: Path = typer.Argument(..., help="Candidate training data (chat examples)."),
    seed_set: Path = opt(InfluenceConfig, "seed_set", "--seed-set", required=True),
    model: str = opt(InfluenceConfig, "model", "--model", "-m"),
    output: Optional[Path] = opt(InfluenceConfig, "out", "--out", "-o"),
    format: Optional[str] = FormatOpt,
    seed_set_format: Optional[str] = opt(InfluenceConfig, "seed_set_format"),
    params: str = opt(GradientConfig, "params"),
    lora_r: int = opt(GradientConfig, "lora_r"),
    lora_targets: str = opt(GradientConfig, "lora_targets"),
    adapter: Optional[str] = opt(GradientConfig, "adapter"),
    linear_modules: str = opt(GradientConfig, "linear_modules"),
    layer_stride: int = opt(GradientConfig, "layer_stride"),
    hessian: str = opt(InfluenceConfig, "hessian"),
    damping: Optional[float] = opt(InfluenceConfig, "damping"),
    projection_dim: int = opt(InfluenceConfig, "projection_dim"),
    seed_set_batch_size: int = opt(InfluenceConfig, "seed_set_batch_size"),
    factor_limit: Optional[int] = opt(InfluenceConfig, "factor_limit"),
    max_length: int = opt(GradientConfig, "max_length"),
    batch_size: int = opt(GradientConfig, "batch_size"),
    limit: Optional[int] = opt(InfluenceConfig, "limit"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Influence of each candidate on a trusted seed set; positive = training on it lowers the seed loss."""
    from tamis.signals.influence.run import SIGN_NOTE, run_influence

    grads = GradientConfig(params=params, lora_r=lora_r, lora_alpha=2 * lora_r, lora_targets=_names(lora_targets),
                           adapter=adapter, linear_modules=_names(linear_modules), layer_stride=layer_stride,
                           max_length=max_length, batch_size=batch_size)
    config = InfluenceConfig(candidates=str(candidates), seed_set=str(seed_set), model=model,
                             out=str(output) if output else None, format=format, seed_set_format=seed_set_format,
                             hessian=hessian, damping=damping, projection_dim=projection_dim,
                             seed_set_batch_size=seed_set_batch_size, factor_limit=factor_limit, limit=limit,
                             gradients=grads, engine=engine)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_influence

        return show_plan(lambda ws: plan_influence(config, ws), workspace, as_json, calibrate)
    result = run_influence(config, workspace_from(workspace), overwrite=overwrite)
    c = result.counts
    out.print(f"[bold]scored[/] {c.get('candidates')} candidates on {c.get('seeds')} seed-set examples "
              f"({c.get('seed_batches')} batches); positive on all batches: {c.get('positive_on_all')}")
    out.print(f"features computed {c.get('features_computed')}, reused {c.get('features_reused')}; sign: {SIGN_NOTE}")
    out.print(f"outputs in [bold]{result.out_dir}[/] (signals.parquet, influence.parquet, features.npy, config.json, "
              "manifest.json)")


@app.command("select")
@friendly_errors
def select_command(
    candidates: Path = typer.Argument(..., help="The candidate data set that was scored."),
    scores: Path = typer.Option(..., "--scores", "-s", help="Output folder of `tamis score influence`."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: SCORES/select]."),
    format: Optional[str] = FormatOpt,
    output_format: Optional[str] = typer.Option(None, "--output-format", help="Format of the selected data "
                                                "[default: the input's]."),
    rule: str = opt(SelectionConfig, "rule"),
    top_k: Optional[int] = opt(SelectionConfig, "top_k"),
    budget: Optional[int] = opt(SelectionConfig, "budget"),
    clusters: int = opt(SelectionConfig, "clusters"),
    seed: int = opt(SelectionConfig, "seed"),
    per_label: bool = opt(SelectionConfig, "per_label"),
    push_to_hub: Optional[str] = PushOpt,
    overwrite: bool = OverwriteOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """G-DIG selection: quality rule on influence, then even sampling across K-means gradient clusters."""
    from tamis.pipeline.select import SelectJob, run_select

    workspace_from(workspace)  # accepted like every command's; selection calls no model
    config = SelectionConfig(rule=rule, top_k=top_k, budget=budget, clusters=clusters, seed=seed,
                             per_label=per_label)
    job = SelectJob(candidates=str(candidates), scores=str(scores), out=str(output or scores / "select"),
                    format=format, output_format=output_format, selection=config)
    result = run_select(job, overwrite=overwrite)
    out.print(f"[bold]decisions[/] {result.counts}; outputs in [bold]{result.out_dir}[/] (decisions.jsonl, "
              f"{result.data_path.name if result.data_path else ''}, dropped.jsonl, README.md)")
    push_output(result, push_to_hub)


@experiment_app.command("lds")
@friendly_errors
def experiment_lds(
    candidates: Path = typer.Argument(..., help="Candidate training data (chat examples)."),
    seed_set: Path = opt(LDSJob, "seed_set", "--seed-set", required=True),
    model: str = opt(LDSJob, "model", "--model", "-m"),
    output: Optional[Path] = opt(LDSJob, "out", "--out", "-o"),
    n_subsets: int = opt(LDSJob, "n_subsets", "--subsets"),
    fraction: float = opt(LDSJob, "fraction"),
    hessians: str = opt(LDSJob, "hessians"),
    projection_dim: int = opt(LDSJob, "projection_dim"),
    epochs: float = typer.Option(DEFAULT_TRAINING["epochs"], help="Epochs of the warm-up and of every subset training."),
    max_steps: int = typer.Option(-1, help="Optimiser steps of each training instead of epochs (-1: by epochs)."),
    batch_size: int = typer.Option(DEFAULT_TRAINING["batch_size"], help="Training batch size."),
    learning_rate: float = typer.Option(DEFAULT_TRAINING["learning_rate"], help="LoRA learning rate."),
    train_max_length: int = typer.Option(DEFAULT_TRAINING["max_length"], help="Truncate training sequences to this many tokens."),
    max_length: int = opt(LDSJob, "max_length"),
    seed: int = opt(LDSJob, "seed"),
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Validate influence scores by retraining on random subsets: the LDS of each Hessian choice vs random."""
    from tamis.pipeline.lds import run_lds

    train = {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "learning_rate": learning_rate,
             "max_length": train_max_length, "eval_fraction": 0.0}
    job = LDSJob(candidates=str(candidates), seed_set=str(seed_set), model=model, out=str(output) if output else None,
                 n_subsets=n_subsets, fraction=fraction, hessians=_names(hessians), projection_dim=projection_dim,
                 train=train, max_length=max_length, seed=seed)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_lds

        return show_plan(lambda ws: plan_lds(job, ws), workspace, as_json, calibrate)
    result = run_lds(job, workspace_from(workspace), overwrite=overwrite)
    for name, r in result.scores.items():
        out.print(f"LDS {name:>8}: {r['value']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] over {r['n']} seed examples")
    out.print(f"outputs in [bold]{result.out_dir}[/] (lds.json, summary.md, losses.jsonl, manifest.json)")
