"""Sampling throughput: the llama.cpp backend vs the transformers backend (the baseline).

Both run the bundled SmolLM2-135M-Instruct (llama.cpp: the Q4_1 GGUF as shipped; transformers: the
same weights dequantised to fp32 on CPU / bf16 on CUDA), uncached, in one process, on the same
prompts: 16 instructions from ../shared/data/dolly_alpagasus_3k (built-in prompts when absent),
5 samples each, up to 64 new tokens, temperature 1.0. New tokens are counted with one tokenizer
(the models share a vocabulary) so the two rates compare like for like.

    python bench/bench_sampling.py [--prompts 16] [--n 5] [--max-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tamis.models.base import GenerationParams, ModelSpec
from tamis.models.llamacpp import LlamaCppLLM

DOLLY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly_alpagasus_3k"
BUILTIN = [
    "Explain why the sky is blue.", "Give three tips for staying healthy.", "What is a haiku? Write one.",
    "Summarise the plot of Romeo and Juliet.", "How do I start running?", "What is the capital of France?",
    "Name five fruits that are red.", "Why do cats purr?", "Describe a good breakfast.",
    "What does a compiler do?", "Write a short thank-you note to a teacher.", "How do plants make food?",
    "What is the difference between weather and climate?", "Suggest a name for a bakery.",
    "How many legs does a spider have?", "Explain what a budget is to a child.",
]


def load_prompts(n: int) -> tuple[str, list[list[dict[str, str]]]]:
    """Instructions (with their input, if any) as single user turns."""
    files = sorted(DOLLY.glob("*.jsonl")) if DOLLY.is_dir() else []
    if not files:
        return "built-in prompts", [[{"role": "user", "content": p}] for p in BUILTIN[:n]]
    prompts = []
    with open(files[0], encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
            prompts.append([{"role": "user", "content": text}])
            if len(prompts) == n:
                break
    return str(files[0]), prompts


def run(llm: Any, prompts: list, params: GenerationParams, count) -> dict[str, float]:
    """Time one generate call over all prompts (after a short warm-up)."""
    llm.generate(prompts[:1], GenerationParams(n=1, temperature=1.0, max_tokens=4, seed=99))
    t0 = time.perf_counter()
    out = llm.generate(prompts, params)
    seconds = time.perf_counter() - t0
    samples = [s for per_prompt in out for s in per_prompt]
    tokens = sum(count(s) for s in samples)
    return {"seconds": seconds, "samples": len(samples), "tokens": tokens,
            "samples_s": len(samples) / seconds, "tokens_s": tokens / seconds}


def load_transformers(threads: int) -> Any:
    """The transformers backend, or None (with the reason) while it cannot be imported or loaded."""
    try:
        import torch

        from tamis.models.hf import TransformersLLM
        from tamis.store import Workspace
    except ImportError as err:
        print(f"transformers backend not available ({err}); only llama.cpp is measured")
        return None
    if not torch.cuda.is_available():
        torch.set_num_threads(threads)
    return TransformersLLM(ModelSpec.parse("transformers:smollm2"), Workspace())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=5, help="samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both (the CI machine has 2 cores)")
    ap.add_argument("--skip-transformers", action="store_true")
    args = ap.parse_args()

    source, prompts = load_prompts(args.prompts)
    params = GenerationParams(n=args.n, temperature=1.0, max_tokens=args.max_tokens, seed=0)
    print(f"data: {source} ({len(prompts)} prompts x {args.n} samples, <= {args.max_tokens} new tokens, T=1.0)")

    llama = LlamaCppLLM(ModelSpec.parse(f"llamacpp:smollm2?n_threads={args.threads}"))

    def count(text: str) -> int:
        return len(llama.sampler.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    results = {"llama.cpp": run(llama, prompts, params, count)}
    print(f"llama.cpp: {llama.identity}, {args.threads} threads")
    hf = None if args.skip_transformers else load_transformers(args.threads)
    if hf is not None:
        print(f"transformers: {hf.identity} on {getattr(hf, 'device', '?')}")
        results["transformers"] = run(hf, prompts, params, count)

    print(f"{'backend':<14}{'seconds':>10}{'samples':>9}{'new tokens':>12}{'samples/s':>11}{'tokens/s':>10}")
    for name, r in results.items():
        print(f"{name:<14}{r['seconds']:>10.2f}{r['samples']:>9}{r['tokens']:>12}{r['samples_s']:>11.2f}{r['tokens_s']:>10.1f}")
    if "transformers" in results:
        a, b = results["llama.cpp"], results["transformers"]
        print(f"ratio llama.cpp/transformers: samples/s x{a['samples_s'] / b['samples_s']:.2f}, "
              f"new tokens/s x{a['tokens_s'] / b['tokens_s']:.2f}")


if __name__ == "__main__":
    main()
