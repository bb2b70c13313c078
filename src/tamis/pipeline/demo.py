"""The main job on embedded defaults: profile the instruction set that ships with tamis."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from tamis.pipeline.profile import ProfileConfig, ProfileResult, run_profile
from tamis.store import Workspace

DEMO_DATA = "demo_instructions.jsonl"


def demo_data_path() -> Path:
    """A few dozen Alpaca-style examples, some deliberately flawed (wrong, swapped, malformed)."""
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_DATA))


def run_demo(workspace: Workspace, out: str | None = None) -> ProfileResult:
    config = ProfileConfig(data=str(demo_data_path()), out=out or str(workspace.run_dir("demo")))
    return run_profile(config, workspace)
