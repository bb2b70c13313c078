"""Influence against exact curvature on a model small enough to form it, and against kronfluence.

Exact Hessian: autograd Hessian of the mean training loss w.r.t. the tracked weights (one MLP
down-projection of a tiny random Llama, 128 parameters). Exact Fisher: the dense empirical Fisher
(1/N) sum_n g_n g_n^T, the matrix K-FAC/EK-FAC approximate.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from conftest import SENTENCES, tiny_llama
from tamis.records import chat_example
from tamis.signals.influence import (CountSketch, DenseCurvature, GradientConfig, TrackedModel, fit_factors,
                                     influence_scores, prepare_model, seed_features)


def random_examples(n, prefix, seed=0):
    rng = random.Random(seed)
    words = " ".join(t for _, t in SENTENCES).split()
    return [chat_example([{"role": "user", "content": "Say something."},
                          {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))}],
                         id=f"{prefix}{i}") for i in range(n)]


@pytest.fixture()
def tiny(tokenizer):
    cfg = GradientConfig(params="linear", layer_stride=2, batch_size=8, linear_modules=("mlp.down_proj",))
    # float64 throughout: first-order loss changes and score ties must not drown in float32 rounding
    tracked = TrackedModel(prepare_model(tiny_llama(hidden=8).double(), cfg), tokenizer, cfg)
    return tracked, tracked.encode(random_examples(40, "c")), tracked.encode(random_examples(4, "s", seed=1))


def _loss(tracked, enc, weight=None):
    """Mean response-token NLL of one example, optionally with the tracked weight replaced."""
    name, module = tracked.modules[0]
    ids = torch.tensor([enc.ids])
    params = {f"{name}.weight": weight} if weight is not None else {}
    logits = torch.func.functional_call(tracked.model, params, (ids,)).logits[0, enc.n_context - 1 : -1]
    return torch.nn.functional.cross_entropy(logits, ids[0, enc.n_context :])


def test_exact_hessian_inverse_matches_the_formula(tiny):
    tracked, cands, seeds = tiny
    w0 = tracked.modules[0][1].weight.detach().clone()
    train_loss = lambda w: torch.stack([_loss(tracked, e, w) for e in cands[:4]]).mean()
    H = torch.autograd.functional.hessian(train_loss, w0, vectorize=True).reshape(w0.numel(), w0.numel())
    damping = 0.1 * float(H.diagonal().abs().mean())
    g_c = torch.stack([torch.autograd.grad(_loss(tracked, e, w0.requires_grad_()), w0)[0].flatten() for e in cands[:10]])
    g_s = torch.stack([torch.autograd.grad(_loss(tracked, e, w0.requires_grad_()), w0)[0].flatten() for e in seeds])
    formula = g_s.double() @ torch.linalg.solve(H.double() + damping * torch.eye(len(H), dtype=torch.float64),
                                                g_c.double().T)
    proj = CountSketch(tracked.shapes, None)
    ours = influence_scores(proj(tracked.gradients(cands[:10])).numpy(),
                            seed_features(tracked.gradients(seeds), proj, DenseCurvature(H, tracked.shapes), damping))
    np.testing.assert_allclose(ours, formula.T.numpy(), rtol=1e-2, atol=1e-3 * float(formula.abs().max()))


@pytest.mark.parametrize("exact_step", [False, True])
def test_positive_influence_means_the_seed_loss_drops(tiny, exact_step):
    """The sign: a small step theta - eps H^-1 g_cand lowers the seed loss by eps x influence."""
    tracked, cands, seeds = tiny
    grads = tracked.gradients(cands)
    proj = CountSketch(tracked.shapes, None)
    curvature = DenseCurvature.empirical_fisher(grads) if exact_step else None
    damping = 1e-3
    scores = influence_scores(proj(grads).numpy(), seed_features(tracked.gradients(seeds[:1]), proj, curvature, damping))[:, 0]
    steps = curvature.precondition(grads, damping) if curvature is not None else grads
    w0 = tracked.modules[0][1].weight.detach().clone()
    eps = 1e-3 / float(steps[0].abs().max())
    with torch.no_grad():
        base = float(_loss(tracked, seeds[0], w0))
        drop = np.array([(base - float(_loss(tracked, seeds[0], w0 - eps * steps[0][i]))) / eps for i in range(len(cands))])
    assert (np.sign(drop) == np.sign(scores)).mean() >= 0.95
    assert np.corrcoef(drop, scores)[0, 1] > 0.99


def test_kfac_and_ekfac_rank_like_the_exact_fisher(tiny):
    tracked, cands, seeds = tiny
    grads, seed_grads = tracked.gradients(cands), tracked.gradients(seeds)
    proj = CountSketch(tracked.shapes, None)
    exact = DenseCurvature.empirical_fisher(grads)
    damping = 0.1 * float(exact.matrix.diagonal().mean())
    feats = proj(grads).numpy()
    ref = influence_scores(feats, seed_features(seed_grads, proj, exact, damping))
    rho = {s: spearmanr(influence_scores(feats, seed_features(seed_grads, proj, fit_factors(tracked, cands, s), damping)).ravel(),
                        ref.ravel())[0] for s in ("kfac", "ekfac")}
    rho["identity"] = spearmanr(influence_scores(feats, seed_features(seed_grads, proj)).ravel(), ref.ravel())[0]
    print("spearman vs exact empirical Fisher:", rho)
    assert rho["ekfac"] > 0.5 and rho["kfac"] > 0.5


def test_countsketch_preserves_inner_products(tiny):
    tracked, cands, seeds = tiny
    grads, seed_grads = tracked.gradients(cands), tracked.gradients(seeds)
    exact = influence_scores(CountSketch(tracked.shapes, None)(grads).numpy(), CountSketch(tracked.shapes, None)(seed_grads).numpy())
    sketch = CountSketch(tracked.shapes, 64, seed=3)
    approx = influence_scores(sketch(grads).numpy(), sketch(seed_grads).numpy())
    assert spearmanr(exact.ravel(), approx.ravel())[0] > 0.8
    again = CountSketch(tracked.shapes, 64, seed=3)
    torch.testing.assert_close(again(grads), sketch(grads))


@pytest.mark.parametrize("strategy", ["kfac", "ekfac"])
def test_scores_rank_like_kronfluence(tokenizer, strategy, tmp_path):
    pytest.importorskip("kronfluence")
    from kronfluence.analyzer import Analyzer, prepare_model as kf_prepare
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    cfg = GradientConfig(params="linear", layer_stride=1, batch_size=8, linear_modules=("mlp.down_proj",))
    tracked = TrackedModel(prepare_model(tiny_llama(hidden=8), cfg), tokenizer, cfg)
    examples = random_examples(36, "c")
    cands, seeds = tracked.encode(examples[:32]), tracked.encode(examples[32:])
    proj = CountSketch(tracked.shapes, None)
    factors = fit_factors(tracked, cands, strategy)
    ours = influence_scores(proj(tracked.gradients(cands)).numpy(),
                            seed_features(tracked.gradients(seeds), proj, factors)).T  # heuristic damping both sides
    pad = tracked.tokenizer.pad_token_id

    def rows(encoded):
        width = max(len(e.ids) for e in encoded)
        out = []
        for e in encoded:
            ids = torch.full((width,), pad)
            ids[: len(e.ids)] = torch.tensor(e.ids)
            mask = (torch.arange(width) < len(e.ids)).long()
            labels = torch.full((width,), -100)
            labels[e.n_context - 1 : len(e.ids) - 1] = torch.tensor(e.ids[e.n_context :])
            out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
        return out

    class ResponseLoss(Task):
        def _loss(self, batch, model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"], reduction="none")
            return (nll.sum(1) / (batch["labels"] != -100).sum(1)).sum()

        def compute_train_loss(self, batch, model, sample=False):
            return self._loss(batch, model)

        def compute_measurement(self, batch, model):
            return self._loss(batch, model)

        def get_influence_tracked_modules(self):
            return tracked.names

        def get_attention_mask(self, batch):
            return batch["attention_mask"]

    model = kf_prepare(copy.deepcopy(tracked.model), ResponseLoss())
    analyzer = Analyzer("tiny", model, ResponseLoss(), cpu=True, output_dir=str(tmp_path), disable_tqdm=True)
    analyzer.fit_all_factors("f", rows(cands), per_device_batch_size=8, overwrite_output_dir=True,
                             factor_args=FactorArguments(strategy=strategy, use_empirical_fisher=True))
    analyzer.compute_pairwise_scores("s", "f", rows(seeds), rows(cands), per_device_query_batch_size=4,
                                     per_device_train_batch_size=8, overwrite_output_dir=True, score_args=ScoreArguments())
    theirs = analyzer.load_pairwise_scores("s")["all_modules"].numpy()
    rho = spearmanr(ours.ravel(), theirs.ravel())[0]
    print(f"{strategy}: spearman vs kronfluence {rho:.4f}")
    # Observed here: K-FAC 0.967, EK-FAC 0.991; the same comparison as a script on a sibling setup
    # (bench/check_kronfluence.py) gives 1.000 / 1.000 with EK-FAC values equal to 1e-5. Not yet explained.
    assert rho >= 0.95


def test_countsketch_csr_path_equals_index_add_path():
    """The CUDA path (a CSR matrix product per layer) gives the CPU path's sketch."""
    shapes = [(6, 5), (3, 7)]
    grads = [torch.randn(4, o, i, generator=torch.Generator().manual_seed(k)) for k, (o, i) in enumerate(shapes)]
    sketch = CountSketch(shapes, 8, seed=2)
    torch.testing.assert_close(sketch.sparse_sketch(grads), sketch(grads), rtol=1e-5, atol=1e-5)


def test_factor_passes_on_an_engine_sum_the_same_floats_as_the_in_process_fit(tokenizer):
    """K-FAC/EK-FAC passes are sums: an engine sums each block's batches, then the blocks in plan order,
    and the in-process fit sums in exactly that order, so the factors are bit-identical (here 20 blocks of
    two batches); the sums also equal a plain sum over every example, to rounding."""
    from tamis.engine import LocalEngine
    from tamis.engine.tasks import FactorSumTask, factor_items, influence_size
    from tamis.signals.influence.kfac import batch_sums, local_sum_pass

    cfg = GradientConfig(params="linear", layer_stride=2, batch_size=1, linear_modules=("mlp.down_proj",))
    tracked = TrackedModel(prepare_model(tiny_llama(hidden=8).double(), cfg), tokenizer, cfg)
    cands = tracked.encode(random_examples(40, "c"))
    cands[7] = cands[3]  # a repeated example counts twice in a sum

    def engine_pass(kind, eigenvectors):
        task = FactorSumTask("tiny", None, {}, kind, eigenvectors)
        task._tracked = tracked
        total, stats = LocalEngine().reduce(task, factor_items(cands), size=influence_size)
        assert stats.blocks == 20 and stats.items == 40
        return total

    for strategy in ("kfac", "ekfac"):
        here, there = fit_factors(tracked, cands, strategy), fit_factors(tracked, cands, strategy, sum_pass=engine_pass)
        for a, b in zip(here.layers, there.layers):
            for key in ("A", "G", "corrected"):
                x, y = getattr(a, key), getattr(b, key)
                assert (x is None and y is None) or torch.equal(x, y)
        assert here.meta == there.meta and here.meta["n_examples"] == 40
    plain = [batch_sums(tracked, [e], "covariance") for e in cands]
    summed = local_sum_pass(tracked, cands)("covariance", None)
    assert summed["n_tokens"] == sum(p["n_tokens"] for p in plain)
    for m in range(len(tracked.names)):
        assert torch.allclose(summed["A"][m], sum(p["A"][m] for p in plain), rtol=1e-12, atol=0)
    task = FactorSumTask("tiny", None, {}, "covariance")
    task._tracked = tracked
    with pytest.raises(ValueError, match="unique keys"):
        LocalEngine().reduce(task, factor_items(cands)[:2] * 2, size=influence_size)
