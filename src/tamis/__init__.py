"""tamis: make fine-tuning data for language models better, and prove it.

The public API is this small namespace (heavy libraries load on first use)::

    import tamis
    data = tamis.read_dataset("train.jsonl", quarantine="rejected.jsonl")
    ws = tamis.Workspace()                       # ./tamis-workspace: runs, models, call cache
    llm = tamis.load_llm("transformers:smollm2", ws)
    scores = tamis.response_likelihood(data.examples, llm)   # a SignalTable keyed by example id
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # data
    "Example": "tamis.records",
    "Message": "tamis.records",
    "chat_example": "tamis.records",
    "labelled_example": "tamis.records",
    "read_dataset": "tamis.io",
    "write_dataset": "tamis.io",
    "inspect_dataset": "tamis.io",
    "TamisError": "tamis.errors",
    "DataError": "tamis.errors",
    "ConfigError": "tamis.errors",
    "SignalError": "tamis.errors",
    "PolicyError": "tamis.errors",
    "OutputConflict": "tamis.errors",
    "WorkspaceError": "tamis.errors",
    "FORMATS": "tamis.io",
    # models
    "load_llm": "tamis.models",
    "load_embedder": "tamis.models",
    "ModelSpec": "tamis.models",
    "GenerationParams": "tamis.models",
    "ModelError": "tamis.errors",
    "LogprobsUnavailable": "tamis.models",
    # workspace
    "Workspace": "tamis.store",
    # runs: settings saved beside the output, manifest, completion mark
    "Run": "tamis.runs",
    # signals: one registry, one table type
    "register_signal": "tamis.signals.registry",
    "signal_specs": "tamis.signals.registry",
    "get_signal": "tamis.signals.registry",
    "SignalSpec": "tamis.signals.registry",
    "SignalTable": "tamis.signals.registry",
    "SignalSet": "tamis.signals.registry",
    "read_signals": "tamis.signals.registry",
    # measurements
    "response_likelihood": "tamis.signals.likelihood",
    "example_stats": "tamis.signals.stats",
    "nearest_other": "tamis.signals.diversity",
    # synthetic data, diversity, agreement
    "load_task": "tamis.generate",
    "generate_labelled": "tamis.generate",
    "generate_instructions": "tamis.generate",
    "generate_dialogues": "tamis.generate",
    "LabelledGenerationConfig": "tamis.generate",
    "diversity": "tamis.signals.diversity",
    "krippendorff_alpha": "tamis.signals.agreement",
    "instance_agreement": "tamis.signals.agreement",
    "subjectivity_summary": "tamis.signals.agreement",
    "ClassifierConfig": "tamis.train.classifier",
    "train_classifier": "tamis.train.classifier",
    "SyntheticStudyConfig": "tamis.pipeline.synthetic",
    "run_synthetic_study": "tamis.pipeline.synthetic",
    # CLEAR: confidence-based curation
    "ConfidenceConfig": "tamis.signals.confidence",
    "bsdetector_confidence": "tamis.signals.confidence",
    "quality_baselines": "tamis.signals.quality_baselines",
    "FilterRule": "tamis.curate.filter",
    "auto_filter": "tamis.curate.filter",
    "ScoreJob": "tamis.pipeline.clear",
    "run_score_confidence": "tamis.pipeline.clear",
    "FilterJob": "tamis.pipeline.clear",
    "run_filter": "tamis.pipeline.clear",
    "CorrectJob": "tamis.pipeline.clear",
    "run_correct": "tamis.pipeline.clear",
    "DetectorJob": "tamis.pipeline.clear",
    "run_evaluate_detector": "tamis.pipeline.clear",
    "CorrectConfig": "tamis.curate.correct",
    "auto_correct": "tamis.curate.correct",
    "detection_metrics": "tamis.evaluate.detection",
    "swap_responses": "tamis.evaluate.corruption",
    # decisions and policies
    "Decision": "tamis.curate.decisions",
    "apply_decisions": "tamis.curate.decisions",
    "read_decisions": "tamis.curate.decisions",
    "write_decisions": "tamis.curate.decisions",
    "Policy": "tamis.curate.policy",
    # G-DIG: influence and selection
    "InfluenceConfig": "tamis.signals.influence.config",
    "GradientConfig": "tamis.signals.influence.config",
    "run_influence": "tamis.signals.influence.run",
    "SelectionConfig": "tamis.curate.select",
    "select": "tamis.curate.select",
    "SelectJob": "tamis.pipeline.select",
    "run_select": "tamis.pipeline.select",
    # fine-tuning, evaluation, studies
    "SFTSettings": "tamis.train.settings",
    "train_sft": "tamis.train.sft",
    "EvalSettings": "tamis.evaluate.settings",
    "run_eval": "tamis.evaluate.run",
    "load_recipe": "tamis.pipeline.recipe",
    "run_experiment": "tamis.pipeline.experiment",
    # post-editing studio
    "hter": "tamis.signals.edits",
    "edit_effort": "tamis.signals.edits",
    "char_edit_distance": "tamis.signals.edits",
    "create_studio_app": "tamis.studio.app",
    "export_studio_project": "tamis.studio.export",
    # annotation-tool interop: Argilla, Label Studio
    "review_items": "tamis.interop",
    "write_label_studio": "tamis.interop",
    "write_argilla": "tamis.interop",
    "import_annotations": "tamis.interop",
    "run_export_review": "tamis.interop",
    "run_import_annotations": "tamis.interop",
    # jobs
    "ProfileConfig": "tamis.pipeline.profile",
    "run_profile": "tamis.pipeline.profile",
    "run_demo": "tamis.pipeline.demo",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from tamis.extras import extra_of_module, needs

        with needs(extra_of_module(_EXPORTS[name]), f"tamis.{name}"):
            return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tamis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
