"""The HTML report of a study: results table, bars with CIs, curves over budgets, config, manifest."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tamis.report.html import HtmlReport
from tamis.report.plots import bar_chart, curve_chart


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (variant, model): metric means over seeds, the mean bootstrap CI, the seed spread."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["variant"], row["model"])].append(row)
    table = []
    for (variant, model), runs in groups.items():
        entry: dict[str, Any] = {"variant": variant, "model": model, "group": runs[0]["group"], "x": runs[0]["x"],
                                 "n_train": runs[0]["n_train"], "seeds": len(runs)}
        for metric in metric_names(runs):
            est = [r["metrics"][metric] for r in runs if metric in r["metrics"]]
            entry[metric] = float(np.mean([e["value"] for e in est]))
            entry[f"{metric}_ci"] = (float(np.mean([e["ci_low"] for e in est])),
                                     float(np.mean([e["ci_high"] for e in est])))
            entry[f"{metric}_sd"] = float(np.std([e["value"] for e in est], ddof=1)) if len(runs) > 1 else None
        table.append(entry)
    return table


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """Every metric any run reports, in first-seen order (the pairwise baseline has no win rate)."""
    return list(dict.fromkeys(m for r in rows for m in r["metrics"]))


def display_rows(table: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, str]]:
    """The results table as text: 'mean [CI low, CI high] sd' per metric ('—' where a run has none)."""
    display = []
    for entry in table:
        shown = {k: str(entry[k]) for k in ("variant", "model", "n_train", "seeds")}
        for metric in metrics:
            if metric not in entry:
                shown[metric] = "—"
                continue
            low, high = entry[f"{metric}_ci"]
            sd = entry[f"{metric}_sd"]
            shown[metric] = f"{entry[metric]:.3f} [{low:.3f}, {high:.3f}]" + (f" sd {sd:.3f}" if sd is not None else "")
        display.append(shown)
    return display


def write_experiment_report(recipe: Any, rows: list[dict[str, Any]], out_dir: Path) -> Path:
    table = aggregate(rows)
    metrics = metric_names(rows)
    report = HtmlReport(f"tamis experiment: {recipe.name}")
    if recipe.description:
        report.paragraph(recipe.description)
    report.paragraph(f"{len(recipe.variants)} data variants x {len(recipe.models)} models x {len(recipe.seeds)} seeds; "
                     "values are means over seeds with the mean bootstrap 95% CI of the test-set metric.", note=True)
    if getattr(recipe.eval, "pairwise", None) is not None:
        report.paragraph(f"win_rate: share of test questions where an LLM judge preferred the variant's answer over "
                         f"the {recipe.eval.pairwise.baseline!r} variant's (same model and seed; both orders, tie = "
                         "0.5, so 0.5 is parity).", note=True)
    display = display_rows(table, metrics)
    report.heading("Results").table(display)

    plots = out_dir  # images live beside the report (HtmlReport links them by name)
    variants = list(dict.fromkeys(e["variant"] for e in table))
    models = list(dict.fromkeys(e["model"] for e in table))
    by_key = {(e["variant"], e["model"]): e for e in table}
    for metric in metrics:
        series, errors = {}, {}
        for model in models:
            values = [by_key.get((v, model), {}).get(metric, np.nan) for v in variants]
            cis = [by_key.get((v, model), {}).get(f"{metric}_ci", (np.nan, np.nan)) for v in variants]
            series[model] = values
            errors[model] = np.array([[max(0.0, val - lo) for val, (lo, _) in zip(values, cis)],
                                      [max(0.0, hi - val) for val, (_, hi) in zip(values, cis)]])
        png = bar_chart(plots / f"{metric}.png", variants, series, errors, title=metric, ylabel=metric)
        report.image(png, alt=metric)
        curves = _curves(table, metric)
        if curves:
            png = curve_chart(plots / f"{metric}_curve.png", curves, title=f"{metric} over budget", xlabel="budget",
                              ylabel=metric)
            report.image(png, alt=f"{metric} curve")
    report.heading("Recipe").code(yaml.safe_dump(recipe.model_dump(), sort_keys=False))
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        report.heading("Manifest").code(json.dumps(json.loads(manifest.read_text()), indent=2)[:20000])
    return report.write(out_dir / "report.html")


def _curves(table: list[dict[str, Any]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """Curves over x for every (group, model) with at least two budgets."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in table:
        if e["x"] is not None and metric in e:
            points[f"{e['group']} / {e['model']}"].append((float(e["x"]), e[metric]))
    return {name: ([p[0] for p in sorted(pts)], [p[1] for p in sorted(pts)])
            for name, pts in points.items() if len(pts) >= 2}
