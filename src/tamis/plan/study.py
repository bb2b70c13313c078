"""``experiment run --dry-run`` (and the demo's): what a study will cost before it runs.

The recipe's data is built into a temporary folder (nothing is written to the study's output), then
for every variant the model-backed curation steps run against recording models (``_PlanningContext``:
their samples, reflections, option scores and fold trainings are counted by the steps' own code), and
every (variant, model, seed) adds one training and one evaluation. What a curation step keeps is not
known before it runs, so trainings are planned at the size the variant starts from (an upper bound).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamis.curate.steps import StepContext
from tamis.plan.plans import Plan, merge, plan_eval, plan_sft
from tamis.plan.recording import RecordingLLM

PLANNED_STEPS = ("confidence_filter", "auto_correct", "label_filter", "influence_select")  # model calls counted
MODEL_FREE_STEPS = ("sample", "max_length", "sample_as", "filter", "weight_by")


def plan_experiment(recipe: Any, workspace: Any) -> Plan:
    from tamis.evaluate.settings import EvalSettings
    from tamis.io import read_dataset
    from tamis.pipeline.sources import build_source
    from tamis.train.settings import SFTSettings

    plan = Plan("experiment run")
    with tempfile.TemporaryDirectory(prefix="tamis-plan-") as tmp:
        if recipe.data.source is not None:
            recipe.use_splits(build_source(recipe.data.source.builder, recipe.data.source.params, recipe.path,
                                           Path(tmp) / "data"))
        recipe.check_references()
        test = str(recipe.path(recipe.data.test))
        shared: set[str] = set()  # influence runs (and their warm-ups) that variants share: planned once

        def evaluation(model: str, seed: int) -> None:
            merge(plan, plan_eval(EvalSettings(
                model=model, data=test, format=recipe.data.test_format, limit=recipe.eval.limit, seed=seed,
                metrics=tuple(recipe.eval.metrics) if recipe.eval.metrics else None, max_tokens=recipe.eval.max_tokens,
                scoring=recipe.eval.scoring, options=tuple(recipe.eval.options) if recipe.eval.options else None),
                workspace))

        for variant in recipe.variant_order():
            start = read_dataset(recipe.path(recipe.variant_train(variant)), format=recipe.data.format,
                                 limit=recipe.data.limit).examples
            _plan_steps(recipe, variant, start, plan, workspace, Path(tmp) / "variants" / variant, shared)
            for model in recipe.models:
                for seed in recipe.seeds:
                    merge(plan, plan_sft(start, SFTSettings(**(recipe.train | {"model": model, "seed": seed})),
                                         workspace))
                    evaluation(model, seed)  # a tuned model scores at its base model's speed
        if recipe.eval.base_model:
            for model in recipe.models:
                evaluation(model, recipe.seeds[0])
    n = len(recipe.variants) * len(recipe.models) * len(recipe.seeds)
    plan.notes.append(f"{n} trainings and evaluations ({len(recipe.variants)} variants x {len(recipe.models)} models x "
                      f"{len(recipe.seeds)} seeds), each training at its variant's starting size (an upper bound); "
                      "finished trainings and evaluations are reused when the study runs")
    return plan


def plan_demo(workspace: Any, study: bool = True) -> Plan:
    """``demo --dry-run``: the profile of the bundled data, then (``study``) the demo's study."""
    from tamis.pipeline.demo import demo_data_path, demo_recipe_path
    from tamis.pipeline.profile import ProfileConfig
    from tamis.pipeline.recipe import load_recipe
    from tamis.plan.plans import plan_profile

    plan = Plan("demo")
    merge(plan, plan_profile(ProfileConfig(data=str(demo_data_path())), workspace))
    if study:
        studied = plan_experiment(load_recipe(demo_recipe_path()), workspace)
        merge(plan, studied)
        plan.notes += studied.notes
    return plan


def _plan_steps(recipe: Any, variant: str, start: list[Any], plan: Plan, workspace: Any, folder: Path,
                shared: set[str]) -> None:
    from tamis.curate.steps import get_step

    for i, step in enumerate(recipe.variants[variant].steps):
        (name, params), = step.items()
        if name in PLANNED_STEPS:
            ctx = _PlanningContext(workspace=workspace, out_dir=folder / f"step{i}-{name}", seed=recipe.seeds[0],
                                   resolve=recipe.path, plan=plan)
            ctx.out_dir.mkdir(parents=True, exist_ok=True)
            if name == "influence_select":
                _plan_influence_select(start, params, ctx, shared)
            else:
                get_step(name)(start, params, ctx)
        elif name not in MODEL_FREE_STEPS:
            plan.notes.append(f"variant {variant!r}: step {name!r} is not planned (its model calls are not counted)")


def _plan_influence_select(start: list[Any], params: dict[str, Any], ctx: "_PlanningContext", shared: set[str]) -> None:
    """``influence_select``: its warm-up and its influence run (gradient passes), once for every variant that
    shares them, as the step itself computes them once (only the selection rule differs between variants)."""
    import json

    from tamis.curate.select import SelectionConfig
    from tamis.io import write_dataset
    from tamis.plan.plans import plan_influence
    from tamis.signals.influence.config import GradientConfig, InfluenceConfig

    influence_keys = set(InfluenceConfig.__dataclass_fields__) - {"candidates", "seed_set", "out"}
    key = json.dumps([[ex.id for ex in start], {k: v for k, v in params.items()
                                                 if k not in SelectionConfig.__dataclass_fields__}],
                     sort_keys=True, default=str)
    if key in shared:
        return
    shared.add(key)
    options = {k: v for k, v in params.items() if k in influence_keys}
    if isinstance(options.get("gradients"), dict):
        options["gradients"] = GradientConfig(**options["gradients"])
    if params.get("warmup") is not None:
        ctx.tuned(start, options.get("model", "transformers:smollm2"), dict(params["warmup"]), "warmup")
    candidates = ctx.out_dir / "candidates.jsonl"
    write_dataset(start, candidates)
    merge(ctx.plan, plan_influence(InfluenceConfig(candidates=str(candidates), seed_set=str(ctx.path(params["seed_set"])),
                                                   **options), ctx.workspace))


@dataclass
class _PlanningContext(StepContext):
    """A step context whose models record their calls and whose fine-tuning only adds to the plan."""

    plan: Plan | None = None

    def llm(self, spec: str) -> Any:
        return RecordingLLM(spec, self.plan, self.workspace)

    def tuned(self, examples: list[Any], model: str, settings: dict[str, Any], name: str) -> str:
        from tamis.train.settings import SFTSettings

        merge(self.plan, plan_sft(examples, SFTSettings(**({"eval_fraction": 0.0} | dict(settings) | {
            "model": model, "seed": self.seed})), self.workspace))
        return model
