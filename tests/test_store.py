"""The call cache: durable, exact, and never storing failures."""

from __future__ import annotations

import pytest

from tamis.models.cached import cached_map
from tamis.store import CallCache, Workspace, atomic_write_text, cache_key


def test_values_survive_reopening(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    cache.put_many({"a": {"x": [1, 2.5]}, "b": "text"})
    cache.close()
    again = CallCache(tmp_path / "c.sqlite")
    assert again.get_many(["a", "b", "c"]) == {"a": {"x": [1, 2.5]}, "b": "text"}
    assert len(again) == 2


def test_cache_key_is_order_insensitive_for_dicts_and_sensitive_to_values():
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key("m", [1]) != cache_key("m", [2])


def test_failures_are_not_cached_and_done_chunks_are_kept(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    calls: list[list[int]] = []

    def compute(chunk: list[int]) -> list[int]:
        calls.append(chunk)
        if 3 in chunk:
            raise RuntimeError("server error")
        return [x * 10 for x in chunk]

    items = [1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        cached_map(cache, items, key=str, compute=compute, size=lambda x: -x, chunk_size=2, description="t")
    # chunks run largest-size first: [1, 2] committed, [3, 4] failed and stored nothing
    assert cache.get_many(["1", "2", "3", "4"]) == {"1": 10, "2": 20}
    calls.clear()
    with pytest.raises(RuntimeError):
        cached_map(cache, items, key=str, compute=compute, size=lambda x: -x, chunk_size=2, description="t")
    assert calls == [[3, 4]]  # only the missing ones were tried again


def test_a_group_stays_in_one_chunk_where_its_longest_member_sorts(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    calls: list[list[str]] = []

    def compute(chunk: list[str]) -> list[str]:
        calls.append(chunk)
        return [x.upper() for x in chunk]

    items = ["a1", "bb1", "a22", "cccc1", "bb222"]  # group = the letters; longest first: c, b, a
    out = cached_map(cache, items, key=str, compute=compute, size=len, chunk_size=2, description="t",
                     group=lambda x: x.rstrip("0123456789"))
    assert out == [x.upper() for x in items]
    assert calls == [["cccc1", "bb222", "bb1"], ["a22", "a1"]]  # a chunk ends at a group's end
    calls.clear()
    big = [f"d{i}" for i in range(5)]  # one group of five: cut in chunks, not one call for all
    cached_map(cache, big, key=str, compute=compute, size=len, chunk_size=2, description="t", group=lambda x: x[0])
    assert calls == [["d0", "d1"], ["d2", "d3"], ["d4"]]


def test_atomic_write_and_workspace_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("TAMIS_MODELS", raising=False)
    ws = Workspace(tmp_path / "ws")
    assert ws.run_dir("x") == ws.root / "runs" / "x" and ws.models_dir == ws.root / "models"
    atomic_write_text(ws.root / "f.txt", "hello")
    assert (ws.root / "f.txt").read_text() == "hello"
    assert not list(ws.root.glob(".f.txt.tmp-*"))
