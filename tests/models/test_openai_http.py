"""OpenAI-compatible backend: a real llama-cpp-python server on loopback, and a scripted stdlib
server for retries, Retry-After, 4xx and timeouts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tamis.models.base import GenerationParams, LogprobsUnavailable, ModelError, ModelSpec
from tamis.models.openai_http import OpenAILLM

FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
POEM = [{"role": "user", "content": "Write a short poem about cats."}]
OK_BODY = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a scripted server ----------------------------------------------------------------------
class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers, body, delay) of the server's script."""

    def do_POST(self) -> None:
        srv = self.server
        length = int(self.headers.get("content-length", 0))
        srv.requests.append((time.monotonic(), dict(self.headers), json.loads(self.rfile.read(length) or b"{}")))
        status, headers, body, delay = srv.script.pop(0) if srv.script else (200, {}, OK_BODY, 0)
        time.sleep(delay)
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.requests = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield server
    server.shutdown()
    server.server_close()


def client(url: str, **opts: str) -> OpenAILLM:
    query = "&".join(f"{k}={v}" for k, v in {"base_url": url, "backoff": "0.05", **opts}.items())
    return OpenAILLM(ModelSpec.parse(f"openai:test-model?{query}"))


def test_retries_429_then_500_with_retry_after(scripted, monkeypatch):
    monkeypatch.setenv("TAMIS_TEST_KEY", "sk-secret-value")
    scripted.script = [
        (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}, 0),
        (500, {}, {"error": {"message": "boom"}}, 0),
        (200, {}, OK_BODY, 0),
    ]
    llm = client(scripted.url, api_key_env="TAMIS_TEST_KEY")
    assert llm.generate([FRANCE], GenerationParams()) == [["hello"]]
    times = [t for t, _, _ in scripted.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95  # Retry-After honoured
    assert times[2] - times[1] < 0.5  # exponential backoff from 0.05 s otherwise
    headers = scripted.requests[0][1]
    assert headers["Authorization"] == "Bearer sk-secret-value"
    body = scripted.requests[0][2]
    assert body["model"] == "test-model" and body["messages"] == FRANCE
    assert "sk-secret" not in llm.identity and "sk-secret" not in str(llm.spec)


def test_gives_up_after_max_retries(scripted):
    scripted.script = [(503, {}, {"error": {"message": "overloaded"}}, 0)] * 3
    with pytest.raises(ModelError, match=r"3 attempt\(s\).*503.*overloaded"):
        client(scripted.url, max_retries="2").generate([FRANCE], GenerationParams())


def test_400_is_not_retried(scripted):
    scripted.script = [(400, {}, {"error": {"message": "max_tokens is too large"}}, 0)]
    with pytest.raises(ModelError, match="max_tokens is too large") as info:
        client(scripted.url).generate([FRANCE], GenerationParams())
    assert "/v1/chat/completions" in str(info.value)
    assert len(scripted.requests) == 1


def test_timeout_names_url(scripted):
    scripted.script = [(200, {}, OK_BODY, 1.0)] * 2
    with pytest.raises(ModelError, match=r"127\.0\.0\.1.*chat/completions.*no answer within 0.2 s"):
        client(scripted.url, timeout="0.2", max_retries="1").generate([FRANCE], GenerationParams())


def test_connection_refused(free=free_port):
    with pytest.raises(ModelError, match="is the server running"):
        client(f"http://127.0.0.1:{free()}/v1", max_retries="0").generate([FRANCE], GenerationParams())


def test_tops_up_when_server_ignores_n(scripted):
    def one(text: str) -> tuple:
        return 200, {}, {"choices": [{"index": 0, "message": {"content": text}}]}, 0

    scripted.script = [one("a"), one("b"), one("c")]
    out = client(scripted.url).generate([POEM], GenerationParams(n=3, temperature=1.0, seed=5))
    assert out == [["a", "b", "c"]]
    seeds = [body["seed"] for _, _, body in scripted.requests]
    assert seeds[0] == 5 and len(set(seeds)) == 3
    assert [body["n"] for _, _, body in scripted.requests] == [3, 2, 1]


@pytest.mark.slow  # loads the SmolLM2 tokenizer from the GGUF (seconds)
def test_missing_tokenizer_and_no_echo(scripted):
    llm = client(scripted.url)
    with pytest.raises(ModelError, match="tokenizer="):
        llm.apply_chat_template(FRANCE)
    # a server that answers /completions without prompt log-probabilities
    scripted.script = [(200, {}, {"choices": [{"index": 0, "text": "x", "logprobs": None}]}, 0)]
    with pytest.raises(LogprobsUnavailable, match="echo=true") as info:
        client(scripted.url, tokenizer="smollm2").logprobs([FRANCE], ["Paris."])
    assert "perplexity" in str(info.value)


def test_unknown_option():
    with pytest.raises(ModelError, match="unknown options"):
        OpenAILLM(ModelSpec.parse("openai:m?base_url=http://x/v1&colour=red"))


# -- a real llama-cpp-python server -----------------------------------------------------------
# the server and the in-process model it is compared with use exactly these settings
SERVER_SETTINGS = {"n_ctx": 2048, "n_batch": 512, "n_ubatch": 1, "n_threads": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tamis.models.bundled import smollm2_gguf_path

    port = free_port()
    # one thread: llama.cpp's worker threads spin at barriers, which collapses throughput (seconds per
    # token) when the test machine's cores are busy with anything else; one thread is as fast here.
    # The server reuses the KV cache of the previous request's longest shared prefix, so only the
    # rest of a request is evaluated, as a smaller batch than in-process llama.cpp evaluates; llama.cpp's
    # CPU kernels are not batch-invariant (on AMD EPYC the tokens after the shared prefix differed by
    # up to 0.068 nats). One token per micro-batch (n_ubatch=1, also in `local`) makes every token's
    # logits independent of how a sequence was split, so server and in-process scores must agree.
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
           "--port", str(port), "--logits_all", "True", "--n_threads", "1", "--n_threads_batch", "1",
           "--n_ctx", str(SERVER_SETTINGS["n_ctx"]), "--n_batch", str(SERVER_SETTINGS["n_batch"]),
           "--n_ubatch", str(SERVER_SETTINGS["n_ubatch"])]
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    # a file, not a pipe: llama.cpp's load log would fill a pipe and block the server
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("llama_cpp.server did not answer /v1/models within 120 s")
            time.sleep(0.2)
        yield url
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def remote(server):
    llm = OpenAILLM(ModelSpec.parse(f"openai:smollm2?base_url={server}&tokenizer=smollm2&concurrency=2"))
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def local():
    from tamis.models.llamacpp import LlamaCppLLM

    query = "&".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items())
    llm = LlamaCppLLM(ModelSpec.parse(f"llamacpp:smollm2?{query}"))
    yield llm
    llm.close()


@pytest.mark.slow
def test_server_generate(remote, server):
    assert remote.identity == f"openai:{server}|smollm2"
    [[greedy, copy]] = remote.generate([FRANCE], GenerationParams(n=2, max_tokens=16))
    assert "Paris" in greedy and copy == greedy
    params = GenerationParams(n=3, temperature=1.0, max_tokens=12, seed=3)
    out = remote.generate([POEM, FRANCE], params)
    assert [len(x) for x in out] == [3, 3]
    assert len(set(out[0])) > 1  # the server ignores n; top-up requests use other seeds
    assert remote.generate([POEM], params)[0] == out[0]  # seeds make it reproducible
    [[cut]] = remote.generate([FRANCE], GenerationParams(max_tokens=16, stop=(" France",)))
    assert " France" not in cut and "capital of" in cut


@pytest.mark.slow
def test_server_chat_template(remote, local):
    for gen in (True, False):
        assert remote.apply_chat_template(FRANCE, gen) == local.apply_chat_template(FRANCE, gen)


@pytest.mark.slow
def test_server_echo_logprobs_agree_with_llamacpp(remote, local):
    responses = ["The capital of France is Paris.", "The capital of France is Berlin.", "Paris, of course!\nIt is."]
    prompts = [FRANCE] * 3
    remote.generate([FRANCE], GenerationParams(max_tokens=4))  # the server now caches the prompt's KV
    got = remote.logprobs(prompts, responses)  # each request reuses a prefix of the one before
    want = local.logprobs(prompts, responses)  # each sequence evaluated whole
    assert got[0].mean > got[1].mean
    for g, w in zip(got, want):
        assert g.n_tokens == w.n_tokens
        # same model, same settings, batch-invariant evaluation: only float32 vs float64 log-softmax differs
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-3)
    assert got[0].tokens[:6] == ("The", " capital", " of", " France", " is", " Paris")


@pytest.mark.slow
def test_server_unconditional_first_token_is_null(remote):
    # llama-cpp-python's server drops BOS from echo and nulls the first remaining logprob, which
    # for a bare response is a response token: that must be reported, not silently dropped.
    with pytest.raises(LogprobsUnavailable, match="null"):
        remote.logprobs([[]], ["Paris is the capital of France."])


@pytest.mark.slow  # loads the SmolLM2 tokenizer (cached per process)
def test_echo_rejected_is_logprobs_unavailable(scripted):
    # OpenAI's own API answers 400 to echo with logprobs on chat models
    scripted.script = [(400, {}, {"error": {"message": "echo is not supported"}}, 0)]
    llm = client(scripted.url, tokenizer="smollm2")
    with pytest.raises(LogprobsUnavailable, match="echo is not supported"):
        llm.logprobs([[]], ["Paris."])
    assert len(scripted.requests) == 1


# -- the tokenizer is loaded once, safely, whatever threads ask for it -----------------------------
CONCURRENT_LOAD = """
import threading
from unittest import mock

import transformers
from tamis.models import openai_http

real = transformers.AutoTokenizer.from_pretrained
calls = []

def counting(*args, **kwargs):
    calls.append(threading.current_thread().name)
    return real(*args, **kwargs)

got, errors = [], []
barrier = threading.Barrier(6)

def load():
    barrier.wait()
    try:
        got.append(openai_http.load_tokenizer("smollm2"))
    except BaseException as err:
        errors.append(repr(err))

with mock.patch.object(transformers.AutoTokenizer, "from_pretrained", counting):
    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(len(calls), len({id(t) for t in got}), errors)
"""


@pytest.mark.slow  # a fresh interpreter loads the SmolLM2 tokenizer from the GGUF
def test_tokenizer_loads_once_when_threads_race():
    # a fresh process, so the first import of transformers' lazy modules also happens in the race
    out = subprocess.run([sys.executable, "-c", CONCURRENT_LOAD], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "1 1 []"  # loaded once, one object for every thread, no error


@pytest.mark.slow  # loads the SmolLM2 tokenizer (cached per process)
def test_logprobs_loads_tokenizer_before_worker_threads(scripted, monkeypatch):
    from tamis.models import openai_http

    threads: list[str] = []
    real = openai_http.load_tokenizer
    monkeypatch.setattr(openai_http, "load_tokenizer",
                        lambda name: threads.append(threading.current_thread().name) or real(name))
    scripted.script = [(400, {}, {"error": {"message": "echo is not supported"}}, 0)] * 4
    with pytest.raises(LogprobsUnavailable):
        client(scripted.url, tokenizer="smollm2", concurrency="4").logprobs([FRANCE] * 4, ["a", "b", "c", "d"])
    assert threads[0] == threading.main_thread().name


# -- a row longer than the server's context ---------------------------------------------------------
@pytest.mark.slow  # loads the SmolLM2 tokenizer (cached per process)
def test_too_long_for_the_server_is_skipped_with_a_note(scripted):
    # OpenAI's and vLLM's wording; the batch goes on, and the row says why it has no score
    message = ("This model's maximum context length is 2048 tokens, however you requested 3001 tokens "
               "(3000 in your prompt; 1 for the completion). Please reduce your prompt; or completion length.")
    scripted.script = [(400, {}, {"error": {"message": message, "code": "context_length_exceeded"}}, 0)]
    [result] = client(scripted.url, tokenizer="smollm2").logprobs([FRANCE], ["Paris. " * 1500])
    assert result.skipped and "2048-token context" in result.note and result.n_tokens == 0


@pytest.mark.slow
def test_real_server_context_overflow_is_a_note(remote):
    long_answer, short_answer = "Paris is lovely. " * 600, "Paris."
    too_long, fine = remote.logprobs([FRANCE, FRANCE], [long_answer, short_answer])
    assert too_long.skipped and f"{SERVER_SETTINGS['n_ctx']}-token context" in too_long.note
    assert not fine.skipped and fine.n_tokens > 0
