"""Does influence on a trusted seed set track human judgements? WMT22 system outputs vs crowd DA.

Built reproducibly (seeded) from ../shared/data/wmt22_general_zhen_deen (read there, never copied):
- seed set: the reference translation (ref_A) of ``--seeds`` segments, as chat examples
  ("Translate the following German text into English." + source -> reference);
- candidates: every MT system output of ``--segments`` other segments that has a segment-level crowd
  DA score (about 9 systems per segment), as chat examples with the same prompt.
Runs ``tamis score influence`` (G-DIG's setting by default: MLP down-projection of every third layer,
EK-FAC, seed batches of 2) and correlates each candidate's mean influence with its DA z-score:
Spearman over all candidates, and the mean within-segment Spearman (ranking the systems' outputs of
the same source, which removes segment difficulty), each with a 95% bootstrap CI over segments.
The identity-Hessian (TracIn/LESS-style) score from the same run and a seeded random score are the
baselines; "DA of kept" is the mean DA z of the candidates G-DIG's rule keeps (positive on every
seed batch) against the mean of all.

    python bench/eval_influence_wmt.py [--pair de-en] [--seeds 64] [--segments 60] [--out /tmp/influence_wmt]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import spearmanr

from tamis.io import write_dataset
from tamis.records import chat_example

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wmt22_general_zhen_deen"
LANGUAGE = {"de": "German", "zh": "Chinese"}


def prompt(pair: str, source: str) -> str:
    return f"Translate the following {LANGUAGE[pair[:2]]} text into English.\n\n{source}"


def build(pair: str, n_seeds: int, n_segments: int, out: Path, seed: int = 0) -> dict[str, float]:
    """Write seeds.jsonl and candidates.jsonl; return the DA z-score of every candidate id."""
    segments = [json.loads(line) for line in open(DATA / f"generaltest2022.{pair}.jsonl", encoding="utf-8")]
    outputs = {(r["line_no"], r["system"]): r["hyp"] for r in map(json.loads, open(
        DATA / f"generaltest2022.{pair}.system_outputs.jsonl", encoding="utf-8"))}
    da: dict[int, dict[str, float]] = defaultdict(dict)
    with open(DATA / f"humaneval_DA_seg_scores_{pair}.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            system = re.sub(r"\.\d+$", "", row["SYS"])
            if (int(row["SID"]), system) in outputs:  # HUMAN-B (a reference) has no system output
                da[int(row["SID"])][system] = float(row["Z.SCR"])
    order = list(range(len(segments)))
    random.Random(seed).shuffle(order)
    seeds = [segments[i] for i in order[:n_seeds]]
    pool = [segments[i] for i in order[n_seeds:] if len(da[segments[i]["line_no"]]) >= 3][:n_segments]
    write_dataset([chat_example([{"role": "user", "content": prompt(pair, s["src"])},
                                 {"role": "assistant", "content": s["ref_A"]}], id=f"seed-{s['line_no']}")
                   for s in seeds], out / "seeds.jsonl")
    cands, scores = [], {}
    for s in pool:
        for system, z in sorted(da[s["line_no"]].items()):
            cid = f"{s['line_no']}:{system}"
            cands.append(chat_example([{"role": "user", "content": prompt(pair, s["src"])},
                                       {"role": "assistant", "content": outputs[(s["line_no"], system)]}], id=cid))
            scores[cid] = z
    write_dataset(cands, out / "candidates.jsonl")
    return scores


def correlations(ids: list[str], score: np.ndarray, da: np.ndarray, boot: int = 1000, seed: int = 0) -> dict[str, object]:
    segment = np.array([i.split(":")[0] for i in ids])
    groups = {g: np.flatnonzero(segment == g) for g in np.unique(segment)}
    within = {g: spearmanr(score[idx], da[idx]).statistic for g, idx in groups.items()}
    within = {g: v for g, v in within.items() if np.isfinite(v)}
    rng = np.random.default_rng(seed)
    keys = list(groups)
    overall_b, within_b = [], []
    for _ in range(boot):
        pick = rng.choice(len(keys), len(keys))
        idx = np.concatenate([groups[keys[p]] for p in pick])
        overall_b.append(spearmanr(score[idx], da[idx]).statistic)
        within_b.append(np.mean([within[keys[p]] for p in pick if keys[p] in within]))
    return {"overall": spearmanr(score, da).statistic, "overall_ci": np.nanpercentile(overall_b, [2.5, 97.5]),
            "within": float(np.mean(list(within.values()))), "within_ci": np.nanpercentile(within_b, [2.5, 97.5])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="de-en", choices=["de-en", "zh-en"])
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--segments", type=int, default=60)
    ap.add_argument("--factor-limit", type=int, default=200)
    ap.add_argument("--model", default="transformers:smollm2")
    ap.add_argument("--out", type=Path, default=Path("/tmp/influence_wmt"))
    ap.add_argument("extra", nargs="*", help="more options for `tamis score influence` (after --)")
    args = ap.parse_args()
    out = args.out / args.pair
    out.mkdir(parents=True, exist_ok=True)
    da_by_id = build(args.pair, args.seeds, args.segments, out)
    run = out / "influence"
    subprocess.run([sys.executable, "-m", "tamis.cli", "score", "influence", str(out / "candidates.jsonl"),
                    "--seed", str(out / "seeds.jsonl"), "--model", args.model, "--params", "linear",
                    "--factor-limit", str(args.factor_limit), "--out", str(run), "-w", str(args.out / "ws"),
                    *args.extra], check=True)
    table = pq.read_table(run / "influence.parquet").to_pydict()
    ids = table["id"]
    da = np.array([da_by_id[i] for i in ids])
    rows = {"influence (EK-FAC)": np.array(table["influence_mean"]),
            "identity Hessian (TracIn/LESS)": np.array(table["tracin_mean"]),
            "random": np.random.default_rng(0).normal(size=len(ids))}
    kept = np.array(table["influence_n_positive"]) == np.array(table["n_seed_batches"])
    print(f"\n{args.pair}: {len(ids)} candidates from {len(set(i.split(':')[0] for i in ids))} segments, "
          f"{args.seeds} seed references; Spearman with DA z (95% CI, bootstrap over segments)")
    print(f"{'score':<32} {'overall':>22} {'within segment':>24}")
    result = {}
    for name, score in rows.items():
        c = correlations(ids, score, da)
        result[name] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in c.items()}
        print(f"{name:<32} {c['overall']:+.3f} [{c['overall_ci'][0]:+.3f}, {c['overall_ci'][1]:+.3f}]"
              f"   {c['within']:+.3f} [{c['within_ci'][0]:+.3f}, {c['within_ci'][1]:+.3f}]")
    print(f"G-DIG rule (positive on all seed batches) keeps {kept.sum()} of {len(ids)}: mean DA z "
          f"{da[kept].mean() if kept.any() else float('nan'):+.3f} vs {da.mean():+.3f} for all")
    (out / "correlations.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
