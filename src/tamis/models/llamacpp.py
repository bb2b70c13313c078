"""llama.cpp backend: runs GGUF files (the bundled SmolLM2 by default) fast on CPU.

Spec: ``llamacpp:smollm2`` or ``llamacpp:/path/model.gguf?n_ctx=4096&n_threads=2&n_batch=512&n_ubatch=512``.

llama.cpp's CPU kernels are not batch-invariant: a token's logits depend (in the last digits, up to
~0.07 nats on some CPUs) on how many tokens its micro-batch (``n_ubatch``) held. ``n_ubatch=1``
evaluates every token alone, which makes scores independent of how a sequence was split, e.g.
between a server's cached prefix and the rest of a request (used to compare with a server).

Design choices (measured on SmolLM2-135M Q4_1, 2 cores):

- Two ``llama_cpp.Llama`` instances, both created lazily: one for sampling (``logits_all=False``, so
  prompt evaluation does not compute the 49k-wide output layer for every prompt token) and one for
  scoring (``logits_all=True``; loading is ~0.2 s and the weights are mmapped, so shared).
- Reproducible sampling: sample ``i`` of a prompt uses seed ``derive_seed(params.seed, i)`` and the
  KV cache is reset before each prompt's first sample, so a prompt's samples do not depend on what
  else is in the batch (llama.cpp reuses the cached prompt for samples ``1..n-1``).
- Sampling matches the other backends' semantics: only temperature and top_p act (llama.cpp's
  default top_k=40 / min_p=0.05 are switched off).
- The chat template is the GGUF's own (``tokenizer.chat_template``), rendered with llama-cpp's
  Jinja2 formatter, which mirrors transformers' Jinja environment; for SmolLM2 the text equals
  transformers' ``apply_chat_template`` (tested).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

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


def derive_seed(seed: int, index: int) -> int:
    """A 31-bit seed for sample ``index``; never llama.cpp's 0xFFFFFFFF, which means 'random'."""
    digest = hashlib.sha256(f"tamis:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def split_response(prefix: str, full: str, response: str, end_text: str) -> tuple[str, str]:
    """(text before the response, end-of-turn text after it) for a templated assistant turn.

    ``prefix`` is the template with a generation prompt, ``full`` the template with the response as
    the assistant message. The end-of-turn text is what follows the response up to and including
    ``end_text`` (``<|im_end|>`` for ChatML); a trailing newline after it is not scored. Templates
    that rewrite the response fall back to ``prefix + response + end_text``."""
    head = prefix + response
    if end_text and full.startswith(head):
        rest = full[len(head):]
        if end_text in rest:
            return prefix, rest[: rest.index(end_text) + len(end_text)]
    return prefix, end_text


class LlamaCppLLM(LLM):
    """A chat LLM served in-process by llama.cpp."""

    def __init__(self, spec: ModelSpec, workspace: Any = None) -> None:
        self.spec = spec
        self.workspace = workspace
        if is_smollm2(spec.model):
            self.path = smollm2_gguf_path()
        else:
            self.path = Path(spec.model).expanduser()
            if self.path.suffix != ".gguf" or not self.path.is_file():
                raise ModelError(
                    f"llamacpp model {spec.model!r} is not an existing .gguf file; pass a path to a GGUF "
                    "file or 'smollm2' for the bundled SmolLM2-135M-Instruct"
                )
        opts = dict(spec.options)
        try:
            self.n_ctx = int(opts.pop("n_ctx", 2048))
            self.n_threads = int(opts.pop("n_threads", os.cpu_count() or 1))
            self.n_batch = int(opts.pop("n_batch", 512))
            self.n_ubatch = int(opts.pop("n_ubatch", 512))
        except ValueError as err:
            raise ModelError(f"llamacpp spec {spec}: n_ctx, n_threads, n_batch and n_ubatch must be integers ({err})"
                             ) from err
        opts.pop("commit_every", None)  # read by the caching wrapper in load_llm
        if opts:
            raise ModelError(f"llamacpp spec {spec}: unknown options {sorted(opts)}; known: n_ctx, n_threads, n_batch, "
                             "n_ubatch")
        self._lock = threading.RLock()
        self._sampler: Any = None
        self._scorer: Any = None
        self._formatters: dict[bool, Any] = {}

    # -- loading -----------------------------------------------------------------------------
    def _load(self, logits_all: bool) -> Any:
        import llama_cpp

        try:
            return llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_batch=self.n_batch,
                n_ubatch=self.n_ubatch,
                logits_all=logits_all,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"llama.cpp could not load {self.path}: {err}; is it a valid GGUF file?") from err

    @property
    def sampler(self) -> Any:
        with self._lock:
            if self._sampler is None:
                self._sampler = self._load(logits_all=False)
            return self._sampler

    @property
    def scorer(self) -> Any:
        with self._lock:
            if self._scorer is None:
                self._scorer = self._load(logits_all=True)
            return self._scorer

    @property
    def identity(self) -> str:
        import llama_cpp

        digest = file_digest(str(self.path))
        ubatch = f"&n_ubatch={self.n_ubatch}" if self.n_ubatch != 512 else ""  # default unchanged: caches stay valid
        return f"llamacpp:{digest}?n_ctx={self.n_ctx}&n_batch={self.n_batch}{ubatch}&llama_cpp={llama_cpp.__version__}"

    # -- chat template -----------------------------------------------------------------------
    def _any(self) -> Any:
        """Whichever instance is loaded (the tokenizer and metadata are the same in both)."""
        return self._sampler or self._scorer or self.sampler

    def _token_text(self, token_id: int) -> str:
        return "" if token_id < 0 else self._any()._model.token_get_text(token_id)

    @property
    def eos_text(self) -> str:
        return self._token_text(self._any().token_eos())

    def apply_chat_template(self, messages: ChatMessages, add_generation_prompt: bool = True) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with self._lock:
            if add_generation_prompt not in self._formatters:
                llm = self._any()
                template = llm.metadata.get("tokenizer.chat_template")
                if not template:
                    raise ModelError(f"{self.path} has no tokenizer.chat_template in its GGUF metadata; use a chat model")
                self._formatters[add_generation_prompt] = Jinja2ChatFormatter(
                    template=template,
                    eos_token=self._token_text(llm.token_eos()),
                    bos_token=self._token_text(llm.token_bos()),
                    add_generation_prompt=add_generation_prompt,
                )
            formatter = self._formatters[add_generation_prompt]
        return formatter(messages=list(messages)).prompt

    def _tokenize(self, llm: Any, text: str) -> list[int]:
        # Chat-template text carries its own special tokens (as transformers' add_special_tokens=False).
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    # -- generation --------------------------------------------------------------------------
    def generate(self, prompts: list[ChatMessages], params: GenerationParams) -> list[list[str]]:
        """``params.n`` samples per prompt; temperature 0 decodes greedily once and repeats it."""
        results: list[list[str]] = []
        with self._lock:
            llm = self.sampler
            for messages in prompts:
                tokens = self._tokenize(llm, self.apply_chat_template(messages, True))
                self._check_length(tokens)
                llm.reset()  # samples must not depend on the previous prompt in the batch
                n_runs = 1 if params.temperature <= 0 else params.n
                outs = [self._sample(llm, tokens, params, derive_seed(params.seed, i)) for i in range(n_runs)]
                results.append(outs * params.n if n_runs == 1 else outs)
        return results

    def _check_length(self, tokens: list[int]) -> None:
        if len(tokens) + 1 > self.n_ctx:
            raise ModelError(
                f"prompt has {len(tokens)} tokens but the llama.cpp context holds {self.n_ctx}; "
                f"raise n_ctx in the spec (e.g. llamacpp:{self.spec.model}?n_ctx={2 * self.n_ctx}) or shorten it"
            )

    def _sample(self, llm: Any, tokens: list[int], params: GenerationParams, seed: int) -> str:
        out = llm.create_completion(
            list(tokens),
            max_tokens=max(1, params.max_tokens),
            temperature=max(0.0, params.temperature),
            top_p=params.top_p,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            seed=seed,
            stop=list(params.stop) or None,
        )
        return out["choices"][0]["text"]

    # -- scoring -----------------------------------------------------------------------------
    def _split(self, messages: ChatMessages, response: str) -> tuple[str, str]:
        prefix = self.apply_chat_template(messages, True)
        full = self.apply_chat_template(list(messages) + [{"role": "assistant", "content": response}], False)
        return split_response(prefix, full, response, self.eos_text)

    def logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        """Natural-log probabilities of the response tokens and of the end-of-turn token.

        The scored tokens are the response followed by the template's end-of-turn token
        (``<|im_end|>`` for SmolLM2), the same convention as the transformers backend. A prompt
        with no messages scores the bare response text after BOS, with no template, followed by
        EOS (IFD's PPL(y); again as the transformers backend)."""
        if len(prompts) != len(responses):
            raise ModelError(f"logprobs got {len(prompts)} prompts but {len(responses)} responses")
        out: list[ResponseLogprobs] = []
        with self._lock:
            llm = self.scorer
            for messages, response in zip(prompts, responses):
                if messages:
                    prefix, end = self._split(messages, response)
                    ctx = self._tokenize(llm, prefix)
                    full = self._tokenize(llm, prefix + response + end)
                else:
                    bos = llm.token_bos()
                    if bos < 0:
                        raise ModelError(f"{self.path} has no BOS token, so a response cannot be scored without a prompt")
                    ctx = [bos]
                    eos = [llm.token_eos()] if llm.token_eos() >= 0 else []
                    full = [bos] + llm.tokenize(response.encode("utf-8"), add_bos=False, special=False) + eos
                start = max(1, _common_prefix(ctx, full))
                drop, note = fit_to_context(start, len(full) - start, self._capacity(llm))
                if drop < 0:
                    out.append(skipped_logprobs(note))
                    continue
                scored = self._score(llm, full[drop:], start - drop)
                if drop:
                    scored = replace(scored, note=note, context_dropped=drop)
                out.append(scored)
        return out

    def _capacity(self, llm: Any) -> int:
        """Tokens one evaluation can hold: llama.cpp may round its context up (to 256), but
        llama-cpp-python's token and logit buffers keep the n_ctx asked for."""
        return min(self.n_ctx, llm.n_ctx())

    def _score(self, llm: Any, tokens: list[int], start: int) -> ResponseLogprobs:
        """Log-probabilities of ``tokens[start:]``, evaluating the whole sequence once."""
        if len(tokens) > self._capacity(llm):  # callers fit rows first (fit_to_context); this is a guard
            raise ModelError(f"{len(tokens)} tokens do not fit the llama.cpp context of {self._capacity(llm)}")
        llm.reset()
        llm.eval(tokens)
        logits = np.asarray(llm.scores[start - 1 : len(tokens) - 1], dtype=np.float64)
        logz = np.logaddexp.reduce(logits, axis=1)
        targets = np.asarray(tokens[start:])
        lps = logits[np.arange(len(targets)), targets] - logz
        texts = []
        for i, tok in enumerate(tokens[start:], start):
            texts.append(llm.detokenize([tok], prev_tokens=tokens[:i], special=True).decode("utf-8", errors="replace"))
        return ResponseLogprobs(tokens=tuple(texts), logprobs=tuple(float(x) for x in lps))

    def close(self) -> None:
        with self._lock:
            for llm in (self._sampler, self._scorer):
                if llm is not None:
                    llm.close()
            self._sampler = self._scorer = None


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Where the response starts: tokens shared by the prompt-only and the full tokenisation.

    BPE may merge the last prompt character with the first response character; the shared prefix
    then ends before the merged token, which is scored as part of the response."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
