"""`tamis score confidence` against an OpenAI-compatible server that fails mid-run.

A real `python -m llama_cpp.server` serves the bundled SmolLM2 GGUF; a small fault-injecting proxy
sits in front of it and answers 500/429 instead of forwarding, goes away (connections refused) or
stops answering (client timeouts) after N forwarded requests, and records every request. Faults
are answered by the proxy itself, so the server sees exactly the requests the client's finished
work needed: comparing what it forwarded with a fault-free run shows retries resend the same
request, and that a resumed run sends only what the first did not finish.

Bad input (empty, extremely long, non-text content; a server answering non-text) runs against a
scripted stdlib stub without a model, so it is fast.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from stub_server import JsonHandler, serve
from tamis.signals.registry import read_signals
from tamis.cli import app
from tamis.store import Workspace

runner = CliRunner()
QUESTIONS = [("What is the capital of France?", "Paris is the capital of France."),
             ("How many legs does a spider have?", "A spider has eight legs."),
             ("What colour is the sky on a clear day?", "Paris is the capital of France.")]
#: Per run: 3 prompts x k=2 samples (the server ignores n: one request each), 6 reflections (text
#: mode: one greedy request each), 3 echo reads of log p(y|x), then IFD's unconditional reads (which
#: llama-cpp's server cannot score). Reflections as text and no judge keep echo requests few:
#: llama-cpp-python's server sorts the whole vocabulary in Python for every echoed token (seconds
#: per request). Word-overlap similarity: no embedder, faults are about the server.
SCORE_OPTS = ["--k", "2", "--max-tokens", "16", "--similarity", "token_f1", "--reflection", "text", "--no-judge"]
CHAT, ECHO = "/v1/chat/completions", "/v1/completions"
N_CHAT = 12  # sampling + reflection requests, before the echo reads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True)


# -- the fault-injecting proxy (plumbing) ---------------------------------------------------------
class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # closing the listener must not wait for hung handlers
    proxy: FaultProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        action, info = self.server.proxy.decide(self.path, raw)  # type: ignore[attr-defined]
        if action == "drop":  # close without an answer (the listener is closing too)
            self.close_connection = True
            return
        if action == "hang":
            info.wait(timeout=600)
            self.close_connection = True
            return
        if action == "fault":
            status, headers, body = info
        else:
            status, headers, body = self.server.proxy.forward(self.path, raw, info)  # type: ignore[attr-defined]
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:
        pass


class FaultProxy:
    """Forwards POSTs to ``upstream``; scripted by received-request number (1-based, every attempt
    counts): ``faults[n] = (status, headers)`` answers that instead of forwarding. With
    ``down_after = N`` it forwards N requests, then goes ``down_mode``: "refuse" closes the
    listener (connections refused) or "hang" holds requests unanswered (client timeouts), until
    :meth:`come_back` (same port, so the client's base_url and cache identity stay the same)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=600)
        self._httpd: _ProxyServer | None = None
        self._closing: threading.Thread | None = None
        self.reset()
        self._listen()

    def reset(self) -> None:
        with self._lock:
            self.faults: dict[int, tuple[int, dict[str, str]]] = {}
            self.down_after: int | None = None
            self.down_mode = "refuse"
            self.down = False
            self.received: list[tuple[float, str, dict[str, Any]]] = []  # (time, path, body) of every attempt
            self.forwarded: list[dict[str, Any]] = []  # {"path", "body", "status"} per forwarded request
            self.release = threading.Event()

    def _listen(self) -> None:
        self._httpd = _ProxyServer(("127.0.0.1", self.port), _ProxyHandler)
        self._httpd.proxy = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def decide(self, path: str, raw: bytes) -> tuple[str, Any]:
        body = json.loads(raw or b"{}")
        with self._lock:
            self.received.append((time.monotonic(), path, body))
            if self.down:
                return ("drop", None) if self.down_mode == "refuse" else ("hang", self.release)
            fault = self.faults.get(len(self.received))
            if fault is not None:
                status, headers = fault
                message = {"error": {"message": f"injected {status}", "type": "server_error"}}
                return "fault", (status, headers, json.dumps(message).encode())
            if self.down_after is not None and len(self.forwarded) >= self.down_after:
                self.down = True
                if self.down_mode == "refuse":
                    self._closing = threading.Thread(target=self._close_listener, daemon=True)
                    self._closing.start()
                    return "drop", None
                return "hang", self.release
            entry = {"path": path, "body": body, "status": None}
            self.forwarded.append(entry)
            return "forward", entry

    def forward(self, path: str, raw: bytes, entry: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        response = self._client.post(f"{self.upstream}{path}", content=raw,
                                     headers={"Content-Type": "application/json"})
        entry["status"] = response.status_code
        return response.status_code, {}, response.content

    def come_back(self) -> None:
        """Answer again (the same port), forgetting the script and the counts."""
        self.release.set()  # hung handlers close their connections unanswered
        if self._closing is not None:
            self._closing.join(timeout=30)
            self._closing = None
        self.reset()
        if self._httpd is None:
            self._listen()

    def close(self) -> None:
        self.release.set()
        self._close_listener()
        self._client.close()


# -- a real llama-cpp-python server, once per module ------------------------------------------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory, models_dir):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extra is not installed")
    from tamis.models.bundled import smollm2_gguf_path

    port = free_port()
    # one thread: llama.cpp's spinning worker threads collapse throughput on busy shared cores
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
           "--port", str(port), "--logits_all", "True", "--n_threads", "1", "--n_ctx", "2048"]
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:  # a file, not a pipe: the load log would fill a pipe and block
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # generous: a loaded 2-core CI machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("llama_cpp.server did not answer /v1/models within 300 s")
            time.sleep(0.2)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def proxy(llama_server):
    p = FaultProxy(llama_server)
    yield p
    p.close()


@pytest.fixture()
def fresh_proxy(proxy):
    proxy.come_back()
    yield proxy
    proxy.come_back()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "chat.jsonl"
    path.write_text("".join(json.dumps({"id": f"e{i}", "messages": [{"role": "user", "content": q},
                                                                    {"role": "assistant", "content": a}]}) + "\n"
                            for i, (q, a) in enumerate(QUESTIONS)))
    return path


def spec(url: str, **opts: str) -> str:
    settings = {"base_url": url, "tokenizer": "smollm2", "concurrency": "2", "backoff": "0.05",
                "max_retries": "3", "timeout": "120", **opts}
    return "openai:smollm2?" + "&".join(f"{k}={v}" for k, v in settings.items())


def score(data: Path, model: str, ws: Path, out: Path) -> Any:
    return runner.invoke(app, ["score", "confidence", str(data), "--model", model, *SCORE_OPTS,
                               "--out", str(out), "-w", str(ws)])


def outputs(out: Path) -> dict[str, Any]:
    read = lambda name: [json.loads(line) for line in (out / name).read_text().splitlines()]
    return {"signals": read_signals(out).rows(), "samples": read("samples.jsonl"),
            "manifest": json.loads((out / "manifest.json").read_text())}


def is_unconditional(request: dict[str, Any]) -> bool:
    """IFD's PPL(y): echo of BOS + response, which llama-cpp's server cannot score (first logprob is
    null), so it fails by design on every run and is never cached; left out of the comparisons."""
    return request["path"] == ECHO and "<|im_start|>assistant" not in request["body"]["prompt"]


def useful(forwarded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in forwarded if r["status"] == 200 and not is_unconditional(r)]


@pytest.fixture(scope="module")
def reference(proxy, data_file, tmp_path_factory) -> dict[str, Any]:
    """A fault-free run through the proxy (fresh workspace): the outputs every faulty run must match."""
    proxy.come_back()
    root = tmp_path_factory.mktemp("reference")
    res = score(data_file, spec(proxy.url), root / "ws", root / "out")
    assert res.exit_code == 0, res.output
    ref = outputs(root / "out")
    ref["requests"] = [canonical(r["body"]) for r in useful(proxy.forwarded)]
    assert len(set(ref["requests"])) == len(ref["requests"]), "every request of a run is distinct"
    assert ref["manifest"]["counts"].get("http_retries", 0) == 0
    ref["chat_units"] = Counter(canonical(r["body"]["messages"]) for r in proxy.forwarded if r["path"] == CHAT)
    assert sum(ref["chat_units"].values()) == N_CHAT
    return ref


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative: the server's numbers do not depend on what it served before
    (observed bit-identical), but a last-digit difference would not be a resume bug."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def assert_same_outputs(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["samples"] == want["samples"]  # the sampled texts, exactly
    assert same(got["signals"], want["signals"]), (got["signals"], want["signals"])


# -- A: 500s and 429s mid-run are retried ----------------------------------------------------------
@pytest.mark.slow
def test_500_and_429_mid_run_are_retried(fresh_proxy, reference, data_file, tmp_path, caplog):
    proxy = fresh_proxy
    # attempt numbers: 12 chat requests + 4 faults come first, so attempt 17 is the first echo read
    proxy.faults = {2: (500, {}), 4: (503, {}), 5: (502, {}), 9: (429, {"Retry-After": "1"}), 17: (500, {})}
    with caplog.at_level(logging.WARNING, logger="tamis.models.openai_http"):
        res = score(data_file, spec(proxy.url), tmp_path / "ws", tmp_path / "out")
    assert res.exit_code == 0, res.output
    got = outputs(tmp_path / "out")
    assert_same_outputs(got, reference)
    # the server saw exactly the fault-free run's requests, once each: a retry resends the same request
    assert sorted(canonical(r["body"]) for r in useful(proxy.forwarded)) == sorted(reference["requests"])
    counts = got["manifest"]["counts"]
    assert counts["http_retries"] == 5
    assert counts["http_retried_5xx"] == 4 and counts["http_retried_429"] == 1
    assert proxy.received[16][1] == ECHO  # a fault hit the log-probability reads too
    assert counts["http_requests"] == len(proxy.received)
    assert "http_failed" not in counts
    retried = [r.getMessage() for r in caplog.records if r.name == "tamis.models.openai_http"]
    assert len(retried) == 5 and any("HTTP 429: injected 429" in m for m in retried)
    assert all(proxy.url in m for m in retried)
    # Retry-After: 1 was honoured: the request answered 429 came back at least a second later
    t429, _, body429 = proxy.received[8]
    again = next(t for t, _, body in proxy.received[9:] if body == body429)
    assert again - t429 >= 0.9


# -- B: the server goes away mid-run; the rerun resumes from the cache -------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode, cut", [
    ("refuse", N_CHAT - 3),  # gone half-way through the reflections (one chunk of 6 requests)
    ("hang", N_CHAT + 2),  # stops answering after 2 of the 3 echo reads (one chunk)
])
def test_server_lost_mid_run_then_resumed(mode, cut, fresh_proxy, reference, data_file, tmp_path):
    proxy = fresh_proxy
    # refused: retries end at once; hung: each attempt waits out the client timeout (generous, so
    # answered requests never time out on a loaded machine)
    timeout = "120" if mode == "refuse" else "20"
    model = spec(proxy.url, max_retries="2" if mode == "refuse" else "1", timeout=timeout)
    ws, out = tmp_path / "ws", tmp_path / "out"
    proxy.down_mode = mode
    proxy.down_after = cut

    res = score(data_file, model, ws, out)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "error:" in res.output
    assert proxy.url in res.output
    assert ("is the server running" if mode == "refuse" else f"no answer within {timeout} s") in res.output
    assert not (out / "signals.parquet").exists()  # no half-written outputs
    first = useful(proxy.forwarded)
    assert len(proxy.forwarded) == cut and len(first) == cut

    # everything the first run finished is in the cache: each chat prompt whose requests all went
    # through (k samples take k requests) and each echo read; the chunk cut short included (only
    # whole chunks used to be committed: its finished requests were lost and sent again)
    units = Counter(canonical(r["body"]["messages"]) for r in first if r["path"] == CHAT)
    complete = {u for u, n in units.items() if n == reference["chat_units"][u]}
    echoed = {canonical(r["body"]) for r in first if r["path"] == ECHO}
    done = echoed | {canonical(r["body"]) for r in first if r["path"] == CHAT
                     and canonical(r["body"]["messages"]) in complete}
    cache = Workspace(ws).cache
    committed = len(cache)
    cache.close()
    assert committed == len(complete) + len(echoed)

    proxy.come_back()
    res = score(data_file, model, ws, out)
    assert res.exit_code == 0, res.output
    again = [canonical(r["body"]) for r in useful(proxy.forwarded)]
    assert not done & set(again), "the rerun sent requests the first run had finished"
    assert done | set(again) == set(reference["requests"])
    got = outputs(out)
    counts, ref_counts = got["manifest"]["counts"], reference["manifest"]["counts"]
    assert counts["cache_hits"] == committed
    assert counts["cache_misses"] == ref_counts["cache_misses"] - committed
    assert_same_outputs(got, reference)


# -- bad input and a server that answers non-text (a stub, no model) -------------------------------
_TEXT = object()  # the stub's default: answer with text


class _Stub(JsonHandler):
    """Chat completions: a templated sample, a reflection letter or a judge digit (``content``
    overrides the text); /completions without log-probabilities (like OpenAI's chat models)."""

    def do_POST(self) -> None:
        body = self.body()
        srv = self.server
        srv.requests.append((self.path, body))  # type: ignore[attr-defined]
        if self.path == ECHO:
            answer = {"choices": [{"index": 0, "text": "x", "logprobs": None}]}
        else:
            prompt = body["messages"][-1]["content"]
            text = ("explanation: easy. answer: A" if "Proposed answer" in prompt else
                    "4" if "Rate the quality" in prompt else "explanation: hmm. answer: Paris")
            content = text if srv.content is _TEXT else srv.content  # type: ignore[attr-defined]
            answer = {"choices": [{"index": i, "message": {"role": "assistant", "content": content}}
                                  for i in range(body.get("n", 1))]}
        self.reply(200, answer)


@pytest.fixture()
def stub():
    yield from serve(_Stub, requests=[], content=_TEXT)


def stub_score(stub: Any, data: Path, tmp_path: Path, baselines: bool = False) -> Any:
    model = f"openai:stub?base_url={stub.url}&backoff=0.01&max_retries=0&timeout=60"
    if baselines:  # scoring given responses needs the chat template
        model += "&tokenizer=smollm2"
    return runner.invoke(app, ["score", "confidence", str(data), "--model", model, "--k", "2", "--similarity",
                               "token_f1", "--reflection", "text", "--baselines" if baselines else "--no-baselines",
                               "--out", str(tmp_path / "out"), "-w", str(tmp_path / "ws")])


def chat_row(id_: str, prompt: Any, response: Any) -> str:
    return json.dumps({"id": id_, "messages": [{"role": "user", "content": prompt},
                                               {"role": "assistant", "content": response}]}) + "\n"


@pytest.mark.parametrize("baselines", [False, pytest.param(True, marks=pytest.mark.slow)])  # slow: tokenizer
def test_bad_input_is_quarantined_or_noted(stub, tmp_path, baselines):
    data = tmp_path / "bad.jsonl"
    huge = "word " * 200_000  # 1 MB
    data.write_text(
        chat_row("ok", "What is the capital of France?", "Paris")
        + chat_row("long_response", "Say something long.", huge)
        + chat_row("long_prompt", huge, "Paris")
        + chat_row("empty", "Say nothing.", "")
        + chat_row("blank", "Say nothing.", "   \n")
        + chat_row("parts", "Hi?", [{"type": "text", "text": "Hello"}])
        + chat_row("dict", "Hi?", {"text": "Hello"})
        + chat_row("number", "2 + 2?", 4)
        + chat_row("null", "Hi?", None)
        + chat_row("prompt_list", ["What", "is", "this?"], "A list.")
    )
    res = stub_score(stub, data, tmp_path, baselines)
    assert res.exit_code == 0, res.output
    signals = {s["id"]: s for s in read_signals(tmp_path / "out").rows()}
    assert set(signals) == {"ok", "long_response", "long_prompt"}
    assert signals["ok"]["confidence"] == pytest.approx(1.0)
    assert "response truncated to 2000 characters" in signals["long_response"]["notes"]
    assert "prompt truncated to 4000 characters" in signals["long_prompt"]["notes"]
    assert all(isinstance(s["confidence"], float) for s in signals.values())
    # nothing huge was sent to generate from: prompts and answers are clipped first (the judge's too)
    assert max(len(json.dumps(body)) for path, body in stub.requests if path == CHAT) < 8000
    if baselines:  # this server has no log-probabilities: the judge's digit is generated and parsed
        assert all(s["judge"] == 4.0 for s in signals.values())
        assert all(s["response_tokens"] > 0 for s in signals.values())
    rows = map(json.loads, (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines())
    quarantined = {r["raw"]["id"]: (r["field"], r["reason"]) for r in rows}
    answer = "messages[1].content"
    assert quarantined == {
        "empty": (answer, "empty text"), "blank": (answer, "empty text"),
        "parts": (answer, "expected a string, got list"), "dict": (answer, "expected a string, got dict"),
        "number": (answer, "expected a string, got int"), "null": (answer, "missing content"),
        "prompt_list": ("messages[0].content", "expected a string, got list"),
    }
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["rejected"] == 7 and manifest["counts"]["scored"] == 3


@pytest.mark.parametrize("content, ok", [
    ("", True),  # an empty sample is an answer (it matches nothing), not an error
    (None, True),  # no content (a refusal or tool call): an empty answer
    ([{"type": "text", "text": "explanation: x. "}, {"type": "text", "text": "answer: Paris"}], True),
    (42, False), ({"text": "Paris"}, False), ([{"type": "image_url", "image_url": {"url": "x"}}], False),
])
def test_server_answering_non_text(stub, tmp_path, content, ok):
    data = tmp_path / "d.jsonl"
    data.write_text(chat_row("ok", "What is the capital of France?", "Paris"))
    stub.content = content
    res = stub_score(stub, data, tmp_path)
    if ok:
        assert res.exit_code == 0, res.output
        [row] = read_signals(tmp_path / "out").rows()
        assert isinstance(row["confidence"], float)
        assert row["r_mean"] == (1.0 if isinstance(content, list) else 0.0)
    else:
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert "non-text content" in res.output and stub.url in res.output


# -- a batch stops at its first failure and keeps what finished (stub, no model) --------------------
class _Flaky(JsonHandler):
    """Echoes the prompt back; 400 for prompts containing 'reject', 503 when the server is ``busy``."""

    def do_POST(self) -> None:
        prompt = self.body()["messages"][-1]["content"]
        self.server.seen.append(prompt)  # type: ignore[attr-defined]
        status = 503 if self.server.busy else 400 if "reject" in prompt else 200  # type: ignore[attr-defined]
        answer = {"choices": [{"index": 0, "message": {"content": f"re: {prompt}"}}]} if status == 200 else \
            {"error": {"message": "overloaded" if status == 503 else "bad request"}}
        self.reply(status, answer)


@pytest.fixture()
def flaky():
    yield from serve(_Flaky, seen=[], busy=False)


def test_failed_batch_keeps_finished_requests_and_sends_no_more(flaky, tmp_path):
    from tamis.models.base import GenerationParams, ModelSpec
    from tamis.models.cached import CachedLLM
    from tamis.models.openai_http import OpenAILLM, RequestRejected
    from tamis.store import CallCache

    def llm(concurrency: int) -> CachedLLM:
        spec = ModelSpec.parse(f"openai:m?base_url={flaky.url}&concurrency={concurrency}&backoff=0.02&max_retries=2")
        return CachedLLM(OpenAILLM(spec), CallCache(tmp_path / "calls.sqlite"))

    # the cache computes longest first: "a...", "b...", then the rejected one, then "c...", "d..."
    texts = ["a" * 50, "b" * 40, "reject" * 5, "c" * 20, "d" * 10]
    prompts = [[{"role": "user", "content": t}] for t in texts]
    first = llm(1)
    with pytest.raises(RequestRejected, match="bad request"):
        first.generate(prompts, GenerationParams())
    assert flaky.seen == texts[:3]  # nothing sent after the failure
    assert len(first.cache) == 2  # what finished before it is committed

    flaky.seen.clear()
    texts[2] = "fixed" * 6  # the user fixes the bad row; the rerun sends only what is missing
    prompts[2] = [{"role": "user", "content": texts[2]}]
    again = llm(1).generate(prompts, GenerationParams())
    assert again == [[f"re: {t}"] for t in texts]
    assert flaky.seen == texts[2:]

    # concurrent: once one request has used up its retries the others stop retrying and the rest
    # of the batch is never sent (it used to try every request max_retries + 1 times)
    flaky.seen.clear()
    flaky.busy = True
    many = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    with pytest.raises(Exception, match=r"failed after 3 attempt\(s\): HTTP 503: overloaded") as info:
        llm(4).generate(many, GenerationParams())
    assert len(flaky.seen) <= 4 * 3 < 12 * 3
    assert info.value.partial_results == {}  # type: ignore[attr-defined]
