"""Job commands: profile a data set, run the demo (the main job on embedded defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from tamis.cli.app import (CalibrateOpt, DryRunOpt, EngineOptions, FormatOpt, OverwriteOpt, PlanJsonOpt, WorkspaceOpt,
                           app, check_plan_flags, friendly_errors, opt, out, show_plan, workspace_from)
from tamis.engine.base import EngineConfig
from tamis.pipeline.profile import ProfileConfig


@app.command()
@friendly_errors
def profile(
    data: Path = typer.Argument(..., help="Data set to profile."),
    output: Optional[Path] = opt(ProfileConfig, "out", "--out", "-o"),
    format: Optional[str] = FormatOpt,
    model: str = opt(ProfileConfig, "model", "--model", "-m"),
    embedder: str = opt(ProfileConfig, "embedder", "--embedder", "-e"),
    likelihood: bool = opt(ProfileConfig, "likelihood"),
    embed: bool = opt(ProfileConfig, "embed"),
    limit: Optional[int] = opt(ProfileConfig, "limit"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Measure every example (lengths, log-likelihood, embedding neighbours); resumable."""
    from tamis.pipeline.profile import run_profile

    config = ProfileConfig(data=str(data), out=str(output) if output else None, format=format, model=model,
                           embedder=embedder, likelihood=likelihood, embed=embed, limit=limit,
                           engine=engine)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_profile

        return show_plan(lambda ws: plan_profile(config, ws), workspace, as_json, calibrate)
    _print_profile(run_profile(config, workspace_from(workspace), overwrite=overwrite))


@app.command()
@friendly_errors
def demo(
    study: bool = typer.Option(True, help="Also run the small curation study (fine-tune, evaluate, report)."),
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """The main job on embedded defaults: profile the bundled data, then curate, fine-tune, evaluate, report."""
    from tamis.pipeline.demo import run_demo

    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan.study import plan_demo

        return show_plan(lambda ws: plan_demo(ws, study), workspace, as_json, calibrate)

    result = run_demo(workspace_from(workspace), study=study)
    _print_profile(result.profile)
    if result.study is not None:
        from tamis.cli.app import print_results

        from tamis.cli.training import print_verdicts

        print_results(result.study.rows, "Does curation pay off? (SmolLM2 + LoRA, held-out test set, 95% CI)")
        print_verdicts(result.study.comparison)
        out.print(f"study report: [bold]{result.study.report}[/]")
    if result.flaw_detection:
        f = result.flaw_detection
        auroc = f.get("auroc") or {}
        out.print(f"flaw detection on the bundled instructions ({f['signal']}, {f.get('n_bad')} flawed of "
                  f"{f.get('n')}): AUROC {auroc.get('value', float('nan')):.2f} [{auroc.get('ci_low', float('nan')):.2f}, "
                  f"{auroc.get('ci_high', float('nan')):.2f}]; flagging {f['rule']}", soft_wrap=True)


def _print_profile(result: Any) -> None:
    counts = result.counts
    out.print(f"[bold]read[/] {counts.get('read')}  [bold green]kept[/] {counts.get('kept')}  "
              f"[bold red]rejected[/] {counts.get('rejected')}  near-duplicates {counts.get('near_duplicates', 0)}")
    for problem in result.problems[:10]:
        out.print(f"  [red]rejected[/] {problem}", soft_wrap=True)
    if len(result.problems) > 10:
        out.print(f"  ... and {len(result.problems) - 10} more (see quarantine.jsonl)")
    if result.flagged:
        table = Table(title="Least likely responses (look here first)")
        table.add_column("id", no_wrap=True, min_width=10)
        table.add_column("loglik/tok", justify="right", no_wrap=True, min_width=10)
        for name in ("prompt", "response", "note"):
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=36)
        for f in result.flagged:
            table.add_row(f["id"], f"{f['loglik_mean']:.2f}", " ".join(f["prompt"].split()),
                          " ".join(f["response"].split()), str(f["meta"].get("flaw", "")))
        out.print(table)
    out.print(f"outputs in [bold]{result.out_dir}[/] (scored.jsonl, signals.parquet, summary.md, manifest.json)")
