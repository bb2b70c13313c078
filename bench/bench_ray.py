"""Ray engine overhead and scaling for log-likelihood scoring, against the local engine in the same run.

Same examples (../shared/data/dolly_alpagasus_3k, else the bundled demo set), same model (bundled
SmolLM2-135M-Instruct, fp32, uncached), fresh storage for every mode:

- local, 1 thread: today's path (``tamis profile --engine local``: call cache, one process);
- ray, 1 worker x 1 thread: the Ray engine (actor start and model load included; the Ray cluster is
  started once beforehand, as a cluster would be);
- ray, 2 workers x 1 thread each;
- local, 2 threads: for context (what one process gets from both cores).

Ratios: overhead = ray(1) / local(1) - 1 (goal <= 10%); scaling efficiency = ray(1) / (2 x ray(2))
(goal >= 0.8). It also checks that every mode with one thread per batch gives the same floats.

    flock /tmp/tamis-heavy.lock python bench/bench_ray.py [--n 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TAMIS_PROGRESS", "0")

import torch  # noqa: E402

from tamis.engine import EngineConfig, ShardStore  # noqa: E402
from tamis.engine.ray_engine import RayEngine  # noqa: E402
from tamis.engine.tasks import LikelihoodTask, likelihood_items, likelihood_size  # noqa: E402
from tamis.io import read_dataset  # noqa: E402
from tamis.models import load_llm  # noqa: E402
from tamis.pipeline.demo import demo_data_path  # noqa: E402
from tamis.signals.likelihood import response_likelihood  # noqa: E402
from tamis.store import Workspace  # noqa: E402

DOLLY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly_alpagasus_3k"


def load_examples(n: int):
    files = sorted(DOLLY.glob("*.jsonl")) if DOLLY.is_dir() else []
    source = files[0] if files else demo_data_path()
    return source, read_dataset(source, limit=n if files else None).examples[:n]


def local_mode(examples, spec: str, threads: int, root: Path) -> tuple[float, list[float]]:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    llm = load_llm(spec, Workspace(root))  # a fresh call cache: everything is computed
    table = response_likelihood(examples, llm)
    return time.perf_counter() - t0, table.columns["loglik_sum"]


def ray_mode(examples, spec: str, workers: int, root: Path) -> tuple[float, list[float], float]:
    items = likelihood_items(examples)
    t0 = time.perf_counter()
    rows, stats = RayEngine(EngineConfig(engine="ray", workers=workers, cpus_per_worker=1)).map(
        LikelihoodTask(spec, str(root)), items, ShardStore(root / "shards"), size=likelihood_size)
    elapsed = time.perf_counter() - t0
    return elapsed, [float(sum(rows[it["key"]]["logprobs"])) for it in items], stats.extra["compute_s"]


def main() -> None:
    import ray

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--model", default="transformers:smollm2")
    args = ap.parse_args()
    source, examples = load_examples(args.n)
    Workspace()  # converts the bundled model once, outside the timings
    load_llm(args.model, Workspace(), cache=False)
    print(f"data: {source} ({len(examples)} examples); model {args.model}; {os.cpu_count()} cores")

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    print(f"ray cluster start (once, not in the timings): {time.perf_counter() - t0:.1f} s")
    os.environ.setdefault("TAMIS_MODELS", str(Workspace().models_dir))
    threads = torch.get_num_threads()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["local, 1 thread"] = local_mode(examples, args.model, 1, Path(tmp) / "l1")
        results["ray, 1 worker x 1 thread"] = ray_mode(examples, args.model, 1, Path(tmp) / "r1")
        results["ray, 2 workers x 1 thread"] = ray_mode(examples, args.model, 2, Path(tmp) / "r2")
        results["local, 2 threads"] = local_mode(examples, args.model, 2, Path(tmp) / "l2")
    torch.set_num_threads(threads)
    ray.shutdown()

    print(f"{'mode':<28}{'seconds':>10}{'examples/s':>12}{'compute s':>11}")
    for name, res in results.items():
        extra = f"{res[2]:>11.1f}" if len(res) > 2 else f"{'':>11}"
        print(f"{name:<28}{res[0]:>10.1f}{len(examples) / res[0]:>12.2f}{extra}")
    local1, ray1, ray2 = (results[k][0] for k in ("local, 1 thread", "ray, 1 worker x 1 thread",
                                                  "ray, 2 workers x 1 thread"))
    same = results["local, 1 thread"][1] == results["ray, 1 worker x 1 thread"][1] == results["ray, 2 workers x 1 thread"][1]
    print(f"identical log-likelihoods across the one-thread modes: {same}")
    print(f"overhead ray(1 worker) / local(1 thread) - 1: {ray1 / local1 - 1:+.1%} (goal <= 10%)")
    print(f"scaling efficiency ray(1) / (2 x ray(2)): {ray1 / (2 * ray2):.2f} (goal >= 0.8)")
    print(f"ray(2 workers x 1 thread) vs local(2 threads): {results['local, 2 threads'][0] / ray2:.2f}x")


if __name__ == "__main__":
    main()
