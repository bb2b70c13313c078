"""CLEAR commands: score confidence, filter, correct, evaluate-detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from tamis.cli.app import FormatOpt, WorkspaceOpt, app, friendly_errors, out, score_app, workspace_from


@score_app.command("confidence")
@friendly_errors
def score_confidence(
    data: Path = typer.Argument(..., help="Data set of (prompt, response) pairs."),
    model: str = typer.Option("transformers:smollm2", "--model", "-m", help="LLM spec (the model to fine-tune)."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/confidence-NAME]."),
    format: Optional[str] = FormatOpt,
    k: int = typer.Option(5, help="Samples per example for observed consistency."),
    max_tokens: int = typer.Option(96, help="Max new tokens per sample."),
    alpha: float = typer.Option(0.8, help="Weight of semantic similarity vs exact match in O."),
    beta: float = typer.Option(0.7, help="Weight of O vs self-reflection S in C."),
    similarity: str = typer.Option("embedding", help="s_i: embedding (bundled MiniLM cosine), token_f1, or nli."),
    embedder: str = typer.Option("sentence-transformers:minilm", help="Embedder spec for similarity=embedding."),
    nli_model: Optional[str] = typer.Option(None, help="HF sequence-classification NLI model (folder or offline id)."),
    reflection: str = typer.Option("auto", help="auto (log-probs if the backend has them), logprobs or text."),
    baselines: bool = typer.Option(True, help="Also compute log-likelihood, IFD, judge, length, random."),
    judge: bool = typer.Option(True, help="Include the LLM-judge 0-5 baseline."),
    seed: int = typer.Option(0),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """BSDetector confidence of every example (C = beta*O + (1-beta)*S) and the peers' scores; resumable."""
    from tamis.pipeline.clear import ScoreJob, run_score_confidence
    from tamis.signals.confidence import ConfidenceConfig

    try:
        cfg = ConfidenceConfig(k=k, max_tokens=max_tokens, alpha=alpha, beta=beta, similarity=similarity,
                               embedder=embedder, nli_model=nli_model, reflection=reflection, seed=seed)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    job = ScoreJob(data=str(data), out=str(output) if output else None, format=format, model=model, limit=limit,
                   baselines=baselines, judge=judge, confidence=cfg)
    result = run_score_confidence(job, workspace_from(workspace))
    _print_distributions(result["signals"])
    out.print(f"counts: {result['counts']}")
    out.print(f"outputs in [bold]{result['out_dir']}[/] (signals.jsonl, samples.jsonl, summary.md, manifest.json)")


def _print_distributions(signals: list[dict[str, Any]]) -> None:
    from tamis.pipeline.clear import describe
    from tamis.signals.quality_baselines import SIGNAL_DIRECTION

    table = Table(title="Score distributions")
    table.add_column("signal")
    table.add_column("distribution")
    for name in SIGNAL_DIRECTION:
        values = [s.get(name) for s in signals if s.get(name) is not None]
        if values:
            table.add_row(name, describe(values))
    out.print(table)


@app.command("filter")
@friendly_errors
def filter_command(
    data: Path = typer.Argument(..., help="The data set that was scored."),
    scores: Path = typer.Option(..., "--scores", "-s", help="signals.jsonl (or the score run's folder)."),
    output: Path = typer.Option(..., "--out", "-o", help="Output folder (decisions, kept, dropped, manifest)."),
    signal: str = typer.Option("confidence", help="Which score to threshold."),
    threshold: Optional[float] = typer.Option(None, help="Keep scores >= this value."),
    quantile: Optional[float] = typer.Option(None, help="Keep scores >= this quantile [default: the median]."),
    keep_fraction: Optional[float] = typer.Option(None, help="Keep exactly this share, best first."),
    lower_is_better: bool = typer.Option(False, help="For scores like IFD where lower is better."),
    format: Optional[str] = FormatOpt,
) -> None:
    """Auto-Filter: keep examples whose score passes the threshold (CLEAR: the median)."""
    from tamis.curate.filter import FilterRule
    from tamis.pipeline.clear import run_filter

    try:
        rule = FilterRule(signal=signal, threshold=threshold, quantile=quantile, keep_fraction=keep_fraction,
                          higher_is_better=not lower_is_better)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    result = run_filter(str(data), str(scores), rule, output, format)
    out.print(f"threshold {result['threshold']}  counts {result['counts']}")
    out.print(f"outputs in [bold]{output}[/] (decisions.jsonl, kept.jsonl, dropped.jsonl, manifest.json)")


@app.command("correct")
@friendly_errors
def correct_command(
    data: Path = typer.Argument(..., help="The data set that was filtered."),
    decisions: Path = typer.Option(..., "--decisions", "-d", help="decisions.jsonl from 'tamis filter'."),
    output: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: str = typer.Option("transformers:smollm2", "--model", "-m", help="Model that answers (e.g. the fine-tuned one)."),
    judge: Optional[str] = typer.Option(None, help="Judge model spec [default: the answer model]."),
    eta: float = typer.Option(0.8, help="Replace only when confidence(candidate better) > eta."),
    review_above: Optional[float] = typer.Option(None, help="Mark for human review when confidence is in [this, eta]."),
    k: int = typer.Option(5, help="Sampled verdicts per order."),
    max_tokens: int = typer.Option(256, help="Max new tokens of a candidate answer."),
    format: Optional[str] = FormatOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Auto-Correct: replace filtered targets only when the judge is confident the model's answer is better."""
    from tamis.curate.correct import CorrectConfig
    from tamis.pipeline.clear import run_correct

    cfg = CorrectConfig(eta=eta, review_above=review_above, k=k, max_tokens=max_tokens)
    result = run_correct(str(data), str(decisions), model, judge or model, cfg, output, workspace_from(workspace), format)
    out.print(f"counts {result['counts']}")
    out.print(f"outputs in [bold]{output}[/] (decisions.jsonl, kept.jsonl with originals in meta, dropped.jsonl)")


@app.command("evaluate-detector")
@friendly_errors
def evaluate_detector(
    data: Path = typer.Argument(..., help="Data with a field marking known-bad rows."),
    flag: str = typer.Option(..., "--flag", help="Meta field (dotted path) marking bad rows, e.g. status or corruption."),
    scores: Path = typer.Option(..., "--scores", "-s", help="signals.jsonl (or the score run's folder)."),
    bad: list[str] = typer.Option([], "--bad", help="Value(s) of the field that mean bad [default: any truthy value]."),
    good: list[str] = typer.Option([], "--good", help="Value(s) that mean good; other rows are left out."),
    output: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples for the 95% CIs."),
    format: Optional[str] = FormatOpt,
) -> None:
    """AUROC, AUPRC and the median filter's precision/recall of every score, with bootstrap 95% CIs."""
    from tamis.pipeline.clear import run_evaluate_detector

    result = run_evaluate_detector(str(data), str(scores), flag, bad, good, output, format, resamples)
    table = Table(title=f"Detecting bad rows ({result['counts']})")
    for col in ("signal", "AUROC [95% CI]", "AUPRC [95% CI]", "precision", "recall"):
        table.add_column(col)

    def fmt(m: dict[str, Any] | None) -> str:
        return "-" if not m else f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"

    for name, r in result["results"].items():
        table.add_row(name, fmt(r.get("auroc")), fmt(r.get("auprc")), fmt(r.get("precision")), fmt(r.get("recall")))
    out.print(table)
    out.print(f"outputs in [bold]{output}[/] (detection.json, manifest.json)")
