"""Curation steps a recipe can chain, registered by name (Data-Juicer style).

A step takes the current examples and its parameters and returns one Decision per example it
decided on; the runner materialises them (tamis.curate.decisions.apply_decisions), so every
dropped example keeps its reason. The registered name is the step name every decision carries:
set once, here. The model-backed methods (confidence filtering, Auto-Correct, influence selection,
policies over scored runs) register from ``tamis.curate.recipe_steps``, loaded on first lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamis.curate.decisions import Decision
from tamis.errors import ConfigError, unknown
from tamis.records import Example
from tamis.store import Workspace


@dataclass
class StepContext:
    workspace: Workspace
    out_dir: Path
    seed: int = 0
    resolve: Callable[[str], Path] | None = None  # the recipe's data references (paths, data-root:, split:)
    engine: Any = None  # the recipe's ``engine:`` (a tamis.engine.EngineConfig); None: this process
    # fine-tunes a model for a step that measures with a tuned model (warm-ups, cross-fitting):
    # (examples, model spec, SFT settings, seed, folder) -> the tuned model's spec. Training sits above
    # curation, so the runner supplies it (tamis.pipeline.crossfit.warm_up).
    tune: Callable[[list[Example], str, dict[str, Any], int, Path], str] | None = None

    def path(self, ref: str) -> Path:
        """The file a step parameter names, resolved like the recipe's own data references."""
        return self.resolve(ref) if self.resolve is not None else Path(ref)

    def llm(self, spec: str) -> Any:
        """The step's model: through the workspace's call cache in this process, or, under a recipe's
        ``engine: {engine: ray, ...}``, as blocks on the cluster (``tamis.engine.llm.EngineLLM``) with
        shards in the step's folder (or under the engine's ``shards`` URL, by variant and step)."""
        from tamis.engine.llm import stage_llm

        shards = (f"{self.engine.shards.rstrip('/')}/{self.out_dir.parent.name}/{self.out_dir.name}"
                  if self.engine is not None and self.engine.shards else self.out_dir / "shards")
        return stage_llm(spec, self.workspace, self.engine, shards)

    def tuned(self, examples: list[Example], model: str, settings: dict[str, Any], name: str) -> str:
        """``model`` fine-tuned on ``examples`` with SFT ``settings`` in the step's folder ``name``."""
        if self.tune is None:
            raise ConfigError("this step fine-tunes a model first (warmup/folds); run it in a recipe "
                              "(tamis experiment run), which can train")
        return self.tune(examples, model, settings, self.seed, self.out_dir / name)


def fold_splits(n: int, folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """(training indices, held-out indices) per fold: a seeded shuffle dealt round-robin into ``folds``
    parts, so every index is held out exactly once (cleanlab's out-of-fold protocol)."""
    import random

    if not 2 <= folds <= n:
        raise ConfigError(f"folds must lie in [2, {n}] (the number of examples), got {folds}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    splits = []
    for k in range(folds):
        held = {i for j, i in enumerate(order) if j % folds == k}
        splits.append(([i for i in range(n) if i not in held], sorted(held)))
    return splits


def check_params(step: str, params: dict[str, Any], allowed: set[str] | tuple[str, ...]) -> None:
    """A step's parameters must be ones it reads: a typo is an error naming the step and the choices."""
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise ConfigError(f"recipe step {step!r}: {unknown('parameter', extra[0], allowed)}")


StepFn = Callable[[list[Example], dict[str, Any], StepContext], list[Decision]]
STEPS: dict[str, StepFn] = {}


def register_step(name: str) -> Callable[[StepFn], StepFn]:
    """Register a step; its decisions carry ``name`` as their step (those a step took over from another
    step it ran, e.g. Auto-Correct's kept rows from its confidence filter, keep that step's name)."""

    def decorate(fn: StepFn) -> StepFn:
        def named(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
            decisions = fn(examples, params, ctx)
            for d in decisions:
                d.step = d.step or name
            return decisions

        named.__doc__, named.__name__ = fn.__doc__, fn.__name__
        STEPS[name] = named
        return named

    return decorate


#: modules whose steps register on import; loaded by name on first lookup (plugin style, no import cycle)
SHIPPED_STEP_MODULES = ("tamis.curate.recipe_steps", "tamis.pipeline.label_curation")


def get_step(name: str) -> StepFn:
    import importlib

    for module in SHIPPED_STEP_MODULES:
        importlib.import_module(module)
    if name not in STEPS:
        raise ConfigError(unknown("recipe step", name, STEPS))
    return STEPS[name]


@register_step("sample")
def sample_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Keep a seeded random subset: ``n`` examples or a ``fraction`` (the random baseline)."""
    seed = int(params.get("seed", ctx.seed))
    n = int(params["n"]) if "n" in params else int(round(float(params.get("fraction", 1.0)) * len(examples)))
    n = max(0, min(n, len(examples)))
    chosen = set(np.random.default_rng(seed).permutation(len(examples))[:n].tolist())
    return [
        Decision(ex.id, "keep" if i in chosen else "drop",
                 f"random sample of {n}/{len(examples)} (seed {seed})" if i in chosen
                 else f"not in the random sample of {n} (seed {seed})")
        for i, ex in enumerate(examples)
    ]


@register_step("max_length")
def max_length_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Drop examples whose response is longer than ``chars`` characters (a cheap sanity filter)."""
    limit = int(params.get("chars", 4000))
    return [
        Decision(ex.id, "keep", f"response within {limit} chars")
        if len(ex.response or ex.text or "") <= limit
        else Decision(ex.id, "drop", f"response longer than {limit} chars")
        for ex in examples
    ]


@register_step("likelihood_filter")
def likelihood_filter_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Drop the examples whose response is least likely under a model (per-token log-likelihood
    below the ``quantile``, default 0.25): a cheap single-signal baseline for CLEAR's filter.
    Rows the model could not score (e.g. longer than its context) go to review with the reason."""
    from tamis.curate.policy import Policy
    from tamis.signals.likelihood import response_likelihood
    from tamis.signals.registry import SignalSet

    check_params("likelihood_filter", params, ("model", "quantile"))
    llm = ctx.llm(params.get("model", "transformers:smollm2"))
    quantile = float(params.get("quantile", 0.25))
    decisions, _ = Policy(keep=[f"loglik_mean>=q{quantile:g}"], step="").apply(
        [ex.id for ex in examples], SignalSet([response_likelihood(examples, llm)]))
    return decisions
