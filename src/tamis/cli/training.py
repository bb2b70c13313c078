"""Train and evaluate: ``tamis train sft``, ``tamis eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import FormatOpt, OverwriteOpt, WorkspaceOpt, app, experiment_app, friendly_errors, opt, out, workspace_from
from tamis.cli.app import CalibrateOpt, DryRunOpt, PlanJsonOpt, check_plan_flags, show_plan
from tamis.evaluate.settings import EvalSettings
from tamis.train.classifier import ClassifierConfig
from tamis.train.settings import SFTSettings

train_app = typer.Typer(help="Fine-tune models on a data set (LoRA SFT, encoder classifiers).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("sft")
@friendly_errors
def train_sft_command(
    data: Path = typer.Argument(..., help="Chat/instruction data (any format tamis reads)."),
    model: str = opt(SFTSettings, "model", "--model", "-m"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/sft-NAME]."),
    format: Optional[str] = FormatOpt,
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."),
    lora_r: int = opt(SFTSettings, "lora_r"),
    epochs: float = opt(SFTSettings, "epochs"),
    max_steps: int = opt(SFTSettings, "max_steps"),
    batch_size: int = opt(SFTSettings, "batch_size"),
    learning_rate: Optional[float] = opt(SFTSettings, "learning_rate"),
    max_length: int = opt(SFTSettings, "max_length"),
    eval_fraction: float = opt(SFTSettings, "eval_fraction"),
    early_stopping: Optional[int] = opt(SFTSettings, "early_stopping_patience", "--early-stopping"),
    seed: int = opt(SFTSettings, "seed"),
    report_to: Optional[list[str]] = opt(SFTSettings, "report_to", "--report-to"),
    weight_by: Optional[str] = typer.Option(None, "--weight-by", metavar="SIGNAL",
                                            help="Soft curation: draw examples with probability by their rank on "
                                                 "this signal (read from --scores; its direction is known) instead "
                                                 "of dropping any."),
    scores: Optional[list[Path]] = typer.Option(None, "--scores", "-s", help="With --weight-by: scoring run "
                                                "folders or score files (repeat)."),
    weight_floor: float = typer.Option(0.1, min=0.0, max=1.0, help="With --weight-by: the weight of the worst "
                                                                   "example (the best gets 1)."),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Supervised fine-tuning with TRL (loss on the final assistant turn); resumes from checkpoints."""
    from tamis.errors import ConfigError
    from tamis.io import read_dataset
    from tamis.train.sft import train_sft

    ws = workspace_from(workspace)
    read = read_dataset(data, format=format, limit=limit)
    if not as_json:
        out.print(read.summary())
    settings = SFTSettings(model=model, lora=not full, lora_r=lora_r, lora_alpha=2 * lora_r, epochs=epochs,
                           max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                           max_length=max_length, eval_fraction=eval_fraction,
                           early_stopping_patience=early_stopping, seed=seed,
                           report_to=tuple(report_to or ()))
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_sft

        return show_plan(lambda ws: plan_sft(read.examples, settings, ws), workspace, as_json, calibrate)
    weights = None
    if weight_by or scores:
        if not (weight_by and scores):
            raise ConfigError("soft curation needs both --weight-by SIGNAL and --scores RUN")
        from tamis.train.weights import signal_weights, weight_summary

        weights = signal_weights(read.examples, scores, weight_by, floor=weight_floor)
        spread = weight_summary(weights)
        out.print(f"weights by {weight_by}: {spread['min']:.2f} to {spread['max']:.2f}, effective sample size "
                  f"{spread['effective_n']:.1f} of {len(weights)}")
    target = output or ws.run_dir(f"sft-{Path(data).stem}")
    result = train_sft(read.examples, settings, target, ws, overwrite=overwrite, weights=weights)
    if result.reused:
        out.print("reused: this training was complete (same settings and data)")
    if result.resumed_from:
        out.print(f"resumed from {result.resumed_from}")
    loss = result.metrics.get("eval_loss", result.metrics.get("train_loss"))
    out.print(f"saved {result.model_dir} (loss {loss:.4f}); evaluate it with: tamis eval {result.model_dir} DATA")


@train_app.command("classifier")
@friendly_errors
def train_classifier_command(
    data: Path = typer.Argument(..., help="Labelled data (text, label)."),
    model: str = opt(ClassifierConfig, "model", "--model", "-m"),
    test: Optional[Path] = typer.Option(None, help="A separate labelled test set [default: an eval split]."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/classifier-NAME]."),
    format: Optional[str] = FormatOpt,
    epochs: float = opt(ClassifierConfig, "epochs"),
    max_steps: Optional[int] = opt(ClassifierConfig, "max_steps"),
    batch_size: int = opt(ClassifierConfig, "batch_size"),
    learning_rate: float = opt(ClassifierConfig, "learning_rate"),
    eval_fraction: float = typer.Option(0.2, help="Held-out share when no --test is given (stratified)."),
    seed: int = opt(ClassifierConfig, "seed"),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Fine-tune an encoder classifier; macro-F1 and accuracy with bootstrap 95% CIs."""
    from tamis.io import read_dataset
    from tamis.train.classifier_job import run_classifier_training, stratified_split

    check_plan_flags(dry_run, as_json, calibrate)
    read = read_dataset(data, format=format, limit=limit)
    test_examples = read_dataset(test, format=format).examples if test else None
    config = ClassifierConfig(model=model, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                              learning_rate=learning_rate, seed=seed)
    if dry_run:
        from tamis.plan import plan_classifier

        train, held_out = (read.examples, test_examples) if test_examples is not None else \
            stratified_split(read.examples, eval_fraction, seed)
        return show_plan(lambda ws: plan_classifier([ex.text or "" for ex in train], config, ws,
                                                    [ex.text or "" for ex in held_out]), workspace, as_json, calibrate)
    ws = workspace_from(workspace)
    out.print(read.summary())
    target = output or ws.run_dir(f"classifier-{Path(data).stem}")
    summary = run_classifier_training(read.examples, config, target, test=test_examples, eval_fraction=eval_fraction,
                                      overwrite=overwrite, workspace=ws)
    if summary.get("reused"):
        out.print("reused: this training was complete (same settings and data)")
    for name, est in summary["metrics"].items():
        out.print(f"{name}: {est['value']:.4f} [{est['ci_low']:.4f}, {est['ci_high']:.4f}] (n={summary['n_eval']})")
    out.print(f"model saved in [bold]{target / 'model'}[/]")


@app.command("eval")
@friendly_errors
def eval_command(
    model: str = typer.Argument(..., help="Model spec, or a folder with a trained adapter/model."),
    data: Path = typer.Argument(..., help="Test set whose final assistant turns are the references."),
    output: Optional[Path] = opt(EvalSettings, "out", "--out", "-o"),
    format: Optional[str] = FormatOpt,
    metric: Optional[list[str]] = opt(EvalSettings, "metrics", "--metric"),
    max_tokens: int = opt(EvalSettings, "max_tokens"),
    ratings: Optional[Path] = opt(EvalSettings, "ratings"),
    limit: Optional[int] = opt(EvalSettings, "limit"),
    seed: int = opt(EvalSettings, "seed"),
    versus: Optional[str] = opt(EvalSettings, "versus"),
    judge: Optional[str] = opt(EvalSettings, "judge"),
    judge_k: int = opt(EvalSettings, "judge_k"),
    scoring: str = opt(EvalSettings, "scoring"),
    option: Optional[list[str]] = opt(EvalSettings, "options", "--option"),
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Generate on a test set (batched, cached) and score it, with bootstrap 95% CIs."""
    from tamis.evaluate.run import format_estimate, run_eval
    from tamis.models.base import ModelSpec

    spec = _model_or_folder(model)
    ModelSpec.parse(spec)
    settings = EvalSettings(model=spec, data=str(data), out=str(output) if output else None, format=format,
                            metrics=tuple(metric) if metric else None, max_tokens=max_tokens,
                            ratings=str(ratings) if ratings else None, limit=limit, seed=seed,
                            versus=_model_or_folder(versus), judge=_model_or_folder(judge), judge_k=judge_k,
                            scoring=scoring, options=tuple(option) if option else None)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_eval

        return show_plan(lambda ws: plan_eval(settings, ws), workspace, as_json, calibrate)
    result = run_eval(settings, workspace_from(workspace), overwrite=overwrite)
    if result.reused:
        out.print("reused: this evaluation was complete (same settings and inputs)")
    table = Table("metric", "value [95% CI]", title=f"{result.summary['n']} examples, {result.summary['model']}")
    for name, est in result.summary["metrics"].items():
        table.add_row(name, format_estimate(est))
    out.print(table)
    pairwise = result.summary["metrics"].get("win_rate")
    if pairwise:
        out.print(f"win rate vs {pairwise['versus']}: {format_estimate(pairwise)} ({pairwise['wins']} wins, "
                  f"{pairwise['ties']} ties, {pairwise['losses']} losses; judge {pairwise['judge']}; "
                  f"{pairwise['inconsistent_orders']} verdicts changed with the order)")
    out.print(f"per-example outputs in [bold]{result.out_dir / 'outputs.jsonl'}[/]")


def _model_or_folder(value: str | None) -> str | None:
    """A model spec as given; an existing folder that is not an eval's output -> transformers:FOLDER."""
    if value is None or (":" in value and not Path(value).exists()):
        return value
    if (Path(value) / "outputs.jsonl").is_file():
        return value
    return f"transformers:{value}"


@experiment_app.command("run")
@friendly_errors
def experiment_run(
    recipe: str = typer.Argument(..., help="A shipped recipe's name (see `tamis experiment recipes`) or a YAML "
                                          "recipe file: data variants x models x seeds, training, evaluation."),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a recipe field before validation, KEY.PATH=VALUE (a YAML value); repeatable, "
                            "e.g. --set train.max_steps=1 --set data.limit=20 --set eval.limit=5."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/experiment-NAME]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rerun in a folder made with another recipe (variants, "
                                                               "trainings and evaluations whose inputs are unchanged "
                                                               "are still reused)."),
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Run a study from a recipe (resumes when interrupted) and write an HTML report."""
    from tamis.cli.app import print_results
    from tamis.pipeline.experiment import run_study
    from tamis.pipeline.recipe import SyntheticRecipe, load_recipe

    loaded = load_recipe(recipe, overrides or ())
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        if isinstance(loaded, SyntheticRecipe):
            from tamis.plan import plan_synthetic

            return show_plan(lambda ws: plan_synthetic(loaded.study_config(), ws), workspace, as_json, calibrate)
        from tamis.plan.study import plan_experiment

        return show_plan(lambda ws: plan_experiment(loaded, ws), workspace, as_json, calibrate)
    result = run_study(loaded, workspace_from(workspace), output, overwrite=overwrite)
    if isinstance(loaded, SyntheticRecipe):
        from tamis.cli.synthetic import print_synthetic_result

        print_synthetic_result(result, loaded.study_config())
        return
    print_results(result.rows, "results (mean over seeds, bootstrap 95% CI)")
    print_verdicts(result.comparison)
    out.print(f"report: [bold]{result.report}[/]")


def print_verdicts(comparison: dict) -> None:
    """The study's answer: one verdict line per variant, then detection quality (computed by the run)."""
    from tamis.evaluate.comparison import verdict_lines

    for line in verdict_lines(comparison):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


@experiment_app.command("recipes")
@friendly_errors
def experiment_recipes() -> None:
    """List the shipped recipes: run one with `tamis experiment run NAME`."""
    from tamis.pipeline.recipe import load_recipe, shipped_recipes

    table = Table("recipe", "study", "what it compares", title="shipped recipes (src/tamis/data/recipes)")
    for name, path in shipped_recipes().items():
        loaded = load_recipe(path)
        table.add_row(name, getattr(loaded, "study", "variants"), " ".join(loaded.description.split()))
    out.print(table)
