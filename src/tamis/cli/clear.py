"""CLEAR commands: score confidence, filter (policies over any runs' signals), correct, evaluate-detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from tamis.cli.app import (CalibrateOpt, DryRunOpt, EngineOptions, FormatOpt, OverwriteOpt, PlanJsonOpt, WorkspaceOpt,
                           app, check_plan_flags, friendly_errors, opt, out, score_app, show_plan, workspace_from)
from tamis.engine.base import EngineConfig
from tamis.curate.correct import CorrectConfig
from tamis.curate.filter import FilterRule
from tamis.pipeline.clear import CorrectJob, DetectorJob, FilterJob, ScoreJob
from tamis.signals.confidence import ConfidenceConfig

OutputFormatOpt = opt(FilterJob, "output_format", "--output-format")
PushOpt = typer.Option(None, "--push-to-hub", metavar="OWNER/NAME",
                       help="Then upload the curated data, its dataset card (README.md), decisions and manifest to "
                            "this Hugging Face dataset repo (needs a token: HF_TOKEN or `hf auth login`).")



def push_output(result: Any, repo: Optional[str]) -> None:
    """--push-to-hub: upload a finished curation run's folder (a ConfigError when no token or network)."""
    if repo:
        from tamis.report.card import push_to_hub

        url = push_to_hub(result.out_dir, repo, data_file=result.data_path.name if result.data_path else None)
        out.print(f"pushed to [bold]{url}[/]")


@score_app.command("confidence")
@friendly_errors
def score_confidence(
    data: Path = typer.Argument(..., help="Data set of (prompt, response) pairs."),
    model: str = opt(ScoreJob, "model", "--model", "-m"),
    output: Optional[Path] = opt(ScoreJob, "out", "--out", "-o"),
    format: Optional[str] = FormatOpt,
    k: int = opt(ConfidenceConfig, "k"),
    temperature: float = opt(ConfidenceConfig, "temperature"),
    max_tokens: int = opt(ConfidenceConfig, "max_tokens"),
    alpha: float = opt(ConfidenceConfig, "alpha"),
    beta: float = opt(ConfidenceConfig, "beta"),
    similarity: str = opt(ConfidenceConfig, "similarity"),
    embedder: str = opt(ConfidenceConfig, "embedder"),
    nli_model: Optional[str] = opt(ConfidenceConfig, "nli_model"),
    reflection: str = opt(ConfidenceConfig, "reflection"),
    reasoning: str = opt(ConfidenceConfig, "reasoning"),
    max_prompt_chars: int = opt(ConfidenceConfig, "max_prompt_chars"),
    max_response_chars: int = opt(ConfidenceConfig, "max_response_chars"),
    baselines: bool = opt(ScoreJob, "baselines"),
    judge: bool = opt(ScoreJob, "judge"),
    judge_reasoning: str = opt(ScoreJob, "judge_reasoning"),
    seed: int = opt(ConfidenceConfig, "seed"),
    limit: Optional[int] = opt(ScoreJob, "limit"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """BSDetector confidence of every example (C = beta*O + (1-beta)*S) and the peers' scores; resumable."""
    from tamis.pipeline.clear import run_score_confidence

    cfg = ConfidenceConfig(k=k, temperature=temperature, max_tokens=max_tokens, alpha=alpha, beta=beta,
                           similarity=similarity, embedder=embedder, nli_model=nli_model, reflection=reflection,
                           reasoning=reasoning, seed=seed, max_prompt_chars=max_prompt_chars,
                           max_response_chars=max_response_chars)
    job = ScoreJob(data=str(data), out=str(output) if output else None, format=format, model=model, limit=limit,
                   baselines=baselines, judge=judge, judge_reasoning=judge_reasoning, confidence=cfg,
                   engine=engine)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_confidence

        return show_plan(lambda ws: plan_confidence(job, ws), workspace, as_json, calibrate)
    result = run_score_confidence(job, workspace_from(workspace), overwrite=overwrite)
    print_distributions(result.table)
    print_counts(result.counts, "reused: this run was complete" if result.reused else "")
    out.print(f"outputs in [bold]{result.out_dir}[/] (signals.parquet, samples.jsonl, summary.md, manifest.json)")


def print_distributions(table: Any) -> None:
    from tamis.pipeline.clear import distributions

    view = Table(title="Score distributions")
    for col in ("signal", "better", "distribution"):
        view.add_column(col)
    for row in distributions(table):
        view.add_row(*row)
    out.print(view)


def print_counts(counts: dict[str, Any], note: str = "") -> None:
    view = Table(title="Counts" + (f" ({note})" if note else ""), show_header=False)
    view.add_column("what")
    view.add_column("n", justify="right")
    for key, value in counts.items():
        view.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(view)


@app.command("filter")
@friendly_errors
def filter_command(
    data: Path = typer.Argument(..., help="The data set that was scored."),
    scores: list[Path] = typer.Option(..., "--scores", "-s", help="A scoring run's folder or a score file (with an "
                                      "id column); repeat to combine the signals of several runs."),
    output: Optional[Path] = opt(FilterJob, "out", "--out", "-o"),
    signal: Optional[str] = typer.Option(None, help="Single-signal filter on this signal (its direction comes "
                                         "from the registry) [default: confidence, kept at or above its median]."),
    threshold: Optional[float] = opt(FilterRule, "threshold"),
    quantile: Optional[float] = opt(FilterRule, "quantile"),
    keep_fraction: Optional[float] = opt(FilterRule, "keep_fraction"),
    keep: list[str] = opt(FilterJob, "keep", "--keep"),
    drop: list[str] = opt(FilterJob, "drop", "--drop"),
    per_label: bool = opt(FilterJob, "per_label", "--per-label"),
    format: Optional[str] = FormatOpt,
    output_format: Optional[str] = OutputFormatOpt,
    push_to_hub: Optional[str] = PushOpt,
    overwrite: bool = OverwriteOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Keep the examples a policy accepts: one signal's median (CLEAR's Auto-Filter) or --keep/--drop rules
    over the signals of several runs. Every decision's reason names each signal and threshold."""
    from tamis.pipeline.clear import run_filter

    single = signal is not None or any(x is not None for x in (threshold, quantile, keep_fraction))
    rule = FilterRule(signal=signal or "confidence", threshold=threshold, quantile=quantile,
                      keep_fraction=keep_fraction) if single else None
    job = FilterJob(data=str(data), scores=[str(s) for s in scores], out=str(output) if output else None, rule=rule,
                    keep=keep, drop=drop, per_label=per_label, format=format, output_format=output_format)
    result = run_filter(job, workspace_from(workspace), overwrite=overwrite)
    for rule_text, value in result.thresholds.items():
        shown = (", ".join(f"{v:.4g} for {k!r}" for k, v in value.items()) if isinstance(value, dict)
                 else f"{value:.4g}")
        out.print(f"rule [bold]{rule_text}[/]: threshold {shown}")
    print_counts(result.counts, "reused: this run was complete" if result.reused else "")
    out.print(f"outputs in [bold]{result.out_dir}[/] (decisions.jsonl, {result.data_path.name if result.data_path else ''}, "
              "dropped.jsonl, README.md, manifest.json)")
    push_output(result, push_to_hub)


@app.command("correct")
@friendly_errors
def correct_command(
    data: Path = typer.Argument(..., help="The data set that was filtered."),
    decisions: Path = typer.Option(..., "--decisions", "-d", help="decisions.jsonl of 'tamis filter' (or its folder)."),
    output: Optional[Path] = opt(CorrectJob, "out", "--out", "-o"),
    model: str = opt(CorrectJob, "model", "--model", "-m"),
    judge: Optional[str] = opt(CorrectJob, "judge"),
    eta: float = opt(CorrectConfig, "eta"),
    review_above: Optional[float] = opt(CorrectConfig, "review_above"),
    k: int = opt(CorrectConfig, "k"),
    beta: float = opt(CorrectConfig, "beta"),
    max_tokens: int = opt(CorrectConfig, "max_tokens"),
    seed: int = opt(CorrectConfig, "seed"),
    format: Optional[str] = FormatOpt,
    output_format: Optional[str] = OutputFormatOpt,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Auto-Correct: replace dropped targets only when the judge is confident the model's answer is better."""
    from tamis.pipeline.clear import run_correct

    cfg = CorrectConfig(eta=eta, review_above=review_above, k=k, beta=beta, max_tokens=max_tokens, seed=seed)
    job = CorrectJob(data=str(data), decisions=str(decisions), out=str(output) if output else None, model=model, judge=judge,
                     format=format, output_format=output_format, correct=cfg)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_correct

        return show_plan(lambda ws: plan_correct(job, ws), workspace, as_json, calibrate)
    result = run_correct(job, workspace_from(workspace), overwrite=overwrite)
    print_counts(result.counts, "reused: this run was complete" if result.reused else "")
    out.print(f"outputs in [bold]{result.out_dir}[/] (decisions.jsonl, {result.data_path.name if result.data_path else ''}"
              " with originals in meta, dropped.jsonl)")


@app.command("evaluate-detector")
@friendly_errors
def evaluate_detector(
    data: Path = typer.Argument(..., help="Data with a field marking known-bad rows."),
    flag: str = typer.Option(..., "--flag", help="Meta field (dotted path) marking bad rows, e.g. status or corruption."),
    scores: list[Path] = typer.Option(..., "--scores", "-s", help="Scoring run folders or score files (repeat)."),
    bad: list[str] = opt(DetectorJob, "bad", "--bad"),
    good: list[str] = opt(DetectorJob, "good", "--good"),
    output: Optional[Path] = opt(DetectorJob, "out", "--out", "-o"),
    resamples: int = opt(DetectorJob, "resamples"),
    format: Optional[str] = FormatOpt,
    overwrite: bool = OverwriteOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """AUROC, AUPRC and the median filter's precision/recall of every score, with bootstrap 95% CIs."""
    from tamis.pipeline.clear import run_evaluate_detector

    job = DetectorJob(data=str(data), scores=[str(s) for s in scores], flag=flag, bad=bad, good=good,
                      out=str(output) if output else None, format=format, resamples=resamples)
    result = run_evaluate_detector(job, workspace_from(workspace), overwrite=overwrite)
    table = Table(title=f"Detecting bad rows ({result.counts.get('bad')} bad of {result.counts.get('evaluated')})")
    for col in ("signal", "AUROC [95% CI]", "length-matched AUROC", "AUPRC [95% CI]", "precision", "recall"):
        table.add_column(col)

    def fmt(m: dict[str, Any] | None) -> str:
        return "-" if not m else f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"

    for name, r in result.results.items():
        table.add_row(name + (" (baseline)" if r.get("baseline") else ""), fmt(r.get("auroc")),
                      fmt(r.get("length_matched_auroc")), fmt(r.get("auprc")), fmt(r.get("precision")),
                      fmt(r.get("recall")))
    out.print(table)
    out.print("response_length is the length-only baseline (longer = worse); a signal whose AUROC falls to 0.5 "
              "once length-matched only knew the length.", markup=False)
    out.print(f"outputs in [bold]{result.out_dir}[/] (detection.json, manifest.json)")
