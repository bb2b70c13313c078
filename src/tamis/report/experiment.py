"""The HTML report of a study. It answers its question first: a verdict line per variant (paired
bootstrap over test items and seeds, from ``comparison.json``), the share of the noise gap each
variant recovers, detection quality against injected flaws; then the results table, the examples each
variant dropped with their reasons, bars with CIs, curves over budgets; recipe and manifest folded
away at the end."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tamis.report.html import HtmlReport
from tamis.store import atomic_write_text
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


def _share(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.0%}"


def verdict_section(report: HtmlReport, comparison: dict[str, Any]) -> None:
    """Verdict lines, recovered shares and detection quality: the study's answer, computed from the run."""
    models = comparison.get("models", {})
    if comparison.get("error"):
        report.heading("Verdict").paragraph(f"No paired comparison: {comparison['error']}")
    if not models:
        return
    report.heading("Verdict")
    for model, entry in models.items():
        report.paragraph(f"{model}: {comparison['metric']} on the same {entry['n_items']} test items x "
                         f"{entry['n_seeds']} seed(s); differences from {comparison['baseline']!r} by a paired "
                         f"bootstrap (items and seeds resampled together, {comparison['n_resamples']} resamples), "
                         "95% CI, two-sided p.", note=True)
        for d in entry["differences"]:
            report.paragraph(d["verdict"])
        if entry.get("recovered"):
            report.table([{"variant": r["variant"], "recovered share of the gap": _share(r["share"]),
                           "95% CI": f"[{_share(r['low'])}, {_share(r['high'])}]",
                           "gap (oracle - baseline)": r["gap"], "gap detected": "yes" if r["gap_detected"] else "no"}
                          for r in entry["recovered"]],
                         caption=f"share of the {comparison['baseline']} -> {comparison['oracle']} gap recovered: "
                                 "(variant - baseline) / (oracle - baseline)")
    detection = comparison.get("detection") or {}
    if detection:
        report.table([{"variant": v, "dropped": d["n_dropped"], "flagged dropped": d["true_drops"],
                       "precision": d["precision"], "recall": d["recall"],
                       "flagged share before": _share(d["flagged_share_before"]),
                       "flagged share after": _share(d["flagged_share_after"]),
                       "AUROC of its score": _auroc(d, "auroc", f"{d.get('score')} "),
                       "length-matched AUROC": _auroc(d, "length_matched_auroc"),
                       "length alone": _auroc(d, "length_only_auroc")}
                      for v, d in detection.items()],
                     caption=f"detection against the injected flaws (meta.{next(iter(detection.values()))['flag']}) "
                             "of the training data each variant started from")


def dropped_section(report: HtmlReport, out_dir: Path, variants: list[str], limit: int = 15) -> None:
    """The first examples each variant dropped, with the reason its step gave."""
    shown = False
    for variant in variants:
        path = out_dir / "variants" / variant / "dropped.jsonl"
        if not path.is_file() or not path.stat().st_size:
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not shown:
            report.heading("What each variant dropped")
            shown = True
        table = []
        for row in rows[:limit]:
            messages = row.get("messages") or []
            prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), row.get("text", ""))
            answer = messages[-1]["content"] if messages and messages[-1].get("role") == "assistant" else ""
            flaw = {k: row.get("meta", {}).get(k) for k in ("label_noise", "corruption", "flaw")
                    if row.get("meta", {}).get(k) not in (None, False)}
            table.append({"id": row.get("id"), "prompt": str(prompt)[-120:], "target": str(answer)[:80],
                          "injected flaw": ", ".join(f"{k}={v}" for k, v in flaw.items()) or "no",
                          "reason": row.get("decision", {}).get("reason", "")})
        report.table(table, caption=f"{variant}: {len(rows)} dropped" + (f" (first {limit})" if len(rows) > limit
                                                                          else ""))


def markdown_summary(rows: list[dict[str, Any]], comparison: dict[str, Any]) -> str:
    """The study's answer as Markdown (``summary.md``, docs/RESULTS.md): verdicts, the results table with
    CIs, recovered gap shares and detection quality."""
    from tamis.evaluate.comparison import verdict_lines
    from tamis.report.html import markdown_table

    parts = ["\n".join(f"- {line.strip()}" if line.startswith("  ") else f"\n**{line}**\n" for line in
                        verdict_lines(comparison)).strip()]
    metrics = metric_names(rows)
    parts.append(markdown_table(display_rows(aggregate(rows), metrics)))
    for entry in comparison.get("models", {}).values():
        if entry.get("recovered"):
            parts.append(markdown_table([{"variant": r["variant"], "recovered share": _share(r["share"]),
                                          "95% CI": f"[{_share(r['low'])}, {_share(r['high'])}]"}
                                         for r in entry["recovered"]]))
    detection = comparison.get("detection") or {}
    if detection:
        parts.append(markdown_table([{"variant": v, "dropped": d["n_dropped"], "flagged dropped": d["true_drops"],
                                      "precision": d["precision"], "recall": d["recall"],
                                      "flagged share before → after": f"{_share(d['flagged_share_before'])} → "
                                                                      f"{_share(d['flagged_share_after'])}"}
                                     for v, d in detection.items()], digits=2))
    return "\n\n".join(parts) + "\n"


def write_experiment_report(recipe: Any, rows: list[dict[str, Any]], out_dir: Path,
                            comparison: dict[str, Any] | None = None) -> Path:
    table = aggregate(rows)
    metrics = metric_names(rows)
    report = HtmlReport(f"tamis experiment: {recipe.name}")
    if recipe.description:
        report.paragraph(recipe.description)
    verdict_section(report, comparison or {})
    if comparison:
        atomic_write_text(out_dir / "summary.md", markdown_summary(rows, comparison))
    report.paragraph(f"{len(recipe.variants)} data variants x {len(recipe.models)} models x {len(recipe.seeds)} seeds; "
                     "values are means over seeds with the mean bootstrap 95% CI of the test-set metric.", note=True)
    if getattr(recipe.eval, "pairwise", None) is not None:
        report.paragraph(f"win_rate: share of test questions where an LLM judge preferred the variant's answer over "
                         f"the {recipe.eval.pairwise.baseline!r} variant's (same model and seed; both orders, tie = "
                         "0.5, so 0.5 is parity).", note=True)
    display = display_rows(table, metrics)
    report.heading("Results").table(display)
    dropped_section(report, out_dir, list(dict.fromkeys(r["variant"] for r in rows)))

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
    report.collapsed("Recipe", yaml.safe_dump(recipe.model_dump(), sort_keys=False))
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        report.collapsed("Manifest", json.dumps(json.loads(manifest.read_text()), indent=2)[:20000])
    return report.write(out_dir / "report.html")


def _curves(table: list[dict[str, Any]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """Curves over x for every (group, model) with at least two budgets."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in table:
        if e["x"] is not None and metric in e:
            points[f"{e['group']} / {e['model']}"].append((float(e["x"]), e[metric]))
    return {name: ([p[0] for p in sorted(pts)], [p[1] for p in sorted(pts)])
            for name, pts in points.items() if len(pts) >= 2}


def _auroc(detection: dict, key: str, prefix: str = "") -> str:
    a = detection.get(key)
    return f"{prefix}{a['value']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]" if a else ""
