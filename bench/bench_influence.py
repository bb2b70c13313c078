"""Gradient featurisation speed: tamis (batched hooks + CountSketch) vs LESS-style vs the batched limit.

Setting of issue 4: the bundled SmolLM2-135M, 256 dolly candidates cut to 128 tokens (chat template,
loss on the response tokens), LoRA r=8 on q/k/v/o, projection to 8192, 2 CPU threads.

- tamis: ``featurise`` as ``tamis score influence`` runs it: batches of 8, per-example LoRA gradients
  from hooked activations x output gradients, one seeded CountSketch to 8192.
- LESS-style baseline: one example at a time, autograd backward, flatten the LoRA gradient, dense
  Rademacher projection to 8192 (the matrix regenerated block by block from its seed, as TRAK's CPU
  projector does; it is D x 8192 = 30 GB in float32 and cannot be kept). Run on ``--less-n`` examples
  (it is slow) and reported as examples/s; its gradient and projection costs are shown apart.
- limit: the same batched forward+backward with no per-example work (no einsum, no projection).

Also checks that the hooked per-example gradients equal autograd's on the baseline's examples, and
reports each mode's peak resident memory above the loaded model (sampled every 5 ms).

    python bench/bench_influence.py [--n 256] [--tokens 128] [--less-n 8] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import psutil
import torch

from tamis.io import read_dataset
from tamis.signals.influence.features import featurise
from tamis.signals.influence.gradients import GradientConfig, load_tracked_model
from tamis.signals.influence.projection import CountSketch, dense_rademacher
from tamis.store import Workspace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class PeakMemory:
    """Peak RSS of this process above its level at entry, sampled in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


def candidates(tracked, n: int, tokens: int):
    """n dolly examples whose templated sequence reaches ``tokens`` (cut there), prompt shorter than 3/4 of it."""
    examples = read_dataset(DATA / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl").examples
    chosen = []
    for ex in examples:
        try:
            (enc,) = tracked.encode([ex])
        except ValueError:  # prompt alone longer than the cut
            continue
        if len(enc.ids) == tokens and enc.n_context < tokens * 3 // 4:
            chosen.append(enc)
        if len(chosen) == n:
            return chosen
    raise SystemExit(f"only {len(chosen)} dolly examples reach {tokens} tokens")


def less_style(tracked, encoded, dim: int) -> tuple[float, float, list[torch.Tensor]]:
    """One example at a time: autograd gradient of the LoRA parameters, flattened, dense projection."""
    params = [m.weight for _, m in tracked.modules]
    grad_s = proj_s = 0.0
    flats = []
    for enc in encoded:
        t0 = time.perf_counter()
        ids = torch.tensor([enc.ids])
        with torch.enable_grad():
            logits = tracked.model(input_ids=ids).logits[0, enc.n_context - 1 : -1]
            loss = torch.nn.functional.cross_entropy(logits.float(), ids[0, enc.n_context :])
            grads = torch.autograd.grad(loss, params)
        flat = torch.cat([g.reshape(-1) for g in grads])[None]
        t1 = time.perf_counter()
        dense_rademacher(flat, dim, seed=0)
        t2 = time.perf_counter()
        grad_s += t1 - t0
        proj_s += t2 - t1
        flats.append(flat[0])
    return grad_s, proj_s, flats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--less-n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dim", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    config = GradientConfig(params="lora", lora_r=8, max_length=args.tokens, batch_size=args.batch_size)
    tracked = load_tracked_model("transformers:smollm2", Workspace(), config)
    # A fresh LoRA has B = 0, so A's gradient would be exactly zero; give B small values so every
    # gradient the modes compute is a real one (the timing does not depend on it).
    torch.manual_seed(0)
    for name, module in tracked.modules:
        if "lora_B" in name:
            torch.nn.init.normal_(module.weight, std=0.02)
    encoded = candidates(tracked, args.n, args.tokens)
    projection = CountSketch(tracked.shapes, args.dim, seed=0)
    n_tokens = sum(len(e.ids) for e in encoded)
    print(f"{len(encoded)} candidates x {args.tokens} tokens ({n_tokens} tokens), {len(tracked.modules)} LoRA "
          f"matrices, {tracked.n_params:,} tracked parameters, projection {args.dim}, {torch.get_num_threads()} threads")

    featurise(tracked, encoded[: args.batch_size], projection, None)  # warm-up (allocator, kernels)

    with PeakMemory() as mem_limit:
        t0 = time.perf_counter()
        for idx in tracked.batches(encoded):
            tracked.forward_backward([encoded[i] for i in idx])
        limit_s = time.perf_counter() - t0
    with PeakMemory() as mem_tamis:
        t0 = time.perf_counter()
        features, _ = featurise(tracked, encoded, projection, None)
        tamis_s = time.perf_counter() - t0
    sub = encoded[: args.less_n]
    with PeakMemory() as mem_less:
        grad_s, proj_s, flats = less_style(tracked, sub, args.dim)
    less_s = grad_s + proj_s

    # correctness: hooked per-example gradients == autograd's, on the baseline's examples
    hooked = tracked.gradients(sub)
    hooked_flat = torch.cat([g.reshape(len(sub), -1) for g in hooked], dim=1)
    autograd_flat = torch.stack(flats)
    rel = ((hooked_flat - autograd_flat).norm() / autograd_flat.norm()).item()

    rate = lambda n, s: n / s  # noqa: E731
    rows = [("tamis (batched hooks + CountSketch)", len(encoded), tamis_s, mem_tamis.mib),
            ("limit (batched fwd+bwd, no per-example work)", len(encoded), limit_s, mem_limit.mib),
            (f"LESS-style (one at a time, dense projection; {len(sub)} examples)", len(sub), less_s, mem_less.mib)]
    print(f"\n{'mode':<62} {'seconds':>8} {'ex/s':>7} {'peak MiB':>9}")
    for name, n, s, mib in rows:
        print(f"{name:<62} {s:8.2f} {rate(n, s):7.2f} {mib:9.0f}")
    print(f"\nLESS-style split per example: gradient {grad_s / len(sub):.2f} s, dense projection {proj_s / len(sub):.2f} s")
    print(f"tamis vs LESS-style: {rate(len(encoded), tamis_s) / rate(len(sub), less_s):.1f}x examples/s (goal >= 3x)")
    print(f"tamis vs limit: {tamis_s / limit_s:.2f}x the time (goal <= 1.3x)")
    print(f"hooked vs autograd per-example gradients: relative difference {rel:.1e}")
    print(f"features {tuple(features.shape)}, process peak RSS {psutil.Process().memory_info().rss / 2**20:.0f} MiB now")


if __name__ == "__main__":
    main()
