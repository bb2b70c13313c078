"""The main job on embedded defaults: profile the bundled instruction set, then run a small study.

1. profile: read (quarantining broken rows), score every response's log-likelihood under the bundled
   SmolLM2, embed every example with the bundled MiniLM, write the scored data set and a summary;
   and check how well the log-likelihood finds the rows that carry a ``flaw`` label;
2. study: the shipped recipe ``data/recipes/demo-study.yaml``, a small noisy task (bundled SMS
   messages, 30% of the training labels wrong): raw vs a model-based label filter vs a random subset
   of the same size vs the clean labels, each fine-tuned briefly with LoRA and scored on held-out
   messages by label log-probabilities; the verdict of every variant against raw comes from a paired
   bootstrap over the test items, and the filter's detection quality from the injected flags.
Everything is cached in the workspace, so a second run takes seconds.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamis.pipeline.profile import ProfileConfig, ProfileResult, run_profile
from tamis.store import Workspace, atomic_write_json

DEMO_DATA = "demo_instructions.jsonl"
DEMO_SMS = "demo_sms_spam.jsonl"
DEMO_RECIPE = "recipes/demo-study.yaml"


@dataclass
class DemoResult:
    profile: ProfileResult
    study: object | None  # tamis.pipeline.experiment.ExperimentResult
    flaw_detection: dict[str, Any] | None = None


def demo_data_path() -> Path:
    """A few dozen Alpaca-style examples, some deliberately flawed (wrong, swapped, malformed)."""
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_DATA))


def demo_sms_path() -> Path:
    """600 short SMS messages (300 ham, 300 spam) from the UCI SMS Spam Collection (CC BY 4.0), the
    demo study's task: small enough to ship, learnable by a 135M model in minutes."""
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_SMS))


def demo_recipe_path() -> Path:
    return Path(str(importlib.resources.files("tamis") / "data" / DEMO_RECIPE))


def flaw_detection(profile: ProfileResult, quantile: float = 0.25) -> dict[str, Any]:
    """How well the profile's log-likelihood finds the demo rows that carry a ``flaw`` label (wrong or
    swapped answers, refusals): AUROC with a bootstrap CI, and precision/recall of flagging the lowest
    quartile. Rows quarantined while reading are counted apart: the reader caught those."""
    from tamis.evaluate.detection import detection_metrics
    from tamis.io import read_dataset

    examples = {ex.id: ex for ex in read_dataset(demo_data_path()).examples}
    scored = [s for s in profile.signals if "loglik_mean" in s and s["id"] in examples]
    values = np.array([s["loglik_mean"] for s in scored], dtype=float)
    flawed = [bool(examples[s["id"]].meta.get("flaw")) for s in scored]
    threshold = float(np.quantile(values, quantile))
    metrics = detection_metrics(values, flawed, higher_is_better=True, flagged=list(values < threshold),
                                n_resamples=1000)
    return metrics | {"signal": "loglik_mean", "rule": f"loglik_mean < q{quantile:g} ({threshold:.3f})",
                      "quarantined": profile.counts.get("rejected", 0)}


def run_demo(workspace: Workspace, out: str | None = None, study: bool = True) -> DemoResult:
    root = Path(out) if out else workspace.run_dir("demo")
    profile = run_profile(ProfileConfig(data=str(demo_data_path()), out=str(root)), workspace)
    flaws = flaw_detection(profile)
    atomic_write_json(root / "flaw_detection.json", flaws, default=float)
    result = None
    if study:
        from tamis.pipeline.experiment import run_experiment
        from tamis.pipeline.recipe import load_recipe

        result = run_experiment(load_recipe(demo_recipe_path()), workspace, root / "study")
    return DemoResult(profile, result, flaws)
