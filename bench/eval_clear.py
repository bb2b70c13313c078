"""Detector evaluation on real data: BSDetector confidence vs the baselines, AUROC with 95% CIs.

Two sets, built reproducibly (seeded) from ../shared/data (read there, never copied into the repo):
- dolly-swap: N examples of dolly_alpagasus_3k, 20% of responses swapped between examples with
  length matching (CLEAR's Emails-N; length alone cannot explain a result);
- libre-status: alpaca_libre_status rows the generator rejected (blacklist / too short / bad start)
  vs rows it accepted ("ok"), N/2 each ("too similar" rows are about the instruction, left out).
Runs ``tamis score confidence`` then ``tamis evaluate-detector`` on each.

    python bench/eval_clear.py [--n 60] [--k 5] [--max-tokens 48] [--out /tmp/clear_eval]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from tamis.evaluate.corruption import swap_responses
from tamis.io import read_dataset, write_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BAD_STATUS = ("blacklist", "too short", "bad start")


def build(n: int, out: Path, seed: int = 0) -> dict[str, tuple[Path, list[str]]]:
    out.mkdir(parents=True, exist_ok=True)
    dolly = read_dataset(DATA / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl").examples
    sample = random.Random(seed).sample(dolly, n)
    swapped, _ = swap_responses(sample, 0.2, seed=seed, length_matched=True)
    write_dataset(swapped, out / "dolly_swap.jsonl")
    libre = read_dataset(DATA / "alpaca_libre_status" / "alpaca_libre_tasks_v1-v3.jsonl").examples
    rng = random.Random(seed)
    bad = rng.sample([e for e in libre if e.meta.get("status") in BAD_STATUS], n // 2)
    good = rng.sample([e for e in libre if e.meta.get("status") == "ok"], n - n // 2)
    mixed = bad + good
    rng.shuffle(mixed)
    write_dataset(mixed, out / "libre_status.jsonl")
    return {"dolly_swap": (out / "dolly_swap.jsonl", ["--flag", "corruption"]),
            "libre_status": (out / "libre_status.jsonl",
                             ["--flag", "status", "--good", "ok"] + [x for b in BAD_STATUS for x in ("--bad", b)])}


def markdown(detection: Path) -> str:
    """The detection table as docs/CLEAR.md shows it: AUROC and AUPRC with 95% CIs, filter P/R."""
    rows = json.loads(detection.read_text())
    fmt = lambda e: f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"  # noqa: E731
    lines = ["| signal | AUROC [95% CI] | AUPRC [95% CI] | median filter precision / recall |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {fmt(r['auroc'])} | {fmt(r['auprc'])} | "
                     f"{r['precision']['value']:.2f} / {r['recall']['value']:.2f} |")
    first = next(iter(rows.values()))
    return f"n = {first['n']}, bad = {first['n_bad']}\n\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--model", default="transformers:smollm2")
    ap.add_argument("--out", type=Path, default=Path("/tmp/clear_eval"))
    ap.add_argument("--only", default=None, help="dolly_swap or libre_status")
    args = ap.parse_args()
    sets = build(args.n, args.out)
    for name, (path, flag) in sets.items():
        if args.only and name != args.only:
            continue
        run = args.out / f"score-{name}"
        tamis = [sys.executable, "-m", "tamis.cli"]
        subprocess.run(tamis + ["score", "confidence", str(path), "--model", args.model, "--k", str(args.k),
                                "--max-tokens", str(args.max_tokens), "--out", str(run), "-w", str(args.out / "ws")],
                       check=True)
        subprocess.run(tamis + ["evaluate-detector", str(path), "--scores", str(run), "--out",
                                str(args.out / f"eval-{name}")] + flag, check=True)
        print(f"\n{name}: " + markdown(args.out / f"eval-{name}" / "detection.json"))


if __name__ == "__main__":
    main()
