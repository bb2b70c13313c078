"""Recipe steps backed by tamis's curation methods (registered into tamis.pipeline.steps).

- ``confidence_filter``: CLEAR's Auto-Filter on BSDetector confidence from the model to be tuned;
- ``influence_select``: G-DIG selection by gradient influence on a trusted seed set.
"""

from __future__ import annotations

from typing import Any

from tamis.curate.decisions import Decision
from tamis.curate.filter import FilterRule, auto_filter
from tamis.pipeline.steps import StepContext, register_step
from tamis.records import Example

_CONFIDENCE_KEYS = ("k", "temperature", "max_tokens", "alpha", "beta", "similarity", "reflection")
_RULE_KEYS = ("threshold", "quantile", "keep_fraction")


@register_step("confidence_filter")
def confidence_filter_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Keep examples whose BSDetector confidence clears the rule (default: the median, as CLEAR)."""
    from tamis.models import load_embedder, load_llm
    from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence

    cfg = ConfidenceConfig(**{k: params[k] for k in _CONFIDENCE_KEYS if k in params}, seed=ctx.seed)
    llm = load_llm(params.get("model", "transformers:smollm2"), ctx.workspace)
    embedder = load_embedder(cfg.embedder, ctx.workspace) if cfg.similarity == "embedding" else None
    report = bsdetector_confidence(examples, llm, cfg, embedder=embedder)
    decisions, _ = auto_filter(report.rows, FilterRule(**{k: params[k] for k in _RULE_KEYS if k in params}))
    for d in decisions:
        d.step = "confidence_filter"
    return decisions


@register_step("influence_select")
def influence_select_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Score candidates by influence on ``seed`` (a data file) and select with G-DIG's rule + diversity."""
    import numpy as np

    from tamis.curate.select import SelectionConfig, select
    from tamis.io import read_dataset, write_dataset
    from tamis.signals.influence.run import InfluenceConfig, run_influence

    candidates = ctx.out_dir / "candidates.jsonl"
    write_dataset(examples, candidates)
    influence_keys = set(InfluenceConfig.__dataclass_fields__) - {"candidates", "seed", "out"}
    config = InfluenceConfig(candidates=str(candidates), seed=str(read_dataset(params["seed"]).source),
                             out=str(ctx.out_dir / "influence"),
                             **{k: v for k, v in params.items() if k in influence_keys})
    result = run_influence(config, ctx.workspace)
    features = np.load(result.out_dir / "features.npy")
    selection_keys = set(SelectionConfig.__dataclass_fields__)
    sel = SelectionConfig(**{k: v for k, v in params.items() if k in selection_keys})
    return select(result.ids, result.batch_scores, features, sel)
