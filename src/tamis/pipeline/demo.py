"""The main job on embedded defaults: profile the bundled instruction set, then run a small study.

1. profile: read (quarantining broken rows), score every response's log-likelihood under the bundled
   SmolLM2, embed every example with the bundled MiniLM, write the scored data set and a summary;
2. study: the shipped recipe ``data/recipes/demo-study.yaml``: curate the data several ways (raw,
   random subset, filtered), fine-tune SmolLM2 briefly with LoRA on each variant, evaluate on
   held-out questions, and write an HTML report with CIs.
Everything is cached in the workspace, so a second run takes seconds.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from tamis.pipeline.profile import ProfileConfig, ProfileResult, run_profile
from tamis.store import Workspace

DEMO_DATA = "demo_instructions.jsonl"
DEMO_SMS = "demo_sms_spam.jsonl"
DEMO_RECIPE = "recipes/demo-study.yaml"


@dataclass
class DemoResult:
    profile: ProfileResult
    study: object | None  # tamis.pipeline.experiment.ExperimentResult


def demo_data_path() -> Path:
    """A few dozen Alpaca-style examples, some deliberately flawed (wrong, swapped, malformed)."""
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_DATA))


def demo_sms_path() -> Path:
    """600 short SMS messages (300 ham, 300 spam) from the UCI SMS Spam Collection (CC BY 4.0), the
    demo study's task: small enough to ship, learnable by a 135M model in minutes."""
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_SMS))


def demo_recipe_path() -> Path:
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_RECIPE))


def run_demo(workspace: Workspace, out: str | None = None, study: bool = True) -> DemoResult:
    root = Path(out) if out else workspace.run_dir("demo")
    profile = run_profile(ProfileConfig(data=str(demo_data_path()), out=str(root)), workspace)
    result = None
    if study:
        from tamis.pipeline.experiment import run_experiment
        from tamis.pipeline.recipe import load_recipe

        result = run_experiment(load_recipe(demo_recipe_path()), workspace, root / "study")
    return DemoResult(profile, result)
