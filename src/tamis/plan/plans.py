"""The plan of a dry run (operations, a table, a calibration) and each command's plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tamis.plan.recording import RecordingEmbedder, RecordingLLM, sft_row_tokens, sft_steps, sft_tokens
from tamis.plan.throughput import read_throughput
from tamis.plan.tokens import counter_for

# which tokens pace an operation: what its measured rate divides
PACED_BY = {"score": "prompt", "choices": "prompt", "embed": "prompt", "train": "prompt", "gradients": "prompt",
            "generate": "generated"}
OP_HELP = {
    "score": "log-probability of a given response (one forward pass per call)",
    "choices": "next-token probabilities of fixed options (one forward pass per prompt)",
    "generate": "text generation (calls = samples; generated tokens at most max_tokens each)",
    "embed": "sentence embeddings (one text per call)",
    "train": "fine-tuning (calls = optimiser steps; tokens = training tokens read)",
    "gradients": "per-example gradients (one forward + backward per call)",
}



# -- the plan --------------------------------------------------------------------------------------
@dataclass
class Operation:
    model: str
    op: str
    calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0  # at most
    unit: str = "tokens"
    seconds: float | None = None
    measured: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    command: str
    operations: list[Operation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorders: list[Any] = field(default_factory=list, repr=False)

    def add(self, model: str, op: str, calls: int, prompt_tokens: int = 0, generated_tokens: int = 0,
            unit: str = "tokens", note: str = "") -> Operation:
        for row in self.operations:
            if row.model == model and row.op == op:
                break
        else:
            row = Operation(model, op, unit=unit)
            self.operations.append(row)
        row.calls += calls
        row.prompt_tokens += prompt_tokens
        row.generated_tokens += generated_tokens
        if note and note not in row.notes:
            row.notes.append(note)
        return row

    def estimate(self, workspace: Any) -> "Plan":
        """Seconds per operation from the workspace's latest measurement for that model and operation."""
        known = read_throughput(workspace)
        for row in self.operations:
            m = known.get(row.model, {}).get(row.op)
            if not m or m.get("unit") != row.unit or not m.get("seconds"):
                row.seconds, row.measured = None, None
                continue
            paced = row.generated_tokens if PACED_BY.get(row.op) == "generated" else row.prompt_tokens
            rate_tokens = m.get("tokens") or 0
            if rate_tokens and paced:
                row.seconds = paced * m["seconds"] / rate_tokens
            else:
                row.seconds = row.calls * m["seconds"] / max(1, m.get("calls") or 1)
            row.measured = m
        return self

    @property
    def total_seconds(self) -> float | None:
        secs = [r.seconds for r in self.operations]
        return None if not secs or any(s is None for s in secs) else float(sum(secs))

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "dry_run": True,
                "operations": [asdict(r) for r in self.operations],
                "estimated_seconds": self.total_seconds, "notes": self.notes}


# -- the commands' plans (each reads its data as the command does, then runs its own code on recorders) --
def _read(data: str, fmt: str | None, limit: int | None = None) -> Any:
    from tamis.io import read_dataset

    return read_dataset(data, format=fmt, limit=limit)  # no quarantine file: a dry run writes nothing


def plan_profile(config: Any, workspace: Any) -> Plan:
    from tamis.pipeline.profile import embedding_text
    from tamis.signals.likelihood import response_likelihood

    plan = Plan("profile")
    examples = _read(config.data, config.format, config.limit).examples
    if config.likelihood:
        response_likelihood(examples, RecordingLLM(config.model, plan, workspace))  # type: ignore[arg-type]
    if config.embed and examples:
        RecordingEmbedder(config.embedder, plan, workspace).embed([embedding_text(ex) for ex in examples])
    return plan


def plan_confidence(job: Any, workspace: Any) -> Plan:
    from tamis.signals.confidence import bsdetector_confidence
    from tamis.signals.quality_baselines import quality_baselines

    plan = Plan("score confidence")
    examples = _read(job.data, job.format, job.limit).examples
    llm = RecordingLLM(job.model, plan, workspace)
    cfg = job.confidence
    embedder = RecordingEmbedder(cfg.embedder, plan, workspace) if cfg.similarity == "embedding" else None
    if cfg.similarity == "nli" or cfg.nli_model:
        plan.notes.append(f"NLI model {cfg.nli_model}: its calls (k per example) are not counted")
    nli = _NoNLI() if cfg.similarity == "nli" else None
    bsdetector_confidence(examples, llm, cfg, embedder=embedder, nli=nli)  # type: ignore[arg-type]
    if job.baselines:
        quality_baselines(examples, llm, judge=job.judge, max_response_chars=cfg.max_response_chars,  # type: ignore[arg-type]
                          max_prompt_chars=cfg.max_prompt_chars, judge_reasoning=job.judge_reasoning)
    return plan


class _NoNLI:
    def non_contradiction(self, a: list[str], b: list[str]) -> list[float]:
        return [0.5] * len(a)


def plan_correct(job: Any, workspace: Any) -> Plan:
    from tamis.curate.correct import auto_correct
    from tamis.curate.decisions import read_decisions

    plan = Plan("correct")
    examples = _read(job.data, job.format).examples
    answer = RecordingLLM(job.model, plan, workspace)
    judge = answer if (job.judge or job.model) == job.model else RecordingLLM(job.judge, plan, workspace)
    auto_correct(examples, read_decisions(job.decisions), answer, judge, job.correct)  # type: ignore[arg-type]
    return plan


def plan_embed(command: str, data: str, fmt: str | None, embedder: str, workspace: Any) -> Plan:
    from tamis.pipeline.profile import embedding_text

    plan = Plan(command)
    examples = _read(data, fmt).examples
    RecordingEmbedder(embedder, plan, workspace).embed([embedding_text(ex) for ex in examples])
    return plan


def plan_generation(command: str, run: Callable[[Any, Any], Any], model: str, workspace: Any,
                    embedder: str | None = None, note: str = "") -> Plan:
    """A generation command's plan: ``run(llm, embedder)`` calls the command's own generator."""
    plan = Plan(command)
    llm = RecordingLLM(model, plan, workspace)
    run(llm, RecordingEmbedder(embedder, plan, workspace) if embedder else None)
    if note:
        plan.notes.append(note)
    return plan


def plan_eval(settings: Any, workspace: Any) -> Plan:
    from tamis.evaluate.choices import option_logprobs
    from tamis.evaluate.choices import example_options
    from tamis.models import DEFAULT_LLM
    from tamis.models.base import GenerationParams
    from tamis.signals.pairwise import JudgeConfig, instruction_text, judge_pairs

    plan = Plan("eval")
    read = _read(settings.data, settings.format, settings.limit)
    examples = [ex for ex in read.examples if ex.kind == "chat" and ex.response is not None]
    llm = RecordingLLM(settings.model, plan, workspace)
    params = GenerationParams(n=1, temperature=0.0, max_tokens=settings.max_tokens, seed=settings.seed)
    prompts = [ex.prompt_messages for ex in examples]
    if settings.scoring == "options":
        option_logprobs(llm, prompts, example_options(examples, settings.options))  # type: ignore[arg-type]
    else:
        llm.generate(prompts, params)
    if settings.versus:
        if not (Path(settings.versus) / "outputs.jsonl").is_file():
            RecordingLLM(settings.versus, plan, workspace).generate(prompts, params)
        judge = RecordingLLM(settings.judge or DEFAULT_LLM, plan, workspace)
        judge_pairs(judge, [instruction_text(p) for p in prompts], ["a"] * len(prompts), ["b"] * len(prompts),  # type: ignore[arg-type]
                    JudgeConfig(k=settings.judge_k, seed=settings.seed))
    return plan


def plan_sft(examples: list[Any], settings: Any, workspace: Any) -> Plan:
    from tamis.train.sft import to_prompt_completion, train_op

    to_prompt_completion(examples)  # the same refusal of rows SFT cannot use
    plan = Plan("train sft")
    counter = counter_for(settings.model, workspace)
    steps, n_train, n_eval = sft_steps(len(examples), settings)
    rows = sft_row_tokens(counter, examples, settings.max_length)
    plan.add(str(_spec(settings.model)), train_op(settings), steps, sft_tokens(rows, steps, settings), 0, counter.unit,
             f"{n_train} training rows, {n_eval} held out; {settings.batch_size * settings.grad_accum} rows per step")
    return plan


def plan_influence(config: Any, workspace: Any) -> Plan:
    plan = Plan("score influence")
    cands = _read(config.candidates, config.format, config.limit).examples
    seeds = _read(config.seed_set, config.seed_set_format or config.format).examples
    counter = counter_for(config.model, workspace)
    n = config.gradients.max_length

    def tokens(exs: list[Any]) -> int:
        return sum(min(n, counter.scored(ex.prompt_messages, ex.response or "")) for ex in exs)

    name = str(_spec(config.model))
    if config.hessian != "identity":
        subset = cands[: config.factor_limit] if config.factor_limit else cands
        passes = 2 if config.hessian == "ekfac" else 1
        plan.add(name, "gradients", passes * len(subset), passes * tokens(subset), 0, counter.unit,
                 f"{config.hessian} factors: {passes} pass(es) over {len(subset)} candidates (reused when fitted before)")
    plan.add(name, "gradients", len(cands) + len(seeds), tokens(cands) + tokens(seeds), 0, counter.unit,
             f"{len(cands)} candidates (features reused when computed before) + {len(seeds)} seed-set examples")
    return plan


def plan_classifier(train_texts: list[str], config: Any, workspace: Any, predict_texts: list[str],
                    plan: Plan | None = None) -> Plan:
    """An encoder classifier's training (its optimiser steps, tokens read) and its predictions on
    ``predict_texts``; estimated from the encoder's last measured training and prediction speed."""
    from transformers import AutoTokenizer

    from tamis.train.classifier import classifier_steps, encoder_path, text_tokens, training_tokens

    plan = plan or Plan("train classifier")
    tokenizer = AutoTokenizer.from_pretrained(encoder_path(config.model))
    steps = classifier_steps(len(train_texts), config)
    rows = text_tokens(tokenizer, train_texts, config.max_length)
    plan.add(config.model, "train_classifier", steps, training_tokens(rows, steps, config.batch_size), 0, "tokens",
             f"{len(train_texts)} training texts; {config.batch_size} per step")
    plan.add(config.model, "classify", len(predict_texts),
             sum(text_tokens(tokenizer, predict_texts, config.max_length)), 0, "tokens")
    return plan


def plan_synthetic(config: Any, workspace: Any) -> Plan:
    """``experiment synthetic``: zero- and few-shot generation by the study's own generator code (recording
    models; every reply assumed usable), the diversity embeddings, and one classifier training and test
    prediction per (set, seed), each set at its full size (an upper bound: equalising only shrinks them)."""
    import random

    from tamis.generate import generate_labelled, load_task
    from tamis.generate.labelled import LabelledGenerationConfig
    from tamis.pipeline.synthetic import balanced_sample, load_task_data

    plan = Plan("experiment synthetic")
    task = load_task(config.task)
    pool, test, _ = load_task_data(task, config)
    llm, embedder = RecordingLLM(config.generator, plan, workspace), RecordingEmbedder(config.embedder, plan, workspace)
    references = random.Random(config.split_seed).sample(pool, min(len(pool), 2000))
    sets = {"real": balanced_sample(pool, list(task.labels), config.n_per_label, config.split_seed)}
    for mode in ("zero-shot", "few-shot"):
        gen = LabelledGenerationConfig(n_per_label=config.n_per_label, mode=mode, temperature=config.temperature,
                                       near_copy=config.near_copy, reasoning=config.reasoning)
        generate_labelled(task, llm, gen, pool=pool, embedder=embedder, references=references)
    real = [ex.text or "" for ex in sets["real"]]  # generated sets are planned at the real set's size and lengths
    test_texts = [ex.text or "" for ex in test]
    for _ in ("real", "zero-shot", "few-shot"):
        embedder.embed(real)
        for _ in config.seeds:
            plan_classifier(real, config.classifier, workspace, test_texts, plan)
    plan.notes.append(f"3 training sets (real, zero-shot, few-shot) of {len(real)} texts x {len(config.seeds)} seeds "
                      "(generated sets at the real set's size: an upper bound); generation calls assume every reply "
                      "is usable (rejected replies are retried); finished classifier runs are reused from the call cache")
    return plan


def plan_lds(job: Any, workspace: Any) -> Plan:
    """``experiment lds``: the warm-up and every subset training, one influence run per Hessian choice,
    and each subset model scoring the seed set."""
    from dataclasses import replace

    from tamis.evaluate.lds import subset_masks
    from tamis.pipeline.lds import training_settings
    from tamis.signals.influence.config import GradientConfig, InfluenceConfig

    plan = Plan("experiment lds")
    cands = _read(job.candidates, None).examples
    seeds = _read(job.seed_set, None).examples
    settings = training_settings(job)
    masks = subset_masks(len(cands), job.n_subsets, job.fraction, job.seed)
    trainings = [cands] + [[ex for ex, keep in zip(cands, mask) if keep] for mask in masks]
    for examples in trainings:
        merge(plan, plan_sft(examples, settings, workspace))
    base = InfluenceConfig(candidates=job.candidates, seed_set=job.seed_set, model=job.model,
                           projection_dim=job.projection_dim, gradients=GradientConfig(max_length=job.max_length))
    for hessian in job.hessians:
        merge(plan, plan_influence(replace(base, hessian=hessian), workspace))
    llm = RecordingLLM(job.model, plan, workspace)
    for _ in masks:
        llm.logprobs([ex.prompt_messages for ex in seeds], [ex.response or "" for ex in seeds])
    plan.notes.append(f"{len(trainings)} trainings (the warm-up on {len(cands)} candidates, {job.n_subsets} subsets of "
                      f"{int(masks[0].sum())}); trainings and influence features already done are reused")
    return plan


def merge(plan: Plan, other: Plan) -> None:
    """Add another plan's operations to ``plan`` (rows of the same model and operation summed)."""
    for row in other.operations:
        plan.add(row.model, row.op, row.calls, row.prompt_tokens, row.generated_tokens, row.unit,
                 "; ".join(row.notes[:1]))
    plan.recorders += other.recorders  # --calibrate replays their calls


def _spec(text: str) -> Any:
    from tamis.models.base import ModelSpec

    return ModelSpec.parse(text)




def calibrate(plan: Plan, workspace: Any) -> None:
    """``--calibrate``: replay the first few recorded calls of each operation on the real model (through
    the call cache and its meters), so the estimate rests on a measurement made now. Results go to the
    workspace's call cache, as a real run's would; the output folder stays untouched."""
    from tamis.models import load_embedder, load_llm

    for rec in plan.recorders:
        if isinstance(rec, RecordingEmbedder):
            if rec.samples:
                load_embedder(rec.name, workspace).embed(list(rec.samples))
            continue
        if not any(rec.samples.values()):
            continue
        llm = load_llm(rec.name, workspace)
        for params, prompts in rec.samples["generate"]:
            llm.generate(prompts, params)
        if rec.samples["score"]:
            llm.logprobs([p for p, _ in rec.samples["score"]], [r for _, r in rec.samples["score"]])
        for choices, prompts in rec.samples["choices"]:
            from tamis.signals.choices import choice_logprobs

            choice_logprobs(llm, prompts, choices)
    for row in plan.operations:
        if row.op in ("train", "train_full", "gradients"):
            row.notes.append("--calibrate times model calls only; training and gradients are measured by a real run")
