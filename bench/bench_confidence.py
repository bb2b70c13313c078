"""BSDetector scoring throughput: tamis's batched path vs a naive one, and vs the generation limit.

Same backend (uncached), same examples (dolly_alpagasus_3k instructions and responses; built-in QA
when absent), same k and max new tokens:
- tamis: ``bsdetector_confidence``: one generate call for all examples (n=k per prompt: each prompt
  evaluated once, all prompts' samples decoded together), reflections read from next-token
  log-probabilities (no generation), similarity by token F1.
- naive: per example, one generate call per sample (n=1) and the two reflection questions answered
  by generation (text parsed), one call each.
- limit: the raw batched generation of the same samples alone (``generate(prompts, n=k)``), i.e.
  what scoring would cost if reflections and similarities were free.

    python bench/bench_confidence.py [--n 100] [--naive-n 20] [--k 5] [--max-tokens 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tamis.models.base import GenerationParams
from tamis.records import Message, chat_example
from tamis.signals.confidence import (REFLECTION_PROMPTS, TEXT_INSTRUCTION, ConfidenceConfig, bsdetector_confidence,
                                      parse_letter)

DOLLY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl"
BUILTIN = [("What is the capital of France?", "Paris."), ("How many legs does a spider have?", "Eight.")]


def load(n: int):
    rows = []
    if DOLLY.is_file():
        with open(DOLLY, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                if not r.get("input"):
                    rows.append((r["instruction"], r["output"][:600]))
                if len(rows) == n:
                    break
    rows = rows or (BUILTIN * n)[:n]
    return [chat_example([Message("user", q), Message("assistant", a)], id=f"b{i}") for i, (q, a) in enumerate(rows)]


def naive(examples, llm, cfg: ConfidenceConfig) -> None:
    for ex in examples:
        q, a = ex.prompt_text, ex.response
        prompt = [{"role": "user", "content": cfg.sample_prompt.format(question=q)}]
        for i in range(cfg.k):
            llm.generate([prompt], GenerationParams(n=1, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=i))
        for tpl in REFLECTION_PROMPTS:
            text = tpl.format(question=q, answer=a, instruction=TEXT_INSTRUCTION)
            [[out]] = llm.generate([[{"role": "user", "content": text}]], GenerationParams(max_tokens=cfg.max_tokens))
            parse_letter(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--naive-n", type=int, default=20, help="examples for the naive baseline (it is slow)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from tamis.models import load_llm
    from tamis.store import Workspace

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    llm = load_llm("transformers:smollm2", Workspace(), cache=False)
    cfg = ConfidenceConfig(k=args.k, max_tokens=args.max_tokens, similarity="token_f1")
    examples = load(args.n)
    prompts = [[{"role": "user", "content": cfg.sample_prompt.format(question=ex.prompt_text)}] for ex in examples]
    llm.generate(prompts[:1], GenerationParams(n=1, temperature=1.0, max_tokens=4))  # warm-up

    t0 = time.perf_counter()
    samples = llm.generate(prompts, GenerationParams(n=cfg.k, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                                     seed=cfg.seed))
    limit_s = time.perf_counter() - t0
    tokens = sum(len(llm.tokenizer(s, add_special_tokens=False)["input_ids"]) for per in samples for s in per)

    t0 = time.perf_counter()
    bsdetector_confidence(examples, llm, cfg)
    tamis_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    naive(examples[: args.naive_n], llm, cfg)
    naive_s = time.perf_counter() - t0

    rate = lambda n, s: n / s  # noqa: E731
    r_tamis, r_limit, r_naive = rate(len(examples), tamis_s), rate(len(examples), limit_s), rate(args.naive_n, naive_s)
    print(f"examples: {len(examples)} (naive: {args.naive_n}), k={cfg.k}, max_tokens={cfg.max_tokens}, "
          f"{tokens} sampled tokens ({tokens / limit_s:.1f} tok/s in the limit run), device {llm.device}")
    print(f"tamis : {tamis_s:8.1f} s  {r_tamis:.3f} examples/s")
    print(f"limit : {limit_s:8.1f} s  {r_limit:.3f} examples/s (generation only)")
    print(f"naive : {naive_s:8.1f} s  {r_naive:.3f} examples/s")
    print(f"tamis vs naive: {r_tamis / r_naive:.2f}x faster (goal >= 4x)")
    print(f"tamis vs limit: {tamis_s / limit_s:.2f}x the generation-only time (goal <= 1.5x)")


if __name__ == "__main__":
    main()
