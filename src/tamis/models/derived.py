"""Where a transformers spec's weights live: the bundled model, and smaller models derived from it.

Studies compare models of several sizes; on a CPU the honest way to get them offline is to derive
them from the bundled SmolLM2-135M: ``transformers:smollm2?layers=10`` keeps the first 10 of its 30
decoder layers (embeddings, final norm and head unchanged). Such a model is *not* a pretrained
smaller model: it is the same network cut short, weaker, and meant to be fine-tuned. The derived
weights are written once into the workspace's models folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from tamis.models.base import ModelError, ModelSpec
from tamis.models.bundled import is_smollm2


def base_model_path(spec: ModelSpec, models_dir: Path) -> str:
    """The folder or Hub id holding the spec's full-size weights."""
    if is_smollm2(spec.model):
        from tamis.models.hf import converted_smollm2_dir

        return str(converted_smollm2_dir(models_dir))
    return spec.model


def model_path(spec: ModelSpec, models_dir: Path) -> str:
    """The weights to load for a spec, deriving a layer-truncated copy when ``layers=N`` is given."""
    path = base_model_path(spec, models_dir)
    layers = spec.options.get("layers")
    if not layers:
        return path
    return truncated_copy(path, int(layers), models_dir)


def truncated_copy(path: str, n_layers: int, models_dir: Path) -> str:
    """A copy of a decoder-only model keeping its first ``n_layers`` layers (written once)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    name = Path(path).name if Path(path).is_dir() else path.replace("/", "--")
    target = models_dir / f"{name}-layers{n_layers}"
    if (target / "config.json").is_file():
        return str(target)
    config = AutoConfig.from_pretrained(path)
    total = getattr(config, "num_hidden_layers", None)
    if total is None:
        raise ModelError(f"{path}: cannot truncate a model whose config has no num_hidden_layers")
    if not 1 <= n_layers <= total:
        raise ModelError(f"layers={n_layers}: {path} has {total} layers; choose 1..{total}")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    decoder = model.get_decoder()
    decoder.layers = decoder.layers[:n_layers]
    model.config.num_hidden_layers = n_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:n_layers]
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return str(target)
