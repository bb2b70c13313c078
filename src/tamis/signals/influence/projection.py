"""Seeded random projection of per-example gradients to a fixed dimension, so features can be stored.

CountSketch: every gradient coordinate j goes to one bucket h(j) with a random sign s(j); the
sketch of x is y[k] = sum_{h(j)=k} s(j) x[j]. Inner products are preserved in expectation
(E[<Sx, Sy>] = <x, y>, variance ~ |x|^2 |y|^2 / dim), like a dense Gaussian/Rademacher (JL)
projection, but it costs one pass over the gradient (milliseconds) instead of a dense
(D x dim) matrix product (seconds per example at D ~ 1M, dim 8192; that matrix would not even fit
in memory). The hash is drawn per tracked layer from one seeded generator, so the same seed and
layer shapes give the same projection on every machine. ``dim=None`` (or 0) keeps the gradients
unprojected (concatenated), for small exact checks.

On CUDA the sketch is applied as one sparse (dim x D) CSR matrix product per layer, built once per
device: ``index_add_`` there funnels ~D/dim atomic adds into each bucket (measured on an H200 in
bench/gpu_check.py), while a CSR row sum needs no atomics. The CPU keeps ``index_add_``, the faster of
the two there. Both give the same sketch up to float summation order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class CountSketch:
    """Project a list of per-layer gradients (each (B, out, in)) to (B, dim) with one seeded CountSketch."""

    def __init__(self, shapes: Sequence[tuple[int, int]], dim: int | None, seed: int = 0):
        self.shapes = [tuple(s) for s in shapes]
        self.total = sum(o * i for o, i in self.shapes)
        self.dim = int(dim) if dim else 0
        self.seed = seed
        self.buckets: list[torch.Tensor] = []
        self.signs: list[torch.Tensor] = []
        self._sparse: dict[torch.device, list[torch.Tensor]] = {}
        if self.dim:
            generator = torch.Generator().manual_seed(seed)
            for o, i in self.shapes:
                self.buckets.append(torch.randint(0, self.dim, (o * i,), generator=generator))
                self.signs.append(torch.randint(0, 2, (o * i,), generator=generator).float() * 2 - 1)

    @property
    def out_dim(self) -> int:
        return self.dim or self.total

    def config(self) -> dict[str, object]:
        return {"kind": "countsketch" if self.dim else "none", "dim": self.out_dim, "seed": self.seed}

    def __call__(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        batch = grads[0].shape[0]
        if not self.dim:
            return torch.cat([g.reshape(batch, -1) for g in grads], dim=1)
        if grads[0].device.type == "cuda":
            return self.sparse_sketch(grads)
        return self.index_add_sketch(grads)

    def index_add_sketch(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """The sketch by scattered adds (the CPU path)."""
        device, batch = grads[0].device, grads[0].shape[0]
        out = torch.zeros(batch, self.dim, dtype=torch.float32, device=device)
        for g, bucket, sign in zip(grads, self.buckets, self.signs):
            out.index_add_(1, bucket.to(device), g.reshape(batch, -1).float() * sign.to(device))
        return out

    def sparse_sketch(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """The same sketch as one CSR matrix product per layer (the CUDA path; callable anywhere)."""
        device, batch = grads[0].device, grads[0].shape[0]
        if device not in self._sparse:
            self._sparse[device] = [self._csr(bucket, sign).to(device) for bucket, sign in zip(self.buckets, self.signs)]
        out = torch.zeros(self.dim, batch, dtype=torch.float32, device=device)
        for g, matrix in zip(grads, self._sparse[device]):
            out += matrix @ g.reshape(batch, -1).float().T
        return out.T.contiguous()

    def _csr(self, bucket: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """The (dim x D) matrix with sign[j] at (bucket[j], j), rows sorted for CSR."""
        order = torch.argsort(bucket, stable=True)
        counts = torch.bincount(bucket, minlength=self.dim)
        crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return torch.sparse_csr_tensor(crow, order, sign[order], size=(self.dim, bucket.numel()), check_invariants=False)


def dense_rademacher(flat: torch.Tensor, dim: int, seed: int = 0, block: int = 16384) -> torch.Tensor:
    """LESS/TRAK-style dense projection of flattened gradients (B, D) -> (B, dim), entries +-1/sqrt(dim).

    The (D x dim) matrix is regenerated block by block from the seed (it is too large to keep), which
    is what such projectors cost on a CPU; used as the baseline in bench/bench_influence.py."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(flat.shape[0], dim)
    scale = 1.0 / dim**0.5
    for start in range(0, flat.shape[1], block):
        stop = min(start + block, flat.shape[1])
        matrix = torch.randint(0, 2, (stop - start, dim), generator=generator, dtype=torch.int8).float().mul_(2).sub_(1)
        out += flat[:, start:stop].float() @ matrix
    return out * scale
