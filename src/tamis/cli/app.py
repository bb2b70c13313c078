"""The ``tamis`` Typer app, its command groups and what every command shares.

Commands live in sibling modules (one per area) that register themselves on these objects;
``tamis.cli`` imports them all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console

from tamis import __version__

app = typer.Typer(
    name="tamis",
    help="Make fine-tuning data for language models better, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Inspect and prepare model backends.", no_args_is_help=True)
score_app = typer.Typer(help="Measure every example: one sub-command per signal.", no_args_is_help=True)
experiment_app = typer.Typer(help="Run studies that compare data variants.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(score_app, name="score")
app.add_typer(experiment_app, name="experiment")

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
            err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)  # never hard-wrap: logs get grepped
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def workspace_from(path: Optional[str]):
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




def print_results(rows: list[dict[str, Any]], title: str) -> None:
    """A study's results table (variants x models, every metric with its CI), as the report shows it."""
    from rich.table import Table

    from tamis.report.experiment import aggregate, display_rows, metric_names

    display = display_rows(aggregate(rows), metric_names(rows))
    table = Table(*(display[0] if display else ["variant"]), title=title)
    for row in display:
        table.add_row(*row.values())
    out.print(table)
