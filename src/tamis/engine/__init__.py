"""Engines for per-example work: ``local`` (this process) and ``ray`` (a Ray cluster).

A stage packages its per-example work as a block task (``tamis.engine.base.BlockTask``); an engine
plans the blocks, computes the unfinished ones and returns one row per distinct item. Both engines
store each block as a Parquet shard plus a completion marker (``tamis.engine.shards.ShardStore``) and
run the same backend batches, so they give the same values. Jobs keep their single-process path
(and its SQLite call cache) under ``--engine local``. See docs/SCALE.md.
"""

from __future__ import annotations

from typing import Any

from tamis.engine.base import ENGINES, Block, BlockTask, EngineConfig, EngineStats, LocalEngine, plan_blocks
from tamis.errors import ConfigError, unknown

__all__ = ["ENGINES", "Block", "BlockTask", "EngineConfig", "EngineStats", "LocalEngine", "ShardStore",
           "get_engine", "plan_blocks"]


def __getattr__(name: str) -> Any:
    """``ShardStore`` loads pyarrow: only when a stage uses it, not when a command's options are built."""
    if name == "ShardStore":
        from tamis.engine.shards import ShardStore

        return ShardStore
    raise AttributeError(f"module 'tamis.engine' has no attribute {name!r}")


def get_engine(config: EngineConfig) -> Any:
    """The engine a config names."""
    if config.engine == "local":
        return LocalEngine()
    if config.engine == "ray":
        from tamis.engine.ray_engine import RayEngine

        return RayEngine(config)
    raise ConfigError(unknown("engine", config.engine, ENGINES))
