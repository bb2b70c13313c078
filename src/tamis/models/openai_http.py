"""OpenAI-compatible HTTP backend (vLLM, Ollama, llama.cpp server, OpenAI).

Spec: ``openai:MODEL?base_url=http://127.0.0.1:8000/v1&api_key_env=OPENAI_API_KEY&concurrency=8
&timeout=60&max_retries=5&backoff=0.5&tokenizer=smollm2``.

- Requests run on a thread pool (``concurrency`` at once) over one pooled httpx client.
- 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
  (``backoff`` seconds, doubling), honouring ``Retry-After``; other 4xx fail at once with the
  server's message, since repeating a bad request cannot help. Each retry is logged (warning) and
  counted (:meth:`OpenAILLM.call_stats`, written to the manifest).
- When one request of a batch fails for good, requests not yet sent are dropped and the others stop
  retrying; the exception carries ``partial_results`` (position -> result of every request that
  did finish) so the caching wrapper commits them: a rerun sends only what is missing.
- The API key is read from the environment variable named by ``api_key_env`` and only ever sent
  in the Authorization header (never put in errors, identity or logs).
- Scoring a *given* response needs the exact chat-template text, so ``tokenizer=`` names a local
  Hugging Face tokenizer folder or ``smollm2``; the text is then scored with ``/completions``,
  ``echo=true``, ``logprobs=0``. Servers that cannot return prompt log-probabilities raise
  :class:`LogprobsUnavailable`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import httpx

from tamis.models.base import (
    LLM,
    ChatMessages,
    GenerationParams,
    LogprobsUnavailable,
    ModelError,
    ModelSpec,
    ResponseLogprobs,
    skipped_logprobs,
)
from tamis.models.bundled import is_smollm2, smollm2_gguf_path
from tamis.models.llamacpp import derive_seed, split_response
from tamis.models.openai_errors import (  # noqa: F401  (RequestRejected, Cancelled: part of this backend's API)
    Cancelled,
    RequestRejected,
    _retry_after,
    _server_message,
    context_exceeded_note,
)

LOGPROB_FEATURES = "response scoring: perplexity/IFD signals and CLEAR/BSDetector confidence from log-probabilities"
KNOWN_OPTIONS = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries", "backoff", "tokenizer")
CACHE_OPTIONS = ("commit_every",)  # read by the caching wrapper in load_llm
log = logging.getLogger(__name__)


_TOKENIZER_LOCK = threading.Lock()


def load_tokenizer(name: str) -> Any:
    """A Hugging Face tokenizer for chat templates, loaded once per process and name.

    Thread-safe: the backend's worker threads may ask for it at the same moment, and transformers'
    lazy modules race on a concurrent first import (``ImportError: cannot import name
    'GGUF_CONFIG_ARCHS'``); ``lru_cache`` alone would also let every thread load its own copy."""
    with _TOKENIZER_LOCK:
        return _load_tokenizer(name)


@lru_cache(maxsize=8)
def _load_tokenizer(name: str) -> Any:
    """Loading from GGUF takes seconds; call only through ``load_tokenizer`` (under its lock)."""
    from transformers import AutoTokenizer

    try:
        if is_smollm2(name):
            gguf = smollm2_gguf_path()
            return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelError(f"could not load tokenizer {name!r} (a local tokenizer folder or 'smollm2'): {err}") from err


class OpenAILLM(LLM):
    """A chat model behind an OpenAI-compatible HTTP API."""

    def __init__(self, spec: ModelSpec, workspace: Any = None) -> None:
        self.spec = spec
        self.workspace = workspace
        opts = dict(spec.options)
        unknown = sorted(set(opts) - set(KNOWN_OPTIONS) - set(CACHE_OPTIONS))
        if unknown:
            raise ModelError(f"openai spec {spec}: unknown options {unknown}; known: {', '.join(KNOWN_OPTIONS)}")
        self.base_url = opts.get("base_url", "http://127.0.0.1:8000/v1").rstrip("/")
        self.api_key_env = opts.get("api_key_env", "OPENAI_API_KEY")
        try:
            self.concurrency = max(1, int(opts.get("concurrency", 8)))
            self.timeout = float(opts.get("timeout", 60))
            self.max_retries = max(0, int(opts.get("max_retries", 5)))
            self.backoff = float(opts.get("backoff", 0.5))
        except ValueError as err:
            raise ModelError(f"openai spec {spec}: concurrency/timeout/max_retries/backoff must be numbers ({err})") from err
        self.tokenizer_name = opts.get("tokenizer") or None
        self.max_retry_after = 120.0
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._local = threading.local()  # .stop: the Event of the batch this worker thread serves

    @property
    def identity(self) -> str:
        return f"openai:{self.base_url}|{self.spec.model}"

    @property
    def batch_hint(self) -> int:
        return self.concurrency

    # -- HTTP --------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Content-Type": "application/json"}
                key = os.environ.get(self.api_key_env, "")
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(headers=headers, timeout=self.timeout, limits=limits)
            return self._client

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on 429/5xx/timeouts/connection errors; other 4xx raise at once."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        stop: threading.Event | None = getattr(self._local, "stop", None)
        last = ""
        for attempt in range(self.max_retries + 1):
            if stop is not None and stop.is_set():
                raise Cancelled(f"{url}: stopped, another request of the batch failed")
            wait = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)
            self._count("http_requests")
            try:
                response = self.client.post(url, json=payload)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s (raise timeout= in the spec if the server is slow)"
                cause = "timeout"
            except httpx.TransportError as err:
                last = f"connection failed ({type(err).__name__}: {err}); is the server running at {self.base_url}?"
                cause = "connection"
            else:
                if response.status_code < 400:
                    try:
                        body = response.json()
                    except ValueError as err:
                        raise ModelError(f"{url} answered {response.status_code} with non-JSON: {response.text[:200]!r}") from err
                    if not isinstance(body, dict):
                        raise ModelError(f"{url} answered with JSON that is not an object: {str(body)[:200]!r}")
                    return body
                last = f"HTTP {response.status_code}: {_server_message(response)}"
                if response.status_code != 429 and response.status_code < 500:
                    raise RequestRejected(f"{url} rejected the request ({last})")
                cause = "429" if response.status_code == 429 else "5xx"
                after = _retry_after(response)
                if after is not None:
                    wait = min(after, self.max_retry_after)
            if attempt < self.max_retries:
                self._count("http_retries", f"http_retried_{cause}")
                log.warning("%s: %s; retry %d of %d in %.1f s", url, last, attempt + 1, self.max_retries, wait)
                if stop is not None:
                    if stop.wait(wait):
                        raise Cancelled(f"{url}: stopped, another request of the batch failed")
                else:
                    time.sleep(wait)
        self._count("http_failed")
        raise ModelError(f"{url} failed after {self.max_retries + 1} attempt(s): {last}")

    def _count(self, *names: str) -> None:
        with self._lock:
            self._stats.update(names)

    def call_stats(self) -> dict[str, int]:
        """HTTP attempts sent (``http_requests``), ``http_retries`` (by cause: ``http_retried_429``,
        ``_5xx``, ``_timeout``, ``_connection``) and requests that failed for good (``http_failed``)."""
        with self._lock:
            return dict(self._stats)

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        """``fn`` over items, ``concurrency`` at once. On the first failure nothing new is sent and
        requests waiting to retry give up; the exception raised carries ``partial_results``
        ({position: result}) of the items that finished, for the caller to keep."""
        stop = threading.Event()
        done: dict[int, Any] = {}
        errors: list[BaseException] = []

        def run(i: int) -> None:
            if stop.is_set():
                return
            self._local.stop = stop
            try:
                done[i] = fn(items[i])
            except BaseException as err:  # noqa: BLE001 - re-raised below, in the caller's thread
                with self._lock:
                    if not errors and not isinstance(err, Cancelled):
                        errors.append(err)
                        stop.set()
            finally:
                self._local.stop = None

        if len(items) <= 1 or self.concurrency == 1:
            for i in range(len(items)):
                run(i)
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
                list(pool.map(run, range(len(items))))
        if errors:
            err = errors[0]
            err.partial_results = dict(done)  # type: ignore[attr-defined]
            raise err
        return [done[i] for i in range(len(items))]

    # -- generation --------------------------------------------------------------------------
    def generate(self, prompts: list[ChatMessages], params: GenerationParams) -> list[list[str]]:
        """``params.n`` completions per prompt; servers that ignore ``n`` get topped up with
        further requests under derived seeds, so the result is still reproducible."""
        return self._map(lambda messages: self._generate_one(messages, params), prompts)

    def _generate_one(self, messages: ChatMessages, params: GenerationParams) -> list[str]:
        greedy = params.temperature <= 0
        want = 1 if greedy else params.n
        texts: list[str] = []
        request = 0
        while len(texts) < want:
            payload: dict[str, Any] = {
                "model": self.spec.model,
                "messages": list(messages),
                "n": want - len(texts),
                "temperature": max(0.0, params.temperature),
                "top_p": params.top_p,
                "max_tokens": params.max_tokens,
                "seed": params.seed if request == 0 else derive_seed(params.seed, request),
            }
            if params.stop:
                payload["stop"] = list(params.stop)
            body = self.post("chat/completions", payload)
            choices = body.get("choices")
            if not choices or not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                raise ModelError(f"{self.base_url}/chat/completions returned no choices: {str(body)[:300]}")
            choices = sorted(choices, key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
            texts.extend(self._content(c) for c in choices)
            request += 1
        texts = texts[:want]
        return texts * params.n if greedy else texts

    def _content(self, choice: dict[str, Any]) -> str:
        """A choice's text. No content (a refusal, a tool call) is an empty answer; content parts are
        joined; anything else is not a text completion and fails clearly."""
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is None or isinstance(content, str):
            return content or ""
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") in ("text", "output_text")]
            if parts and all(isinstance(p, str) for p in parts):
                return "".join(parts)
        raise ModelError(
            f"{self.base_url}/chat/completions returned non-text content ({type(content).__name__}: "
            f"{str(content)[:200]!r}); tamis needs text answers (is the model a chat text model?)"
        )

    # -- chat template and scoring ------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        """The Hugging Face tokenizer named by ``tokenizer=``, or None when the spec names none."""
        return load_tokenizer(self.tokenizer_name) if self.tokenizer_name else None

    def _require_tokenizer(self) -> Any:
        if not self.tokenizer_name:
            raise ModelError(
                f"{self.spec}: scoring responses and apply_chat_template need the model's chat template; add "
                "tokenizer=PATH (a local Hugging Face tokenizer folder) or tokenizer=smollm2 to the spec"
            )
        return load_tokenizer(self.tokenizer_name)

    def apply_chat_template(self, messages: ChatMessages, add_generation_prompt: bool = True) -> str:
        return self._require_tokenizer().apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def logprobs(self, prompts: list[ChatMessages], responses: list[str]) -> list[ResponseLogprobs]:
        """Scores response + end-of-turn token (as the other backends) via ``/completions`` echo.

        An empty prompt scores the bare response + EOS after the tokenizer's BOS text (llama-cpp's
        server nulls the first echoed logprob after BOS, so there it raises LogprobsUnavailable)."""
        if len(prompts) != len(responses):
            raise ModelError(f"logprobs got {len(prompts)} prompts but {len(responses)} responses")
        if prompts:
            self._require_tokenizer()  # loaded here, once, before the worker threads start
        return self._map(lambda pair: self._logprobs_one(*pair), list(zip(prompts, responses)))

    def _logprobs_one(self, messages: ChatMessages, response: str) -> ResponseLogprobs:
        tok = self._require_tokenizer()
        if messages:
            full = self.apply_chat_template(list(messages) + [{"role": "assistant", "content": response}], False)
            prefix, end = split_response(self.apply_chat_template(messages, True), full, response, tok.eos_token or "")
        else:
            prefix, end = tok.bos_token or "", tok.eos_token or ""
        ids_prefix = tok(prefix, add_special_tokens=False).input_ids
        ids_full = tok(prefix + response + end, add_special_tokens=False).input_ids
        shared = 0
        for a, b in zip(ids_prefix, ids_full):
            if a != b:
                break
            shared += 1
        k = len(ids_full) - shared
        payload = {"model": self.spec.model, "prompt": prefix + response + end, "echo": True,
                   "logprobs": 0, "max_tokens": 1, "temperature": 0.0}
        try:
            body = self.post("completions", payload)
        except RequestRejected as err:
            note = context_exceeded_note(err)
            if note is not None:
                return skipped_logprobs(note)  # one long row must not fail the batch, nor pass silently
            raise self._unavailable(f"it rejected an echo request ({err})") from err
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        tokens, values = lp.get("tokens"), lp.get("token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list) or not tokens or not values:
            raise self._unavailable("its answer carried no token log-probabilities")
        n_generated = (body.get("usage") or {}).get("completion_tokens")
        if n_generated is None:
            n_generated = 1
        n_prompt = len(tokens) - n_generated
        if n_prompt < k:
            raise self._unavailable(f"it returned {n_prompt} prompt tokens, fewer than the response's {k}")
        sel_tokens = tokens[n_prompt - k : n_prompt]
        sel_values = values[n_prompt - k : n_prompt]
        if any(v is None for v in sel_values):
            raise self._unavailable("it returned null log-probabilities for response tokens")
        specials = tuple(tok.all_special_tokens)
        if _visible("".join(sel_tokens), specials) not in (_visible(response + end, specials), _visible(response, specials)):
            raise ModelError(
                f"the server's tokens for the response ({''.join(sel_tokens)!r}) do not match tokenizer="
                f"{self.tokenizer_name}; use the tokenizer of the served model"
            )
        return ResponseLogprobs(tokens=tuple(sel_tokens), logprobs=tuple(float(v) for v in sel_values))

    def _unavailable(self, why: str) -> LogprobsUnavailable:
        return LogprobsUnavailable(
            f"{self.base_url} cannot score given responses: {why}. tamis needs prompt log-probabilities "
            "from POST /completions with echo=true and logprobs (vLLM and llama-cpp-python's server with "
            f"--logits_all True do this; OpenAI chat models and Ollama do not). Needed by {LOGPROB_FEATURES}; "
            "use a llamacpp: or transformers: backend for them instead."
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _visible(text: str, specials: tuple[str, ...]) -> str:
    """Text with special tokens and non-ASCII dropped: servers render both differently per token."""
    for special in specials:
        text = text.replace(special, "")
    return "".join(ch for ch in text if ch.isascii())
