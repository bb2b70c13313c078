"""``tamis signals``: the signal registry, as every consumer of scores sees it."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import app, friendly_errors, out


@app.command("signals")
@friendly_errors
def signals_command(
    name: Optional[str] = typer.Argument(None, help="Show one signal (a typo lists the known names)."),
) -> None:
    """Every registered signal: which direction is better, its range, what it needs, which command writes it."""
    from tamis.signals.registry import get_signal, signal_specs

    specs = signal_specs() if name is None else {name: get_signal(name)}
    table = Table(title="Signals (one column each in a run's signals.parquet)")
    for col in ("signal", "better", "range", "needs", "written by", "what it measures"):
        table.add_column(col, overflow="fold")
    for spec in specs.values():
        if spec is None:
            continue
        lo, hi = spec.range
        shown = "" if lo is None and hi is None else f"{'-inf' if lo is None else f'{lo:g}'} to {'inf' if hi is None else f'{hi:g}'}"
        table.add_row(spec.name, spec.direction, shown, ", ".join(spec.needs) or "-", spec.produced_by, spec.description)
    out.print(table)
