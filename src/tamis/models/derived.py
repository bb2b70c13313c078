"""Where a transformers spec's weights live: the bundled model, and smaller models derived from it.

The bundled SmolLM2 GGUF is dequantised once and saved as safetensors in the workspace
(``models/``), so later loads take well under a second instead of ~20 s. This module imports
nothing from the backend (models/hf.py imports from it), so there is no import cycle.

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

from tamis.errors import unknown
from tamis.models.base import ModelError, ModelSpec
from tamis.models.bundled import SMOLLM2_GGUF, file_digest, is_smollm2, smollm2_gguf_path

CONVERSION_VERSION = "v2"  # bump when the conversion changes, so old folders are not reused


def converted_smollm2_dir(models_dir: Path) -> Path:
    """Dequantise the bundled GGUF into safetensors once; later calls return the cached folder."""
    gguf = smollm2_gguf_path()
    target = models_dir / f"smollm2-135m-instruct-{file_digest(str(gguf))}-{CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tamis.progress import console

    console.print(f"[dim]converting the bundled GGUF to safetensors once, into {target} (~20 s)[/]")
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = lambda items, **_: items  # its dequantisation bar; tamis says it once instead
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=SMOLLM2_GGUF)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    finally:
        gguf_utils.tqdm = bar
    # A model loaded from GGUF refuses save_pretrained: rebuild it from its config, then copy weights.
    # ... and drop the GGUF quantisation marker: the weights are plain floats now (and trainable).
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def base_model_path(spec: ModelSpec, models_dir: Path) -> str:
    """The folder or Hub id holding the spec's full-size weights."""
    if is_smollm2(spec.model):
        return str(converted_smollm2_dir(models_dir))
    if "/" not in spec.model and not Path(spec.model).exists() and not _in_hub_cache(spec.model):
        # a bare name that is neither bundled, nor a folder, nor already downloaded: a typo, most likely;
        # fail now rather than let the Hub client retry for a minute without a network
        raise ModelError(f"{unknown('model', spec.model, ('smollm2',))}; give a bundled name, a folder "
                         "or a Hugging Face id ORG/NAME")
    return spec.model


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id or no huggingface_hub: not cached
        return False


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
