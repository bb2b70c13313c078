"""One prepared GPU check: tamis's model code paths on CUDA, with throughput and peak memory.

For a machine with one H100/H200, PyTorch and transformers, no network and no weights: the script
builds a randomly initialised Llama-style model (1B class: TinyLlama-1.1B's shape) and a byte-level
tokenizer with a chat template from nothing, saves them to a temporary folder and runs, through
tamis's own code:

1. likelihood: batched log p(response | prompt) via the transformers backend (``load_llm``), bf16;
2. sampling: batched multi-sample generation through the same backend;
3. influence featurisation: hooked per-example gradients (Linear layers) projected with CountSketch
   (``tamis.signals.influence``), and K-FAC/EK-FAC factors on a few examples;
4. SFT: a few LoRA steps through ``tamis.train.sft.train_sft`` (TRL + PEFT; skipped, with the reason,
   when they are not installed);
5. embeddings: a randomly initialised encoder of all-MiniLM-L6-v2's shape through tamis's
   sentence-transformers embedder (``load_embedder``), as ``profile`` and the diversity signals use it;
6. the Ray engine with one GPU worker: ``profile``'s likelihood through ``--engine ray`` (skipped, with
   the reason, when Ray is not installed);
7. agreement: the tiny model's log-likelihoods on CPU (fp32) and CUDA (fp32) agree.

Each check asserts that its tensors live on the device, prints tokens/s or examples/s and the peak
memory, and the figures go to ``$OUT/gpu_check.json`` when ``$OUT`` is set (else beside nothing).
A check that fails is reported and the others still run; the exit status is 1 if any failed.

    python bench/gpu_check.py                 # on the GPU machine (<= 8 min on one H100/H200)
    python bench/gpu_check.py --cpu --small   # the same paths with a tiny model on CPU (tests, CI)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # runs from a bare copy of the working tree too
os.environ.setdefault("TAMIS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# TinyLlama-1.1B's shape (a real architecture; random weights measure speed honestly)
FULL = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
            num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=512, max_position_embeddings=512)
# examples per check and their lengths (characters = byte tokens)
SIZES = {"full": dict(n_score=512, n_sample=64, n_grad=64, n_kfac=16, n_sft=64, chars=(200, 500), sft_steps=10,
                      max_tokens=64, n_samples=4, n_embed=4096, n_ray=256),
         "small": dict(n_score=16, n_sample=4, n_grad=8, n_kfac=4, n_sft=16, chars=(20, 60), sft_steps=2,
                       max_tokens=8, n_samples=2, n_embed=32, n_ray=16)}
# all-MiniLM-L6-v2's shape (the bundled embedder), with the byte-level vocabulary
MINILM = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12,
              max_position_embeddings=512)


def build_tokenizer(vocab_size: int | None = None) -> Any:
    """A byte-level tokenizer (256 byte tokens + ChatML specials), no download; padded with plain added
    tokens (``<t300>``) up to ``vocab_size`` so that every id a random model samples decodes, and
    re-encodes, to one token (the sampling check counts tokens that way)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHAT_TEMPLATE
    if vocab_size and vocab_size > len(fast):
        fast.add_tokens([f"<t{i}>" for i in range(len(fast), vocab_size)])
    return fast


def build_model_dir(folder: Path, shape: dict[str, int], dtype: torch.dtype) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(shape["vocab_size"])
    torch.manual_seed(0)
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def synthetic_examples(n: int, chars: tuple[int, int], seed: int = 0) -> list[Any]:
    from tamis.records import chat_example

    rng = random.Random(seed)
    words = "the data model token batch layer answer question why how which score signal train value".split()

    def text(k: int) -> str:
        out = ""
        while len(out) < k:
            out += rng.choice(words) + " "
        return out[:k].strip()

    lo, hi = chars
    return [chat_example([{"role": "user", "content": text(rng.randint(lo, hi) // 2)},
                          {"role": "assistant", "content": text(rng.randint(lo, hi))}], id=f"ex{i}")
            for i in range(n)]


class Check:
    def __init__(self, device: torch.device):
        self.device = device
        self.results: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Any, *args: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            figures = fn(*args) or {}
            status = figures.pop("status", "ok")
        except Exception as exc:  # report and go on: one prepared run should say as much as it can
            traceback.print_exc()
            figures, status = {"error": f"{type(exc).__name__}: {exc}"}, "failed"
        figures["seconds"] = round(time.perf_counter() - t0, 2)
        if self.device.type == "cuda":
            figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self.results[name] = {"status": status, **figures}
        shown = ", ".join(f"{k}={v}" for k, v in figures.items())
        print(f"[{status}] {name}: {shown}", flush=True)


def on_device(module: torch.nn.Module, device: torch.device) -> None:
    where = {p.device.type for p in module.parameters()}
    assert where == {device.type}, f"parameters on {where}, expected {device.type}"


def check_likelihood(model_dir: Path, device: torch.device, size: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The backend's defaults, then (on CUDA) bigger batches: what the defaults leave on the table."""
    from tamis.models import load_llm

    llm = load_llm(f"transformers:{model_dir}?device={device.type}&dtype={dtype}&batch_size=32", cache=False)
    on_device(llm.model, device)
    examples = synthetic_examples(size["n_score"], size["chars"])
    prompts, responses = [e.prompt_messages for e in examples], [e.response for e in examples]
    tokens = sum(len(c) + len(r) for c, r in (llm.scoring_ids(p, y) for p, y in zip(prompts, responses)))
    llm.logprobs(prompts[:4], responses[:4])  # warm-up
    figures: dict[str, Any] = {}
    bigger = [(128, 131072)] if device.type == "cuda" else []
    for batch, batch_tokens in [(llm.batch_size, llm.max_batch_tokens), *bigger]:
        llm.batch_size, llm.max_batch_tokens = batch, batch_tokens
        _sync(device)
        t0 = time.perf_counter()
        out = llm.logprobs(prompts, responses)
        _sync(device)
        t = time.perf_counter() - t0
        assert all(r.n_tokens > 0 and r.total < 0 for r in out)
        if not figures:
            figures = {"examples": len(out), "tokens": tokens, "batch": f"{batch} seqs/{batch_tokens} tokens",
                       "tokens_per_s": round(tokens / t), "examples_per_s": round(len(out) / t, 1),
                       "model_flop_utilisation": _mfu(llm.model, tokens / t, device)}
        else:
            figures[f"tokens_per_s_batch{batch}"] = round(tokens / t)
            figures[f"mfu_batch{batch}"] = _mfu(llm.model, tokens / t, device)
    return figures


def check_sampling(model_dir: Path, device: torch.device, size: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Sampled rows decoded together: the CPU default (32), this device's default, and on CUDA 1024; each
    on two batches' worth of prompts."""
    from tamis.models import load_llm
    from tamis.models.base import GenerationParams

    llm = load_llm(f"transformers:{model_dir}?device={device.type}&dtype={dtype}", cache=False)
    on_device(llm.model, device)
    n = size["n_samples"]
    params = GenerationParams(n=n, temperature=1.0, max_tokens=size["max_tokens"], seed=0)
    default = llm.sample_rows
    figures: dict[str, Any] = {"sample_rows": default}
    for rows in sorted({32, default, *([1024] if device.type == "cuda" else [])}):
        llm.sample_rows = rows
        examples = synthetic_examples(max(1, 2 * rows // n), size["chars"], seed=1)
        _sync(device)
        t0 = time.perf_counter()
        out = llm.generate([e.prompt_messages for e in examples], params)
        _sync(device)
        t = time.perf_counter() - t0
        generated = sum(len(llm._encode(s)) for samples in out for s in samples)
        assert len(out) == len(examples) and all(len(s) == n for s in out)
        figures[f"tokens_per_s_rows{rows}"] = round(generated / t)
        if rows == default:
            figures.update(prompts=len(out), samples=len(out) * n, generated_tokens=generated,
                           tokens_per_s=round(generated / t))
    return figures


def check_influence(model_dir: Path, device: torch.device, size: dict[str, Any], dtype: str) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tamis.signals.influence.config import GradientConfig
    from tamis.signals.influence.features import featurise
    from tamis.signals.influence.gradients import TrackedModel, prepare_model
    from tamis.signals.influence.kfac import fit_factors
    from tamis.signals.influence.projection import CountSketch

    # every 11th layer's MLP down-projection: two layers of a 22-layer model (K-FAC eigendecompositions
    # of 5632 x 5632 run on the CPU, as in tamis)
    config = GradientConfig(params="linear", linear_modules=("mlp.down_proj",), layer_stride=11, batch_size=8,
                            max_length=512)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    tracked = TrackedModel(prepare_model(model, config).to(device), AutoTokenizer.from_pretrained(model_dir), config)
    on_device(tracked.model, device)
    encoded = tracked.encode(synthetic_examples(size["n_grad"], size["chars"], seed=2))
    projection = CountSketch(tracked.shapes, 8192 if device.type == "cuda" else 64, seed=0)
    featurise(tracked, encoded[:2], projection, None)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    features, computed = featurise(tracked, encoded, projection, None)
    _sync(device)
    t = time.perf_counter() - t0
    t0 = time.perf_counter()
    featurise(tracked, encoded, projection, None)  # again, every shape seen once
    _sync(device)
    t_warm = time.perf_counter() - t0
    if device.type == "cuda":  # where one pass's time goes, for the record
        try:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                featurise(tracked, encoded[:16], projection, None)
                _sync(device)
            print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=40))
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8, max_name_column_width=40))
        except Exception as exc:  # the profile is a note, not a check
            print(f"(no profile: {type(exc).__name__}: {exc})")
    assert features.shape == (len(encoded), projection.out_dim) and computed == len(encoded)
    capture, _ = tracked.forward_backward(encoded[:8])
    grads = tracked.per_example_grads(capture)
    sketch_ms = {}
    for name, fn in (("index_add", projection.index_add_sketch), ("csr", projection.sparse_sketch)):
        fn(grads)
        _sync(device)
        t1 = time.perf_counter()
        for _ in range(3):
            fn(grads)
        _sync(device)
        sketch_ms[name] = round((time.perf_counter() - t1) / 3 * 1000, 1)
    _sync(device)
    t1 = time.perf_counter()
    capture, _ = tracked.forward_backward(encoded[:8])
    grads = tracked.per_example_grads(capture)
    _sync(device)
    grads_ms = round((time.perf_counter() - t1) * 1000, 1)
    t1 = time.perf_counter()
    factors = fit_factors(tracked, encoded[: size["n_kfac"]], "ekfac")
    t_kfac = time.perf_counter() - t1
    tokens = sum(len(e.ids) for e in encoded)
    return {"examples": len(encoded), "tracked_params": tracked.n_params, "examples_per_s": round(len(encoded) / t, 1),
            "examples_per_s_second_pass": round(len(encoded) / t_warm, 1),
            "tokens_per_s": round(tokens / t), "ekfac_examples": size["n_kfac"], "ekfac_seconds": round(t_kfac, 2),
            "ekfac_layers": len(factors.layers), "batch8_grads_ms": grads_ms,
            "batch8_sketch_index_add_ms": sketch_ms["index_add"], "batch8_sketch_csr_ms": sketch_ms["csr"]}


def check_sft(model_dir: Path, device: torch.device, size: dict[str, Any], work: Path) -> dict[str, Any]:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        return {"status": "skipped", "reason": f"{exc.name} is not installed (pip install 'tamis[train]')"}
    from tamis.store import Workspace
    from tamis.train.settings import SFTSettings
    from tamis.train.sft import train_sft

    examples = synthetic_examples(size["n_sft"], size["chars"], seed=3)
    settings = SFTSettings(model=f"transformers:{model_dir}", max_steps=size["sft_steps"], batch_size=8,
                           eval_fraction=0.0, max_length=512, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    t0 = time.perf_counter()
    result = train_sft(examples, settings, work / "sft", Workspace(work / "ws"))
    t = time.perf_counter() - t0
    if device.type == "cuda":
        assert torch.cuda.max_memory_allocated() > 0, "SFT did not touch the GPU"
    steps = size["sft_steps"]
    return {"steps": steps, "steps_per_s": round(steps / t, 2), "examples_per_s": round(steps * 8 / t, 1),
            "train_loss": result.metrics.get("train_loss")}


def check_embeddings(device: torch.device, size: dict[str, Any], work: Path) -> dict[str, Any]:
    from transformers import BertConfig, BertModel

    from tamis.models import load_embedder

    folder = work / "encoder"
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    BertModel(BertConfig(**MINILM, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    embedder = load_embedder(f"sentence-transformers:{folder}?device={device.type}&batch_size=256&max_seq_length=256",
                             cache=False)
    on_device(embedder.model, device)
    texts = [e.response for e in synthetic_examples(size["n_embed"], size["chars"], seed=5)]
    embedder.embed(texts[:256])  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    vectors = embedder.embed(texts)
    _sync(device)
    t = time.perf_counter() - t0
    assert vectors.shape == (len(texts), MINILM["hidden_size"])
    tokens = sum(min(len(x) + 2, 256) for x in texts)  # byte tokens plus the two specials, truncated
    return {"examples": len(texts), "tokens": tokens, "tokens_per_s": round(tokens / t),
            "examples_per_s": round(len(texts) / t, 1)}


def check_ray(model_dir: Path, device: torch.device, size: dict[str, Any], dtype: str, work: Path) -> dict[str, Any]:
    try:
        import ray
    except ImportError:
        return {"status": "skipped", "reason": "ray is not installed (pip install 'tamis[ray]')"}
    from tamis.engine import EngineConfig
    from tamis.io import write_dataset
    from tamis.pipeline.profile import ProfileConfig, run_profile
    from tamis.store import Workspace

    data = work / "ray.jsonl"
    write_dataset(synthetic_examples(size["n_ray"], size["chars"], seed=6), data)
    gpus = 1.0 if device.type == "cuda" else 0.0
    ray.init(num_cpus=2, num_gpus=int(gpus), include_dashboard=False, log_to_driver=False)
    try:
        config = ProfileConfig(data=str(data), out=str(work / "ray-profile"), embed=False,
                               model=f"transformers:{model_dir}?device={device.type}&dtype={dtype}&batch_size=32",
                               engine=EngineConfig(engine="ray", workers=1, gpus_per_worker=gpus))
        t0 = time.perf_counter()
        result = run_profile(config, Workspace(work / "ws-ray"))
        t = time.perf_counter() - t0
    finally:
        ray.shutdown()
    assert result.counts.get("likelihood_blocks_computed", 1) > 0 and len(result.signals) == size["n_ray"]
    return {"examples": size["n_ray"], "examples_per_s": round(size["n_ray"] / t, 1), "workers": 1,
            "gpus_per_worker": gpus, "note": "includes starting the actor and loading the model"}


def check_agreement(device: torch.device, work: Path) -> dict[str, Any]:
    """The tiny model's log-likelihoods on CPU and on the device (both fp32) agree."""
    from tamis.models import load_llm

    folder = build_model_dir(work / "tiny", SMALL, torch.float32)
    examples = synthetic_examples(8, (20, 60), seed=4)
    prompts, responses = [e.prompt_messages for e in examples], [e.response for e in examples]
    cpu = load_llm(f"transformers:{folder}?device=cpu&dtype=float32", cache=False).logprobs(prompts, responses)
    dev = load_llm(f"transformers:{folder}?device={device.type}&dtype=float32", cache=False).logprobs(prompts, responses)
    worst = max(abs(a.total - b.total) for a, b in zip(cpu, dev))
    assert worst < 1e-2, f"CPU and {device.type} log-likelihoods differ by {worst}"
    return {"max_abs_diff": float(f"{worst:.2e}")}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, SXM


def _mfu(model: torch.nn.Module, tokens_per_s: float, device: torch.device) -> float | None:
    """Forward FLOPs (2 x parameters per token) against the chip's dense bf16 peak."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        return None
    params = sum(p.numel() for p in model.parameters())
    return round(2 * params * tokens_per_s / (peak * 1e12), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (tests; no GPU needed)")
    ap.add_argument("--small", action="store_true", help="a tiny model and a few examples")
    ap.add_argument("--skip", default="", help="comma-separated checks to leave out")
    args = ap.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu (and --small) to check the code paths on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    dtype = "float32" if device.type == "cpu" else "bfloat16"
    size = SIZES["small" if args.small else "full"]
    shape = SMALL if args.small else FULL
    skip = set(filter(None, args.skip.split(",")))
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "dtype": dtype, "model": shape}
    print(f"gpu_check on {info['device']} (torch {torch.__version__}, {dtype}), model {shape}", flush=True)
    check = Check(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        model_dir = build_model_dir(work / "model", shape, getattr(torch, dtype))
        print(f"random-initialised model built in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, fn, fargs in (
            ("likelihood", check_likelihood, (model_dir, device, size, dtype)),
            ("sampling", check_sampling, (model_dir, device, size, dtype)),
            ("influence", check_influence, (model_dir, device, size, dtype)),
            ("sft", check_sft, (model_dir, device, size, work)),
            ("embeddings", check_embeddings, (device, size, work)),
            ("ray_engine", check_ray, (model_dir, device, size, dtype, work)),
            ("cpu_cuda_agreement", check_agreement, (device, work)),
        ):
            if name in skip or (name == "cpu_cuda_agreement" and device.type == "cpu"):
                continue
            check.run(name, fn, *fargs)
    report = {"info": info, "checks": check.results}
    print(f"{'check':<20}{'status':<9}{'tokens/s':>10}{'examples/s':>12}{'peak GiB':>10}{'seconds':>9}")
    for name, r in check.results.items():
        print(f"{name:<20}{r['status']:<9}{str(r.get('tokens_per_s', '')):>10}{str(r.get('examples_per_s', '')):>12}"
              f"{str(r.get('peak_memory_gib', '')):>10}{r['seconds']:>9}")
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["status"] == "failed" for r in check.results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
