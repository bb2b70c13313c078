"""Token counts with a model's own tokenizer, loaded without its weights (characters / 4 where none)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


CHARS_PER_TOKEN = 4


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
