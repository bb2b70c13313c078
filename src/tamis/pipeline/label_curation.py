"""Recipe steps for label-noise studies (registered into tamis.curate.steps on import).

- ``label_filter``: confident learning with the model to be tuned. Fine-tune it briefly with LoRA on
  the given (noisy) examples (CLEAR fine-tunes first: a 135M model zero-shot barely knows the task),
  then score every label option of every training example (``tamis.evaluate.choices``: probabilities
  are the softmax over the options) and drop by a rule with no threshold to tune:
  ``confident`` (default; confident learning's confident joint, Northcutt et al. 2021): each label j
  gets the threshold t_j = the mean p(j) over the examples labelled j; an example is dropped when the
  most likely label among those at or above their own threshold is not its given label. The
  per-label thresholds keep a model that favours one label from dropping every example of another.
  ``disagree``: drop when the most likely label is not the given one (cleanlab's
  ``predicted_neq_given``). ``median``: drop when p(given label) is below its median (CLEAR's rule).
  The warm-up takes SFT settings (``warmup:``); give it the study's own training settings (a YAML
  anchor) and it is the raw variant's training, done once (``train_once``).
  ``folds: K`` (K >= 2) cross-fits: K LoRA runs, each trained on K-1 folds and scoring the held-out
  fold, so no example is scored by a model that saw it (cleanlab's out-of-fold probabilities).
- ``neighbour_vote``: label-noise detection with no training on the noisy labels: the labels of each
  example's nearest neighbours in a pretrained embedding space vote (SimiFeat-style).
- ``sample_as``: a seeded random subset of the same size as another variant's curated data, the
  control that separates "less data" from "better data".
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import replace
from typing import Any

import numpy as np

from tamis.curate.decisions import Decision
from tamis.curate.steps import StepContext, check_params, fold_splits, register_step
from tamis.errors import ConfigError
from tamis.pipeline.crossfit import warm_up
from tamis.records import Example

LABEL_FILTER_KEYS = ("model", "warmup", "rule", "folds", "options")
RULES = ("confident", "disagree", "median")


def _label_probabilities(spec: str, examples: list[Example], options: list[str] | None,
                         ctx: StepContext) -> list[dict[str, float]]:
    """Each example's label options as probabilities (softmax of the option log-probabilities)."""
    from tamis.evaluate.choices import example_options, option_logprobs

    llm = ctx.llm(spec)
    logprobs = option_logprobs(llm, [ex.prompt_messages for ex in examples], example_options(examples, options))
    out = []
    for lp in logprobs:
        top = max(lp.values())
        weights = {o: math.exp(v - top) for o, v in lp.items()}
        total = sum(weights.values())
        out.append({o: w / total for o, w in weights.items()})
    return out


@register_step("label_filter")
def label_filter_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Drop examples whose label the briefly fine-tuned model disagrees with (see the module docstring)."""
    check_params("label_filter", params, LABEL_FILTER_KEYS)
    rule = params.get("rule", "confident")
    if rule not in RULES:
        raise ConfigError(f"recipe step 'label_filter': rule {rule!r} is not one of {', '.join(RULES)}")
    folds = int(params.get("folds", 1))
    if folds < 1 or folds > len(examples):
        raise ConfigError(f"recipe step 'label_filter': folds must lie in [1, {len(examples)}], got {folds}")
    model = params.get("model", "transformers:smollm2")
    warmup = dict(params.get("warmup") or {})
    options = params.get("options")
    probs: dict[str, dict[str, float]] = {}
    if ctx.tune is None:  # called outside a recipe run: train here (the runner hands the same function in)
        ctx = replace(ctx, tune=functools.partial(warm_up, workspace=ctx.workspace))
    if folds == 1:
        spec = ctx.tuned(examples, model, warmup, "warmup")
        probs = dict(zip([ex.id for ex in examples], _label_probabilities(spec, examples, options, ctx)))
    else:
        for k, (train, held) in enumerate(fold_splits(len(examples), folds, ctx.seed)):
            spec = ctx.tuned([examples[i] for i in train], model, warmup, f"fold{k}")
            scored = [examples[i] for i in held]
            probs |= dict(zip([ex.id for ex in scored], _label_probabilities(spec, scored, options, ctx)))
    return label_decisions(examples, probs, rule, "cross-fitted" if folds > 1 else "warmed-up")


def label_decisions(examples: list[Example], probs: dict[str, dict[str, float]], rule: str = "confident",
                    how: str = "tuned") -> list[Decision]:
    """Keep/drop per example from its label-option probabilities under a model (see the module docstring)."""
    given = {ex.id: (ex.response or "").strip() for ex in examples}
    confidence = {i: p[given[i]] for i, p in probs.items()}
    if rule == "median":
        threshold = float(np.median(list(confidence.values())))
    per_label = {label: float(np.mean([probs[i][label] for i in probs if given[i] == label]))
                 for label in {given[i] for i in probs}}
    decisions = []
    for ex in examples:
        p = probs[ex.id]
        predicted = max(p, key=p.get)
        scores = {"label_confidence": confidence[ex.id], **{f"p_{o}": v for o, v in p.items()}}
        if rule == "confident":
            confident = [o for o in p if o in per_label and p[o] >= per_label[o]]
            suggested = max(confident, key=p.get) if confident else given[ex.id]
            keep = suggested == given[ex.id]
            reason = (f"p(label {given[ex.id]!r}) {confidence[ex.id]:.2f}; no other label is confidently more "
                      f"likely under the {how} model" if keep
                      else f"the {how} model is confident in {suggested!r}: p {p[suggested]:.2f} >= its threshold "
                           f"{per_label[suggested]:.2f} (mean p over rows labelled {suggested!r}); the label says "
                           f"{given[ex.id]!r} (p {confidence[ex.id]:.2f})")
        elif rule == "disagree":
            keep = predicted == given[ex.id]
            reason = (f"the {how} model agrees with the label {given[ex.id]!r} (p {confidence[ex.id]:.2f})" if keep
                      else f"the {how} model predicts {predicted!r} (p {p[predicted]:.2f}), the label says "
                           f"{given[ex.id]!r} (p {confidence[ex.id]:.2f})")
        else:
            keep = confidence[ex.id] >= threshold
            reason = (f"p(label {given[ex.id]!r}) {confidence[ex.id]:.2f} {'>=' if keep else '<'} median "
                      f"{threshold:.2f} under the {how} model")
        decisions.append(Decision(ex.id, "keep" if keep else "drop", reason, scores))
    return decisions


@register_step("sample_as")
def sample_as_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Keep a seeded random subset as large as another variant's curated data (``variant: NAME``, listed
    before this one in the recipe): the same-size random control."""
    check_params("sample_as", params, ("variant", "seed"))
    other = params.get("variant")
    if not other:
        raise ConfigError("recipe step 'sample_as': give variant: NAME (the curated variant to match in size)")
    # ctx.out_dir is OUT/variants/THIS/stepI-NAME; the other variant's data is OUT/variants/OTHER/train.jsonl
    data = ctx.out_dir.parent.parent / str(other) / "train.jsonl"
    if not data.is_file():
        raise ConfigError(f"recipe step 'sample_as': variant {other!r} has no data yet ({data}); list it before "
                          "this variant in the recipe")
    with open(data, encoding="utf-8") as f:
        n = sum(1 for line in f if line.strip())
    seed = int(params.get("seed", ctx.seed))
    chosen = set(random.Random(seed).sample(range(len(examples)), min(n, len(examples))))
    return [Decision(ex.id, "keep" if i in chosen else "drop",
                     f"random sample of {n}/{len(examples)} (seed {seed}), the size of variant {other!r}"
                     if i in chosen else f"not in the random sample of {n} (seed {seed}), the size of {other!r}")
            for i, ex in enumerate(examples)]


NEIGHBOUR_KEYS = ("embedder", "k")


@register_step("neighbour_vote")
def neighbour_vote_step(examples: list[Example], params: dict[str, Any], ctx: StepContext) -> list[Decision]:
    """Drop examples whose label most of their nearest neighbours disagree with.

    Label-noise detection without training a model on the noisy labels (SimiFeat-style, Zhu et al.,
    ICML 2022): embed every example's prompt with a pretrained encoder (the bundled MiniLM), take its
    ``k`` nearest other examples by cosine similarity, and drop it when another label is more common
    among them than its own (a plain majority: no threshold to tune; ties keep). The score is the
    share of neighbours that carry its label (higher = cleaner)."""
    from tamis.models import DEFAULT_EMBEDDER, load_embedder

    check_params("neighbour_vote", params, NEIGHBOUR_KEYS)
    k = int(params.get("k", 10))
    if k < 1 or k >= len(examples):
        raise ConfigError(f"recipe step 'neighbour_vote': k must lie in [1, {len(examples) - 1}], got {k}")
    embedder = load_embedder(params.get("embedder", DEFAULT_EMBEDDER), ctx.workspace)
    vectors = embedder.embed([ex.prompt_text if ex.kind == "chat" else ex.text or "" for ex in examples])
    labels = [(ex.response or ex.label or "").strip() for ex in examples]
    return neighbour_decisions(examples, labels, np.asarray(vectors, dtype=float), k)


def neighbour_decisions(examples: list[Example], labels: list[str], vectors: np.ndarray, k: int) -> list[Decision]:
    """Keep/drop by the labels of each example's k nearest neighbours (unit vectors, cosine similarity)."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)  # an example is not its own neighbour
    decisions = []
    for i, ex in enumerate(examples):
        nearest = np.argsort(-similarity[i], kind="stable")[:k]
        votes: dict[str, int] = {}
        for j in nearest:
            votes[labels[j]] = votes.get(labels[j], 0) + 1
        own = votes.get(labels[i], 0)
        rival = max((label for label in votes if label != labels[i]), key=lambda label: votes[label], default=None)
        agreement = own / k
        if rival is not None and votes[rival] > own:
            decisions.append(Decision(ex.id, "drop", f"{votes[rival]} of its {k} nearest neighbours are labelled "
                                                     f"{rival!r}, {own} {labels[i]!r} like it", {"neighbour_agreement": agreement}))
        else:
            decisions.append(Decision(ex.id, "keep", f"{own} of its {k} nearest neighbours share its label "
                                                     f"{labels[i]!r}", {"neighbour_agreement": agreement}))
    return decisions
