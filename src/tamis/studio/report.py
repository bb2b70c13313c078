"""The export's summary report: a few plots (matplotlib PNG) and one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment

from tamis.store import atomic_write_text

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>studio report: {{ name }}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:1rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left}
img{max-width:100%}</style></head><body>
<h1>Post-editing report: {{ name }}</h1>
<h2>Items</h2><table>{% for k, v in counts.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
<h2>Edit effort (submitted edits)</h2>
<table><tr><th></th><th>n</th><th>mean</th><th>median</th><th>p90</th></tr>
{% for name, s in effort.items() %}<tr><td>{{ name }}</td><td>{{ s.n }}</td><td>{{ s.mean }}</td><td>{{ s.median }}</td><td>{{ s.p90 }}</td></tr>{% endfor %}</table>
<p>HTER = TER of the original against the post-edit as reference (sacrebleu); 0 means untouched.</p>
{% for img in images %}<img src="{{ img }}" alt="{{ img }}">{% endfor %}
<h2>Agreement per criterion (Krippendorff's alpha, ordinal)</h2>
<table><tr><th>criterion</th><th>alpha</th><th>ratings</th><th>items rated twice+</th><th>note</th></tr>
{% for c, a in agreement.items() %}<tr><td>{{ c }}</td><td>{{ a.alpha if a.alpha is not none else "n/a" }}</td>
<td>{{ a.n_ratings }}</td><td>{{ a.n_items_pairable }}</td><td>{{ a.note or "" }}</td></tr>{% endfor %}</table>
{% if suggestions and suggestions.get("all", {}).get("n_edits") %}<h2>Model suggestions</h2>
<table><tr><th>source</th><th>edits</th><th>accepted</th><th>edited</th><th>replaced</th><th>HTER vs suggestion (mean / median)</th></tr>
{% for src, x in suggestions.items() %}<tr><td>{{ src }}</td><td>{{ x.n_edits }}</td><td>{{ x.accepted_rate }}</td><td>{{ x.edited_rate }}</td>
<td>{{ x.replaced_rate }}</td><td>{{ x.hter_mean }} / {{ x.hter_median }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Mean rating per criterion</h2><table>{% for c, m in means.items() %}<tr><td>{{ c }}</td><td>{{ m }}</td></tr>{% endfor %}</table>
</body></html>"""


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": "n/a", "median": "n/a", "p90": "n/a"}
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "mean": round(float(arr.mean()), 3), "median": round(float(np.median(arr)), 3),
            "p90": round(float(np.percentile(arr, 90)), 3)}


def write_report(out: Path, name: str, paired: list[dict[str, Any]], agreement: dict[str, Any],
                 ratings: dict[str, list[tuple[str, str, int]]], criteria: dict[str, tuple[int, int]],
                 counts: dict[str, int], suggestions: dict[str, Any] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edits = [e for row in paired for e in row["edits"] if "hter" in e]
    hters = [e["hter"] for e in edits]
    chars = [e["char_edit_distance"] for e in edits]
    times = [e["time_spent_s"] for e in edits]
    images = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].hist(hters, bins=20, color="#2b6cb0")
    axes[0].set(title="HTER per edit", xlabel="HTER", ylabel="edits")
    axes[1].hist(chars, bins=20, color="#718096")
    axes[1].set(title="Character edit distance", xlabel="characters")
    axes[2].scatter(times, hters, s=10, alpha=0.6)
    axes[2].set(title="Time spent vs HTER", xlabel="seconds", ylabel="HTER")
    fig.tight_layout()
    fig.savefig(out / "effort.png", dpi=90)
    plt.close(fig)
    images.append("effort.png")
    if criteria:
        fig, axes = plt.subplots(1, len(criteria), figsize=(3.3 * len(criteria), 3.2), squeeze=False)
        for ax, (c, (lo, hi)) in zip(axes[0], criteria.items()):
            values = [v for _, _, v in ratings.get(c, [])]
            ax.bar(range(lo, hi + 1), [values.count(v) for v in range(lo, hi + 1)], color="#2f855a")
            alpha = agreement.get(c, {}).get("alpha")
            ax.set(title=f"{c} (alpha {alpha if alpha is not None else 'n/a'})", xlabel="rating")
        fig.tight_layout()
        fig.savefig(out / "ratings.png", dpi=90)
        plt.close(fig)
        images.append("ratings.png")
    means = {c: (round(float(np.mean([v for _, _, v in r])), 3) if r else "n/a") for c, r in ratings.items()}
    html = Environment(autoescape=True).from_string(_PAGE).render(
        name=name, counts=counts, agreement=agreement, images=images, means=means, suggestions=suggestions,
        effort={"HTER": _stats(hters), "char edit distance": _stats(chars), "time spent (s)": _stats(times)})
    path = out / "report.html"
    atomic_write_text(path, html)
    return path
