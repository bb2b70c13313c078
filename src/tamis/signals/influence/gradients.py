"""Per-example gradients of the response-token loss, for chosen Linear layers, from one batched pass.

A Linear layer's weight gradient for one example is sum_t g_t a_t^T (input activation a_t, output
gradient g_t at position t). Hooks capture a and g during one batched forward+backward, so the
per-example gradients of every tracked layer fall out of a single einsum; no example is run alone
and no dense full-model gradient is ever formed.

Tracked parameters are either LoRA adapters (peft's lora_A / lora_B are plain Linear layers, so
the same hooks serve; LoRA scaling is already in the output gradient) or selected Linear layers of
the base model (G-DIG: the MLP down-projection of every third layer).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tamis.errors import DataError
from tamis.models.hf import attention_kernels
from tamis.records import Example

from tamis.signals.influence.config import LORA_TARGETS, GradientConfig  # noqa: F401  (re-exported)


@dataclass
class Encoded:
    """One example as scored: context ids then response ids (end-of-turn token included)."""

    id: str
    ids: list[int]
    n_context: int
    truncated: bool = False

    @property
    def n_response(self) -> int:
        return len(self.ids) - self.n_context


@dataclass
class Capture:
    """What the hooks saw in one batch: per module, inputs (B,T,in) and output gradients (B,T,out)."""

    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    mask: torch.Tensor | None = None  # (B,T) 1 for real tokens


class TrackedModel:
    """A causal LM with hooks on the tracked Linear layers. ``identity`` names model + parameter set."""

    def __init__(self, model: nn.Module, tokenizer: Any, config: GradientConfig, identity: str = "model"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.identity = identity
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.modules: list[tuple[str, nn.Linear]] = _tracked_modules(model, config)
        if not self.modules:
            raise ValueError(f"no Linear layer matched {config}; check lora_targets / linear_modules")
        self._capture: Capture | None = None
        for name, module in self.modules:
            module.register_forward_hook(self._hook(name))
        self._scorer = _template_scorer(tokenizer)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.modules]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(m.out_features, m.in_features) for _, m in self.modules]

    @property
    def n_params(self) -> int:
        return sum(o * i for o, i in self.shapes)

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._capture is None or not output.requires_grad:
                return
            self._capture.inputs[name] = args[0].detach()
            capture = self._capture

            def save_grad(grad: torch.Tensor) -> None:
                capture.grads[name] = grad.detach()

            output.register_hook(save_grad)

        return hook

    # -- tokens ------------------------------------------------------------------------------------
    def encode(self, examples: Sequence[Example]) -> list[Encoded]:
        """Chat template, loss on the response only (the same ids ``TransformersLLM.scoring_ids`` scores)."""
        out = []
        for ex in examples:
            if ex.kind != "chat" or ex.response is None:
                raise DataError(f"example {ex.id}: influence needs a chat example ending in an assistant turn")
            context, response = self._scorer.scoring_ids(ex.prompt_messages, ex.response)
            ids = context + response
            truncated = len(ids) > self.config.max_length
            if truncated:
                ids = ids[: self.config.max_length]
            if len(ids) - len(context) < 1:
                raise DataError(f"example {ex.id}: the prompt alone is longer than the gradient token limit "
                                f"(max_length={self.config.max_length}); raise it (gradients.max_length, "
                                "--max-length) or shorten the prompt")
            out.append(Encoded(ex.id, ids, len(context), truncated))
        return out

    def batches(self, encoded: Sequence[Encoded]) -> Iterator[list[int]]:
        """Index batches, longest first, so padding stays small."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].ids))
        for start in range(0, len(order), self.config.batch_size):
            yield order[start : start + self.config.batch_size]

    # -- the batched pass ----------------------------------------------------------------------------
    def forward_backward(self, batch: Sequence[Encoded], labels: Sequence[Sequence[int]] | None = None) -> tuple[Capture, torch.Tensor]:
        """One forward+backward of sum_i mean-token-NLL(response_i); returns the capture and per-example losses.

        ``labels`` (same lengths as the responses) replaces the data's response tokens, e.g. labels
        sampled from the model for a true (not empirical) Fisher."""
        device = next(self.model.parameters()).device
        width = max(len(e.ids) for e in batch)
        ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, enc in enumerate(batch):
            ids[row, : len(enc.ids)] = torch.tensor(enc.ids)
            mask[row, : len(enc.ids)] = 1
        capture = Capture(mask=mask)
        self._capture = capture
        try:
            with torch.enable_grad(), attention_kernels(device):
                hidden = _decoder(self.model)(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                rows, cols, targets, owner = [], [], [], []
                for row, enc in enumerate(batch):
                    n = enc.n_response
                    rows += [row] * n
                    cols += list(range(enc.n_context - 1, enc.n_context - 1 + n))
                    targets += list(labels[row]) if labels is not None else enc.ids[enc.n_context :]
                    owner += [row] * n
                logits = _wide(self.model.get_output_embeddings()(hidden[rows, cols]))
                nll = torch.nn.functional.cross_entropy(logits, torch.tensor(targets, device=device), reduction="none")
                owner_t = torch.tensor(owner, device=device)
                counts = torch.bincount(owner_t, minlength=len(batch)).clamp(min=1)
                losses = torch.zeros(len(batch), device=device, dtype=nll.dtype).index_add_(0, owner_t, nll) / counts
                losses.sum().backward()
        finally:
            self._capture = None
            self.model.zero_grad(set_to_none=True)
        return capture, losses.detach()

    def per_example_grads(self, capture: Capture) -> list[torch.Tensor]:
        """Per module, (B, out, in) = sum_t g_t a_t^T; pad positions carry zero output gradient."""
        return [torch.einsum("bto,bti->boi", _wide(capture.grads[n]), _wide(capture.inputs[n])) for n in self.names]

    def gradients(self, encoded: Sequence[Encoded]) -> list[torch.Tensor]:
        """Per-example gradients of a few examples in input order (for seeds and tests)."""
        result: list[list[torch.Tensor] | None] = [None] * len(encoded)
        for idx in self.batches(encoded):
            capture, _ = self.forward_backward([encoded[i] for i in idx])
            grads = self.per_example_grads(capture)
            for row, i in enumerate(idx):
                result[i] = [g[row] for g in grads]
        return [torch.stack([r[m] for r in result]) for m in range(len(self.modules))]  # type: ignore[index]


def _wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision models), float64 kept (exact checks)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _decoder(model: nn.Module) -> nn.Module:
    """The transformer body (without the LM head) of a causal LM, peft-wrapped or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder() if hasattr(base, "get_decoder") else base.model


def _template_scorer(tokenizer: Any) -> Any:
    """Reuse TransformersLLM's template logic (context ids, response ids incl. end-of-turn) without a model."""
    from tamis.models.hf import TransformersLLM

    scorer = TransformersLLM.__new__(TransformersLLM)
    scorer.tokenizer = tokenizer
    return scorer


def _tracked_modules(model: nn.Module, config: GradientConfig) -> list[tuple[str, nn.Linear]]:
    found = []
    if config.params == "lora":
        pattern = re.compile(r"\.(%s)\.lora_[AB]\.default$" % "|".join(map(re.escape, config.lora_targets)))
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and pattern.search(name):
                found.append((name, module))
    elif config.params == "linear":
        for name, module in model.named_modules():
            if not isinstance(module, nn.Linear) or not any(name.endswith(s) for s in config.linear_modules):
                continue
            layer = re.search(r"layers\.(\d+)\.", name)
            if layer is None or int(layer.group(1)) % config.layer_stride == 0:
                found.append((name, module))
    else:
        raise ValueError(f"params must be 'lora' or 'linear', got {config.params!r}")
    return found


def prepare_model(model: nn.Module, config: GradientConfig) -> nn.Module:
    """Freeze the base model and make only the tracked parameters trainable (adding LoRA if asked)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if config.params == "lora":
        from peft import LoraConfig, PeftModel, get_peft_model

        if config.adapter:
            model = PeftModel.from_pretrained(model, config.adapter, is_trainable=True)
        else:
            torch.manual_seed(config.seed)
            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                              target_modules=list(config.lora_targets), bias="none", task_type="CAUSAL_LM")
            model = get_peft_model(model, lora)
    for _, module in _tracked_modules(model, config):
        module.weight.requires_grad_(True)
    return model


def load_tracked_model(spec: str, workspace: Any, config: GradientConfig) -> TrackedModel:
    """Load a causal LM with plain transformers ('smollm2' / 'transformers:smollm2' = the bundled model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tamis.models.base import ModelError
    from tamis.models.bundled import file_digest, is_smollm2
    from tamis.models.hf import converted_smollm2_dir

    name = spec.split(":", 1)[1] if spec.startswith("transformers:") else spec
    path = str(converted_smollm2_dir(Path(workspace.models_dir))) if is_smollm2(name) else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except OSError as err:
        raise ModelError(f"cannot load {spec!r} with transformers: {err}") from err
    weights = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    digest = ",".join(file_digest(str(w)) for w in weights[:4]) or getattr(model.config, "_commit_hash", "") or ""
    adapter = file_digest(str(Path(config.adapter) / "adapter_model.safetensors")) if config.adapter else ""
    identity = f"{name}@{digest}{'+' + adapter if adapter else ''}"
    return TrackedModel(prepare_model(model, config), tokenizer, config, identity)
