"""Diversity at scale: Remote Clique and Chamfer vs a naive all-pairs baseline and the matmul limit.

    python bench/bench_diversity.py                      # 100,000 x 384; naive at 20,000; RC at 1,000,000
    python bench/bench_diversity.py --n 20000 --naive-n 5000 --big-n 200000   # short run

Baselines, in the same process:
- naive: sklearn ``pairwise_distances(metric="cosine")`` on the largest size it can hold (n x n
  float64), scaled by (n / naive_n)^2 to the full size; its exact values are compared with ours;
- the limit of one float32 matrix product of the full size (2 n^2 d flops at the rate measured
  for a block of it): the least time any all-pairs Chamfer can take on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import pairwise_distances

from tamis.signals.diversity import chamfer_contributions, remote_clique_contributions, unit_rows


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def random_units(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return unit_rows(rng.standard_normal((n, d), dtype=np.float32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--naive-n", type=int, default=20_000)
    ap.add_argument("--big-n", type=int, default=1_000_000)
    args = ap.parse_args()
    n, d = args.n, args.d
    x = random_units(n, d)

    # exactness against the naive all-pairs computation on the largest size it handles
    sub = x[: args.naive_n]
    dist, t_naive = timed(pairwise_distances, sub, metric="cosine", n_jobs=1)
    np.fill_diagonal(dist, np.nan)
    rc_naive, ch_naive = np.nanmean(dist, axis=1), np.nanmin(dist, axis=1)
    del dist
    rc_sub = remote_clique_contributions(sub)
    ch_sub_blocked = chamfer_contributions(sub, method="blocked")
    ch_sub_faiss = chamfer_contributions(sub, method="faiss")
    err = max(np.abs(rc_sub - rc_naive).max(), np.abs(ch_sub_blocked - ch_naive).max(),
              np.abs(ch_sub_faiss - ch_naive).max())
    assert err < 1e-5, f"differs from the naive all-pairs result by {err}"
    print(f"exactness at n={args.naive_n}: max |ours - naive| = {err:.2e} (RC, Chamfer blocked, Chamfer FAISS)")

    # matmul limit: time a block of the full product, extrapolate to n x n
    block = x[:4096]
    _, t_block = timed(np.matmul, block, x.T)
    flops_rate = 2 * len(block) * n * d / t_block
    t_limit = 2 * n * n * d / flops_rate
    t_naive_full = t_naive * (n / args.naive_n) ** 2

    _, t_rc = timed(remote_clique_contributions, x)
    _, t_blocked = timed(chamfer_contributions, x, method="blocked")
    _, t_faiss = timed(chamfer_contributions, x, method="faiss")
    print(f"\nn={n:,} d={d}: float32 matmul rate {flops_rate / 1e9:.1f} GFLOP/s -> one n x n product >= {t_limit:.1f} s")
    print(f"naive sklearn all-pairs: {t_naive:.2f} s at n={args.naive_n:,} -> ~{t_naive_full:.0f} s at n={n:,} (scaled n^2)")
    print(f"{'method':<22}{'seconds':>10}{'vs naive':>12}{'vs matmul limit':>18}")
    for name, t in (("Remote Clique O(nd)", t_rc), ("Chamfer blocked", t_blocked), ("Chamfer FAISS k=2", t_faiss)):
        print(f"{name:<22}{t:>10.2f}{t_naive_full / t:>11.1f}x{t / t_limit:>17.2f}x")

    big = random_units(args.big_n, d, seed=1)
    rc_big, t_big = timed(remote_clique_contributions, big)
    print(f"\nRemote Clique on {args.big_n:,} x {d}: {t_big:.2f} s (score {rc_big.mean():.6f})")


if __name__ == "__main__":
    main()
