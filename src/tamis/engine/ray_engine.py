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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tamis.engine.base import (Block, BlockTask, EngineConfig, EngineStats, InOrder, SumTask, collect, plan_blocks,
                               plan_sum_blocks, prune_and_count, run_chunks, sum_chunks, sum_stats)
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

    def run_sum(self, items: list[dict[str, Any]], chunk: int) -> Any:
        return sum_chunks(self.task, items, chunk)  # type: ignore[arg-type]


class _Pool:
    """The actors of one stage: the first one set up (its batch bound and info known), more added for the
    blocks to do, blocks handed out one per idle actor."""

    def __init__(self, ray: Any, config: EngineConfig, task: BlockTask | SumTask, n_workers: int):
        self.ray, self.task, self.n_workers = ray, task, n_workers
        env = {k: v for k, v in os.environ.items() if k.startswith("TAMIS_") or k in ("HF_HUB_OFFLINE",
                                                                                   "TRANSFORMERS_OFFLINE")}
        cls = ray.remote(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker,
                         max_restarts=RETRIES, max_task_retries=RETRIES)(_Worker)
        self.new_actor = lambda: cls.remote(task, config.cpus_per_worker, env)
        self.actors: list[Any] = [self.new_actor()]
        try:
            self.chunk, self.info = ray.get([self.actors[0].batch_bound.remote(), self.actors[0].info.remote()])
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            raise ModelError(f"a Ray worker could not set up {task.name}: {_cause(exc)}") from None

    def grow(self, n_blocks: int) -> int:
        n = max(1, min(self.n_workers, n_blocks))
        self.actors += [self.new_actor() for _ in range(n - len(self.actors))]
        return len(self.actors)

    def drive(self, blocks: list[Block], submit: Callable[[Any, Block], Any], done: Callable[[Block, Any], None],
              description: str) -> float:
        """Every block computed (one in flight per actor); ``done(block, value)`` as each returns. Seconds."""
        from tamis.progress import progress

        ray = self.ray
        t0 = time.perf_counter()
        with progress(description, len(blocks)) as advance:
            pending: dict[Any, tuple[Any, Block]] = {}
            queue, idle = list(blocks), list(self.actors)
            while queue or pending:
                while queue and idle:
                    actor, block = idle.pop(), queue.pop(0)
                    pending[submit(actor, block)] = (actor, block)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    actor, block = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                        raise ModelError(f"a Ray worker failed block {block.name} after {RETRIES} retries: "
                                         f"{_cause(exc)}") from None
                    done(block, value)
                    idle.append(actor)
                    advance(1)
        return round(time.perf_counter() - t0, 3)

    def close(self) -> None:
        for actor in self.actors:  # free their CPUs/GPUs now, not when this driver exits
            self.ray.kill(actor)


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

    @contextmanager
    def pool(self, task: BlockTask | SumTask) -> Iterator[_Pool]:
        """A pool of actors for one stage, killed (and a Ray this engine started shut down) at the end."""
        ray = self.connect()
        pool = None
        try:
            n = self.n_workers(ray)
            if hasattr(task, "workers_sharing"):  # a served model's concurrency is shared by the workers
                task = dataclasses.replace(task, workers_sharing=n)  # type: ignore[type-var]
            pool = _Pool(ray, self.config, task, n)
            yield pool
        finally:
            if pool is not None:
                pool.close()
            if self._started:
                ray.shutdown()
                self._started = False

    def map(self, task: BlockTask, items: Sequence[dict[str, Any]], store: Any, *,
            size: Callable[[dict[str, Any]], int], description: str = "") -> tuple[dict[str, dict[str, Any]], EngineStats]:
        with self.pool(task) as pool:
            blocks = plan_blocks(pool.task, items, size, pool.chunk)
            stats = prune_and_count(store, blocks)
            stats.extra["info"] = pool.info
            done = store.done()
            todo = [b for b in blocks if b.name not in done]
            stats.workers = pool.grow(len(todo))
            stats.extra["compute_s"] = pool.drive(
                todo, lambda actor, b: actor.run.remote(b.name, b.items, pool.chunk, store),
                lambda b, _: None, description or pool.task.name)
            return collect(store, blocks), stats

    def reduce(self, task: SumTask, items: Sequence[dict[str, Any]], *, size: Callable[[dict[str, Any]], int],
               description: str = "") -> tuple[Any, EngineStats]:
        """As ``LocalEngine.reduce``: each worker sums whole blocks, the driver adds the block sums in plan
        order as they arrive (the same floats as the local engine)."""
        with self.pool(task) as pool:
            blocks = plan_sum_blocks(task, items, size, pool.chunk)
            stats = sum_stats(blocks)
            stats.extra["info"] = pool.info
            stats.workers = pool.grow(len(blocks))
            total = InOrder(task)
            stats.extra["compute_s"] = pool.drive(
                blocks, lambda actor, b: actor.run_sum.remote(b.items, pool.chunk),
                lambda b, part: total.add(b.index, part), description or task.name)
            return total.total, stats


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
