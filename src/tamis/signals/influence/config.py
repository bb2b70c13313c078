"""The influence job's settings (no torch here: the CLI builds its options from these classes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tamis.settings import setting

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
STRATEGIES = ("identity", "kfac", "ekfac")


@dataclass(frozen=True)
class GradientConfig:
    """Which parameters get gradients, and how examples become token sequences."""

    params: str = setting("lora", "Tracked parameters: lora (adapters) or linear (Linear layers).",
                          choices=("lora", "linear"))
    lora_r: int = setting(8, "LoRA rank (params=lora).", range=(1, None))
    lora_alpha: int = setting(16, "LoRA alpha (params=lora).", range=(1, None))
    lora_targets: tuple[str, ...] = setting(LORA_TARGETS, "LoRA target modules (params=lora).")
    adapter: str | None = setting(None, "A trained peft adapter folder (LESS/G-DIG warm-up); fresh LoRA if unset.")
    linear_modules: tuple[str, ...] = setting(("mlp.down_proj",), "Linear layer name suffixes (params=linear).")
    layer_stride: int = setting(3, "Track layers 0, s, 2s, ... (params=linear; G-DIG tracks every third).",
                                range=(1, None))
    max_length: int = setting(256, "Truncate token sequences to this length.", range=(8, None))
    batch_size: int = setting(8, "Examples per forward+backward.", range=(1, None))
    seed: int = setting(0, "Random seed of the fresh LoRA initialisation.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InfluenceConfig:
    candidates: str = setting("", "Candidate training data (chat examples).")
    seed_set: str = setting("", "Trusted seed set (chat examples): influence is measured on its loss.")
    model: str = setting("transformers:smollm2", "transformers:NAME/PATH or 'smollm2'.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/influence-NAME].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    seed_set_format: str | None = setting(None, "Format of the seed set, if not the same as --format.")
    hessian: str = setting("ekfac", "identity (TracIn/LESS-style), kfac or ekfac.", choices=STRATEGIES)
    damping: float | None = setting(None, "Absolute damping [default: 0.1 x mean eigenvalue per layer].",
                                    range=(0, None))
    projection_dim: int = setting(8192, "Random projection dimension (0: none).", range=(0, None))
    projection_seed: int = setting(0, "Random seed of the projection.")
    seed_set_batch_size: int = setting(2, "Seed-set examples per seed batch (G-DIG: 2).", range=(1, None))
    factor_limit: int | None = setting(None, "Fit K-FAC factors on at most this many candidates.", range=(1, None))
    limit: int | None = setting(None, "Read at most this many candidates.", range=(1, None))
    gradients: GradientConfig = field(default_factory=GradientConfig)
    # where the candidates' gradient features are computed: not a saved setting (how fast, never what)
    engine: Any = None  # a tamis.engine.EngineConfig; None: this process


