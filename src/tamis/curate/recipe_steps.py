"""Recipe steps backed by tamis's curation methods (registered into tamis.curate.steps).

- ``confidence_filter``: CLEAR's Auto-Filter on BSDetector confidence from the model to be tuned;
- ``auto_correct``: CLEAR's Auto-Correct: the same filter, then an answer model answers each filtered
  prompt and a judge (both orders) decides whether the answer replaces the target;
- ``influence_select``: G-DIG selection by gradient influence on a trusted seed set;
- ``filter``: a policy (``keep``/``drop`` rules, or one ``signal`` with CLEAR's median rule) over
  the signals of scored runs, exactly as ``tamis filter``;
- ``weight_by``: soft curation: keep every example, with a training weight by its rank on a signal
  (``tamis.train.weights``), exactly as ``tamis train sft --weight-by``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tamis.curate.decisions import Decision, action_counts
from tamis.curate.filter import FilterRule, auto_filter, label_groups
from tamis.curate.steps import StepContext, check_params, fold_splits, register_step
from tamis.records import Example
from tamis.store import atomic_write_json, atomic_write_text

_CONFIDENCE_KEYS = ("k", "temperature", "max_tokens", "alpha", "beta", "similarity", "reflection", "reasoning",
                    "embedder", "max_prompt_chars", "max_response_chars")
_RULE_KEYS = ("threshold", "quantile", "keep_fraction")
_TUNING_KEYS = ("warmup", "folds")
_FILTER_KEYS = ("model", "per_label") + _CONFIDENCE_KEYS + _RULE_KEYS + _TUNING_KEYS
# auto_correct's own parameters -> tamis.curate.correct.CorrectConfig fields
_CORRECT_KEYS = {"eta": "eta", "review_above": "review_above", "judge_k": "k", "judge_beta": "beta",
                 "judge_temperature": "temperature", "answer_max_tokens": "max_tokens", "judge_max_chars": "max_chars"}


@register_step("confidence_filter")
def confidence_filter_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Keep examples whose BSDetector confidence clears the rule (default: the median, as CLEAR).

    The confidence comes from ``model`` as it is, or, as CLEAR does, fine-tuned first: ``warmup:``
    (SFT settings) tunes it on all the examples; ``folds: K`` cross-fits: K LoRA runs, each tuned on
    K-1 folds and scoring the held-out fold, so no example is judged by a model that saw it
    (cleanlab's out-of-fold protocol). ``per_label: true`` takes the median within each label (the
    response), for classification data. Each decision's evidence names the model that scored it."""
    from tamis.models import load_embedder
    from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence
    from tamis.signals.registry import SignalTable

    check_params("confidence_filter", params, _FILTER_KEYS)
    cfg = ConfidenceConfig(**{k: params[k] for k in _CONFIDENCE_KEYS if k in params}, seed=ctx.seed)
    model = params.get("model", "transformers:smollm2")
    embedder = load_embedder(cfg.embedder, ctx.workspace) if cfg.similarity == "embedding" else None
    folds, warmup = int(params.get("folds", 1)), params.get("warmup")
    if folds > 1:
        parts = [(ctx.tuned([examples[i] for i in train], model, dict(warmup or {}), f"fold{k}"), held)
                 for k, (train, held) in enumerate(fold_splits(len(examples), folds, ctx.seed))]
    else:
        parts = [(ctx.tuned(examples, model, dict(warmup), "warmup") if warmup is not None else model,
                  list(range(len(examples))))]
    rows, counts, scored_by = [], {}, {}
    for spec, held in parts:
        report = bsdetector_confidence([examples[i] for i in held], ctx.llm(spec), cfg, embedder=embedder)
        rows += report.rows
        counts = {k: counts.get(k, 0) + v for k, v in report.counts.items()}
        scored_by |= {examples[i].id: spec for i in held}
    order = {ex.id: n for n, ex in enumerate(examples)}
    table = SignalTable.from_rows(sorted(rows, key=lambda r: order[r["id"]]), counts)
    decisions, _ = auto_filter(table, FilterRule(**{k: params[k] for k in _RULE_KEYS if k in params}), step="",
                               labels=label_groups(examples) if params.get("per_label") else None)
    if folds > 1 or warmup is not None:
        how = "cross-fitted" if folds > 1 else "warmed-up"
        for d in decisions:
            d.evidence = dict(d.evidence or {}) | {"confidence_model": scored_by[d.id], "tuning": how}
            d.reason += f" (BSDetector under the {how} model)"
    return decisions


@register_step("auto_correct")
def auto_correct_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """CLEAR's Auto-Correct: filter by confidence (the ``confidence_filter`` parameters), then
    ``answer_model`` answers every filtered prompt and ``judge_model`` compares that answer with the
    target in both orders; the answer replaces the target when the judge's confidence exceeds ``eta``
    (``judge_k`` sampled verdicts per order), else the example stays filtered. Both models default to
    ``model`` (the bundled SmolLM2)."""
    from tamis.curate.correct import CorrectConfig, auto_correct
    check_params("auto_correct", params, _FILTER_KEYS + ("answer_model", "judge_model") + tuple(_CORRECT_KEYS))
    filtered = confidence_filter_step(examples, {k: v for k, v in params.items() if k in _FILTER_KEYS}, ctx)
    model = params.get("model", "transformers:smollm2")
    answer_spec, judge_spec = params.get("answer_model", model), params.get("judge_model", model)
    answer = ctx.llm(answer_spec)
    judge = answer if judge_spec == answer_spec else ctx.llm(judge_spec)
    cfg = CorrectConfig(**{field: params[key] for key, field in _CORRECT_KEYS.items() if key in params}, seed=ctx.seed)
    decisions, counts = auto_correct(examples, filtered, answer, judge, cfg)
    atomic_write_json(ctx.out_dir / "counts.json", counts | {"actions": action_counts(decisions)})
    return decisions


@register_step("influence_select")
def influence_select_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Score candidates by influence on ``seed_set`` (a data reference: a file, data-root:REL or split:NAME)
    and select with G-DIG's quality rule + diversity (``rule``, ``top_k``, ``budget``, ``clusters``;
    K-means is seeded by the study's seed). ``gradients`` takes GradientConfig fields. ``warmup:`` (SFT
    settings) first LoRA-tunes the model on the candidates and takes gradients through that adapter, as
    G-DIG and LESS do: a fresh LoRA has B = 0, so its A side carries no gradient signal."""
    import numpy as np

    from tamis.curate.select import SelectionConfig, select
    from tamis.errors import ConfigError
    from tamis.signals.influence.config import GradientConfig, InfluenceConfig

    influence_keys = set(InfluenceConfig.__dataclass_fields__) - {"candidates", "seed_set", "out"}
    selection_keys = set(SelectionConfig.__dataclass_fields__) - {"seed"}
    check_params("influence_select", params, influence_keys | selection_keys | {"seed_set", "warmup"})
    if "seed_set" not in params:
        raise ConfigError("recipe step 'influence_select' needs seed_set: the trusted seed set (a file, "
                          "data-root:REL or split:NAME)")
    seed_path = ctx.path(params["seed_set"])
    options = {k: v for k, v in params.items() if k in influence_keys}
    if isinstance(options.get("gradients"), dict):
        options["gradients"] = GradientConfig(**options["gradients"])
    if params.get("warmup") is not None:
        from dataclasses import replace

        tuned = ctx.tuned(examples, options.get("model", "transformers:smollm2"), dict(params["warmup"]), "warmup")
        options["gradients"] = replace(options.get("gradients") or GradientConfig(),
                                       adapter=tuned.removeprefix("transformers:"))
    result = _shared_influence(examples, seed_path, options, ctx)
    features = np.load(result / "features.npy")
    ids = json.loads((result / "ids.json").read_text())
    sel = SelectionConfig(**{k: v for k, v in params.items() if k in selection_keys}, seed=ctx.seed)
    response = {ex.id: (ex.response or "").strip() for ex in examples}
    return select(ids, np.load(result / "influence_batches.npy"), features, sel, labels=[response[i] for i in ids])


def _shared_influence(examples: list[Example], seed_path: Path, options: dict[str, Any], ctx: StepContext) -> Path:
    """The influence run for these candidates, seed set and settings, shared by every variant that asks
    for it (a study's budgets and selection rules differ only after scoring): computed once into
    ``WORKSPACE/influence/scored/<key>``; the step's folder records which run it used."""
    from dataclasses import asdict, is_dataclass

    from tamis.io import read_dataset, write_dataset
    from tamis.signals.influence.config import InfluenceConfig
    from tamis.signals.influence.run import run_influence
    from tamis.store import cache_key
    from tamis.records import data_fingerprint

    seeds = read_dataset(seed_path).examples
    keyed = {k: asdict(v) if is_dataclass(v) else v for k, v in sorted(options.items())}
    adapter = (keyed.get("gradients") or {}).get("adapter")
    if adapter:  # a warm-up adapter by its weights, not its folder: every variant's identical warm-up shares the run
        from tamis.models.bundled import file_digest

        weights = sorted(Path(adapter).glob("adapter_model.*"))
        keyed["gradients"] = dict(keyed["gradients"], adapter=file_digest(str(weights[0])) if weights else adapter)
    key = cache_key("influence_select", data_fingerprint(examples), data_fingerprint(seeds), keyed)[:20]
    out = ctx.workspace.root / "influence" / "scored" / key
    atomic_write_text(ctx.out_dir / "influence-run.txt", f"{out}\n")
    if all((out / name).is_file() for name in ("manifest.json", "features.npy", "ids.json", "influence_batches.npy")):
        return out
    candidates, seed_file = out / "candidates.jsonl", out / "seed.jsonl"
    write_dataset(examples, candidates)
    write_dataset(seeds, seed_file)
    run_influence(InfluenceConfig(candidates=str(candidates), seed_set=str(seed_file), out=str(out), **options),
                  ctx.workspace)
    return out


@register_step("filter")
def policy_filter_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """A policy over the signals of scored runs (``scores``: run folders or score files, resolved like the
    recipe's data references): ``keep``/``drop`` rules, or ``signal`` with ``threshold``/``quantile``/
    ``keep_fraction`` (default: CLEAR's median rule on confidence); ``per_label: true`` takes medians,
    quantiles and shares within each label. The same rules as ``tamis filter``."""
    from tamis.curate.policy import Policy
    from tamis.errors import ConfigError
    from tamis.signals.registry import SignalSet

    check_params("filter", params, {"scores", "keep", "drop", "signal", "per_label"} | set(_RULE_KEYS))
    refs = params.get("scores")
    if not refs:
        raise ConfigError("recipe step 'filter' needs scores: the run folders (or score files) of a scoring command")
    signals = SignalSet.read([ctx.path(r) for r in ([refs] if isinstance(refs, str) else refs)])
    if params.get("keep") or params.get("drop"):
        as_list = (lambda v: [v] if isinstance(v, str) else list(v or []))  # noqa: E731
        policy = Policy(keep=as_list(params.get("keep")), drop=as_list(params.get("drop")))
    else:
        rule = FilterRule(signal=params.get("signal", "confidence"), **{k: params[k] for k in _RULE_KEYS if k in params})
        policy = rule.policy(signals.names)
    policy.step = ""
    decisions, _ = policy.apply([ex.id for ex in examples], signals,
                                groups=label_groups(examples) if params.get("per_label") else None)
    return decisions


@register_step("weight_by")
def weight_by_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Keep every example with a training weight (``scores["train_weight"]``, carried into the variant's
    data as ``meta.train_weight``) by its rank on ``signal`` in ``scores`` (runs or score files) or in
    the decisions of another ``variant`` listed before this one (e.g. the confidence a filter variant
    measured: soft curation on the same signal the filter cuts on); ``floor`` is the worst example's
    weight (default 0.1), the best gets 1."""
    from tamis.errors import ConfigError
    from tamis.signals.registry import SignalSet
    from tamis.train.weights import signal_weights

    check_params("weight_by", params, {"signal", "scores", "variant", "floor"})
    refs, signal, other = params.get("scores"), params.get("signal"), params.get("variant")
    if not signal or bool(refs) == bool(other):
        raise ConfigError("recipe step 'weight_by' needs signal: NAME and either scores: the runs (or score files) "
                          "holding it, or variant: an earlier variant whose decisions carry it")
    if other:
        paths = [_variant_scores(str(other), signal, ctx)]
    else:
        paths = [ctx.path(r) for r in ([refs] if isinstance(refs, str) else refs)]
    weights = signal_weights(examples, paths, signal, floor=float(params.get("floor", 0.1)))
    values = SignalSet.read(paths).values(signal)
    return [Decision(ex.id, "keep", f"training weight {w:.3f} by its rank on {signal}",
                     scores={"train_weight": w, signal: values[ex.id]}) for ex, w in zip(examples, weights)]


def _variant_scores(variant: str, signal: str, ctx: StepContext) -> Path:
    """The scores an earlier variant's decisions carry, as a signal table in this step's folder."""
    from tamis.errors import ConfigError
    from tamis.signals.registry import SignalTable

    # ctx.out_dir is OUT/variants/THIS/stepI-NAME; the other variant's decisions are OUT/variants/OTHER/
    decisions = ctx.out_dir.parent.parent / variant / "decisions.jsonl"
    if not decisions.is_file():
        raise ConfigError(f"recipe step 'weight_by': variant {variant!r} has no decisions yet ({decisions}); list it "
                          "before this variant in the recipe")
    rows: dict[str, dict[str, Any]] = {}
    for line in decisions.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if signal in (d.get("scores") or {}):
            rows[d["id"]] = {"id": d["id"], signal: d["scores"][signal]}  # a later step's value wins
    folder = ctx.out_dir / f"scores-{variant}"
    SignalTable.from_rows(rows.values(), source=str(decisions)).write(folder)
    return folder
