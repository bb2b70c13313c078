"""The Ray engine: the same blocks as the local engine, computed by a pool of Ray actors.

Each actor loads the stage's model once (``task.setup()`` in its constructor) and computes whole
blocks, one backend batch at a time, writing each block's shard and marker itself (so the run
folder, or the fsspec URL of the shards, must be reachable from every node). The driver only plans
blocks, hands the unfinished ones out (one in flight per actor, the next as soon as one returns) and
reads the shards back in plan order. Actors are restarted and their block retried when a worker
process dies (``max_restarts``/``max_task_retries``); a killed driver leaves finished shards behind
and a rerun computes only the rest.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from tamis.engine.base import BlockTask, EngineConfig, EngineStats, collect, plan_blocks, prune_and_count, run_chunks
from tamis.errors import ConfigError, ModelError

RETRIES = 3


def _ray() -> Any:
    from tamis.extras import require

    require("ray", "--engine ray")
    import ray

    return ray


class _Worker:
    """One actor: the task set up once, then blocks."""

    def __init__(self, task: BlockTask, threads: int, env: dict[str, str]):
        os.environ.update(env)
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        self.task = task
        task.setup()
        self.chunk = task.batch_bound()

    def batch_bound(self) -> int:
        return self.chunk

    def info(self) -> dict[str, Any]:
        return self.task.info()

    def node(self) -> str:
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"

    def run(self, name: str, items: list[dict[str, Any]], chunk: int, store: Any) -> int:
        rows = run_chunks(self.task, items, chunk)
        store.write(name, rows)
        return len(rows)


class RayEngine:
    """Per-example work on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, config: EngineConfig):
        self.config = config
        self._started = False

    def connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            address = self.config.address or os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}") from None
            self._started = True
        return ray

    def n_workers(self, ray: Any) -> int:
        if self.config.workers:
            return self.config.workers
        resources = ray.cluster_resources()
        if self.config.gpus_per_worker:
            n = int(resources.get("GPU", 0) // self.config.gpus_per_worker)
            if n < 1:
                raise ConfigError(f"--gpus-per-worker {self.config.gpus_per_worker}: the Ray cluster has "
                                  f"{resources.get('GPU', 0)} GPUs")
            return n
        return max(1, int(resources.get("CPU", 1) // self.config.cpus_per_worker))

    def map(self, task: BlockTask, items: Sequence[dict[str, Any]], store: Any, *,
            size: Callable[[dict[str, Any]], int], description: str = "") -> tuple[dict[str, dict[str, Any]], EngineStats]:
        from tamis.progress import progress

        ray = self.connect()
        actors: list[Any] = []
        try:
            n = self.n_workers(ray)
            if hasattr(task, "workers_sharing"):  # a served model's concurrency is shared by the workers
                task = dataclasses.replace(task, workers_sharing=n)
            env = {k: v for k, v in os.environ.items() if k.startswith("TAMIS_") or k in ("HF_HUB_OFFLINE",
                                                                                       "TRANSFORMERS_OFFLINE")}
            actor_cls = ray.remote(num_cpus=self.config.cpus_per_worker, num_gpus=self.config.gpus_per_worker,
                                   max_restarts=RETRIES, max_task_retries=RETRIES)(_Worker)
            first = actor_cls.remote(task, self.config.cpus_per_worker, env)
            actors.append(first)
            try:
                chunk, info = ray.get([first.batch_bound.remote(), first.info.remote()])
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                raise ModelError(f"a Ray worker could not set up {task.name}: {_cause(exc)}") from None
            blocks = plan_blocks(task, items, size, chunk)
            stats = prune_and_count(store, blocks)
            stats.extra["info"] = info
            done = store.done()
            todo = [b for b in blocks if b.name not in done]
            n = max(1, min(n, len(todo)))
            actors += [actor_cls.remote(task, self.config.cpus_per_worker, env) for _ in range(n - 1)]
            stats.workers = len(actors)
            t0 = time.perf_counter()
            with progress(description or task.name, len(todo)) as advance:
                pending: dict[Any, tuple[Any, str]] = {}
                queue = list(todo)
                idle = list(actors)
                while queue or pending:
                    while queue and idle:
                        actor, block = idle.pop(), queue.pop(0)
                        pending[actor.run.remote(block.name, block.items, chunk, store)] = (actor, block.name)
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        actor, name = pending.pop(ref)
                        try:
                            ray.get(ref)
                        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                            raise ModelError(f"a Ray worker failed block {name} after {RETRIES} retries: "
                                             f"{_cause(exc)}") from None
                        idle.append(actor)
                        advance(1)
            stats.extra["compute_s"] = round(time.perf_counter() - t0, 3)
            return collect(store, blocks), stats
        finally:
            for actor in actors:  # free their CPUs/GPUs now, not when this driver exits
                ray.kill(actor)
            if self._started:
                ray.shutdown()
                self._started = False


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
