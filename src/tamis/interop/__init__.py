"""Annotation-tool interop: hand review items to Argilla or Label Studio, take their annotations back.

    items, _ = review_items(examples, decisions)            # what to review, from a curation run
    write_label_studio(items, out)                          # tasks.json + labeling_config.xml
    write_argilla(items, out)                               # records.json + argilla_settings.json (rg.Settings)
    combined = import_annotations("label-studio", "export.json", examples)
    combined.decisions, combined.paired, combined.agreement  # Decisions, HTER per edit, Krippendorff's alpha

Neither tool's client is needed: both formats are plain JSON written and read here. The embedded
post-editing studio (``tamis studio``) stays the default; these bridges are for teams that already
run one of these tools.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "argilla": ("argilla_records", "argilla_settings", "push_to_argilla", "read_argilla", "validate_records",
                "write_argilla"),
    "common": ("Annotation", "Combined", "Parsed", "ReviewItem", "combine", "review_items"),
    "jobs": ("InteropResult", "import_annotations", "run_export_review", "run_import_annotations"),
    "labelstudio": ("label_studio_tasks", "labeling_config", "read_label_studio", "validate_tasks",
                    "write_label_studio"),
    "options": ("ExportReviewJob", "ImportAnnotationsJob", "TOOLS"),
}
_EXPORTS = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # loaded on first use: the CLI imports only the light options module
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tamis.interop.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tamis.interop' has no attribute {name!r}")
