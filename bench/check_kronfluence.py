"""Compare tamis K-FAC/EK-FAC influence with kronfluence 1.0.1 on a tiny random Llama (run: python bench/check_kronfluence.py)."""
import sys, torch, time, numpy as np, random, tempfile, logging; sys.path.insert(0, "tests/influence")
from scipy.stats import spearmanr
from conftest import tiny_llama, SENTENCES
from transformers import AutoTokenizer
from tamis.models.hf import converted_smollm2_dir
from tamis.store import Workspace
from tamis.records import chat_example
from tamis.signals.influence import *
from kronfluence.analyzer import Analyzer, prepare_model as kf_prepare
from kronfluence.task import Task
from kronfluence.arguments import FactorArguments, ScoreArguments
tok = AutoTokenizer.from_pretrained(str(converted_smollm2_dir(Workspace().models_dir)))
rng = random.Random(0)
words = " ".join(t for _, t in SENTENCES).split()
def mk(n, p):
    return [chat_example([{"role":"user","content":"Say something."},{"role":"assistant","content":" ".join(rng.choice(words) for _ in range(rng.randint(3,8)))}], id=f"{p}{i}") for i in range(n)]
cands, seeds = mk(32, "c"), mk(4, "s")
cfg = GradientConfig(params="linear", layer_stride=1, batch_size=8, linear_modules=("mlp.down_proj",))
m = prepare_model(tiny_llama(hidden=16), cfg)
t = TrackedModel(m, tok, cfg)
ec, es = t.encode(cands), t.encode(seeds)
g = t.gradients(ec); gs = t.gradients(es)
proj = CountSketch(t.shapes, None)
def batchify(encs):
    width = max(len(e.ids) for e in encs)
    out = []
    for e in encs:
        ids = torch.full((width,), tok.pad_token_id); ids[:len(e.ids)] = torch.tensor(e.ids)
        mask = torch.zeros(width, dtype=torch.long); mask[:len(e.ids)] = 1
        lab = torch.full((width,), -100); lab[e.n_context-1:len(e.ids)-1] = torch.tensor(e.ids[e.n_context:])
        out.append({"input_ids": ids, "attention_mask": mask, "labels": lab})
    return out
class T(Task):
    def _loss(self, batch, model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        lab = batch["labels"]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), lab, reduction="none", ignore_index=-100)
        n = (lab != -100).sum(1)
        return (nll.sum(1) / n).sum()
    def compute_train_loss(self, batch, model, sample=False): return self._loss(batch, model)
    def compute_measurement(self, batch, model): return self._loss(batch, model)
    def get_influence_tracked_modules(self): return t.names
    def get_attention_mask(self, batch): return batch["attention_mask"]
import copy
ours_all = {(st, d): influence_scores(proj(g).numpy(), seed_features(gs, proj, fit_factors(t, ec, st), damping=d)).T for st in ('kfac','ekfac') for d in (None, 1e-4)}
kf_model = kf_prepare(copy.deepcopy(m), T())
tmp = tempfile.mkdtemp()
an = Analyzer("t", kf_model, T(), cpu=True, output_dir=tmp, disable_tqdm=True)
train, query = batchify(ec), batchify(es)
for strat in ("kfac", "ekfac"):
    an.fit_all_factors(strat, train, factor_args=FactorArguments(strategy=strat, use_empirical_fisher=True), per_device_batch_size=8, overwrite_output_dir=True)
    for damp in (None, 1e-4):
        an.compute_pairwise_scores(f"s{strat}{damp}", strat, query, train, per_device_query_batch_size=4, per_device_train_batch_size=8, score_args=ScoreArguments(damping_factor=damp), overwrite_output_dir=True)
        kf = an.load_pairwise_scores(f"s{strat}{damp}")["all_modules"].numpy()  # (Q, N)
        ours = ours_all[(strat, damp)]
        print(strat, damp, "spearman", spearmanr(ours.ravel(), kf.ravel())[0], "ratio", (kf.ravel()/ours.ravel())[:3])
