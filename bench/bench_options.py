"""Option scoring (classification as generation): one packed pass per prompt vs a row per option.

The label-noise study's scoring: Financial PhraseBank sentences (all annotators agreed) from
../shared/data, "positive, neutral or negative?", each option's log-probability as the assistant's
answer. Same model (bundled SmolLM2-135M-Instruct, fp32 on CPU), uncached, in one process: the
transformers backend with rows sharing a prompt packed after the prefix every prompt shares, run
once (models/hf_prefix.py, the default); packed without that shared prefix (``share_prefix=false``);
and ``pack_prompts=false`` (one forward pass per option, the baseline). Prints the times, the
ratios, the largest difference of any option's log-probability and whether every prediction agrees.

    python bench/bench_options.py [--n 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tamis.evaluate.choices import option_logprobs, predict
from tamis.models import load_llm
from tamis.store import Workspace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "financial_phrasebank" / \
    "financial_phrasebank_agreement.jsonl"
OPTIONS = ["positive", "neutral", "negative"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the CI machine has 2 cores)")
    ap.add_argument("--model", default="transformers:smollm2")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    rows = [r for r in rows if r["in_allagree"]][: args.n]
    prompts = [[{"role": "system", "content": "Classify the sentiment of financial news."},
                {"role": "user", "content": f"positive, neutral or negative?\n\n{r['sentence']}"}] for r in rows]
    options = [OPTIONS] * len(prompts)
    sep = "&" if "?" in args.model else "?"
    workspace = Workspace()
    timings, scores = {}, {}
    configs = (("packed, shared prefix", args.model), ("packed", f"{args.model}{sep}share_prefix=false"),
               ("row per option", f"{args.model}{sep}pack_prompts=false"))
    for name, spec in configs:
        llm = load_llm(spec, workspace, cache=False)
        option_logprobs(llm, prompts[:2], options[:2])  # warm-up
        t0 = time.perf_counter()
        scores[name] = option_logprobs(llm, prompts, options)
        timings[name] = time.perf_counter() - t0
    print(f"data: {DATA.name}, {len(prompts)} sentences x {len(OPTIONS)} options; model {llm.identity}, "
          f"threads {torch.get_num_threads()}")
    for name, seconds in timings.items():
        print(f"{name:>22}: {seconds:7.2f} s  {len(prompts) / seconds:6.1f} items/s")
    baseline = scores["row per option"]
    for name, _ in configs[:2]:
        worst = max(abs(a[o] - b[o]) for a, b in zip(scores[name], baseline) for o in OPTIONS)
        agree = sum(predict(a) == predict(b) for a, b in zip(scores[name], baseline))
        print(f"speed-up {name} / row per option: {timings['row per option'] / timings[name]:.2f}x; largest "
              f"|difference| of an option's log-probability {worst:.2e}; predictions agree on {agree}/{len(prompts)}")
    print(f"shared prefix / packed alone: {timings['packed'] / timings['packed, shared prefix']:.2f}x")


if __name__ == "__main__":
    main()
