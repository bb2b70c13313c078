"""Influence commands: ``tamis score influence`` (G-DIG scores on a seed set) and ``tamis select``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from tamis.cli.app import FormatOpt, WorkspaceOpt, app, friendly_errors, out, score_app, workspace_from


@score_app.command("influence")
@friendly_errors
def score_influence(
    candidates: Path = typer.Argument(..., help="Candidate training data (chat examples)."),
    seed: Path = typer.Option(..., "--seed", "-s", help="Trusted seed set (chat examples)."),
    model: str = typer.Option("transformers:smollm2", "--model", "-m", help="transformers:NAME/PATH or 'smollm2'."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/influence-NAME]."),
    format: Optional[str] = FormatOpt,
    seed_format: Optional[str] = typer.Option(None, help="Format of the seed set, if not the same as --format."),
    params: str = typer.Option("lora", help="Tracked parameters: lora (adapters) or linear (Linear layers)."),
    lora_r: int = typer.Option(8, help="LoRA rank (params=lora)."),
    lora_targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", help="LoRA target modules (params=lora)."),
    adapter: Optional[str] = typer.Option(None, help="A trained peft adapter folder (warm-up model)."),
    linear_modules: str = typer.Option("mlp.down_proj", help="Linear layer name suffixes (params=linear)."),
    layer_stride: int = typer.Option(3, help="Track layers 0, s, 2s, ... (params=linear)."),
    hessian: str = typer.Option("ekfac", help="identity (TracIn/LESS-style), kfac or ekfac."),
    damping: Optional[float] = typer.Option(None, help="Absolute damping [default: 0.1 x mean eigenvalue per layer]."),
    projection_dim: int = typer.Option(8192, help="Random projection dimension (0: none)."),
    seed_batch_size: int = typer.Option(2, help="Seed examples per seed batch (G-DIG: 2)."),
    factor_limit: Optional[int] = typer.Option(None, help="Fit K-FAC factors on at most this many candidates."),
    max_length: int = typer.Option(256, help="Truncate token sequences to this length."),
    batch_size: int = typer.Option(8, help="Examples per forward+backward."),
    limit: Optional[int] = typer.Option(None, help="Read at most this many candidates."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Influence of each candidate on a trusted seed set; positive = training on it lowers the seed loss."""
    from tamis.signals.influence.gradients import GradientConfig
    from tamis.signals.influence.run import SIGN_NOTE, InfluenceConfig, run_influence

    grads = GradientConfig(params=params, lora_r=lora_r, lora_alpha=2 * lora_r,
                           lora_targets=tuple(s.strip() for s in lora_targets.split(",") if s.strip()),
                           adapter=adapter, linear_modules=tuple(s.strip() for s in linear_modules.split(",") if s.strip()),
                           layer_stride=layer_stride, max_length=max_length, batch_size=batch_size)
    config = InfluenceConfig(candidates=str(candidates), seed=str(seed), model=model, out=str(output) if output else None,
                             format=format, seed_format=seed_format, hessian=hessian, damping=damping,
                             projection_dim=projection_dim, seed_batch_size=seed_batch_size, factor_limit=factor_limit,
                             limit=limit, gradients=grads)
    try:
        result = run_influence(config, workspace_from(workspace))
    except ValueError as exc:
        from tamis.io import DataError

        raise DataError(str(exc)) from exc
    c = result.counts
    out.print(f"[bold]scored[/] {c.get('candidates')} candidates on {c.get('seeds')} seed examples "
              f"({c.get('seed_batches')} batches); positive on all batches: {c.get('positive_on_all')}")
    out.print(f"features computed {c.get('features_computed')}, reused {c.get('features_reused')}; sign: {SIGN_NOTE}")
    out.print(f"outputs in [bold]{result.out_dir}[/] (influence.parquet, features.npy, config.json, manifest.json)")


@app.command("select")
@friendly_errors
def select_command(
    candidates: Path = typer.Argument(..., help="The candidate data set that was scored."),
    scores: Path = typer.Option(..., "--scores", help="Output folder of `tamis score influence`."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: SCORES/select]."),
    format: Optional[str] = FormatOpt,
    rule: str = typer.Option("all", help="Quality rule: all (positive on every seed batch), mean (> 0), topk."),
    top_k: Optional[int] = typer.Option(None, help="How many to keep with --rule topk."),
    budget: Optional[int] = typer.Option(None, help="How many to select in the end [default: all that pass]."),
    clusters: int = typer.Option(8, help="K-means clusters for diversity."),
    seed: int = typer.Option(0, help="K-means random seed."),
) -> None:
    """G-DIG selection: quality rule on influence, then even sampling across K-means gradient clusters."""
    import numpy as np

    from tamis.curate.decisions import action_counts, apply_decisions, write_decisions
    from tamis.curate.select import SelectionConfig, select
    from tamis.io import DataError, read_dataset, write_dataset
    from tamis.manifest import Manifest

    for name in ("ids.json", "influence_batches.npy", "features.npy"):
        if not (scores / name).is_file():
            raise DataError(f"{scores / name} not found: pass the output folder of `tamis score influence`")
    ids = json.loads((scores / "ids.json").read_text())
    batch_scores = np.load(scores / "influence_batches.npy")
    features = np.load(scores / "features.npy")
    read = read_dataset(candidates, format=format)
    known = {ex.id for ex in read.examples}
    missing = [i for i in ids if i not in known]
    if missing:
        raise DataError(f"{len(missing)} scored ids are not in {candidates} (first: {missing[0]}); same file and format?")
    unscored = [ex.id for ex in read.examples if ex.id not in set(ids)]
    config = SelectionConfig(rule=rule, top_k=top_k, budget=budget, clusters=clusters, seed=seed)
    manifest = Manifest("select", vars(config) | {"candidates": str(candidates), "scores": str(scores)})
    try:
        decisions = select(ids, batch_scores, features, config)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    from tamis.curate.decisions import Decision

    decisions += [Decision(id=i, action="review", reason="no influence score (not in the scored run)", step="select-influence")
                  for i in unscored]
    folder = output or scores / "select"
    folder.mkdir(parents=True, exist_ok=True)
    write_decisions(decisions, folder / "decisions.jsonl")
    kept, dropped = apply_decisions(read.examples, decisions)
    kept = [ex for ex in kept if ex.meta.get("decision", {}).get("action") == "select"]
    write_dataset(kept, folder / "selected.jsonl")
    with open(folder / "dropped.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in dropped)
    counts = action_counts(decisions)
    manifest.count(**counts)
    for name in ("decisions.jsonl", "selected.jsonl", "dropped.jsonl"):
        manifest.output(name.split(".")[0], folder / name)
    manifest.write(folder / "manifest.json")
    out.print(f"[bold]decisions[/] {counts}; outputs in [bold]{folder}[/] (decisions.jsonl, selected.jsonl, dropped.jsonl)")
