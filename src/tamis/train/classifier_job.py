"""The ``tamis train classifier`` job: split, fine-tune, evaluate with CIs, save, write a manifest."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tamis.evaluate.bootstrap import bootstrap
from tamis.manifest import Manifest
from tamis.records import Example, data_fingerprint
from tamis.runs import Run
from tamis.store import atomic_write_text
from tamis.train.classifier import (ClassifierConfig, classification_metrics, evaluate_classifier,
                                   record_classifier_speed, train_classifier)


def stratified_split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded split that keeps label proportions (falls back to a plain split for rare labels)."""
    from sklearn.model_selection import train_test_split

    labels = [ex.label for ex in examples]
    counts = {lab: labels.count(lab) for lab in set(labels)}
    stratify = labels if min(counts.values()) >= 2 else None
    train, test = train_test_split(examples, test_size=eval_fraction, random_state=seed, stratify=stratify)
    return list(train), list(test)


def run_classifier_training(examples: list[Example], config: ClassifierConfig, out_dir: str | Path, *,
                            test: list[Example] | None = None, eval_fraction: float = 0.2,
                            n_resamples: int = 1000, overwrite: bool = False,
                            workspace: Any = None) -> dict[str, Any]:
    """Train on ``examples`` (minus an eval split unless ``test`` is given); metrics with bootstrap CIs.

    The output folder is a run (``tamis.runs.Run``): a finished run with the same settings and data is
    returned as it is, one made with other settings is refused unless ``overwrite``."""
    out_dir = Path(out_dir)
    settings = asdict(config) | {"eval_fraction": eval_fraction, "n_resamples": n_resamples,
                                 "data_fingerprint": data_fingerprint(examples),
                                 "test_fingerprint": data_fingerprint(test) if test is not None else None}
    with Run("train classifier", settings, out_dir, overwrite=overwrite) as run:
        if run.complete and (out_dir / "summary.json").is_file():
            return json.loads((out_dir / "summary.json").read_text(encoding="utf-8")) | {"reused": True}
        summary = _train_and_evaluate(examples, config, out_dir, test, eval_fraction, n_resamples, run.manifest,
                                      workspace)
        run.finish()
        return summary


def _train_and_evaluate(examples: list[Example], config: ClassifierConfig, out_dir: Path, test: list[Example] | None,
                        eval_fraction: float, n_resamples: int, manifest: Manifest, workspace: Any) -> dict[str, Any]:
    if test is None:
        examples, test = stratified_split(examples, eval_fraction, config.seed)
    with manifest.stage("train"):
        classifier = train_classifier(examples, config)
    with manifest.stage("evaluate"):
        result = evaluate_classifier(classifier, test)
    if workspace is not None:
        record_classifier_speed(workspace, classifier)
    gold = np.array([ex.label for ex in test], dtype=object)
    predicted = np.array(result["predictions"], dtype=object)
    cis = {
        name: bootstrap(len(gold), lambda idx, name=name: classification_metrics(gold[idx], predicted[idx],
                                                                                 classifier.labels)[name],
                        n_resamples=n_resamples, seed=config.seed).to_dict()
        for name in ("macro_f1", "accuracy")
    }
    classifier.save(out_dir / "model")
    atomic_write_text(out_dir / "predictions.jsonl", "".join(
        json.dumps({"id": ex.id, "label": ex.label, "prediction": p}, ensure_ascii=False) + "\n"
        for ex, p in zip(test, result["predictions"])))
    summary = {"labels": classifier.labels, "n_train": len(examples), "n_eval": len(test), "metrics": cis,
               "final_loss": classifier.loss_history[-1] if classifier.loss_history else None}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    manifest.count(train=len(examples), eval=len(test))
    manifest.data["metrics"] = cis
    manifest.output("model", out_dir / "model")
    manifest.output("predictions", out_dir / "predictions.jsonl")
    return summary
