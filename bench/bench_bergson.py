"""Peer side by side: tamis influence featurisation vs Bergson 2.5.1 on the same model, data, layers, loss.

Setting (issue 13, "Scale"): the bundled SmolLM2-135M in fp32 on the CPU; the shipped clear-spam data
(``noisy_labels`` builder of src/tamis/data/recipes/clear-spam.yaml: SMS messages as chat rows, "Is
this SMS message spam? Answer yes or no.", 30% of the training labels made wrong) with 64 training rows
as candidates and 16 rows of its trusted ``seed`` split as the query/seed set; G-DIG's layers (the MLP
down-projection of layers 0, 3, ..., 27: 10 Linear layers, 8.8M parameters); the same token ids and
the same loss on both sides (mean response-token NLL, prompt tokens masked: Bergson's
``loss_reduction="mean"``; its default is ``"sum"``); the same batches (tamis's longest-first
batches of 8 are handed to Bergson's ``CollectorComputer``).

- tamis: ``featurise`` as ``tamis score influence`` runs it: hooked per-example gradients of the 10
  layers, one seeded CountSketch over all of them to ``--dim`` (default 10,240).
- Bergson: its own in-process collector (``InMemoryCollector`` + ``CollectorComputer``, what
  ``bergson build`` runs per worker, without the on-disk index): per-module double-sided Rademacher
  projection (``projection_dim`` p = 32 per side, so p*p = 1,024 per layer, 10,240 in all: the same
  total dimension), JL scaling.
- Scores: candidate x seed inner products (positive = training on the candidate lowers the seed loss,
  as docs/GDIG.md). Rows: the identity preconditioner on both sides (the fair base); then EK-FAC on
  both sides: tamis's default (factors fitted on the candidates, empirical Fisher, damping 0.1 x mean
  eigenvalue, applied to the seed gradients before the sketch) vs Bergson's own EK-FAC (what
  ``bergson hessian --method kfac --ev_correction`` fits, run in this process through its
  ``fit_factored_hessians`` on the same candidates and batches, dataset labels = empirical Fisher; its
  ``FactoredPreconditioner`` with the default damped_inverse, 0.1 x mean eigenvalue; Bergson's EK-FAC
  refuses projected gradients, so it is applied to the unprojected seed gradients, which are then
  projected with Bergson's own matrices); and Bergson's Hessian for a projected index, the dense
  "autocorrelation" Gram ``P^T P / N`` of the projected candidate gradients per layer (what its
  collector accumulates with ``skip_hessians=False``), inverted by its ``DensePreconditioner``
  (damped_inverse, 0.1 x mean eigenvalue) and applied to the query side.
- Reference: the exact (unprojected) scores, identity and each tool's EK-FAC, from one more untimed
  pass; each tool's Spearman against its own unprojected scores shows how much of a disagreement is
  projection noise, and the two unprojected EK-FACs against each other how much is the curvature.

Reported: examples/s of candidate featurisation after a warm-up batch (two timed passes per tool, in
the order tamis, Bergson, Bergson, tamis; the mean); peak RSS above the level at the start of a timed
pass (psutil, sampled every 5 ms in a thread, as bench/bench_influence.py);
Spearman between the two tools' candidate-vs-seed scores (per seed over candidates, then the mean
over seeds; and of the summed score over seeds); the same against the exact scores; the AUROC of
each tool's summed score for the injected wrong labels (low = flags them). Also checks, on 4 seed
examples, that Bergson's unprojected per-example gradients equal tamis's.

    python bench/bench_bergson.py [--n 64] [--seeds 16] [--p 32] [--threads 1] [--out results.json]
    python bench/bench_bergson.py --small      # seconds: a tiny random Llama, plumbing only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # Bergson's progress bars

import numpy as np
import torch
import yaml
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_influence import PeakMemory  # noqa: E402

from tamis.pipeline.sources import builder_params, get_builder, resolve_reference  # noqa: E402
from tamis.signals.influence.features import featurise  # noqa: E402
from tamis.signals.influence.gradients import (  # noqa: E402
    GradientConfig, TrackedModel, load_tracked_model, prepare_model)
from tamis.signals.influence.kfac import fit_factors  # noqa: E402
from tamis.signals.influence.projection import CountSketch  # noqa: E402
from tamis.signals.influence.scores import seed_features  # noqa: E402
from tamis.store import Workspace  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "src" / "tamis" / "data" / "recipes" / "clear-spam.yaml"


def spam_data(n: int, n_seeds: int) -> tuple[list, list]:
    """Candidates (noisy training rows) and a trusted seed set from the clear-spam recipe's own builder."""
    source = yaml.safe_load(RECIPE.read_text())["data"]["source"]
    params = dict(source["params"], n_train=n, n_seed=n_seeds)
    builder = get_builder(source["builder"])
    splits = builder.fn(builder_params(source["builder"], params), lambda ref: resolve_reference(ref, RECIPE.parent))
    return splits["train"], splits["seed"]


# -- Bergson ------------------------------------------------------------------------------------------
class BergsonCollector:
    """Bergson's in-memory gradient collection over tamis's encoded examples and batches."""

    def __init__(self, tracked: TrackedModel, p: int, run_dir: Path, seed: int = 0):
        from bergson.config import IndexConfig
        from bergson.gradients import GradientProcessor

        self.model = tracked.model
        prefix = "model."  # Bergson hooks modules of ``model.base_model`` (the LlamaModel)
        self.targets = {n[len(prefix):] if n.startswith(prefix) else n for n in tracked.names}
        self.order = [n[len(prefix):] if n.startswith(prefix) else n for n in tracked.names]
        self.cfg = IndexConfig(run_path=str(run_dir), projection_dim=p, loss_reduction="mean", projection_seed=seed)
        Path(self.cfg.partial_run_path).mkdir(parents=True, exist_ok=True)  # it writes total_processed.pt there
        # one processor per setting, kept across calls: it caches its projection matrices, as in a Bergson run
        self.processor = GradientProcessor(projection_dim=p or None, projection_type="rademacher",
                                           projection_scale="jl", projection_seed=seed)

    @staticmethod
    def dataset(encoded):
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": [e.ids for e in encoded],
                                  "labels": [[-100] * e.n_context + e.ids[e.n_context:] for e in encoded]})

    def collect(self, data, batches: list[list[int]]) -> dict[str, torch.Tensor]:
        from bergson import InMemoryCollector
        from bergson.collector.collector import CollectorComputer

        collector = InMemoryCollector(model=self.model.base_model, cfg=self.cfg, processor=self.processor,
                                      target_modules=self.targets, data=data)
        CollectorComputer(model=self.model, data=data, collector=collector, batches=batches,
                          cfg=self.cfg).run_with_collector_hooks(desc="bergson")
        return collector.gradients

    def features(self, grads: dict[str, torch.Tensor]) -> np.ndarray:
        return torch.cat([grads[n].float() for n in self.order], dim=1).numpy()


def bergson_autocorrelation(grads: dict[str, torch.Tensor]):
    """Bergson's dense per-module Hessian of the projected gradients, inverted with its defaults."""
    from bergson.gradients import GradientProcessor
    from bergson.hessians.preconditioner import DensePreconditioner
    from bergson.process_autocorrelation import process_autocorrelation_matrices

    processor = GradientProcessor()
    grams = {n: g.float().T @ g.float() for n, g in grads.items()}  # what the collector's addmm_ accumulates
    n_rows = next(iter(grads.values())).shape[0]
    process_autocorrelation_matrices(processor, grams, n_rows, {n: g.shape[1] for n, g in grads.items()}, 0)
    return DensePreconditioner.from_processor(processor)  # damped_inverse, damping_factor 0.1, power -1


def bergson_ekfac(berg: "BergsonCollector", data, batches: list[list[int]], run_dir: Path):
    """Bergson's own EK-FAC (``bergson hessian --method kfac --ev_correction``, fitted in this process on the
    candidates through ``fit_factored_hessians``; dataset labels: the empirical Fisher, as tamis), as its
    ``FactoredPreconditioner`` with the default inversion (damped_inverse, 0.1 x mean eigenvalue)."""
    from bergson.config import HessianConfig, IndexConfig
    from bergson.hessians.hessian_approximations import fit_factored_hessians
    from bergson.hessians.preconditioner import FactoredPreconditioner

    cfg = IndexConfig(run_path=str(run_dir), projection_dim=0, loss_reduction="mean")  # EK-FAC: unprojected only
    Path(cfg.partial_run_path).mkdir(parents=True, exist_ok=True)
    hessian = HessianConfig(method="kfac", ev_correction=True, use_dataset_labels=True)
    fit_factored_hessians(berg.model, data, cfg, hessian,
                          target_modules=berg.targets, attention_cfgs={}, batches=batches,
                          path=str(cfg.partial_run_path), do_eigendecomposition=True)
    return FactoredPreconditioner.from_path(cfg.partial_run_path, ev_correction=True)


def bergson_project(berg: "BergsonCollector", grads: dict[str, torch.Tensor],
                    shapes: dict[str, tuple[int, int]]) -> np.ndarray:
    """Project unprojected (n, O*I) gradients with the same per-module matrices Bergson's collector uses."""
    from bergson.collector.collector import create_module_projection_matrix

    p, proc, out = berg.cfg.projection_dim, berg.processor, []
    for name in berg.order:
        o, i = shapes[name]
        left = create_module_projection_matrix(name, "left", p, o, torch.float32, torch.device("cpu"),
                                               proc.projection_type, proc.projection_scale, proc.projection_seed)
        right = create_module_projection_matrix(name, "right", p, i, torch.float32, torch.device("cpu"),
                                                proc.projection_type, proc.projection_scale, proc.projection_seed)
        out.append((left @ grads[name].float().view(-1, o, i) @ right.T).reshape(-1, p * p))
    return torch.cat(out, dim=1).numpy()


# -- scores -------------------------------------------------------------------------------------------
def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman of two (N candidates, S seeds) score matrices: per seed (mean, min) and of the summed score."""
    per_seed = [spearmanr(a[:, s], b[:, s])[0] for s in range(a.shape[1])]
    return {"mean_over_seeds": float(np.mean(per_seed)), "min_over_seeds": float(np.min(per_seed)),
            "summed": float(spearmanr(a.sum(1), b.sum(1))[0])}


def auroc_noisy(scores: np.ndarray, flags: list[bool]) -> float | None:
    """AUROC of the summed score for the injected wrong labels (0.5 = chance; low = wrong labels score low)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(flags, scores.sum(1))) if 0 < sum(flags) < len(flags) else None


def exact_scores(tracked: TrackedModel, enc_c, seed_sets: dict[str, list[torch.Tensor]]) -> dict[str, np.ndarray]:
    """Unprojected (seed vector) . g_cand for each set of per-layer (S, out, in) seed vectors, candidate batch by
    batch (the seed vectors are kept whole)."""
    out = {k: np.zeros((len(enc_c), v[0].shape[0])) for k, v in seed_sets.items()}
    for idx in tracked.batches(enc_c):
        capture, _ = tracked.forward_backward([enc_c[i] for i in idx])
        grads = [g.double() for g in tracked.per_example_grads(capture)]
        for key, seeds in seed_sets.items():
            out[key][idx] = sum(torch.einsum("boi,soi->bs", g, s.double()) for g, s in zip(grads, seeds)).numpy()
    return out


def timed(fn):
    """(result, seconds, peak RSS MiB above the start) of one call."""
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, seconds, mem.mib


def tiny_tracked(config: GradientConfig) -> TrackedModel:
    """A tiny random Llama with the bundled tokenizer (--small: plumbing in seconds)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tamis.models.hf import converted_smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(str(converted_smollm2_dir(Path(Workspace().models_dir))))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=512, tie_word_embeddings=True))
    return TrackedModel(prepare_model(model, config), tokenizer, config, identity="tiny-llama")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="candidates (clear-spam training rows)")
    ap.add_argument("--seeds", type=int, default=16, help="seed/query examples (clear-spam seed split)")
    ap.add_argument("--p", type=int, default=32, help="Bergson projection_dim (per side: p*p per layer)")
    ap.add_argument("--dim", type=int, default=None, help="tamis CountSketch dimension [default: layers x p x p]")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--layer-stride", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="tiny random Llama, 16 candidates, 4 seeds: plumbing only")
    ap.add_argument("--out", type=Path, default=None, help="also write the results here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.small:
        args.n, args.seeds, args.p, args.layer_stride = 16, 4, 4, 1

    import bergson

    config = GradientConfig(params="linear", linear_modules=("mlp.down_proj",), layer_stride=args.layer_stride,
                            max_length=args.max_length, batch_size=args.batch_size)
    load0 = os.getloadavg()
    tracked = tiny_tracked(config) if args.small else load_tracked_model("transformers:smollm2", Workspace(), config)
    cands, seeds = spam_data(args.n, args.seeds)
    flags = [bool(ex.meta.get("label_noise")) for ex in cands]
    enc_c, enc_s = tracked.encode(cands), tracked.encode(seeds)
    batches_c, batches_s = list(tracked.batches(enc_c)), list(tracked.batches(enc_s))
    dim = args.dim or len(tracked.names) * args.p * args.p
    projection = CountSketch(tracked.shapes, dim, seed=0)
    tokens = sum(len(e.ids) for e in enc_c)
    print(f"bergson {bergson.__version__}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{len(enc_c)} candidates ({tokens} tokens, mean {tokens / len(enc_c):.0f}), {len(enc_s)} seeds, "
          f"{sum(flags)} wrong labels; {len(tracked.names)} layers ({', '.join(tracked.names[:2])}, ...), "
          f"{tracked.n_params:,} parameters; tamis CountSketch {dim}, Bergson p={args.p} ({args.p * args.p} per layer, "
          f"{len(tracked.names) * args.p * args.p} in all)")

    run_dir = Path(tempfile.mkdtemp(prefix="bench-bergson-"))
    berg = BergsonCollector(tracked, args.p, run_dir / "index")
    data_c, data_s = berg.dataset(enc_c), berg.dataset(enc_s)

    # warm-up (allocator, kernels, Bergson's projection matrices), then the timed candidate passes
    featurise(tracked, [enc_c[i] for i in batches_c[0]], projection, None)
    berg.collect(data_c.select(batches_c[0]), [list(range(len(batches_c[0])))])
    # in the order tamis, Bergson, Bergson, tamis (a load that drifts on a shared machine hits both alike);
    # each tool's time is the mean of its two passes, its memory the larger peak
    passes: dict[str, list[tuple[float, float]]] = {"tamis": [], "bergson": []}
    for tool in ("tamis", "bergson", "bergson", "tamis"):
        if tool == "tamis":
            (tamis_c, _), sec, mib = timed(lambda: featurise(tracked, enc_c, projection, None))
        else:
            berg_grads_c, sec, mib = timed(lambda: berg.collect(data_c, batches_c))
        passes[tool].append((sec, mib))
    tamis_s, tamis_mib = float(np.mean([p[0] for p in passes["tamis"]])), max(p[1] for p in passes["tamis"])
    berg_s, berg_mib = float(np.mean([p[0] for p in passes["bergson"]])), max(p[1] for p in passes["bergson"])
    berg_c = berg.features(berg_grads_c)

    # seeds: identity features on both sides, then each tool's curvature
    seed_grads = tracked.gradients(enc_s)
    tamis_seed_id = seed_features(seed_grads, projection)
    berg_grads_s = berg.collect(data_s, batches_s)
    berg_seed_id = berg.features(berg_grads_s)
    t0 = time.perf_counter()
    factors = fit_factors(tracked, enc_c, "ekfac")
    tamis_fit_s = time.perf_counter() - t0
    tamis_seed_h = seed_features(seed_grads, projection, factors)
    t0 = time.perf_counter()
    precond = bergson_autocorrelation(berg_grads_c)
    berg_seed_h = berg.features(precond.apply(berg_grads_s))
    berg_fit_s = time.perf_counter() - t0

    # Bergson's EK-FAC: fitted on the candidates, applied to the unprojected seed gradients, then projected
    # with its own matrices (its EK-FAC refuses projected gradients), as tamis applies H^-1 before its sketch
    plain = BergsonCollector(tracked, 0, run_dir / "plain")
    plain_grads = plain.collect(data_s, batches_s)
    shapes = {n: tuple(m.weight.shape) for n, m in tracked.model.base_model.named_modules() if n in berg.targets}
    t0 = time.perf_counter()
    ekfac = bergson_ekfac(berg, data_c, batches_c, run_dir / "ekfac")
    berg_ekfac_fit_s = time.perf_counter() - t0
    berg_seed_ekfac = bergson_project(berg, ekfac.apply(plain_grads), shapes)
    reproject = bergson_project(berg, plain_grads, shapes)
    reproject_rel = float(np.linalg.norm(reproject - berg_seed_id) / np.linalg.norm(berg_seed_id))

    scores = {"tamis_identity": tamis_c.astype(np.float64) @ tamis_seed_id.T,
              "bergson_identity": berg_c.astype(np.float64) @ berg_seed_id.T.astype(np.float64),
              "tamis_ekfac": tamis_c.astype(np.float64) @ tamis_seed_h.T,
              "bergson_autocorrelation": berg_c.astype(np.float64) @ berg_seed_h.T.astype(np.float64),
              "bergson_ekfac": berg_c.astype(np.float64) @ berg_seed_ekfac.T.astype(np.float64)}
    # exact (unprojected) references: identity, and each tool's EK-FAC without projection noise
    plain_ekfac = ekfac.apply(plain_grads)
    seed_sets = {"exact_identity": seed_grads,
                 "exact_tamis_ekfac": factors.precondition(seed_grads),
                 "exact_bergson_ekfac": [plain_ekfac[n].float().view(-1, *shapes[n]) for n in berg.order]}
    scores |= exact_scores(tracked, enc_c, seed_sets)
    del seed_sets, plain_ekfac

    # Bergson's unprojected per-example gradients == tamis's (4 seed examples)
    few = list(range(min(4, len(enc_s))))
    ours = torch.cat([g[few].reshape(len(few), -1) for g in seed_grads], dim=1)
    theirs = torch.cat([plain_grads[n][few].float() for n in plain.order], dim=1)
    grad_rel = ((ours - theirs).norm() / ours.norm()).item()

    load1 = os.getloadavg()
    pairs = {"identity (tamis vs Bergson)": ("tamis_identity", "bergson_identity"),
             "EK-FAC (tamis vs Bergson)": ("tamis_ekfac", "bergson_ekfac"),
             "curvature (tamis EK-FAC vs Bergson autocorrelation)": ("tamis_ekfac", "bergson_autocorrelation"),
             "EK-FAC unprojected (tamis vs Bergson)": ("exact_tamis_ekfac", "exact_bergson_ekfac"),
             "tamis identity vs exact": ("tamis_identity", "exact_identity"),
             "Bergson identity vs exact": ("bergson_identity", "exact_identity"),
             "tamis EK-FAC vs its unprojected": ("tamis_ekfac", "exact_tamis_ekfac"),
             "Bergson EK-FAC vs its unprojected": ("bergson_ekfac", "exact_bergson_ekfac"),
             "tamis EK-FAC vs tamis identity": ("tamis_ekfac", "tamis_identity"),
             "Bergson EK-FAC vs Bergson identity": ("bergson_ekfac", "bergson_identity"),
             "Bergson autocorrelation vs Bergson identity": ("bergson_autocorrelation", "bergson_identity")}
    spearman = {k: agreement(scores[a], scores[b]) for k, (a, b) in pairs.items()}
    tamis_rate, berg_rate = len(enc_c) / tamis_s, len(enc_c) / berg_s
    result = {
        "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "loadavg_start": load0, "loadavg_end": load1},
        "versions": {"bergson": bergson.__version__, "torch": torch.__version__},
        "setting": {"model": tracked.identity, "candidates": len(enc_c), "seeds": len(enc_s), "tokens": tokens,
                    "wrong_labels": sum(flags), "layers": tracked.names, "params": tracked.n_params,
                    "tamis_countsketch_dim": dim, "bergson_projection_dim": args.p,
                    "bergson_total_dim": len(tracked.names) * args.p * args.p, "batch_size": args.batch_size,
                    "max_length": args.max_length, "loss": "mean response-token NLL on both sides"},
        "featurisation": {
            "tamis": {"seconds": tamis_s, "examples_per_s": tamis_rate, "peak_rss_mib_above_start": tamis_mib,
                      "passes_seconds_mib": passes["tamis"]},
            "bergson": {"seconds": berg_s, "examples_per_s": berg_rate, "peak_rss_mib_above_start": berg_mib,
                        "passes_seconds_mib": passes["bergson"]},
            "order": "warm-up batch each, then tamis, Bergson, Bergson, tamis; seconds = mean of a tool's 2 passes",
            "ratio_tamis_over_bergson": {"examples_per_s": tamis_rate / berg_rate,
                                         "peak_rss": tamis_mib / berg_mib if berg_mib > 0 else None}},
        "curvature_seconds": {"tamis_ekfac_fit_2_passes": tamis_fit_s, "bergson_ekfac_fit_2_passes": berg_ekfac_fit_s,
                              "bergson_autocorrelation_gram_invert_apply": berg_fit_s},
        "bergson_reprojection_rel_diff": reproject_rel,
        "spearman": spearman,
        "auroc_wrong_labels": {k: auroc_noisy(v, flags) for k, v in scores.items()},
        "unprojected_gradients_rel_diff": grad_rel,
        "memory_note": "peak RSS above the level at the start of each timed pass, psutil sampled every 5 ms",
        "process_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }

    print(f"\n{'tool':<46} {'ex/s':>7} {'peak MiB':>9} {'rho/seed':>9} {'rho sum':>8} {'vs exact':>9} {'AUROC':>6}")
    # (label, tool, agreement with the other tool, agreement with its own unprojected scores, score key)
    rows = [("tamis  identity (CountSketch %d)" % dim, "tamis", "identity (tamis vs Bergson)",
             "tamis identity vs exact", "tamis_identity"),
            ("Bergson identity (Rademacher %dx%d/layer)" % (args.p, args.p), "bergson", "identity (tamis vs Bergson)",
             "Bergson identity vs exact", "bergson_identity"),
            ("tamis  EK-FAC (its default)", "tamis", "EK-FAC (tamis vs Bergson)",
             "tamis EK-FAC vs its unprojected", "tamis_ekfac"),
            ("Bergson EK-FAC (empirical Fisher)", "bergson", "EK-FAC (tamis vs Bergson)",
             "Bergson EK-FAC vs its unprojected", "bergson_ekfac"),
            ("Bergson autocorrelation vs tamis EK-FAC", "bergson",
             "curvature (tamis EK-FAC vs Bergson autocorrelation)", None, "bergson_autocorrelation")]
    feat = result["featurisation"]
    for name, tool, pair, vs_exact, key in rows:
        rho = spearman[pair]
        exact = f"{spearman[vs_exact]['mean_over_seeds']:9.3f}" if vs_exact else f"{'':>9}"
        auroc = result["auroc_wrong_labels"][key]
        print(f"{name:<46} {feat[tool]['examples_per_s']:7.2f} {feat[tool]['peak_rss_mib_above_start']:9.0f} "
              f"{rho['mean_over_seeds']:9.3f} {rho['summed']:8.3f} {exact} {'' if auroc is None else f'{auroc:6.2f}'}")
    ratio = feat["ratio_tamis_over_bergson"]
    mem_ratio = "n/a" if ratio["peak_rss"] is None else f"{ratio['peak_rss']:.2f}x"
    print(f"\ntamis / Bergson: {ratio['examples_per_s']:.2f}x examples/s, {mem_ratio} peak RSS above start")
    print(f"seconds (mean of 2 passes, order tamis, Bergson, Bergson, tamis): tamis {tamis_s:.1f} "
          f"({', '.join(f'{p[0]:.1f}' for p in passes['tamis'])}), Bergson {berg_s:.1f} "
          f"({', '.join(f'{p[0]:.1f}' for p in passes['bergson'])}); curvature: tamis EK-FAC fit "
          f"{tamis_fit_s:.1f} (2 passes), Bergson EK-FAC fit {berg_ekfac_fit_s:.1f} (2 passes), Bergson "
          f"autocorrelation Gram+inverse+apply {berg_fit_s:.2f}")
    print(f"Bergson's seed features re-projected from its unprojected gradients vs its collector's: "
          f"relative difference {reproject_rel:.1e}")
    for k, v in spearman.items():
        print(f"spearman {k}: mean over seeds {v['mean_over_seeds']:.3f} (min {v['min_over_seeds']:.3f}), "
              f"summed {v['summed']:.3f}")
    print(f"unprojected per-example gradients, Bergson vs tamis (4 seeds): relative difference {grad_rel:.1e}")
    print(f"load average start {load0[0]:.2f}, end {load1[0]:.2f}; "
          f"process max RSS {result['process_max_rss_mib']:.0f} MiB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if args.small:
        assert grad_rel < 1e-4, f"Bergson's unprojected gradients differ from tamis's: {grad_rel:.1e}"
        print("small: plumbing OK (timings and correlations at this size mean nothing)")


if __name__ == "__main__":
    main()
