"""The ``tamis`` command line: one command per public job, each writing a manifest beside its output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tamis import __version__

app = typer.Typer(
    name="tamis",
    help="Make fine-tuning data for language models better, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Inspect and prepare model backends.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar="TAMIS_WORKSPACE",
                            help="Workspace folder for runs, models and the call cache [default: ./tamis-workspace].")
FormatOpt = typer.Option(None, "--format", "-f", help="Input format, if auto-detection should be overridden.")


def friendly_errors(fn: F) -> F:
    """Turn expected failures (bad data, unusable model) into one clear message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tamis.io import DataError
        from tamis.models import ModelError

        try:
            return fn(*args, **kwargs)
        except (DataError, ModelError, FileNotFoundError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _workspace(path: Optional[str]):
    from tamis.store import Workspace

    return Workspace(path)


def _version(value: bool) -> None:
    if value:
        out.print(f"tamis {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """tamis: generate, measure, decide, fine-tune and evaluate: data curation you can prove."""


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

        tok = load_llm(tokenizer, _workspace(workspace), cache=False).tokenizer
    report = inspect_dataset(result, tokenizer=tok)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
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
    quarantine: Optional[Path] = typer.Option(None, help="Write rejected rows here (JSONL)."),
) -> None:
    """Convert a data set between formats and file types (messages is the canonical form)."""
    from tamis.io import read_dataset, write_dataset

    result = read_dataset(data, format=format, quarantine=quarantine)
    path = write_dataset(result.examples, output, format=to)
    out.print(f"{result.summary()}\nwrote {len(result.examples)} examples as {to} to {path}")


@app.command()
@friendly_errors
def profile(
    data: Path = typer.Argument(..., help="Data set to profile."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/profile-NAME]."),
    format: Optional[str] = FormatOpt,
    model: str = typer.Option("transformers:smollm2", "--model", "-m", help="LLM spec for log-likelihoods."),
    embedder: str = typer.Option("sentence-transformers:minilm", "--embedder", "-e", help="Embedder spec."),
    likelihood: bool = typer.Option(True, help="Score each response's log-likelihood."),
    embed: bool = typer.Option(True, help="Embed examples and find near-duplicates."),
    limit: Optional[int] = typer.Option(None, help="Read at most this many rows."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Measure every example (lengths, log-likelihood, embedding neighbours); resumable."""
    from tamis.pipeline.profile import ProfileConfig, run_profile

    config = ProfileConfig(data=str(data), out=str(output) if output else None, format=format, model=model,
                           embedder=embedder, likelihood=likelihood, embed=embed, limit=limit)
    _print_profile(run_profile(config, _workspace(workspace)))


@app.command()
@friendly_errors
def demo(workspace: Optional[str] = WorkspaceOpt) -> None:
    """The main job on embedded defaults: profile the bundled instruction set with the bundled models."""
    from tamis.pipeline.demo import run_demo

    _print_profile(run_demo(_workspace(workspace)))


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


@models_app.command("prepare")
@friendly_errors
def models_prepare(
    model: str = typer.Argument("transformers:smollm2", help="LLM spec to load once (converts the bundled GGUF)."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Load a model once so later runs start fast (the bundled GGUF becomes safetensors)."""
    from tamis.models import load_llm

    llm = load_llm(model, _workspace(workspace), cache=False)
    out.print(f"ready: {llm.identity}")


@models_app.command("list")
def models_list() -> None:
    """The backends and the bundled models."""
    table = Table("spec", "what")
    table.add_row("transformers:smollm2", "bundled SmolLM2-135M-Instruct (GGUF -> safetensors, CUDA or CPU)")
    table.add_row("llamacpp:smollm2", "bundled SmolLM2-135M-Instruct via llama.cpp (fast CPU sampling)")
    table.add_row("transformers:ORG/NAME or PATH", "any Hugging Face causal LM available offline")
    table.add_row("openai:MODEL?base_url=URL", "OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI)")
    table.add_row("sentence-transformers:minilm", "bundled all-MiniLM-L6-v2 embedder")
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
