"""Data commands: inspect a data set, convert between formats and file types."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from tamis.cli.app import FormatOpt, WorkspaceOpt, workspace_from, app, friendly_errors, out


@app.command()
@friendly_errors
def inspect(
    data: Path = typer.Argument(..., help="JSONL/JSON/CSV/TSV/Parquet file or a Hugging Face datasets folder."),
    format: Optional[str] = FormatOpt,
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", "-t", help="LLM spec whose tokenizer counts tokens, e.g. 'transformers:smollm2'."),
    quarantine: Optional[Path] = typer.Option(None, help="Write rejected rows here (JSONL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Detected format, counts, lengths, duplicates and problems of a data set."""
    from tamis.io import read_dataset
    from tamis.io.inspect import inspect_dataset

    result = read_dataset(data, format=format, quarantine=quarantine)
    tok = None
    if tokenizer:
        from tamis.models import load_llm

        tok = load_llm(tokenizer, workspace_from(workspace), cache=False).tokenizer
    report = inspect_dataset(result, tokenizer=tok)
    if as_json:
        from tamis.store import to_json

        sys.stdout.write(to_json(report, indent=2, default=str) + "\n")
        return
    _print_report(report, result.summary())


def _print_report(report: dict[str, Any], summary: str) -> None:
    out.print(f"[bold]{report.get('source', '')}[/]  format: [cyan]{report.get('format')}[/]")
    out.print(summary)
    table = Table("measure", "", "value", show_header=False, box=None, pad_edge=False)
    for key, value in report.items():
        if key in ("source", "format", "counts", "problems"):
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            for sub, stats in value.items():
                table.add_row(key, sub, _inline(stats))
                key = ""
        else:
            table.add_row(key, "", _inline(value))
    out.print(table)
    for kind, info in (report.get("problems") or {}).items():
        out.print(f"[red]{kind}[/]: {info['count']} row(s)")
        for line in info.get("examples", []):
            out.print(f"  {line}", soft_wrap=True)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_inline(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, ensure_ascii=False)[:200] if isinstance(value, list) else str(value)


@app.command()
@friendly_errors
def convert(
    data: Path = typer.Argument(..., help="Input data set."),
    output: Path = typer.Argument(..., help="Output path; its suffix picks the file type (a folder: HF datasets)."),
    to: str = typer.Option("messages", "--to", help="Output format: messages, alpaca, sharegpt, "
                                                    "prompt_completion, translation, labelled."),
    format: Optional[str] = FormatOpt,
    quarantine: Optional[Path] = typer.Option(
        None, help="Write rejected rows here (JSONL). Default: OUTPUT.quarantine.jsonl, written when a row is rejected."),
) -> None:
    """Convert a data set between formats and file types (messages is the canonical form).

    Nothing is lost: the output may not be the input, and rejected rows always go to a quarantine
    file beside the output (or to --quarantine). CSV/TSV output is safe to open in a spreadsheet: a
    text cell starting with = + - @, tab or carriage return gets a leading ' (OWASP), plain numbers
    excepted; JSON output writes NaN and infinities as null."""
    from tamis.errors import ConfigError
    from tamis.io import read_dataset, write_dataset
    from tamis.io.reader import default_quarantine_path, same_file
    from tamis.manifest import Manifest

    if same_file(data, output):
        raise ConfigError(f"the output {output} is the input; converting in place would destroy it if anything "
                          "goes wrong; write to another path, then replace the input yourself")
    quarantine_path = quarantine or default_quarantine_path(output)
    for taken, what in ((data, "input"), (output, "output")):
        if same_file(quarantine_path, taken):
            raise ConfigError(f"the quarantine file {quarantine_path} is the {what}; choose another --quarantine")
    manifest = Manifest("convert", {"data": str(data), "output": str(output), "to": to, "format": format})
    with manifest.stage("read"):
        result = read_dataset(data, format=format, quarantine=quarantine_path)
    if quarantine is None and not result.n_rejected:
        quarantine_path.unlink(missing_ok=True)  # an empty default quarantine (or a stale one) says nothing
        result.quarantine_path = None
    with manifest.stage("write"):
        path = write_dataset(result.examples, output, format=to)
    manifest.count(read=result.n_read, kept=result.n_kept, rejected=result.n_rejected)
    manifest.data["detected_format"] = result.format
    manifest.output("data", path)
    if result.quarantine_path is not None:
        manifest.output("quarantine", result.quarantine_path)
    manifest_path = manifest.write(path.with_name(path.name + ".manifest.json"))
    out.print(f"{result.summary()}\nwrote {len(result.examples)} examples as {to} to {path} (manifest: {manifest_path})",
              soft_wrap=True)  # paths unbroken: they get copied and grepped
