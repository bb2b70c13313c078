"""A plan shown to the user: the rich table (or JSON) of ``--dry-run``, with the estimate from measurements."""

from __future__ import annotations

from typing import Any

from tamis.plan.plans import PACED_BY, Plan


def show(plan: Plan, workspace: Any, as_json: bool = False) -> None:
    """Print a plan (a rich table, or JSON with ``--json``), with the estimate from measurements."""
    from rich.table import Table

    from tamis.cli.app import out

    plan.estimate(workspace)
    if as_json:
        from tamis.store import to_json

        print(to_json(plan.to_dict(), indent=2))
        return
    table = Table(title=f"tamis {plan.command} --dry-run: nothing was run or written")
    for col, right in (("model", False), ("operation", False), ("calls", True), ("prompt tokens", True),
                       ("generated tokens (max)", True), ("estimated s", True)):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in plan.operations:
        unit = "" if r.unit == "tokens" else " ~"
        table.add_row(r.model, r.op, f"{r.calls:,}", f"{r.prompt_tokens:,}{unit}",
                      f"{r.generated_tokens:,}{unit}" if r.generated_tokens else "-",
                      f"{r.seconds:,.1f}" if r.seconds is not None else "-")
    out.print(table)
    total = plan.total_seconds
    out.print(f"estimated time: [bold]{_duration(total)}[/]" if total is not None else
              "estimated time: unknown for some operations (see below)")
    for r in plan.operations:
        if r.unit != "tokens":
            out.print(f"{r.model}: no tokenizer without loading the model; tokens (~) estimated as characters/4",
                      markup=False, soft_wrap=True)
        if r.measured is not None:
            m = r.measured
            out.print(f"{r.model} {r.op}: measured {m['tokens'] / m['seconds']:,.0f} {PACED_BY.get(r.op, 'prompt')} "
                      f"tokens/s ({m['calls']} calls, {m['seconds']:.1f} s, {m.get('when', '?')}"
                      f"{', ' + m['device'] if m.get('device') else ''})" if m.get("tokens") else
                      f"{r.model} {r.op}: measured {m['seconds'] / max(1, m['calls']):.3f} s per call", markup=False,
                      soft_wrap=True)
        elif r.seconds is None:
            out.print(f"no measurement yet for {r.model} ({r.op}): run once or pass --calibrate", markup=False,
                      soft_wrap=True)
        for note in r.notes:
            out.print(f"{r.model} {r.op}: {note}", markup=False, soft_wrap=True)
    for note in plan.notes:
        out.print(note, markup=False, soft_wrap=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
