"""Fine-tune before measuring: the trainings recipe steps run before they score (CLEAR and G-DIG
fine-tune first; a 135M model zero-shot barely knows a task) and the reuse that makes them cheap.

``train_once`` keys every finished training by its data and settings in the workspace
(``WORKSPACE/trained/KEY``), so a warm-up identical to a variant's own training, or a fold model
rerun with the same data, is trained once. ``warm_up`` is what a recipe step's ``StepContext.tune``
calls; cross-fitting (K fold models, each scoring the fold it did not see) is ``fold_splits`` in
``tamis.curate.steps`` plus one ``warm_up`` per fold.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from tamis.records import Example


def already_trained(model_dir: Path, fingerprint: str, settings: Any, weights_fp: str | None = None) -> bool:
    """An adapter trained on exactly these examples (and training weights) with exactly these settings exists."""
    from dataclasses import asdict

    from tamis.train.sft import TRAINING_INFO

    info = model_dir / TRAINING_INFO
    if not info.is_file():
        return False
    saved = json.loads(info.read_text())
    wanted = json.loads(json.dumps(asdict(settings), default=str))  # as saved: tuples become lists
    return (saved.get("data_fingerprint") == fingerprint and saved.get("settings") == wanted
            and saved.get("weights_fingerprint") == weights_fp)


def train_once(examples: list[Example], settings: Any, out_dir: Path, workspace: Any,
               weights: list[float] | None = None) -> Path:
    """The adapter (or model) folder of ``settings`` trained on ``examples``: trained here, or copied from
    the workspace's store of finished trainings (``WORKSPACE/trained/KEY``, keyed by the data fingerprint
    and the settings), so a warm-up identical to a variant's own training (the raw variant's, when the
    recipe gives both the same settings) runs once."""
    from dataclasses import asdict

    from tamis.train.sft import data_fingerprint, train_sft
    from tamis.train.weights import weights_fingerprint

    fingerprint, weights_fp = data_fingerprint(examples), weights_fingerprint(weights)
    model_dir = Path(out_dir) / ("adapter" if settings.lora else "model")
    if already_trained(model_dir, fingerprint, settings, weights_fp):
        return model_dir
    key = [fingerprint, asdict(settings)] + ([weights_fp] if weights_fp else [])
    blob = json.dumps(key, sort_keys=True, default=str)
    shared = Path(workspace.root) / "trained" / hashlib.sha256(blob.encode()).hexdigest()[:16]
    if already_trained(shared, fingerprint, settings, weights_fp):
        shutil.copytree(shared, model_dir, dirs_exist_ok=True)
        return model_dir
    # the study owns the folder (overwrite); the same settings are still reused
    train_sft(examples, settings, out_dir, workspace, overwrite=True, weights=weights)
    partial = shared.with_name(shared.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(model_dir, partial)
    shutil.rmtree(shared, ignore_errors=True)
    partial.rename(shared)  # complete or absent: a killed copy is never mistaken for a finished training
    return model_dir


def warm_up(examples: list[Example], model: str, warmup: dict[str, Any], seed: int, out_dir: Path,
            workspace: Any) -> str:
    """Fine-tune ``model`` on ``examples`` with the SFT settings ``warmup`` (reused when already
    trained); the tuned model's spec. What a recipe step's ``StepContext.tune`` does."""
    from tamis.train.settings import SFTSettings

    settings = SFTSettings(**({"eval_fraction": 0.0} | dict(warmup or {}) | {"model": model, "seed": seed}))
    return f"transformers:{train_once(examples, settings, out_dir, workspace)}"
