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

from tamis.interop.argilla import (argilla_records, argilla_settings, push_to_argilla, read_argilla,
                                   validate_records, write_argilla)
from tamis.interop.common import Annotation, Combined, Parsed, ReviewItem, combine, review_items
from tamis.interop.jobs import (ExportReviewJob, ImportAnnotationsJob, InteropResult, import_annotations,
                                run_export_review, run_import_annotations)
from tamis.interop.labelstudio import (label_studio_tasks, labeling_config, read_label_studio, validate_tasks,
                                       write_label_studio)

__all__ = [
    "Annotation", "Combined", "ExportReviewJob", "ImportAnnotationsJob", "InteropResult", "Parsed", "ReviewItem",
    "argilla_records", "argilla_settings", "combine", "import_annotations", "label_studio_tasks",
    "labeling_config", "push_to_argilla", "read_argilla", "read_label_studio", "review_items",
    "run_export_review", "run_import_annotations", "validate_records", "validate_tasks", "write_argilla",
    "write_label_studio",
]
