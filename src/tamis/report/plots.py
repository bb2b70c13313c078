"""PNG plots with matplotlib's non-interactive backend: grouped bars with error bars, and curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: str | Path, groups: Sequence[str], series: Mapping[str, Sequence[float]],
              errors: Mapping[str, Sequence[float]] | None = None, *, title: str = "", ylabel: str = "",
              ylim: tuple[float, float] | None = None) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series, optional error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(groups) * max(1, len(series)) / 2 + 2), 3.6))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        err = (errors or {}).get(name)
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, yerr=err, capsize=3 if err is not None else 0,
               label=name)
    ax.set_xticks(x, list(groups))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_chart(path: str | Path, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
                xlabel: str = "", ylabel: str = "", errors: Mapping[str, Sequence[float]] | None = None) -> Path:
    """One line per curve (x, y), with markers and an optional shaded +- error band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", label=name)
        err = (errors or {}).get(name)
        if err is not None:
            ys_a, err_a = np.asarray(ys, float), np.asarray(err, float)
            ax.fill_between(xs, ys_a - err_a, ys_a + err_a, alpha=0.15)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
