"""Progress display for long loops (rich), quiet when output is not a terminal or in tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
_verbose = False


def set_verbose(verbose: bool) -> None:
    """``tamis --verbose``: the libraries' FutureWarnings, logs and progress bars; without it only tamis's
    own progress and messages are shown (set before any library is imported, so their loggers obey)."""
    import warnings

    global _verbose
    _verbose = verbose
    if verbose:
        return
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=r"(transformers|trl|peft|torch|datasets|accelerate)(\..*)?")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar too
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def verbose() -> bool:
    """Whether the libraries' own output (progress bars, logs) should show."""
    return _verbose

Advance = Callable[[int], None]


def _enabled() -> bool:
    if os.environ.get("TAMIS_PROGRESS") in ("0", "false", "no"):
        return False
    return sys.stderr.isatty() or os.environ.get("TAMIS_PROGRESS") in ("1", "true", "yes")


@contextmanager
def progress(description: str, total: int) -> Iterator[Advance]:
    """Yield ``advance(n)``; shows a bar with count, elapsed and remaining time on a terminal."""
    if not _enabled() or total <= 0:
        yield lambda n=1: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
