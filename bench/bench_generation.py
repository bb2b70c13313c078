"""Labelled-generation throughput (accepted texts/s): llama.cpp vs transformers (the baseline).

Runs the real generator (``generate_labelled``: prompts, parsing, near-copy checks by ROUGE-L) with
the bundled SmolLM2-135M-Instruct through each backend, uncached, in one process, on the same task
and seed. Texts/s counts accepted texts; attempts/s counts every reply (accepted or rejected).

    python bench/bench_generation.py [--task sms_spam] [--n-per-label 8] [--mode zero-shot]
"""

from __future__ import annotations

import argparse
import time

from tamis.generate import LabelledGenerationConfig, NearCopyConfig, generate_labelled, load_task
from tamis.models import load_llm
from tamis.store import Workspace


def run(spec: str, workspace: Workspace, task, config) -> dict:
    llm = load_llm(spec, workspace, cache=False)
    generate_labelled(task, llm, LabelledGenerationConfig(n_per_label=1, round_size=1, near_copy=config.near_copy))  # warm-up
    start = time.perf_counter()
    result = generate_labelled(task, llm, config)
    seconds = time.perf_counter() - start
    c = result.counts
    return {"spec": spec, "seconds": seconds, "accepted": c["accepted"], "attempts": c["attempts"],
            "texts_per_s": c["accepted"] / seconds, "attempts_per_s": c["attempts"] / seconds,
            "rejected": c["rejected_by_reason"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sms_spam")
    ap.add_argument("--n-per-label", type=int, default=8)
    ap.add_argument("--mode", default="zero-shot")
    ap.add_argument("--workspace", default="tamis-workspace")
    args = ap.parse_args()
    task = load_task(args.task)
    config = LabelledGenerationConfig(n_per_label=args.n_per_label, mode=args.mode, round_size=args.n_per_label,
                                      near_copy=NearCopyConfig(embedding_threshold=None, rouge_threshold=0.7))
    ws = Workspace(args.workspace)
    rows = [run(spec, ws, task, config) for spec in ("llamacpp:smollm2", "transformers:smollm2")]
    print(f"task {task.name}, {args.mode}, {args.n_per_label} texts per label, bundled SmolLM2-135M-Instruct")
    print(f"{'backend':<24}{'seconds':>9}{'accepted':>10}{'attempts':>10}{'texts/s':>9}{'attempts/s':>12}")
    for r in rows:
        print(f"{r['spec']:<24}{r['seconds']:>9.1f}{r['accepted']:>10}{r['attempts']:>10}"
              f"{r['texts_per_s']:>9.2f}{r['attempts_per_s']:>12.2f}  rejected {r['rejected']}")
    print(f"llama.cpp / transformers (attempts/s): {rows[0]['attempts_per_s'] / rows[1]['attempts_per_s']:.2f}x")


if __name__ == "__main__":
    main()
