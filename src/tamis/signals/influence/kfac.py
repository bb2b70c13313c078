"""K-FAC and EK-FAC approximations of the (empirical) Fisher of the tracked layers, and their damped inverse.

Per layer, the Fisher F = E_n[vec(G_n) vec(G_n)^T] of the per-example gradient G_n = sum_t g_t a_t^T
is approximated by A (x) G with A = E_token[a a^T] and G = (1/N) sum_n sum_t g_t g_t^T (kronfluence's
normalisation). Both are eigendecomposed in float64: A = Q_A diag(l_A) Q_A^T, G = Q_G diag(l_G) Q_G^T.
K-FAC's eigenvalues in the Kronecker eigenbasis are l_G l_A^T; EK-FAC (George et al. 2018) replaces
them with the true second moments there, E_n[(Q_G^T G_n Q_A)^2], which fixes most of K-FAC's error.
The damped inverse applied to a gradient M is Q_G [(Q_G^T M Q_A) / (eigenvalues + damping)] Q_A^T.
Damping: an absolute value, or (default, as kronfluence) 0.1 x the mean eigenvalue of each layer.

The Fisher is the empirical one (gradients of the data's own response tokens), as in G-DIG.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tamis.signals.influence.config import STRATEGIES  # noqa: F401  (re-exported)
from tamis.signals.influence.gradients import Encoded, TrackedModel
from tamis.store import atomic_write_text

HEURISTIC_DAMPING = 0.1


@dataclass
class LayerFactors:
    A: torch.Tensor  # (in, in) float64
    G: torch.Tensor  # (out, out) float64
    QA: torch.Tensor | None = None
    lA: torch.Tensor | None = None
    QG: torch.Tensor | None = None
    lG: torch.Tensor | None = None
    corrected: torch.Tensor | None = None  # (out, in) EK-FAC eigenvalues

    def eigendecompose(self) -> None:
        self.lA, self.QA = torch.linalg.eigh(self.A)
        self.lG, self.QG = torch.linalg.eigh(self.G)

    def eigenvalues(self, strategy: str) -> torch.Tensor:
        if strategy == "ekfac":
            if self.corrected is None:
                raise ValueError("EK-FAC eigenvalues were not fitted; fit the factors with strategy='ekfac'")
            return self.corrected
        return torch.outer(self.lG.clamp(min=0), self.lA.clamp(min=0))  # type: ignore[union-attr]


class Factors:
    """Per-layer Kronecker factors of one model's tracked layers, with their eigendecompositions."""

    def __init__(self, names: list[str], layers: list[LayerFactors], strategy: str, meta: dict[str, Any] | None = None):
        self.names = names
        self.layers = layers
        self.strategy = strategy
        self.meta = meta or {}

    def precondition(self, grads: Sequence[torch.Tensor], damping: float | None = None,
                     strategy: str | None = None) -> list[torch.Tensor]:
        """(F + damping)^-1 applied to per-example gradients (each (B, out, in)); float64 inside."""
        strategy = strategy or self.strategy
        out = []
        for layer, grad in zip(self.layers, grads):
            QA, QG = layer.QA, layer.QG
            lam = layer.eigenvalues(strategy)
            damp = HEURISTIC_DAMPING * float(lam.mean()) if damping is None else damping
            rotated = QG.T @ grad.double() @ QA  # type: ignore[union-attr]
            denom = lam + damp  # an all-zero layer (fresh LoRA A: its output gradient is 0) stays zero, not NaN
            scaled = torch.where(denom > 0, rotated / denom.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
            out.append((QG @ scaled @ QA.T).to(grad.dtype))  # type: ignore[union-attr]
        return out

    def save(self, path: str | Path, config: dict[str, Any]) -> None:
        """Factors as safetensors plus their config as JSON beside them (``path`` without suffix)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for i, layer in enumerate(self.layers):
            for key in ("A", "G", "QA", "lA", "QG", "lG", "corrected"):
                value = getattr(layer, key)
                if value is not None:
                    tensors[f"{i}.{key}"] = value.contiguous()
        tmp = path.with_name(path.name + ".tmp.safetensors")
        save_file(tensors, str(tmp))
        tmp.replace(path.with_suffix(".safetensors"))
        atomic_write_text(path.with_suffix(".json"), json.dumps(
            {"names": self.names, "strategy": self.strategy, "meta": self.meta, "config": config}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Factors | None":
        """The saved factors, or None when they are absent (or half-written)."""
        from safetensors.torch import load_file

        path = Path(path)
        if not path.with_suffix(".json").is_file() or not path.with_suffix(".safetensors").is_file():
            return None
        info = json.loads(path.with_suffix(".json").read_text())
        tensors = load_file(str(path.with_suffix(".safetensors")))
        layers = [LayerFactors(**{k: tensors.get(f"{i}.{k}") for k in ("A", "G", "QA", "lA", "QG", "lG", "corrected")})
                  for i in range(len(info["names"]))]
        return cls(info["names"], layers, info["strategy"], info.get("meta"))


Sums = dict[str, Any]  # "A"/"G"/"corrected": a float64 tensor per tracked layer; "n_tokens": an int
SumPass = Callable[[str, "list[tuple[torch.Tensor, torch.Tensor]] | None"], Sums]


def batch_sums(tracked: TrackedModel, batch: Sequence[Encoded], kind: str,
               eigenvectors: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None) -> Sums:
    """One forward+backward's contribution to a factor pass: ``kind="covariance"`` gives the token sums
    of a a^T and g g^T per layer (and the tokens counted); ``"correction"`` the sums over examples of
    (Q_G^T G_n Q_A)^2 in the given eigenbases (``eigenvectors``: (Q_A, Q_G) per layer)."""
    capture, _ = tracked.forward_backward(batch)
    if kind == "covariance":
        mask = capture.mask.bool()  # type: ignore[union-attr]
        sums: Sums = {"A": [], "G": [], "n_tokens": int(mask.sum())}
        for name in tracked.names:
            a = capture.inputs[name].double()[mask.to(capture.inputs[name].device)]
            g = capture.grads[name].double()[mask.to(capture.grads[name].device)]
            sums["A"].append((a.T @ a).cpu())
            sums["G"].append((g.T @ g).cpu())
        return sums
    if kind == "correction":
        if eigenvectors is None:
            raise ValueError("the correction pass needs the eigenvectors of the covariance factors")
        corrected = []
        for (QA, QG), grad in zip(eigenvectors, tracked.per_example_grads(capture)):
            rotated = QG.T @ grad.double().cpu() @ QA
            corrected.append((rotated**2).sum(0))
        return {"corrected": corrected}
    raise ValueError(f"kind must be 'covariance' or 'correction', got {kind!r}")


def add_sums(total: Sums | None, part: Sums) -> Sums:
    """``total + part``, key by key and layer by layer (``total`` None: ``part``)."""
    if total is None:
        return part
    return {k: [t + p for t, p in zip(v, part[k])] if isinstance(v, list) else v + part[k] for k, v in total.items()}


def local_sum_pass(tracked: TrackedModel, encoded: Sequence[Encoded], advance: Callable[[int], None] | None = None,
                   ) -> SumPass:
    """A factor pass in this process, summed exactly as the engines sum it (``tamis.engine``): each
    block's batches in order, then the blocks in plan order, so local and Ray factors are bit-identical."""
    from tamis.engine.base import chunks_per_block

    def run(kind: str, eigenvectors: list[tuple[torch.Tensor, torch.Tensor]] | None) -> Sums:
        batches = list(tracked.batches(encoded))
        per_block = chunks_per_block(len(encoded), tracked.config.batch_size)
        total: Sums | None = None
        for start in range(0, len(batches), per_block):
            block: Sums | None = None
            for idx in batches[start : start + per_block]:
                block = add_sums(block, batch_sums(tracked, [encoded[i] for i in idx], kind, eigenvectors))
                if advance:
                    advance(len(idx))
            total = add_sums(total, block)  # type: ignore[arg-type]
        if total is None:
            raise ValueError("K-FAC factors need at least one candidate")
        return total

    return run


def fit_factors(tracked: TrackedModel, encoded: Sequence[Encoded], strategy: str = "ekfac",
                advance: Callable[[int], None] | None = None, sum_pass: SumPass | None = None) -> Factors:
    """One pass for A and G; EK-FAC adds a second pass for the eigenvalue correction. Both passes are
    sums over examples, so ``sum_pass`` may compute them anywhere (workers accumulate, the driver adds:
    ``tamis.engine``); the default runs them here."""
    if strategy not in ("kfac", "ekfac"):
        raise ValueError(f"strategy must be 'kfac' or 'ekfac', got {strategy!r}")
    sum_pass = sum_pass or local_sum_pass(tracked, encoded, advance)
    n = len(encoded)
    sums = sum_pass("covariance", None)
    n_tokens = int(sums["n_tokens"])
    layers = [LayerFactors(A=a / n_tokens, G=g / n) for a, g in zip(sums["A"], sums["G"])]
    for layer in layers:
        layer.eigendecompose()
    if strategy == "ekfac":
        corrected = sum_pass("correction", [(layer.QA, layer.QG) for layer in layers])["corrected"]  # type: ignore[misc]
        for layer, c in zip(layers, corrected):
            layer.corrected = c / n
    return Factors(tracked.names, layers, strategy, {"n_examples": n, "n_tokens": n_tokens})


class DenseCurvature:
    """An exact dense curvature matrix over all tracked parameters (small models only: tests, checks)."""

    def __init__(self, matrix: torch.Tensor, shapes: Sequence[tuple[int, int]]):
        self.matrix = matrix.double()
        self.shapes = list(shapes)

    @classmethod
    def empirical_fisher(cls, grads: Sequence[torch.Tensor]) -> "DenseCurvature":
        """F = (1/N) sum_n vec(G_n) vec(G_n)^T from per-example gradients (each (N, out, in))."""
        flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).double()
        return cls(flat.T @ flat / flat.shape[0], [tuple(g.shape[1:]) for g in grads])  # type: ignore[misc]

    def precondition(self, grads: Sequence[torch.Tensor], damping: float | None = None,
                     strategy: str | None = None) -> list[torch.Tensor]:
        flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).double()
        eye = torch.eye(self.matrix.shape[0], dtype=torch.float64)
        damp = HEURISTIC_DAMPING * float(torch.diagonal(self.matrix).mean()) if damping is None else damping
        solved = torch.linalg.solve(self.matrix + damp * eye, flat.T).T
        out, start = [], 0
        for (o, i), g in zip(self.shapes, grads):
            out.append(solved[:, start : start + o * i].reshape(-1, o, i).to(g.dtype))
            start += o * i
        return out
