"""What every engine shares: block tasks, the block plan, the settings, and the local engine.

A *block task* is a per-example stage packaged so that it can run anywhere: ``setup()`` loads its
model (once per process or Ray actor), ``batch_bound()`` is the backend's own batch bound (items
computed together), and ``task(items)`` maps a list of items to one output row per item, keyed by
``"key"``. The *plan* cuts the distinct items into blocks exactly as the call cache cuts its
chunks: sorted by length (longest first, ties in input order) and cut every ``batch_bound`` items,
with a block holding a whole number of chunks. Each chunk is one backend call with the same items in
the same order whichever engine runs it, so the local and Ray engines give the same floats, and a
block's name (index + digest of the task and its keys) says whether a stored shard is still valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tamis.settings import setting, validate

ENGINES = ("local", "ray")
TARGET_BLOCKS = 16  # aim for at least this many blocks (spreads work over workers) ...
MAX_CHUNKS_PER_BLOCK = 16  # ... but never more than this many backend batches per block


@dataclass
class EngineConfig:
    """Where a stage's per-example work runs. These settings change where and how fast, never what
    is computed, so they are not part of a run's saved settings."""

    engine: str = setting("local", "Engine for per-example work: local (this process) or ray (a Ray cluster).",
                          choices=ENGINES)
    address: str | None = setting(None, "Ray cluster address (e.g. ray://head:10001 or HOST:6379) [default: "
                                  "$RAY_ADDRESS, else a local Ray started for this command].")
    workers: int | None = setting(None, "Ray workers (actors, one model each) [default: the cluster's CPUs / "
                                  "cpus-per-worker, or its GPUs / gpus-per-worker].", range=(1, None))
    gpus_per_worker: float = setting(0.0, "GPUs per Ray worker (0: CPU workers; 0.5: two workers share a GPU).",
                                     range=(0, None))
    cpus_per_worker: int = setting(1, "CPU cores (torch threads) per Ray worker.", range=(1, None))
    shards: str | None = setting(None, "Where block shards go: a folder or fsspec URL (s3://, gs://) that every "
                                 "node can reach [default: RUN/shards].")

    def __post_init__(self) -> None:
        validate(self)  # ranges and choices as declared above, from a recipe or the library too


def stage_shards(engine: EngineConfig, run_out: Any, stage: str) -> str:
    """Where one stage's block shards go: ``--shards URL/STAGE`` when given, else ``RUN/shards/STAGE``. One
    folder per stage: an engine removes the shards of other plans from its folder, so two stages sharing
    one would delete each other's finished blocks."""
    from pathlib import Path

    return f"{engine.shards.rstrip('/')}/{stage}" if engine.shards else str(Path(run_out) / "shards" / stage)


class BlockTask(Protocol):
    """A per-example stage that an engine can run (see the module docstring). Must be picklable."""

    name: str

    def fingerprint(self) -> str: ...

    def setup(self) -> None: ...

    def batch_bound(self) -> int: ...

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def info(self) -> dict[str, Any]:
        """What the driver needs from a set-up task without loading its model (e.g. identity, tokenizer)."""
        ...


class SumTask(Protocol):
    """A stage whose result is a sum over examples (K-FAC factors): ``partial(items)`` is one backend
    batch's contribution and ``add(total, part)`` adds two of them. Engines sum each block's batches in
    order, then the blocks in plan order, so every engine gives the same floats. Must be picklable."""

    name: str

    def fingerprint(self) -> str: ...

    def setup(self) -> None: ...

    def batch_bound(self) -> int: ...

    def partial(self, items: list[dict[str, Any]]) -> Any: ...

    def add(self, total: Any, part: Any) -> Any: ...


@dataclass
class Block:
    index: int
    name: str
    items: list[dict[str, Any]]


@dataclass
class EngineStats:
    """What a run did, for the manifest."""

    blocks: int = 0
    blocks_reused: int = 0
    blocks_computed: int = 0
    items: int = 0
    workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self, prefix: str) -> dict[str, int]:
        return {f"{prefix}_blocks": self.blocks, f"{prefix}_blocks_reused": self.blocks_reused,
                f"{prefix}_blocks_computed": self.blocks_computed}


def distinct_sorted(items: Sequence[dict[str, Any]], size: Callable[[dict[str, Any]], int]) -> list[dict[str, Any]]:
    """The distinct items (by ``"key"``, first occurrence) sorted longest first, ties in input order:
    the order in which the call cache computes missing items."""
    first: dict[str, dict[str, Any]] = {}
    for item in items:
        first.setdefault(item["key"], item)
    return sorted(first.values(), key=lambda it: -size(it))


def chunks_per_block(n_items: int, chunk: int) -> int:
    return max(1, min(MAX_CHUNKS_PER_BLOCK, n_items // (TARGET_BLOCKS * chunk)))


def plan_blocks(task: BlockTask, items: Sequence[dict[str, Any]], size: Callable[[dict[str, Any]], int],
                chunk: int) -> list[Block]:
    """Cut the distinct items into named blocks of whole chunks (see the module docstring)."""
    ordered = distinct_sorted(items, size)
    per_block = chunk * chunks_per_block(len(ordered), chunk)
    blocks = []
    for index, start in enumerate(range(0, len(ordered), per_block)):
        part = ordered[start : start + per_block]
        digest = hashlib.sha256(json.dumps([task.fingerprint(), chunk, [it["key"] for it in part]]).encode()).hexdigest()
        blocks.append(Block(index, f"{task.name}-{index:05d}-{digest[:16]}", part))
    return blocks


def run_chunks(task_call: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], items: list[dict[str, Any]],
               chunk: int) -> list[dict[str, Any]]:
    """A block's rows, one backend call per chunk (the same calls as the call cache makes)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(items), chunk):
        rows += task_call(items[start : start + chunk])
    return rows


def sum_chunks(task: SumTask, items: list[dict[str, Any]], chunk: int) -> Any:
    """A block's sum: its backend batches' partials added in order."""
    total = None
    for start in range(0, len(items), chunk):
        part = task.partial(items[start : start + chunk])
        total = part if total is None else task.add(total, part)
    return total


class InOrder:
    """Adds block sums in plan order whatever order they arrive in (holding the early arrivals)."""

    def __init__(self, task: SumTask):
        self.task, self.total, self.next, self.waiting = task, None, 0, {}

    def add(self, index: int, part: Any) -> None:
        self.waiting[index] = part
        while self.next in self.waiting:
            part = self.waiting.pop(self.next)
            self.total = part if self.total is None else self.task.add(self.total, part)
            self.next += 1


def plan_sum_blocks(task: SumTask, items: Sequence[dict[str, Any]], size: Callable[[dict[str, Any]], int],
                    chunk: int) -> list[Block]:
    """The blocks of a sum: as ``plan_blocks``, but every item counts (a repeated key is an error, since
    the plan would count it once)."""
    if len({it["key"] for it in items}) != len(items):
        raise ValueError(f"{task.name}: a sum needs one item per example (unique keys)")
    return plan_blocks(task, items, size, chunk)  # type: ignore[arg-type]


def sum_stats(blocks: list[Block]) -> EngineStats:
    return EngineStats(blocks=len(blocks), blocks_computed=len(blocks), items=sum(len(b.items) for b in blocks))


class LocalEngine:
    """Runs the blocks in this process, one after another, with the same plan and shards as Ray."""

    name = "local"

    def map(self, task: BlockTask, items: Sequence[dict[str, Any]], store: Any, *,
            size: Callable[[dict[str, Any]], int], description: str = "") -> tuple[dict[str, dict[str, Any]], EngineStats]:
        from tamis.progress import progress

        task.setup()
        chunk = task.batch_bound()
        blocks = plan_blocks(task, items, size, chunk)
        stats = prune_and_count(store, blocks)
        stats.workers = 1
        stats.extra["info"] = task.info()
        done = store.done()
        todo = [b for b in blocks if b.name not in done]
        with progress(description or task.name, len(todo)) as advance:
            for block in todo:
                store.write(block.name, run_chunks(task, block.items, chunk))
                advance(1)
        return collect(store, blocks), stats

    def reduce(self, task: SumTask, items: Sequence[dict[str, Any]], *, size: Callable[[dict[str, Any]], int],
               description: str = "") -> tuple[Any, EngineStats]:
        """The sum of ``task.partial`` over every item (not de-duplicated: keys must be unique), in
        memory: a sum pass is not resumed block by block (its caller saves the result)."""
        from tamis.progress import progress

        task.setup()
        chunk = task.batch_bound()
        blocks = plan_sum_blocks(task, items, size, chunk)
        total = InOrder(task)
        with progress(description or task.name, len(blocks)) as advance:
            for block in blocks:
                total.add(block.index, sum_chunks(task, block.items, chunk))
                advance(1)
        stats = sum_stats(blocks)
        stats.workers = 1
        return total.total, stats


def prune_and_count(store: Any, blocks: list[Block]) -> EngineStats:
    """Remove shards that belong to no block of this plan (other data or settings); count reuse."""
    wanted = {b.name for b in blocks}
    for name in store.names() - wanted:
        store.remove(name)
    done = store.done()
    reused = sum(1 for b in blocks if b.name in done)
    return EngineStats(blocks=len(blocks), blocks_reused=reused, blocks_computed=len(blocks) - reused,
                       items=sum(len(b.items) for b in blocks))


def collect(store: Any, blocks: list[Block]) -> dict[str, dict[str, Any]]:
    """Every block's rows, by key."""
    from tamis.errors import WorkspaceError

    out: dict[str, dict[str, Any]] = {}
    done = store.done()
    for block in blocks:
        if block.name not in done:
            raise WorkspaceError(f"{store.url}: block {block.name} reported finished but has no shard there; "
                                 "on a multi-node cluster the run folder must be shared by every node "
                                 "(a shared disk or an fsspec URL such as s3://...)")
        for row in store.read(block.name):
            out[row["key"]] = row
    return out
