"""Model commands: list backends, prepare (convert/load) a model ahead of time."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import WorkspaceOpt, workspace_from, friendly_errors, models_app, out


@models_app.command("prepare")
@friendly_errors
def models_prepare(
    model: str = typer.Argument("transformers:smollm2", help="LLM spec to load once (converts the bundled GGUF)."),
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Load a model once so later runs start fast (the bundled GGUF becomes safetensors)."""
    from tamis.models import load_llm

    llm = load_llm(model, workspace_from(workspace), cache=False)
    out.print(f"ready: {llm.identity}")


@models_app.command("list")
@friendly_errors
def models_list() -> None:
    """The backends and the bundled models."""
    table = Table("spec", "what")
    table.add_row("transformers:smollm2", "bundled SmolLM2-135M-Instruct (GGUF -> safetensors, CUDA or CPU)")
    table.add_row("llamacpp:smollm2", "bundled SmolLM2-135M-Instruct via llama.cpp (fast CPU sampling)")
    table.add_row("transformers:ORG/NAME or PATH", "any Hugging Face causal LM available offline")
    table.add_row("openai:MODEL?base_url=URL", "OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI)")
    table.add_row("sentence-transformers:minilm", "bundled all-MiniLM-L6-v2 embedder")
    out.print(table)
