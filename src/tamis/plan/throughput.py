"""Measured throughput: every real run records, per model and operation, the tokens it computed and
the seconds they took, in ``WORKSPACE/throughput.json``; dry runs estimate time from it."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tamis.store import atomic_write_json
from tamis.plan.tokens import TokenCounter, counter_of

THROUGHPUT_FILE = "throughput.json"



# -- measured throughput ---------------------------------------------------------------------------
def _throughput_path(workspace: Any) -> Path | None:
    if workspace is None:
        return None
    root = workspace if isinstance(workspace, (str, os.PathLike)) else workspace.root  # a Path's .root is "/"
    return Path(root) / THROUGHPUT_FILE


def read_throughput(workspace: Any) -> dict[str, dict[str, dict[str, Any]]]:
    path = _throughput_path(workspace)
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_throughput(workspace: Any, model: str, op: str, *, calls: int, tokens: int, seconds: float,
                      unit: str, device: str = "") -> None:
    """Keep the latest measurement of (model spec, operation); never fails the job that measured it."""
    path = _throughput_path(workspace)
    if path is None or calls <= 0 or seconds <= 0:
        return
    try:
        data = read_throughput(workspace)
        data.setdefault(model, {})[op] = {
            "calls": int(calls), "tokens": int(tokens), "seconds": round(float(seconds), 4), "unit": unit,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device}
        atomic_write_json(path, data)
    except OSError:
        pass


def _device_of(model: Any) -> str:
    inner = getattr(model, "inner", model)
    device = getattr(inner, "device", None)
    return str(device) if device is not None else ""


class Meter:
    """Times the work a backend really computed (cache misses only) and records it per model and operation."""

    def __init__(self, workspace_root: Path, model: Any, op: str,
                 count: Callable[[TokenCounter, list[Any], list[Any]], tuple[int, int]]):
        self.root, self.model, self.op, self.count = workspace_root, model, op, count
        self.calls = self.tokens = 0
        self.seconds = 0.0
        self._counter: TokenCounter | None = None

    def add(self, items: list[Any], values: list[Any], seconds: float) -> None:
        try:
            if self._counter is None:
                self._counter = counter_of(self.model)
            calls, tokens = self.count(self._counter, items, values)
        except Exception:  # measuring must never break the job
            return
        self.calls += calls
        self.tokens += tokens
        self.seconds += seconds

    def save(self) -> None:
        if self.calls and self._counter is not None:
            record_throughput(self.root, str(self.model.spec), self.op, calls=self.calls, tokens=self.tokens,
                              seconds=self.seconds, unit=self._counter.unit, device=_device_of(self.model))


def timed(meter: Meter | None, compute: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
    """``compute`` that reports each chunk's items, results and seconds to ``meter``."""
    if meter is None:
        return compute

    def run(items: list[Any]) -> list[Any]:
        start = time.perf_counter()
        values = compute(items)
        meter.add(items, values, time.perf_counter() - start)
        return values

    return run


def count_generate(n: int) -> Callable[[TokenCounter, list[Any], list[Any]], tuple[int, int]]:
    def count(c: TokenCounter, prompts: list[Any], values: list[Any]) -> tuple[int, int]:
        return len(prompts) * n, sum(c.text(s) for per in values for s in per)
    return count


def count_score(c: TokenCounter, pairs: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(pairs), sum(c.scored(p, r) for p, r in pairs)


def count_choices(c: TokenCounter, prompts: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(prompts), sum(c.chat(p) for p in prompts)


def count_embed(c: TokenCounter, texts: list[Any], values: list[Any]) -> tuple[int, int]:
    return len(texts), sum(c.text(t) for t in texts)
