"""The transformers backend: any causal LM on the Hub or on disk, CUDA when present, else CPU.

Where the weights come from (the bundled SmolLM2 GGUF dequantised once into the workspace's
``models/``, layer-truncated copies) is models/derived.py's job; this module only imports from it.
"""

from __future__ import annotations

import contextlib

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tamis.models.base import (
    LLM,
    ChatMessages,
    GenerationParams,
    ModelError,
    ModelSpec,
    ResponseLogprobs,
    fit_to_context,
    skipped_logprobs,
)
from tamis.models.bundled import file_digest, is_smollm2, smollm2_gguf_path
from tamis.models.derived import CONVERSION_VERSION, converted_smollm2_dir, model_path
from tamis.models.hf_prefix import can_pack, common_prefix_length, encode_prefix, pack, packed_hidden, shared_prompts

__all__ = ["CONVERSION_VERSION", "TransformersLLM", "adapter_base_spec", "best_device", "converted_smollm2_dir",
           "is_adapter_dir"]


# positions whose logits one LM head call computes at most (fp32 x 49,152 vocabulary: ~200 MB)
HEAD_POSITIONS = 1024


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def attention_kernels(device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """Scaled-dot-product attention without the cuDNN kernel on CUDA.

    Measured on an H200 (bench/gpu_check.py, torch 2.11): cuDNN attention builds an execution plan on
    the CPU (~18 ms forward, ~26 ms backward, per layer) for every new padded width, and batches of
    real data rarely repeat a width, so gradient featurisation ran at 13 examples/s on its first pass
    and 103 on a second pass over the same batches. Flash and memory-efficient attention need no plan."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _dtype(name: str | None, device: torch.device) -> torch.dtype:
    if not name or name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError as err:
        raise ModelError(f"unknown dtype {name!r}; use float32, bfloat16 or float16") from err


def is_adapter_dir(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base_spec(adapter: str) -> ModelSpec:
    """The base model of a saved adapter: tamis's own record first, else PEFT's config."""
    info = Path(adapter) / "tamis_training.json"
    if info.is_file():
        return ModelSpec.parse(json.loads(info.read_text())["base_model"])
    base = json.loads((Path(adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
    return ModelSpec(backend="transformers", model=base)


class TransformersLLM(LLM):
    """A causal LM via transformers. Options: dtype, batch_size, max_batch_tokens, sample_rows, device,
    revision, layers (keep the first N decoder layers), adapter (a PEFT adapter folder, merged at load;
    a spec naming an adapter folder directly loads it on its recorded base model), max_length (the
    context scored at most; default the model's ``max_position_embeddings``), pack_prompts and
    share_prefix (scoring shortcuts with the same results, see hf_prefix; ``false`` turns one off)."""

    def __init__(self, spec: ModelSpec, workspace: Any = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device = torch.device(spec.options.get("device") or best_device())
        self.dtype = _dtype(spec.options.get("dtype"), self.device)
        self.batch_size = int(spec.options.get("batch_size", 8))
        # padded tokens per scoring batch; see _token_batches
        self.max_batch_tokens = int(spec.options.get("max_batch_tokens", 32768 if self.device.type == "cuda" else 1024))
        # sampled sequences decoded together (prompts per batch = sample_rows // n); a GPU's decode step
        # costs about the same for 32 rows as for 256 (bench/gpu_check.py), a CPU's grows with the rows
        self.sample_rows = int(spec.options.get("sample_rows", 256 if self.device.type == "cuda" else 32))
        adapter = spec.options.get("adapter") or (spec.model if is_adapter_dir(spec.model) else None)
        base = adapter_base_spec(adapter) if adapter and not spec.options.get("adapter") else spec
        models_dir = Path(workspace.models_dir if workspace is not None else Path.home() / ".cache" / "tamis")
        path = model_path(base, models_dir)
        self._source = (f"smollm2-135m-instruct@{file_digest(str(smollm2_gguf_path()))}"
                        if is_smollm2(base.model) else base.model)
        if base.options.get("layers"):
            self._source += f"-layers{base.options['layers']}"
        revision = spec.options.get("revision")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
            self.model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=self.dtype)
        except OSError as err:
            raise ModelError(
                f"cannot load transformers model {spec.model!r}: {err}. Give a local folder or a Hugging Face id "
                "available offline, or 'smollm2' for the bundled model."
            ) from err
        if adapter:
            from peft import PeftModel

            # Merged once at load: generation and scoring then run at the base model's speed.
            self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
            weights = sorted(Path(adapter).glob("adapter_model.*"))
            self._source += f"+adapter@{file_digest(str(weights[0])) if weights else adapter}"
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        commit = getattr(self.model.config, "_commit_hash", None) or ""
        if Path(path).is_dir() and not commit:
            weights = sorted(Path(path).glob("*.safetensors")) or sorted(Path(path).glob("*.bin"))
            commit = ",".join(file_digest(str(w)) for w in weights[:4])
        self._identity = f"transformers:{self._source}@{commit}:{str(self.dtype).removeprefix('torch.')}"
        model_max = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_length = int(spec.options.get("max_length") or model_max)
        if spec.options.get("max_length"):  # it changes what is scored, so it is part of the identity
            self._identity += f":max_length={self.max_length}"
        if not 2 <= self.max_length <= model_max:
            raise ModelError(f"max_length={self.max_length}: choose 2..{model_max} (the model's context)")

    @property
    def batch_hint(self) -> int:
        return self.batch_size

    @property
    def identity(self) -> str:
        return self._identity

    # -- templates and tokens -------------------------------------------------------------------
    def apply_chat_template(self, messages: ChatMessages, add_generation_prompt: bool = True) -> str:
        if self.tokenizer.chat_template is None:
            # Base models: a plain transcript is the honest fallback.
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            return text + ("assistant: " if add_generation_prompt else "")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _end_of_turn_ids(self, prompt: ChatMessages, response: str) -> list[int]:
        """The tokens the template puts after an assistant response, up to its end-of-turn token."""
        if not prompt or self.tokenizer.chat_template is None:
            return [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        head = self.apply_chat_template(prompt, add_generation_prompt=True)
        full = self.apply_chat_template(prompt + [{"role": "assistant", "content": response}], add_generation_prompt=False)
        tail = full[len(head) + len(response):] if full.startswith(head + response) else ""
        ids = self._encode(tail) if tail else []
        special = set(self.tokenizer.all_special_ids)
        for i, tok in enumerate(ids):
            if tok in special:
                return ids[: i + 1]
        return [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []

    def scoring_ids(self, prompt: ChatMessages, response: str) -> tuple[list[int], list[int]]:
        """(context ids, response ids incl. the end-of-turn token) exactly as scored."""
        if prompt:
            context = self._encode(self.apply_chat_template(prompt, add_generation_prompt=True))
        else:  # unconditional: condition on BOS (or EOS as a document separator, GPT-2 style)
            start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
            context = [start]
        return context, self._encode(response) + self._end_of_turn_ids(prompt, response)

    # -- scoring --------------------------------------------------------------------------------
    def logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        with attention_kernels(self.device):
            return self._logprobs(prompts, responses)

    @torch.inference_mode()
    def _logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses must have the same length")
        encoded = [self.scoring_ids(p, r) for p, r in zip(prompts, responses)]
        results: list[ResponseLogprobs | None] = [None] * len(encoded)
        notes: dict[int, tuple[str, int]] = {}
        for i, (context, target) in enumerate(encoded):
            drop, note = fit_to_context(len(context), len(target), self.max_length)
            if drop < 0:
                results[i] = skipped_logprobs(note)
            elif drop:
                encoded[i] = (context[drop:], target)
                notes[i] = (note, drop)
        todo = [i for i in range(len(encoded)) if results[i] is None]
        contexts = [c for c, _ in encoded]
        packing = self._packs()
        sharing = packing and self._enabled("share_prefix")
        shared = common_prefix_length([contexts[i] for i in todo]) if sharing else 0
        groups, singles = shared_prompts(contexts, todo) if packing else ([], todo)
        if shared:  # every row continues the one shared prefix, so every row is packed
            groups, singles = groups + [[i] for i in singles], []
        order = sorted(singles, key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
        pad = self.tokenizer.pad_token_id
        for batch in self._token_batches(order, [len(c) + len(r) for c, r in encoded]):
            seqs = [encoded[i][0] + encoded[i][1] for i in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)] = torch.tensor(seq)
            # Right padding under causal attention: a real position only ever sees earlier, real
            # positions, so no padding mask is needed, and without one SDPA keeps its fast causal path.
            hidden = self._hidden_states(ids.to(self.device))
            reads = [(row, range(len(encoded[i][0]) - 1, len(seqs[row]) - 1)) for row, i in enumerate(batch)]
            for i, logits in zip(batch, self._read_logits(hidden, reads)):
                results[i] = self._picked(i, encoded[i][1], logits, notes)
        # rows sharing a prompt: one packed sequence per prompt, after the prefix all share (hf_prefix)
        prefix = encode_prefix(self.model, contexts[todo[0]][:shared], self.device) if shared else None
        packs = [pack(contexts[g[0]][shared:], [encoded[i][1] for i in g]) for g in groups]
        sizes = [len(p.ids) for p in packs]
        for batch in self._token_batches(sorted(range(len(groups)), key=lambda g: -sizes[g]), sizes):
            hidden = packed_hidden(self.model, [packs[g] for g in batch], pad, self.device, self.dtype, prefix)
            rows = [i for g in batch for i in groups[g]]
            reads = [(row, r) for row, g in enumerate(batch) for r in packs[g].reads]
            for i, logits in zip(rows, self._read_logits(hidden, reads)):
                results[i] = self._picked(i, encoded[i][1], logits, notes)
        return [r for r in results if r is not None]

    def _picked(self, i: int, target: list[int], step_logits: torch.Tensor,
                notes: dict[int, tuple[str, int]]) -> ResponseLogprobs:
        """Row ``i``'s result from the logits that predict its target tokens."""
        logp = torch.log_softmax(step_logits.float(), dim=-1)
        picked = logp.gather(1, torch.tensor(target, device=logp.device)[:, None])[:, 0]
        note, dropped = notes.get(i, ("", 0))
        return ResponseLogprobs(tokens=tuple(self.tokenizer.convert_ids_to_tokens(target)),
                                logprobs=tuple(float(x) for x in picked.cpu()), note=note, context_dropped=dropped)

    def _packs(self) -> bool:
        """Whether rows that share a prompt are scored in one packed pass (hf_prefix); ``pack_prompts=false``
        turns it off."""
        return self._enabled("pack_prompts") and self._split_head() and can_pack(self.model)

    def _enabled(self, option: str) -> bool:
        return str(self.spec.options.get(option, "true")).lower() not in ("0", "false", "no")

    def _token_batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Consecutive (length-sorted) batches of at most ``batch_size`` sequences and
        ``max_batch_tokens`` padded tokens: on a CPU, big padded batches of long sequences run
        slower than small ones (measured: 8 x long is 0.7x of one at a time), short ones gain."""
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and \
                    (len(batches[-1]) + 1) * max(lengths[j] for j in batches[-1] + [i]) <= self.max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _split_head(self) -> bool:
        """Whether the LM head can be applied to response positions only (it is ~20% of a small
        model's compute and most of its memory at long prompts); not for models that post-process
        logits (e.g. Gemma-2's soft-capping)."""
        return (getattr(self.model.config, "final_logit_softcapping", None) is None
                and self.model.get_output_embeddings() is not None)

    def _hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        if self._split_head():
            return self.model.base_model(input_ids=ids).last_hidden_state
        return self.model(input_ids=ids).logits

    def _read_logits(self, hidden: torch.Tensor, reads: list[tuple[int, Sequence[int]]]) -> list[torch.Tensor]:
        """The logits at each (row, positions) of a batch. With a split head, one head call for all of them:
        called per row, the head reads its [vocabulary x d] weight once per row, which made it a quarter of
        a scoring run (~600 short rows, bench/bench_options.py)."""
        picked = [hidden[row, list(positions)] for row, positions in reads]
        if not self._split_head():
            return picked
        head, out, chunk = self.model.get_output_embeddings(), [], []
        for i, positions in enumerate(picked):  # in chunks of <= HEAD_POSITIONS: [positions x vocabulary] logits
            chunk.append(positions)
            if i + 1 == len(picked) or sum(len(c) for c in chunk) + len(picked[i + 1]) > HEAD_POSITIONS:
                out.extend(head(torch.cat(chunk)).split([len(c) for c in chunk]))
                chunk = []
        return out

    # -- generation -----------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[ChatMessages], params: GenerationParams) -> list[list[str]]:
        texts = [self.apply_chat_template(p, add_generation_prompt=True) for p in prompts]
        with attention_kernels(self.device):
            if params.temperature <= 0:
                outs = self._greedy(texts, params)
                return [[o] * params.n for o in outs]
            return self._sample(texts, params)

    def _gen_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _decode(self, ids: torch.Tensor, params: GenerationParams) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in params.stop:
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        return text

    def _greedy(self, texts: list[str], params: GenerationParams) -> list[str]:
        self.tokenizer.padding_side = "left"
        try:
            outs: list[str] = []
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                gen = self.model.generate(**enc, do_sample=False, **self._gen_kwargs(params))
                width = enc["input_ids"].shape[1]
                outs.extend(self._decode(row[width:], params) for row in gen)
            return outs
        finally:
            self.tokenizer.padding_side = "right"

    def _sample(self, texts: list[str], params: GenerationParams) -> list[list[str]]:
        """Seeded per prompt (see hf_sampling), so samples do not depend on the batch; the prompts of a
        batch are decoded together, each prompt evaluated once for its ``n`` samples."""
        from tamis.models.hf_sampling import sample_batch

        per_batch = max(1, self.sample_rows // max(1, params.n))
        outs: list[list[str]] = []
        for start in range(0, len(texts), per_batch):
            batch = sample_batch(self.model, self.tokenizer, texts[start : start + per_batch], params, self.device)
            outs.extend([self._decode(ids, params) for ids in rows] for rows in batch)
        return outs
