"""Supervised fine-tuning of causal LMs with TRL's SFTTrainer, LoRA (PEFT) by default.

Each example becomes a conversational prompt/completion pair: every turn before the final
assistant turn is the prompt, the final assistant turn the completion, and the loss is taken on the
completion only (TRL's completion-only loss; no chat-template generation markers needed). Packing
is off. Checkpoints are written under the output folder and a rerun resumes from the latest one.
The adapter (or full model) is saved with its training config and a fingerprint of the data.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tamis.manifest import Manifest
from tamis.models.base import ModelError, ModelSpec
from tamis.models.derived import model_path
from tamis.models.hf import attention_kernels
from tamis.records import Example, data_fingerprint  # noqa: F401  (re-exported)
from tamis.progress import progress, verbose
from tamis.runs import Run
from tamis.train.weights import weights_fingerprint
from tamis.train.settings import SFTSettings  # noqa: F401  (re-exported: the public name)
from tamis.store import Workspace, atomic_write_text

TRAINING_INFO = "tamis_training.json"
WEIGHT_COLUMN = "tamis_weight"


@dataclass
class SFTResult:
    out_dir: Path
    model_dir: Path
    metrics: dict[str, float]
    resumed_from: str | None
    reused: bool = False


def resolve_model_path(spec: str | ModelSpec, workspace: Workspace) -> str:
    """A local folder (or Hub id) transformers can load: the bundled model is converted once, and
    ``layers=N`` derives a truncated copy (see tamis.models.derived)."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if spec.backend != "transformers":
        raise ModelError(f"training needs a transformers model spec, got {spec}")
    return model_path(spec, workspace.models_dir)


def to_prompt_completion(examples: list[Example]) -> list[dict[str, Any]]:
    rows = []
    for ex in examples:
        if ex.kind != "chat" or ex.response is None:
            raise ModelError(f"example {ex.id}: SFT needs chat examples ending with an assistant turn")
        rows.append({"prompt": ex.prompt_messages, "completion": [{"role": "assistant", "content": ex.response}]})
    return rows


def _latest_checkpoint(out_dir: Path) -> str | None:
    checkpoints = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}


def check_trackers(report_to: tuple[str, ...] | list[str]) -> list[str]:
    """The trackers for TRL's ``report_to``; an unknown or uninstalled one is a ConfigError, before training."""
    import importlib.util

    from tamis.errors import ConfigError, unknown

    for name in report_to:
        if name not in TRACKERS:
            raise ConfigError(unknown("tracker", name, TRACKERS))
        if not any(importlib.util.find_spec(module) for module in TRACKERS[name]):
            raise ConfigError(f"report_to {name!r} needs the {TRACKERS[name][0]} package: pip install {TRACKERS[name][0]}")
    return list(report_to)


def train_sft(examples: list[Example], settings: SFTSettings, out_dir: str | Path, workspace: Workspace, *,
              overwrite: bool = False, weights: list[float] | None = None) -> SFTResult:
    """Fine-tune ``settings.model`` on ``examples``; returns where the adapter/model was saved.

    The output folder is a run (``tamis.runs.Run``): the settings and the data's fingerprint are saved
    there, a folder trained with other settings or data is refused (``overwrite`` replaces it), a finished
    training is returned as it is, and an interrupted one resumes from its latest checkpoint.
    ``weights`` (one per example, ``tamis.train.weights``): batches are drawn with probability
    proportional to them (soft curation) instead of a plain shuffle."""
    out_dir = Path(out_dir)
    check_trackers(settings.report_to)
    if weights is not None and (len(weights) != len(examples) or min(weights) < 0 or sum(weights) <= 0):
        raise ModelError(f"weights: need one non-negative weight per example ({len(examples)}), not all zero; "
                         f"got {len(weights)}")
    fingerprint = data_fingerprint(examples)
    run_settings = asdict(settings) | {"data_fingerprint": fingerprint, "n_examples": len(examples)}
    if weights is not None:
        run_settings["weights_fingerprint"] = weights_fingerprint(weights)
    with Run("train sft", run_settings, out_dir, overwrite=overwrite) as run:
        model_dir = out_dir / ("adapter" if settings.lora else "model")
        if run.complete and (model_dir / TRAINING_INFO).is_file():
            info = json.loads((model_dir / TRAINING_INFO).read_text(encoding="utf-8"))
            return SFTResult(out_dir=out_dir, model_dir=model_dir, metrics=info.get("metrics", {}),
                             resumed_from=None, reused=True)
        if run.replaced:
            for stale in out_dir.glob("checkpoint-*"):  # checkpoints of other settings must not be resumed
                shutil.rmtree(stale, ignore_errors=True)
        result = _train(examples, settings, out_dir, workspace, run.manifest, fingerprint, weights)
        run.finish()
        return result


def _train(examples: list[Example], settings: SFTSettings, out_dir: Path, workspace: Workspace, manifest: Manifest,
           fingerprint: str, weights: list[float] | None) -> SFTResult:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    model_path = resolve_model_path(settings.model, workspace)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if cuda else torch.float32)

    rows = to_prompt_completion(examples)
    n_eval = int(round(len(rows) * settings.eval_fraction)) if len(rows) >= 10 else 0
    if weights is not None:
        rows = [row | {WEIGHT_COLUMN: w} for row, w in zip(rows, weights)]
    data = Dataset.from_list(rows).shuffle(seed=settings.seed)
    train_data = data.select(range(n_eval, len(rows)))
    eval_data = data.select(range(n_eval)) if n_eval else None
    if weights is not None:  # the weights travel with their rows through the shuffle, the split and TRL's
        from tamis.train.weights import weight_summary  # own filtering (it drops rows truncation left empty)

        eval_data = eval_data.remove_columns(WEIGHT_COLUMN) if eval_data is not None else None
        manifest.data["weights"] = weight_summary(list(train_data[WEIGHT_COLUMN]))
    steps_per_epoch = max(1, math.ceil(len(train_data) / (settings.batch_size * settings.grad_accum)))
    eval_steps = settings.eval_steps or max(1, steps_per_epoch // 2)
    lr = settings.learning_rate or (2e-4 if settings.lora else 2e-5)
    args = SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=lr,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        max_length=settings.max_length,
        packing=False,
        completion_only_loss=True,
        bf16=cuda,
        use_cpu=not cuda,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=max(1, steps_per_epoch // 4),
        eval_strategy="steps" if eval_data is not None else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=settings.save_steps or eval_steps,
        save_total_limit=2,
        load_best_model_at_end=bool(eval_data is not None and settings.early_stopping_patience),
        metric_for_best_model="eval_loss",
        report_to=list(settings.report_to),
        disable_tqdm=not (os.isatty(2) and verbose()),  # tamis's own bar (below) unless --verbose
        dataloader_num_workers=0,
        # TRL turns activation checkpointing on: it saves GPU memory and costs a second forward pass; on a
        # CPU memory is not the limit, so off (same results: the recompute restores the dropout RNG)
        **({"gradient_checkpointing": cuda} | dict(settings.extra)),
    )
    peft_config = None
    if settings.lora:
        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                                 target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    callbacks: list[Any] = [training_progress()]
    if eval_data is not None and settings.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    trainer_class = _weighted_trainer(SFTTrainer, settings.seed) if weights is not None else SFTTrainer
    trainer = trainer_class(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    if not os.isatty(2):  # logs go to the manifest; a non-terminal gets no dict per step
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resume = _latest_checkpoint(out_dir)
    with manifest.stage("train"):
        with attention_kernels(trainer.args.device), labelled_positions_only():
            result = trainer.train(resume_from_checkpoint=resume)
    if resume is None:  # a whole training: its speed is what a dry run estimates from
        _record_speed(examples, settings, workspace, tokenizer, result.global_step, manifest.data["timings_s"]["train"])
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    if eval_data is not None:
        with manifest.stage("evaluate"), labelled_positions_only():
            metrics |= {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}

    model_dir = out_dir / ("adapter" if settings.lora else "model")
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    info = {"base_model": settings.model, "base_model_path": model_path, "lora": settings.lora,
            "settings": asdict(settings), "data_fingerprint": fingerprint,
            "weights_fingerprint": weights_fingerprint(weights),
            "n_train": len(train_data), "n_eval": n_eval, "metrics": metrics}
    atomic_write_text(model_dir / TRAINING_INFO, json.dumps(info, indent=2, default=str))
    manifest.count(train=len(train_data), eval=n_eval)
    manifest.data["metrics"] = metrics
    manifest.data["resumed_from"] = resume
    manifest.output("model", model_dir)
    return SFTResult(out_dir=out_dir, model_dir=model_dir, metrics=metrics, resumed_from=resume)


@contextlib.contextmanager
def labelled_positions_only() -> Iterator[None]:
    """Let TRL's fused LM head project only the positions that carry a label, on every device.

    TRL does so on Triton devices and scores every position elsewhere, to keep tile shapes fixed for
    compilers (Neuron). Nothing is compiled on a CPU, and with a completion-only loss a few tokens
    of each row carry a label, so the head's [positions x vocabulary] projection and its backward,
    about a third of a LoRA step of the bundled model, shrink to those positions: the same loss and
    gradients (tests/train/test_sft.py holds them equal) for less time (bench/bench_training.py).
    The switch is TRL's module-level ``_use_triton``; without it, training runs as TRL does."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


def _record_speed(examples: list[Example], settings: SFTSettings, workspace: Workspace, tokenizer: Any, steps: int,
                  seconds: float) -> None:
    """Training tokens per second of this model, for ``--dry-run`` estimates (``tamis.plan``)."""
    from tamis.plan import TokenCounter, _TokenizerOnly, record_throughput, sft_row_tokens, sft_tokens

    counter = TokenCounter(tokenizer, scoring=_TokenizerOnly(tokenizer), max_length=settings.max_length)
    tokens = sft_tokens(sft_row_tokens(counter, examples, settings.max_length), steps, settings)
    record_throughput(workspace, str(ModelSpec.parse(settings.model)), train_op(settings), calls=steps, tokens=tokens,
                      seconds=seconds, unit=counter.unit, device="cuda" if torch.cuda.is_available() else "cpu")


def train_op(settings: SFTSettings) -> str:
    return "train" if settings.lora else "train_full"


def _weighted_trainer(base: type, seed: int) -> type:
    """``base`` (TRL's SFTTrainer) drawing each epoch's examples with probability proportional to the
    training set's weight column (read after TRL's preprocessing, so the weights stay aligned with the
    rows it kept; the trainer drops the column itself before batches are collated)."""
    from torch.utils.data import WeightedRandomSampler

    class WeightedSFTTrainer(base):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, train_dataset: Any = None) -> WeightedRandomSampler:
            weights = list(self.train_dataset[WEIGHT_COLUMN])
            generator = torch.Generator().manual_seed(seed)
            return WeightedRandomSampler(weights, num_samples=len(weights), replacement=True, generator=generator)

    return WeightedSFTTrainer


def training_progress() -> Any:
    """A transformers callback driving tamis's progress bar over optimiser steps (TRL's own bar shows
    only with --verbose)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._bar = progress("fine-tuning (steps)", int(state.max_steps or 0))
            self._advance = self._bar.__enter__()
            if state.global_step:  # resumed from a checkpoint
                self._advance(state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._advance(1)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._bar.__exit__(None, None, None)

    return ProgressCallback()
