"""Dry runs: what a command would ask of its models, and how long that would take, without running it.

One contract for every model-calling command (``--dry-run``):

- A :class:`Plan` is a list of :class:`Operation` rows: one per (model, operation), with the number of
  calls, the prompt tokens the model reads and the most tokens it may generate.
- Calls and tokens come from running the command's own measurement code against **recording models**
  (:class:`RecordingLLM`, :class:`RecordingEmbedder`): they build every prompt exactly as the real
  command does, count it, and answer with placeholders, so the count follows the command's settings
  (k samples, reflection prompts, both judge orders, ...) without a second copy of that logic. Training
  and gradient commands count optimiser steps and tokens from their settings.
- Tokens are counted with the model's own tokenizer, loaded without its weights (transformers specs; an
  ``openai:`` spec with ``tokenizer=``; sentence-transformers); otherwise as characters / 4, and the
  plan says so.
- Time comes only from measurements: every real run records, per model spec and operation, the tokens
  it computed (cache misses only) and the seconds it took, in ``WORKSPACE/throughput.json``
  (:class:`Meter`). An operation with no measurement shows none and says how to get one (run once, or
  ``--calibrate``, which times one small batch for real).

A dry run writes nothing into the output folder (no run folder, no settings.json).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tamis.store import atomic_write_json

THROUGHPUT_FILE = "throughput.json"
CHARS_PER_TOKEN = 4
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


# -- tokens ----------------------------------------------------------------------------------------
class TokenCounter:
    """Counts tokens as a backend does, or characters / 4 when no tokenizer is at hand (``exact`` False)."""

    def __init__(self, tokenizer: Any = None, *, scoring: Any = None, max_length: int | None = None):
        self.tokenizer = tokenizer
        self.scoring = scoring  # an object with the transformers backend's scoring_ids
        self.max_length = max_length

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    @property
    def unit(self) -> str:
        return "tokens" if self.exact else "chars/4"

    def text(self, text: str) -> int:
        if self.tokenizer is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat(self, messages: list[dict[str, str]]) -> int:
        """Tokens of a prompt as the model reads it (its chat template, ready for the answer)."""
        if self.tokenizer is None:
            return math.ceil(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN)
        if self.scoring is not None:
            return len(self.scoring._encode(self.scoring.apply_chat_template(messages, add_generation_prompt=True)))
        if getattr(self.tokenizer, "chat_template", None):
            return self.text(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return self.text("".join(f"{m['role']}: {m['content']}\n" for m in messages))

    def scored(self, prompt: list[dict[str, str]], response: str) -> int:
        """Tokens one log-probability call reads: context + response + end of turn, cut to the context."""
        if self.scoring is not None:
            from tamis.models.base import fit_to_context

            context, target = self.scoring.scoring_ids(prompt, response)
            drop, _ = fit_to_context(len(context), len(target), self.max_length or 10**9)
            return 0 if drop < 0 else len(context) - drop + len(target)
        return (self.chat(prompt) if prompt else 1) + self.text(response) + 1


class _TokenizerOnly:
    """The transformers backend's tokenisation (chat template, scoring ids) without its weights."""

    def __init__(self, tokenizer: Any):
        from tamis.models.hf import TransformersLLM

        self.tokenizer = tokenizer
        for name in ("apply_chat_template", "_encode", "_end_of_turn_ids", "scoring_ids"):
            setattr(self, name, getattr(TransformersLLM, name).__get__(self))


def _hf_tokenizer(spec: Any, workspace: Any) -> tuple[Any, int | None]:
    """(tokenizer, context length) of a transformers spec, without loading the weights."""
    from transformers import AutoConfig, AutoTokenizer

    from tamis.models.bundled import is_smollm2
    from tamis.models.hf import adapter_base_spec, is_adapter_dir
    from tamis.models.openai_http import load_tokenizer

    adapter = spec.options.get("adapter") or (spec.model if is_adapter_dir(spec.model) else None)
    base = adapter_base_spec(adapter) if adapter and not spec.options.get("adapter") else spec
    if is_smollm2(base.model):
        from tamis.models.bundled import file_digest, smollm2_gguf_path
        from tamis.models.derived import CONVERSION_VERSION

        models = Path(os.environ.get("TAMIS_MODELS") or workspace.root / "models") if workspace else None
        folder = (models / f"smollm2-135m-instruct-{file_digest(str(smollm2_gguf_path()))}-{CONVERSION_VERSION}"
                  if models else None)
        tok = AutoTokenizer.from_pretrained(folder) if folder and (folder / "config.json").is_file() \
            else load_tokenizer("smollm2")
        n_ctx = AutoConfig.from_pretrained(folder).max_position_embeddings if folder and \
            (folder / "config.json").is_file() else 8192
    else:
        tok = AutoTokenizer.from_pretrained(base.model, revision=spec.options.get("revision"))
        n_ctx = getattr(AutoConfig.from_pretrained(base.model), "max_position_embeddings", None) or 2048
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, int(spec.options.get("max_length") or n_ctx)


def counter_for(spec_text: str, workspace: Any = None, *, embedder: bool = False) -> TokenCounter:
    """A counter for a model spec, loading at most its tokenizer (never its weights)."""
    from tamis.models.base import ModelSpec

    spec = ModelSpec.parse(spec_text, default_backend="sentence-transformers" if embedder else "transformers")
    try:
        if spec.backend == "transformers":
            tok, n_ctx = _hf_tokenizer(spec, workspace)
            return TokenCounter(tok, scoring=_TokenizerOnly(tok), max_length=n_ctx)
        if spec.backend == "openai" and spec.options.get("tokenizer"):
            from tamis.models.openai_http import load_tokenizer

            return TokenCounter(load_tokenizer(spec.options["tokenizer"]))
        if spec.backend == "sentence-transformers":
            from transformers import AutoTokenizer

            from tamis.models.bundled import is_minilm, minilm_path

            return TokenCounter(AutoTokenizer.from_pretrained(str(minilm_path()) if is_minilm(spec.model)
                                                              else spec.model))
    except (OSError, ValueError, ImportError):
        pass
    return TokenCounter()  # llama.cpp, openai without tokenizer=, or no tokenizer reachable: chars / 4


def counter_of(model: Any) -> TokenCounter:
    """The counter a loaded backend's own tokenisation gives (the meter's side of the same unit)."""
    inner = getattr(model, "inner", model)
    if hasattr(inner, "scoring_ids"):
        return TokenCounter(inner.tokenizer, scoring=inner, max_length=getattr(inner, "max_length", None))
    st = getattr(inner, "model", None)
    tok = getattr(st, "tokenizer", None) if getattr(inner.spec, "backend", "") == "sentence-transformers" else None
    if tok is None and getattr(inner.spec, "backend", "") == "openai":
        tok = inner.tokenizer
    return TokenCounter(tok)


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


def show(plan: Plan, workspace: Any, as_json: bool = False) -> None:
    """Print a plan (a rich table, or JSON with ``--json``), with the estimate from measurements."""
    from rich.table import Table

    from tamis.cli.app import out

    plan.estimate(workspace)
    if as_json:
        from tamis.store import to_json

        print(to_json(plan.to_dict(), indent=2))
        return
    table = Table(title=f"tamis {plan.command} --dry-run: nothing was run or written")
    for col, right in (("model", False), ("operation", False), ("calls", True), ("prompt tokens", True),
                       ("generated tokens (max)", True), ("estimated s", True)):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in plan.operations:
        unit = "" if r.unit == "tokens" else " ~"
        table.add_row(r.model, r.op, f"{r.calls:,}", f"{r.prompt_tokens:,}{unit}",
                      f"{r.generated_tokens:,}{unit}" if r.generated_tokens else "-",
                      f"{r.seconds:,.1f}" if r.seconds is not None else "-")
    out.print(table)
    total = plan.total_seconds
    out.print(f"estimated time: [bold]{_duration(total)}[/]" if total is not None else
              "estimated time: unknown for some operations (see below)")
    for r in plan.operations:
        if r.unit != "tokens":
            out.print(f"{r.model}: no tokenizer without loading the model; tokens (~) estimated as characters/4",
                      markup=False, soft_wrap=True)
        if r.measured is not None:
            m = r.measured
            out.print(f"{r.model} {r.op}: measured {m['tokens'] / m['seconds']:,.0f} {PACED_BY.get(r.op, 'prompt')} "
                      f"tokens/s ({m['calls']} calls, {m['seconds']:.1f} s, {m.get('when', '?')}"
                      f"{', ' + m['device'] if m.get('device') else ''})" if m.get("tokens") else
                      f"{r.model} {r.op}: measured {m['seconds'] / max(1, m['calls']):.3f} s per call", markup=False,
                      soft_wrap=True)
        elif r.seconds is None:
            out.print(f"no measurement yet for {r.model} ({r.op}): run once or pass --calibrate", markup=False,
                      soft_wrap=True)
        for note in r.notes:
            out.print(f"{r.model} {r.op}: {note}", markup=False, soft_wrap=True)
    for note in plan.notes:
        out.print(note, markup=False, soft_wrap=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# -- measured throughput ---------------------------------------------------------------------------
def _throughput_path(workspace: Any) -> Path | None:
    if workspace is None:
        return None
    root = workspace if isinstance(workspace, (str, os.PathLike)) else workspace.root  # a Path's .root is "/"
    return Path(root) / THROUGHPUT_FILE


def read_throughput(workspace: Any) -> dict[str, dict[str, dict[str, Any]]]:
    path = _throughput_path(workspace)
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_throughput(workspace: Any, model: str, op: str, *, calls: int, tokens: int, seconds: float,
                      unit: str, device: str = "") -> None:
    """Keep the latest measurement of (model spec, operation); never fails the job that measured it."""
    path = _throughput_path(workspace)
    if path is None or calls <= 0 or seconds <= 0:
        return
    try:
        data = read_throughput(workspace)
        data.setdefault(model, {})[op] = {
            "calls": int(calls), "tokens": int(tokens), "seconds": round(float(seconds), 4), "unit": unit,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device}
        atomic_write_json(path, data)
    except OSError:
        pass


def _device_of(model: Any) -> str:
    inner = getattr(model, "inner", model)
    device = getattr(inner, "device", None)
    return str(device) if device is not None else ""


class Meter:
    """Times the work a backend really computed (cache misses only) and records it per model and operation."""

    def __init__(self, workspace_root: Path, model: Any, op: str,
                 count: Callable[[TokenCounter, list[Any], list[Any]], tuple[int, int]]):
        self.root, self.model, self.op, self.count = workspace_root, model, op, count
        self.calls = self.tokens = 0
        self.seconds = 0.0
        self._counter: TokenCounter | None = None

    def add(self, items: list[Any], values: list[Any], seconds: float) -> None:
        try:
            if self._counter is None:
                self._counter = counter_of(self.model)
            calls, tokens = self.count(self._counter, items, values)
        except Exception:  # measuring must never break the job
            return
        self.calls += calls
        self.tokens += tokens
        self.seconds += seconds

    def save(self) -> None:
        if self.calls and self._counter is not None:
            record_throughput(self.root, str(self.model.spec), self.op, calls=self.calls, tokens=self.tokens,
                              seconds=self.seconds, unit=self._counter.unit, device=_device_of(self.model))


def timed(meter: Meter | None, compute: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
    """``compute`` that reports each chunk's items, results and seconds to ``meter``."""
    if meter is None:
        return compute

    def run(items: list[Any]) -> list[Any]:
        start = time.perf_counter()
        values = compute(items)
        meter.add(items, values, time.perf_counter() - start)
        return values

    return run


def count_generate(n: int) -> Callable[[TokenCounter, list[Any], list[Any]], tuple[int, int]]:
    def count(c: TokenCounter, prompts: list[Any], values: list[Any]) -> tuple[int, int]:
        return len(prompts) * n, sum(c.text(s) for per in values for s in per)
    return count


def count_score(c: TokenCounter, pairs: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(pairs), sum(c.scored(p, r) for p, r in pairs)


def count_choices(c: TokenCounter, prompts: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(prompts), sum(c.chat(p) for p in prompts)


def count_embed(c: TokenCounter, texts: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(texts), sum(c.text(t) for t in texts)


# -- recording models -------------------------------------------------------------------------------
def _placeholder(*parts: Any) -> str:
    """A distinct, parseable reply (distinct so near-copy filters keep it, as they keep real replies)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
    return " ".join(digest[i:i + 7] for i in range(0, 35, 7))


class RecordingLLM:
    """Builds a plan from the calls a job makes; answers with placeholders. Looks like an LLM to jobs."""

    def __init__(self, spec_text: str, plan: Plan, workspace: Any = None, counter: TokenCounter | None = None):
        from tamis.models.base import ModelSpec

        self.spec = ModelSpec.parse(spec_text)
        self.name = str(self.spec)
        self.plan = plan
        self.counter = counter or counter_for(spec_text, workspace)
        self.tokenizer = self.counter.tokenizer
        self._n = 0
        self.samples: dict[str, list[Any]] = {"generate": [], "score": [], "choices": []}
        plan.recorders.append(self)

    identity = property(lambda self: f"dry-run:{self.name}")
    batch_hint = 1

    def apply_chat_template(self, messages: Any, add_generation_prompt: bool = True) -> str:
        if self.counter.scoring is not None:
            return self.counter.scoring.apply_chat_template(messages, add_generation_prompt)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages)

    def generate(self, prompts: list[Any], params: Any) -> list[list[str]]:
        self.plan.add(self.name, "generate", len(prompts) * params.n, sum(self.counter.chat(p) for p in prompts),
                      len(prompts) * params.n * params.max_tokens, self.counter.unit)
        if prompts and len(self.samples["generate"]) < 2:
            self.samples["generate"].append((params, prompts[:CALIBRATION_CALLS]))
        self._n += 1
        return [[_placeholder(self._n, i, j) for j in range(params.n)] for i in range(len(prompts))]

    def logprobs(self, prompts: list[Any], responses: list[str]) -> list[Any]:
        from tamis.models.base import ResponseLogprobs

        self.plan.add(self.name, "score", len(prompts),
                      sum(self.counter.scored(p, r) for p, r in zip(prompts, responses)), 0, self.counter.unit)
        room = CALIBRATION_CALLS - len(self.samples["score"])
        self.samples["score"].extend(list(zip(prompts, responses))[:max(0, room)])
        return [ResponseLogprobs(tokens=("x",), logprobs=(-1.0,)) for _ in prompts]

    def choice_logprobs(self, prompts: list[Any], choices: list[str]) -> Any:
        """What ``signals.choices.choice_logprobs`` asks: one shared forward pass per prompt on the
        transformers backend, else one scored option per (prompt, option)."""
        import numpy as np

        if self.spec.backend != "transformers":
            self.logprobs([p for p in prompts for _ in choices], [c for _ in prompts for c in choices])
        else:
            self.plan.add(self.name, "choices", len(prompts), sum(self.counter.chat(p) for p in prompts), 0,
                          self.counter.unit)
            if prompts and not self.samples["choices"]:
                self.samples["choices"].append((list(choices), prompts[:CALIBRATION_CALLS]))
        return np.zeros((len(prompts), len(choices)))

    def call_stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class RecordingEmbedder:
    """Builds a plan from embedding calls; answers with seeded random unit vectors."""

    dim = 16

    def __init__(self, spec_text: str, plan: Plan, workspace: Any = None):
        from tamis.models.base import ModelSpec

        self.spec = ModelSpec.parse(spec_text, default_backend="sentence-transformers")
        self.name = str(self.spec)
        self.plan = plan
        self.counter = counter_for(spec_text, workspace, embedder=True)
        self.samples: list[str] = []
        plan.recorders.append(self)

    identity = property(lambda self: f"dry-run:{self.name}")

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        self.plan.add(self.name, "embed", len(texts), sum(self.counter.text(t) for t in texts), 0, self.counter.unit)
        self.samples.extend(texts[:max(0, 4 * CALIBRATION_CALLS - len(self.samples))])
        vecs = np.random.default_rng(len(texts)).normal(size=(len(texts), self.dim)).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-9)


# -- training and gradients ------------------------------------------------------------------------
def sft_row_tokens(counter: TokenCounter, examples: list[Any], max_length: int) -> list[int]:
    """Tokens of each SFT row (prompt template + response + end of turn), cut at ``max_length``."""
    return [min(max_length, counter.scored(ex.prompt_messages, ex.response or "")) for ex in examples]


def sft_steps(n_rows: int, settings: Any) -> tuple[int, int, int]:
    """(optimiser steps, training rows, held-out rows) the SFT job would run (``train/sft.py``'s split)."""
    n_eval = int(round(n_rows * settings.eval_fraction)) if n_rows >= 10 else 0
    n_train = n_rows - n_eval
    per_epoch = max(1, math.ceil(n_train / (settings.batch_size * settings.grad_accum)))
    steps = settings.max_steps if settings.max_steps and settings.max_steps > 0 else math.ceil(per_epoch * settings.epochs)
    return steps, n_train, n_eval


def sft_tokens(row_tokens: list[int], steps: int, settings: Any) -> int:
    """Training tokens read in ``steps`` steps: steps x rows per step x mean row tokens."""
    if not row_tokens:
        return 0
    return round(steps * settings.batch_size * settings.grad_accum * sum(row_tokens) / len(row_tokens))


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
                          max_prompt_chars=cfg.max_prompt_chars)
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


def _spec(text: str) -> Any:
    from tamis.models.base import ModelSpec

    return ModelSpec.parse(text)


CALIBRATION_CALLS = 8


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
