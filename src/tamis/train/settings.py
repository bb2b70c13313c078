"""Fine-tuning settings (no torch here: the CLI builds its options from these classes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tamis.settings import setting, validate


@dataclass
class SFTSettings:
    model: str = setting("transformers:smollm2", "Base model spec (transformers).")
    lora: bool = setting(True, "LoRA adapters (else full fine-tuning).")
    lora_r: int = setting(8, "LoRA rank.", range=(1, None))
    lora_alpha: int = setting(16, "LoRA alpha.", range=(1, None))
    lora_dropout: float = setting(0.05, "LoRA dropout.", range=(0, 1))
    target_modules: tuple[str, ...] = setting(("q_proj", "k_proj", "v_proj", "o_proj"), "LoRA target modules.")
    epochs: float = setting(1.0, "Training epochs.", range=(0, None))
    max_steps: int = setting(-1, "Stop after this many optimiser steps (-1: by epochs).", range=(-1, None))
    learning_rate: float | None = setting(None, "Learning rate [default: 2e-4 with LoRA, 2e-5 full].", range=(0, None))
    batch_size: int = setting(8, "Per-device batch size.", range=(1, None))
    grad_accum: int = setting(1, "Gradient accumulation steps.", range=(1, None))
    max_length: int = setting(512, "Truncate training sequences to this many tokens.", range=(8, None))
    eval_fraction: float = setting(0.1, "Share of examples held out for the eval loss.", range=(0, 0.9))
    early_stopping_patience: int | None = setting(None, "Stop after this many evals without improvement.",
                                                  range=(1, None))
    eval_steps: int | None = setting(None, "Evaluate every this many steps [default: once per epoch].", range=(1, None))
    save_steps: int | None = setting(None, "Checkpoint every this many steps [default: once per epoch].",
                                     range=(1, None))
    seed: int = setting(0, "Seed for shuffling, splits and initialisation.")
    report_to: tuple[str, ...] = setting((), "Experiment trackers to log to: tensorboard, wandb, mlflow (each must be "
                                             "installed; none by default).")
    extra: dict[str, Any] = setting({}, "Further TRL SFTConfig arguments.")

    def __post_init__(self) -> None:
        validate(self)
