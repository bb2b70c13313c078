"""Train and evaluate: ``tamis train sft``, ``tamis eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import FormatOpt, WorkspaceOpt, app, experiment_app, friendly_errors, out, workspace_from

train_app = typer.Typer(help="Fine-tune models on a data set (LoRA SFT, encoder classifiers).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("sft")
@friendly_errors
def train_sft_command(
    data: Path = typer.Argument(..., help="Chat/instruction data (any format tamis reads)."),
    model: str = typer.Option("transformers:smollm2", "--model", "-m", help="Base model spec (transformers)."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/sft-NAME]."),
    format: Optional[str] = FormatOpt,
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."),
    lora_r: int = typer.Option(8, help="LoRA rank."),
    epochs: float = typer.Option(1.0, help="Training epochs."),
    max_steps: int = typer.Option(-1, help="Stop after this many optimiser steps (-1: by epochs)."),
    batch_size: int = typer.Option(8, help="Per-device batch size."),
    learning_rate: Optional[float] = typer.Option(None, help="Default 2e-4 (LoRA) or 2e-5 (full)."),
    max_length: int = typer.Option(512, help="Truncate training sequences to this many tokens."),
    eval_fraction: float = typer.Option(0.1, help="Share of examples held out for the eval loss."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after this many evals without improvement."),
    seed: int = typer.Option(0, help="Seed for shuffling, splits and initialisation."),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Supervised fine-tuning with TRL (loss on the final assistant turn); resumes from checkpoints."""
    from tamis.io import read_dataset
    from tamis.train.sft import SFTSettings, train_sft

    ws = workspace_from(workspace)
    read = read_dataset(data, format=format, limit=limit)
    out.print(read.summary())
    settings = SFTSettings(model=model, lora=not full, lora_r=lora_r, lora_alpha=2 * lora_r, epochs=epochs,
                           max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                           max_length=max_length, eval_fraction=eval_fraction,
                           early_stopping_patience=early_stopping, seed=seed)
    target = output or ws.run_dir(f"sft-{Path(data).stem}")
    result = train_sft(read.examples, settings, target, ws)
    if result.resumed_from:
        out.print(f"resumed from {result.resumed_from}")
    loss = result.metrics.get("eval_loss", result.metrics.get("train_loss"))
    out.print(f"saved {result.model_dir} (loss {loss:.4f}); evaluate it with: tamis eval {result.model_dir} DATA")


@train_app.command("classifier")
@friendly_errors
def train_classifier_command(
    data: Path = typer.Argument(..., help="Labelled data (text, label)."),
    model: str = typer.Option("minilm", "--model", "-m", help="Encoder: 'minilm' (bundled), a folder or an HF id."),
    test: Optional[Path] = typer.Option(None, help="A separate labelled test set [default: an eval split]."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/classifier-NAME]."),
    format: Optional[str] = FormatOpt,
    epochs: float = typer.Option(3.0, help="Training epochs."),
    max_steps: Optional[int] = typer.Option(None, help="Cap on optimiser steps."),
    batch_size: int = typer.Option(16, help="Batch size."),
    learning_rate: float = typer.Option(1e-4, help="AdamW learning rate."),
    eval_fraction: float = typer.Option(0.2, help="Held-out share when no --test is given (stratified)."),
    seed: int = typer.Option(0, help="Seed for the split, initialisation and order."),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Fine-tune an encoder classifier; macro-F1 and accuracy with bootstrap 95% CIs."""
    from tamis.io import read_dataset
    from tamis.train.classifier import ClassifierConfig
    from tamis.train.classifier_job import run_classifier_training

    ws = workspace_from(workspace)
    read = read_dataset(data, format=format, limit=limit)
    out.print(read.summary())
    test_examples = read_dataset(test, format=format).examples if test else None
    config = ClassifierConfig(model=model, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                              learning_rate=learning_rate, seed=seed)
    target = output or ws.run_dir(f"classifier-{Path(data).stem}")
    summary = run_classifier_training(read.examples, config, target, test=test_examples, eval_fraction=eval_fraction)
    for name, est in summary["metrics"].items():
        out.print(f"{name}: {est['value']:.4f} [{est['ci_low']:.4f}, {est['ci_high']:.4f}] (n={summary['n_eval']})")
    out.print(f"model saved in [bold]{target / 'model'}[/]")


@app.command("eval")
@friendly_errors
def eval_command(
    model: str = typer.Argument(..., help="Model spec, or a folder with a trained adapter/model."),
    data: Path = typer.Argument(..., help="Test set whose final assistant turns are the references."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/eval-NAME]."),
    format: Optional[str] = FormatOpt,
    metric: Optional[list[str]] = typer.Option(
        None, "--metric", help="exact_match, accuracy, token_f1, chrf, bleu, ter, corpus_chrf "
                               "[default: BLEU/chrF/TER for translation, else short-answer metrics]."),
    max_tokens: int = typer.Option(256, help="Maximum new tokens per output."),
    ratings: Optional[Path] = typer.Option(None, help="Human ratings file (id, score[, rater]) to join in."),
    limit: Optional[int] = typer.Option(None, help="Evaluate at most this many rows."),
    seed: int = typer.Option(0, help="Seed for generation and the bootstrap."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Generate on a test set (batched, cached) and score it, with bootstrap 95% CIs."""
    from tamis.evaluate.run import EvalSettings, format_estimate, run_eval
    from tamis.models.base import ModelSpec

    spec = model if ":" in model and not Path(model).exists() else f"transformers:{model}"
    ModelSpec.parse(spec)
    settings = EvalSettings(model=spec, data=str(data), out=str(output) if output else None, format=format,
                            metrics=tuple(metric) if metric else None, max_tokens=max_tokens,
                            ratings=str(ratings) if ratings else None, limit=limit, seed=seed)
    result = run_eval(settings, workspace_from(workspace))
    table = Table("metric", "value [95% CI]", title=f"{result.summary['n']} examples, {result.summary['model']}")
    for name, est in result.summary["metrics"].items():
        table.add_row(name, format_estimate(est))
    out.print(table)
    out.print(f"per-example outputs in [bold]{result.out_dir / 'outputs.jsonl'}[/]")


@experiment_app.command("run")
@friendly_errors
def experiment_run(
    recipe: Path = typer.Argument(..., help="YAML recipe: data variants x models x seeds, training, evaluation."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/experiment-NAME]."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Run a study from a recipe (resumes when interrupted) and write an HTML report."""
    from tamis.pipeline.experiment import run_experiment
    from tamis.pipeline.recipe import load_recipe
    from tamis.report.experiment import aggregate

    result = run_experiment(load_recipe(recipe), workspace_from(workspace), output)
    rows = aggregate(result.rows)
    metrics = [k for k in result.rows[0]["metrics"]] if result.rows else []
    table = Table("variant", "model", "n", *metrics, title="results (mean over seeds)")
    for row in rows:
        table.add_row(row["variant"], row["model"], str(row["n_train"]), *(f"{row[m]:.3f}" for m in metrics))
    out.print(table)
    out.print(f"report: [bold]{result.report}[/]")
