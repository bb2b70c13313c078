"""The engine layer without a model or Ray: shards and markers, the block plan, the local engine's resume."""

from __future__ import annotations

from typing import Any

import pytest

from tamis.engine import EngineConfig, LocalEngine, ShardStore, get_engine, plan_blocks
from tamis.errors import ConfigError


class Lengths:
    """A fake block task (plumbing only): the length of each item's text, in chunks of 3."""

    name = "lengths"

    def __init__(self, calls: list[list[str]] | None = None, tag: str = "v1"):
        self.calls = calls if calls is not None else []
        self.tag = tag

    def fingerprint(self) -> str:
        return f"lengths:{self.tag}"

    def setup(self) -> None:
        pass

    def batch_bound(self) -> int:
        return 3

    def info(self) -> dict[str, Any]:
        return {"tag": self.tag}

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append([it["key"] for it in items])
        return [{"key": it["key"], "n": len(it["text"]), "notes": [it["text"][:1]]} for it in items]


def _items(n: int) -> list[dict[str, Any]]:
    return [{"key": f"k{i}", "text": "x" * (i % 7 + 1)} for i in range(n)]


def _size(item: dict[str, Any]) -> int:
    return len(item["text"])


def test_shard_is_finished_only_when_its_marker_exists(tmp_path):
    store = ShardStore(tmp_path / "shards")
    store.write("b-1", [{"key": "a", "x": 1.5, "v": [1.0, float("-inf")]}, {"key": "b", "x": None, "v": []}])
    assert store.done() == {"b-1"}
    assert store.read("b-1") == [{"key": "a", "x": 1.5, "v": [1.0, float("-inf")]}, {"key": "b", "x": None, "v": []}]
    (tmp_path / "shards" / "b-1.done").unlink()  # as if the writer died between shard and marker
    assert store.done() == set() and store.names() == {"b-1"}
    store.remove("b-1")
    assert store.names() == set()


def test_shard_store_takes_fsspec_urls(tmp_path):
    store = ShardStore(f"file://{tmp_path}/remote")
    store.write("b", [{"key": "a", "x": 2}])
    assert ShardStore(f"file://{tmp_path}/remote").read("b") == [{"key": "a", "x": 2}]
    assert (tmp_path / "remote" / "b.done").is_file()


def test_plan_cuts_distinct_items_longest_first_in_whole_chunks():
    items = _items(20) + [{"key": "k3", "text": "dup"}]  # a repeated key is computed once
    blocks = plan_blocks(Lengths(), items, _size, chunk=3)
    keys = [it["key"] for b in blocks for it in b.items]
    assert sorted(keys) == sorted(f"k{i}" for i in range(20))
    lengths = [len(it["text"]) for b in blocks for it in b.items]
    assert lengths == sorted(lengths, reverse=True)
    assert all(len(b.items) % 3 == 0 for b in blocks[:-1])
    assert len({b.name for b in blocks}) == len(blocks)
    assert [b.name for b in plan_blocks(Lengths(tag="v2"), items, _size, 3)] != [b.name for b in blocks]


def test_local_engine_resumes_only_unfinished_blocks(tmp_path):
    store = ShardStore(tmp_path / "shards")
    calls: list[list[str]] = []
    first, stats = LocalEngine().map(Lengths(calls), _items(40), store, size=_size)
    assert stats.blocks == len(store.done()) and stats.blocks_reused == 0 and stats.extra["info"] == {"tag": "v1"}
    assert first["k5"]["n"] == 6 and first["k5"]["notes"] == ["x"]
    assert all(len(c) <= 3 for c in calls)  # one backend batch per call
    victim = sorted(store.done())[1]
    (tmp_path / "shards" / f"{victim}.done").unlink()
    again: list[list[str]] = []
    second, stats2 = LocalEngine().map(Lengths(again), _items(40), store, size=_size)
    assert second == first
    assert stats2.blocks_reused == stats.blocks - 1 and stats2.blocks_computed == 1
    # shards of another plan (other settings) are removed, not mixed in
    _, stats3 = LocalEngine().map(Lengths(tag="v2"), _items(40), store, size=_size)
    assert stats3.blocks_reused == 0 and len(store.names()) == stats3.blocks


def test_unknown_engine_is_a_config_error():
    with pytest.raises(ConfigError, match="did you mean ray"):
        get_engine(EngineConfig(engine="rey"))
