"""Annotation-tool interop: export-review (to Argilla / Label Studio) and import-annotations (back)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tamis.cli.app import FormatOpt, OverwriteOpt, app, friendly_errors, opt, out
from tamis.interop.options import ExportReviewJob, ImportAnnotationsJob


@app.command("export-review")
@friendly_errors
def export_review(
    data: Path = typer.Argument(..., help="The data set whose examples go to review."),
    to: str = opt(ExportReviewJob, "to", "--to", "-t", required=True),
    output: Path = opt(ExportReviewJob, "out", "--out", "-o", required=True),
    decisions: Optional[Path] = opt(ExportReviewJob, "decisions", "--decisions", "-d"),
    action: list[str] = opt(ExportReviewJob, "actions", "--action"),
    format: Optional[str] = FormatOpt,
    min_submitted: int = opt(ExportReviewJob, "min_submitted"),
    push: Optional[str] = typer.Option(None, "--push", help="Argilla only: also create this dataset on the server "
                                       "($ARGILLA_API_URL, $ARGILLA_API_KEY; needs the argilla client)."),
    overwrite: bool = OverwriteOpt,
) -> None:
    """Hand review items to Label Studio (tasks.json + labeling_config.xml) or Argilla (records + argilla_settings.json)."""
    from tamis.errors import ConfigError
    from tamis.interop.jobs import run_export_review

    if push and to != "argilla":
        raise ConfigError("--push works with --to argilla (import Label Studio's tasks.json in its UI or API)")
    job = ExportReviewJob(data=str(data), to=to, out=str(output), decisions=str(decisions) if decisions else None,
                          actions=list(action), format=format, min_submitted=min_submitted)
    result = run_export_review(job, overwrite=overwrite)
    counts = result.counts
    out.print(f"exported {counts.get('exported', 0)} item(s) for {to}"
              + (f", {counts['left_out']} left out (left_out.jsonl)" if counts.get("left_out") else "")
              + (" (reused: this run was complete)" if result.reused else ""))
    if push:
        from tamis.interop.argilla import push_to_argilla

        push_to_argilla(result.out_dir, push)
        out.print(f"pushed to Argilla as dataset [bold]{push}[/]")
    files = ", ".join(Path(p).name for p in result.outputs.values())
    out.print(f"outputs in [bold]{result.out_dir}[/] ({files}, manifest.json)")


@app.command("import-annotations")
@friendly_errors
def import_annotations(
    export: Path = typer.Argument(..., help="Label Studio's JSON export, or the records exported from Argilla."),
    source: str = opt(ImportAnnotationsJob, "source", "--from", required=True),
    data: Path = opt(ImportAnnotationsJob, "data", "--data", required=True),
    output: Path = opt(ImportAnnotationsJob, "out", "--out", "-o", required=True),
    format: Optional[str] = FormatOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """Turn completed annotations into tamis decisions, an edited data set, paired data (HTER) and agreement."""
    from tamis.interop.jobs import run_import_annotations

    job = ImportAnnotationsJob(export=str(export), data=str(data), source=source, out=str(output), format=format)
    result = run_import_annotations(job, overwrite=overwrite)
    counts = result.counts
    finals = ", ".join(f"{k[6:]} {v}" for k, v in sorted(counts.items()) if k.startswith("final_"))
    out.print(f"{counts.get('items', 0)} item(s) annotated: {finals or 'none'}; "
              f"{counts.get('quarantined', 0)} quarantined" + (" (reused)" if result.reused else ""))
    for name, row in (result.agreement or {}).items():
        alpha = row.get("alpha")
        out.print(f"Krippendorff's alpha ({name}, {row['level']}): "
                  + (f"{alpha:.3f} over {row['n_items_rated_twice']} item(s)" if alpha is not None
                     else row.get("note", "undefined")))
    out.print(f"outputs in [bold]{result.out_dir}[/] (decisions.jsonl, edited.jsonl, paired.jsonl, agreement.json, "
              "annotations.jsonl, dropped.jsonl, quarantine.jsonl, manifest.json)")
