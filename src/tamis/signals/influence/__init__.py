"""Gradient influence of candidate training examples on a trusted seed set (G-DIG, TracIn/LESS baseline).

See docs/GDIG.md. Sign: positive influence = training on the candidate lowers the seed loss.
The heavy parts (torch, peft) load on first use of a name below, not when the signals are registered.
"""

from __future__ import annotations

import importlib
from typing import Any

from tamis.signals.registry import register_signal

_INF = dict(needs=("llm", "seed set"), produced_by="tamis score influence")
register_signal("influence_mean", "higher", "mean influence on the seed batches (g_seed^T H^-1 g_cand; positive = "
                "training on the example lowers the seed loss)", **_INF)
register_signal("influence_min", "higher", "smallest influence over the seed batches", **_INF)
register_signal("influence_n_positive", "higher", "number of seed batches the example helps", range=(0.0, None), **_INF)
register_signal("tracin_mean", "higher", "mean identity-Hessian (TracIn/LESS-style) influence: the baseline", **_INF)
register_signal("tracin_min", "higher", "smallest identity-Hessian influence over the seed batches", **_INF)
register_signal("tracin_n_positive", "higher", "seed batches helped under the identity Hessian", range=(0.0, None), **_INF)
register_signal("n_seed_batches", "none", "number of seed batches scored", range=(0.0, None), **_INF)

_EXPORTS = {
    "GradientConfig": "config", "InfluenceConfig": "config", "TrackedModel": "gradients", "load_tracked_model": "gradients",
    "prepare_model": "gradients", "DenseCurvature": "kfac", "Factors": "kfac", "fit_factors": "kfac",
    "CountSketch": "projection", "influence_scores": "scores", "per_batch": "scores", "seed_batches": "scores",
    "seed_features": "scores",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
