"""Run a recipe: build each data variant, fine-tune each model on it per seed, evaluate, report.

Every stage leaves a completion record, so an interrupted study started again skips what is done:
a variant's data is reused when its recipe hash matches, a trained adapter when its data
fingerprint matches (``train_once`` also reuses an identical training from anywhere in the workspace),
and every model call of an evaluation comes from the call cache.

The study then answers its question (``study_comparison``, ``tamis.evaluate.comparison``): each variant
against the baseline by a paired bootstrap over the test items and seeds, the share of the noise gap
recovered when an oracle variant exists, and detection quality against injected flaws; written to
``comparison.json``, printed, and at the top of the report.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis.curate.decisions import apply_decisions, write_decisions
from tamis.evaluate.comparison import BASE_MODEL_VARIANT, compare_study, detection
from tamis.evaluate.run import EvalSettings, run_eval
from tamis.io import DataError, read_dataset, write_dataset
from tamis.manifest import Manifest
from tamis.pipeline.crossfit import already_trained, train_once, warm_up
from tamis.pipeline.recipe import Recipe
from tamis.pipeline.sources import build_source
from tamis.curate.steps import StepContext, get_step
from tamis.progress import console
from tamis.records import Example
from tamis.runs import Run
from tamis.store import Workspace, atomic_write_json, atomic_write_text
from tamis.records import data_fingerprint
from tamis.train.settings import SFTSettings
from tamis.train.weights import example_weights, weights_fingerprint


@dataclass
class ExperimentResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    report: Path
    comparison: dict[str, Any] = field(default_factory=dict)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def build_variant(recipe: Recipe, name: str, train: list[Example], workspace: Workspace, out: Path) -> list[Example]:
    """Apply the variant's steps in order; writes its data, decisions and dropped rows."""
    folder = out / "variants" / name
    data_file, key_file = folder / "train.jsonl", folder / "recipe-hash.txt"
    key = f"{recipe.variant_key(name)}-{data_fingerprint(train)}"  # the recipe and the data it starts from
    for step in recipe.variants[name].steps:  # a step sized by another variant (sample_as) depends on its data
        for params in step.values():
            other = params.get("variant")
            if isinstance(other, str) and (out / "variants" / other / "recipe-hash.txt").is_file():
                key += "-" + (out / "variants" / other / "recipe-hash.txt").read_text().strip()
    if data_file.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        return read_dataset(data_file).examples
    folder.mkdir(parents=True, exist_ok=True)
    examples, dropped_all, decisions_all = train, [], []
    for i, step in enumerate(recipe.variants[name].steps):
        (step_name, params), = step.items()
        ctx = StepContext(workspace=workspace, out_dir=folder / f"step{i}-{step_name}", seed=recipe.seeds[0],
                          resolve=recipe.path, engine=recipe.engine_config,
                          tune=functools.partial(warm_up, workspace=workspace))
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        decisions = get_step(step_name)(examples, params, ctx)
        examples, dropped = apply_decisions(examples, decisions)
        decisions_all += decisions
        dropped_all += dropped
    write_decisions(decisions_all, folder / "decisions.jsonl")
    atomic_write_text(folder / "dropped.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dropped_all))
    if not examples:
        raise DataError(f"variant {name!r} of recipe {recipe.name!r} kept no example; see {folder / 'dropped.jsonl'}")
    write_dataset(examples, data_file)
    atomic_write_text(key_file, key + "\n")
    return examples


def _eval_settings(recipe: Recipe, model: str, out: Path, seed: int, versus: str | None = None) -> EvalSettings:
    pairwise = recipe.eval.pairwise
    return EvalSettings(
        model=model, data=str(recipe.path(recipe.data.test)), out=str(out), format=recipe.data.test_format,
        metrics=tuple(recipe.eval.metrics) if recipe.eval.metrics else None, max_tokens=recipe.eval.max_tokens,
        limit=recipe.eval.limit, n_resamples=recipe.eval.n_resamples, seed=seed, versus=versus,
        judge=pairwise.judge if pairwise else None, judge_k=pairwise.k if pairwise else 0,
        scoring=recipe.eval.scoring, options=tuple(recipe.eval.options) if recipe.eval.options else None)


def run_experiment(recipe: Recipe, workspace: Workspace, out: str | Path | None = None, *,
                   overwrite: bool = False) -> ExperimentResult:
    """Run the study in a run folder (``tamis.runs.Run``): a finished study with the same recipe is
    returned as it is; a folder made with another recipe is refused unless ``overwrite``, and even then
    every variant, training and evaluation whose own inputs are unchanged is reused."""
    out_dir = Path(out) if out else workspace.run_dir(f"experiment-{slug(recipe.name)}")
    with Run("experiment run", recipe.model_dump(exclude={"engine"}), out_dir, overwrite=overwrite) as run:
        if run.complete and (out_dir / "results.jsonl").is_file() and (out_dir / "comparison.json").is_file():
            rows = [json.loads(line) for line in open(out_dir / "results.jsonl", encoding="utf-8")]
            comparison = json.loads((out_dir / "comparison.json").read_text(encoding="utf-8"))
            return ExperimentResult(out_dir, rows, out_dir / "report.html", comparison)
        result = _run_experiment(recipe, workspace, out_dir, run.manifest)
        run.finish()
        return result


def _run_experiment(recipe: Recipe, workspace: Workspace, out_dir: Path, manifest: Manifest) -> ExperimentResult:
    from tamis.report.experiment import write_experiment_report

    if recipe.data.source is not None:
        with manifest.stage("build_data"):
            recipe.use_splits(build_source(recipe.data.source.builder, recipe.data.source.params, recipe.path,
                                           out_dir / "data"))
        manifest.output("data_splits", out_dir / "data" / "splits.json")
    recipe.check_references()
    train_sets: dict[str, list[Example]] = {}

    def training_data(variant: str) -> list[Example]:
        """The data a variant's steps start from (data.train, or the variant's own), read once."""
        ref = recipe.variant_train(variant)
        if ref not in train_sets:
            with manifest.stage(f"read:{ref}"):
                train_sets[ref] = read_dataset(recipe.path(ref), format=recipe.data.format, limit=recipe.data.limit,
                                               quarantine=out_dir / f"train.{slug(ref)}.quarantine.jsonl").examples
        return train_sets[ref]

    rows: list[dict[str, Any]] = []
    pairwise = recipe.eval.pairwise
    for variant in recipe.variant_order():
        with manifest.stage(f"variant:{variant}"):
            examples = build_variant(recipe, variant, training_data(variant), workspace, out_dir)
        fingerprint, weights = data_fingerprint(examples), example_weights(examples)  # weights: a weight_by step
        for model in recipe.models:
            for seed in recipe.seeds:
                run = out_dir / "runs" / variant / slug(model) / f"seed{seed}"
                settings = SFTSettings(**(recipe.train | {"model": model, "seed": seed}))
                model_dir = run / ("adapter" if settings.lora else "model")
                console.print(f"[bold]{variant}[/] x {model} x seed {seed}: {len(examples)} training examples")
                if not already_trained(model_dir, fingerprint, settings, weights_fingerprint(weights)):
                    with manifest.stage(f"train:{variant}:{slug(model)}:{seed}"):
                        train_once(examples, settings, run, workspace, weights)
                versus = None
                if pairwise is not None and variant != pairwise.baseline:
                    versus = str(out_dir / "runs" / pairwise.baseline / slug(model) / f"seed{seed}" / "eval")
                with manifest.stage(f"eval:{variant}:{slug(model)}:{seed}"):
                    result = run_eval(_eval_settings(recipe, f"transformers:{model_dir}", run / "eval", seed, versus),
                                      workspace, overwrite=True)  # the study owns its folders
                v = recipe.variants[variant]
                rows.append({"variant": variant, "group": v.group or variant, "x": v.x, "model": model, "seed": seed,
                             "n_train": len(examples), "metrics": result.summary["metrics"],
                             "eval_dir": str((run / "eval").relative_to(out_dir))})
    if recipe.eval.base_model:
        for model in recipe.models:
            run = out_dir / "runs" / "base" / slug(model)
            with manifest.stage(f"eval:base:{slug(model)}"):
                result = run_eval(_eval_settings(recipe, model, run / "eval", recipe.seeds[0]), workspace,
                                  overwrite=True)
            rows.append({"variant": BASE_MODEL_VARIANT, "group": BASE_MODEL_VARIANT, "x": None, "model": model,
                         "seed": recipe.seeds[0], "n_train": 0, "metrics": result.summary["metrics"],
                         "eval_dir": str((run / "eval").relative_to(out_dir))})
    with manifest.stage("compare"):
        comparison = study_comparison(recipe, rows, out_dir, training_data)
    atomic_write_json(out_dir / "comparison.json", comparison, default=float)  # NaN (e.g. no drops) as null
    # what a rerun reads back (NaN as None), so a finished study gives the same answer as a fresh one
    comparison = json.loads((out_dir / "comparison.json").read_text(encoding="utf-8"))
    atomic_write_text(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    manifest.count(variants=len(recipe.variants), models=len(recipe.models), seeds=len(recipe.seeds), runs=len(rows))
    manifest.output("results", out_dir / "results.jsonl")
    manifest.output("comparison", out_dir / "comparison.json")
    manifest.output("report", out_dir / "report.html")
    manifest.data["settings_file"] = "settings.json"
    manifest.write(out_dir / "manifest.json")  # before the report, which shows it (Run.finish writes it again)
    report = write_experiment_report(recipe, rows, out_dir, comparison)
    return ExperimentResult(out_dir, rows, report, comparison)


def study_comparison(recipe: Recipe, rows: list[dict[str, Any]], out_dir: Path,
                     training_data: Callable[[str], list[Example]]) -> dict[str, Any]:
    """Paired differences from the baseline (per model), recovered gap shares, detection quality."""
    spec = recipe.compare
    try:
        comparison = compare_study(rows, out_dir, baseline=recipe.baseline, oracle=spec.oracle, metric=spec.metric,
                                   n_resamples=spec.n_resamples, seed=recipe.seeds[0])
    except (DataError, ValueError) as err:  # the trained models and their scores stay; say why there is no verdict
        console.print(f"no paired comparison: {err}", markup=False)
        comparison = {"error": str(err), "models": {}}
    comparison["detection"] = {}
    for variant in recipe.variant_order():
        found = detection(training_data(variant), out_dir / "variants" / variant / "decisions.jsonl", spec.flag)
        if found is not None:
            comparison["detection"][variant] = found
    return comparison


def run_study(recipe: Any, workspace: Workspace, out: str | Path | None = None, *, overwrite: bool = False) -> Any:
    """Run any recipe load_recipe returns: a variants study (``run_experiment`` -> ExperimentResult) or,
    for ``study: synthetic``, the synthetic-data study (-> tamis.pipeline.synthetic.StudyResult)."""
    from tamis.pipeline.recipe import SyntheticRecipe

    if isinstance(recipe, SyntheticRecipe):
        from tamis.pipeline.synthetic import run_synthetic_study

        return run_synthetic_study(recipe.study_config(out), workspace)
    return run_experiment(recipe, workspace, out, overwrite=overwrite)
