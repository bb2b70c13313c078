"""Training and evaluation throughput on the bundled model, each against its baseline in one process.

1. LoRA SFT vs full fine-tuning: training tokens/s on the same examples and steps (TRL SFTTrainer).
2. Evaluation generation: batched greedy generation vs one prompt at a time, same prompts.

    python bench/bench_training.py [--n 32] [--steps 8] [--eval-n 24] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tamis.io import read_dataset
from tamis.models import GenerationParams, load_llm
from tamis.pipeline.demo import demo_data_path
from tamis.store import Workspace
from tamis.train.sft import SFTSettings, train_sft

DOLLY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly_alpagasus_3k"


def examples(n: int):
    files = sorted(DOLLY.glob("*.jsonl")) if DOLLY.is_dir() else []
    return read_dataset(files[0] if files else demo_data_path(), limit=n if files else None).examples[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--eval-n", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    ws = Workspace()
    data = examples(args.n)

    llm = load_llm("transformers:smollm2", ws, cache=False)
    texts = [llm.apply_chat_template([m.to_dict() for m in ex.messages], add_generation_prompt=False) for ex in data]
    lengths = [min(len(llm.tokenizer(t, add_special_tokens=False)["input_ids"]), args.max_length) for t in texts]
    seen = args.steps * args.batch_size  # examples the optimiser sees (cycling through the data)
    tokens = sum(lengths[i % len(data)] for i in range(seen))
    print(f"== SFT: {len(data)} examples, {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}: "
          f"{tokens} training tokens (prompt + response, template included)")
    rates = {}
    for name, lora in (("LoRA r=8", True), ("full", False)):
        with tempfile.TemporaryDirectory() as tmp:
            settings = SFTSettings(lora=lora, max_steps=args.steps, batch_size=args.batch_size,
                                   max_length=args.max_length, eval_fraction=0.0, save_steps=10_000)
            t0 = time.perf_counter()
            result = train_sft(data, settings, tmp, ws)
            seconds = time.perf_counter() - t0
        runtime = result.metrics.get("train_runtime", seconds)
        rates[name] = tokens / runtime
        print(f"{name:<10} train_runtime {runtime:7.1f}s  {rates[name]:8.1f} tokens/s  "
              f"{seen / runtime:5.2f} examples/s  (wall incl. load/save {seconds:.1f}s)")
    print(f"LoRA / full throughput: {rates['LoRA r=8'] / rates['full']:.2f}x")

    print(f"== eval generation: {args.eval_n} prompts, greedy, {args.max_tokens} new tokens")
    prompts = [ex.prompt_messages for ex in examples(args.eval_n)]
    params = GenerationParams(max_tokens=args.max_tokens)
    llm.generate(prompts[:1], params)  # warm-up
    t0 = time.perf_counter()
    batched = llm.generate(prompts, params)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [llm.generate([p], params)[0] for p in prompts]
    t_single = time.perf_counter() - t0
    same = sum(b == s for b, s in zip(batched, single))
    print(f"batched        {t_batched:7.1f}s  {len(prompts) / t_batched:6.2f} prompts/s")
    print(f"one-at-a-time  {t_single:7.1f}s  {len(prompts) / t_single:6.2f} prompts/s")
    print(f"batched / one-at-a-time: {t_single / t_batched:.2f}x ({same}/{len(prompts)} outputs identical; "
          "padding can change greedy ties)")


if __name__ == "__main__":
    main()
