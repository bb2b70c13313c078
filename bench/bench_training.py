"""Training and evaluation throughput on the bundled model, each against its baseline in one process.

1. LoRA SFT vs full fine-tuning: training tokens/s on the same examples and steps (TRL SFTTrainer).
2. LoRA SFT on a study's classification task (64 SMS messages, "spam? yes or no", a completion-only
   loss, the gdig-spam/demo training settings): TRL's fused LM head at the labelled positions only
   (tamis.train.sft.labelled_positions_only, the default) vs at every position (TRL on a CPU), same
   seed; the final training losses are printed beside the times.
3. Evaluation generation: batched greedy generation vs one prompt at a time, same prompts.

    python bench/bench_training.py [--n 32] [--steps 8] [--head-steps 32] [--eval-n 24] [--threads 2]
        [--parts sft,head,generation]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

from tamis.io import read_dataset
from tamis.models import GenerationParams, load_llm
from tamis.pipeline.builders import NoisyLabelsParams, noisy_labels
from tamis.pipeline.demo import demo_data_path
from tamis.store import Workspace
from tamis.train import sft
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
    ap.add_argument("--head-steps", type=int, default=32)
    ap.add_argument("--parts", default="sft,head,generation")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    ws = Workspace()
    data = examples(args.n)

    llm = load_llm("transformers:smollm2", ws, cache=False)
    if "sft" in parts:
        sft_throughput(llm, data, ws, args)
    if "head" in parts:
        labelled_head(ws, args.head_steps)
    if "generation" in parts:
        generation(llm, args)


def sft_throughput(llm, data, ws: Workspace, args: argparse.Namespace) -> None:
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


def labelled_head(ws: Workspace, steps: int) -> None:
    params = NoisyLabelsParams(path=str(Path(sft.__file__).parents[1] / "data" / "demo_sms_spam.jsonl"), n_train=64,
                               n_test=10, noise=0.3, max_chars=160, answers={"spam": "yes", "ham": "no"},
                               system="You detect spam.", instruction="Is this SMS message spam? Answer yes or no.\n\n",
                               seed=0)
    data = noisy_labels(params, Path)["train"]
    print(f"== LoRA SFT, {len(data)} SMS rows, {steps} steps, batch 4, max_length 96, completion-only loss")
    runs = {}
    for name, head in (("labelled positions", sft.labelled_positions_only), ("every position", contextlib.nullcontext)):
        original, sft.labelled_positions_only = sft.labelled_positions_only, head
        try:
            with tempfile.TemporaryDirectory() as tmp:
                settings = SFTSettings(max_steps=steps, batch_size=4, learning_rate=0.001, max_length=96,
                                       eval_fraction=0.0, save_steps=10_000)
                result = train_sft(data, settings, tmp, ws)
        finally:
            sft.labelled_positions_only = original
        runs[name] = result.metrics
        print(f"{name:<19} train_runtime {result.metrics['train_runtime']:7.1f}s  "
              f"train_loss {result.metrics['train_loss']:.6f}")
    ratio = runs["every position"]["train_runtime"] / runs["labelled positions"]["train_runtime"]
    print(f"labelled positions only / every position: {ratio:.2f}x faster")


def generation(llm, args: argparse.Namespace) -> None:
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
