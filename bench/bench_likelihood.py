"""Log-likelihood scoring throughput: the batched transformers backend vs a one-at-a-time loop.

Same 200 examples from ../shared/data/dolly_alpagasus_3k (or the bundled demo set when absent),
same model (bundled SmolLM2-135M-Instruct, fp32 on CPU / bf16 on CUDA), uncached, in one process.

    python bench/bench_likelihood.py [--n 200] [--batch-size 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tamis.io import read_dataset
from tamis.models import load_llm
from tamis.pipeline.demo import demo_data_path
from tamis.store import Workspace

DOLLY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly_alpagasus_3k"


def load_examples(n: int):
    files = sorted(DOLLY.glob("*.jsonl")) if DOLLY.is_dir() else []
    source = files[0] if files else demo_data_path()
    examples = read_dataset(source, limit=n if files else None).examples[:n]
    return source, examples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-batch-tokens", type=int, default=1024, help="padded tokens per batch (the CPU default)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the CI machine has 2 cores)")
    ap.add_argument("--model", default="transformers:smollm2")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)

    source, examples = load_examples(args.n)
    llm = load_llm(f"{args.model}?batch_size={args.batch_size}&max_batch_tokens={args.max_batch_tokens}", Workspace(), cache=False)
    prompts = [ex.prompt_messages for ex in examples]
    responses = [ex.response or "" for ex in examples]
    n_tokens = sum(len(c) + len(r) for c, r in (llm.scoring_ids(p, y) for p, y in zip(prompts, responses)))
    print(f"data: {source} ({len(examples)} examples, {n_tokens} tokens incl. prompts)")
    print(f"model: {llm.identity} on {llm.device}, batch size {args.batch_size}, <= {args.max_batch_tokens} padded tokens/batch, threads {torch.get_num_threads()}")

    llm.logprobs(prompts[:2], responses[:2])  # warm-up
    t0 = time.perf_counter()
    batched = llm.logprobs(prompts, responses)
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    single = [llm.logprobs([p], [r])[0] for p, r in zip(prompts, responses)]
    t_single = time.perf_counter() - t0

    worst = max(abs(b.total - s.total) for b, s in zip(batched, single))
    print(f"{'mode':<22}{'seconds':>10}{'examples/s':>12}{'tokens/s':>12}")
    for name, t in (("batched", t_batched), ("one-at-a-time", t_single)):
        print(f"{name:<22}{t:>10.2f}{len(examples) / t:>12.2f}{n_tokens / t:>12.0f}")
    print(f"speed-up batched / one-at-a-time: {t_single / t_batched:.2f}x  "
          f"(max |Δ log-likelihood| between modes: {worst:.2e})")


if __name__ == "__main__":
    main()
