"""The settings of the interop jobs, kept light (no data or model libraries) so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass

from tamis.settings import setting

#: tool names as they appear on the command line and as the ``step`` of imported decisions
TOOLS = ("argilla", "label-studio")


@dataclass
class ExportReviewJob:
    data: str = setting("", "The data set whose examples go to review.")
    to: str = setting("label-studio", "The annotation tool to export for.", choices=TOOLS)
    out: str = setting("", "Output folder.")
    decisions: str | None = setting(None, "decisions.jsonl of a curation run (or its folder): export only "
                                    "decided examples, with the decision as a suggestion.")
    actions: list[str] = setting([], "With --decisions: export only these actions (repeatable; "
                                 "default: every action).")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    min_submitted: int = setting(1, "Argilla: submitted answers a record needs to count as complete "
                                 "(2+ for agreement).", range=(1, None))


@dataclass
class ImportAnnotationsJob:
    export: str = setting("", "The tool's export: Label Studio's JSON export, or Argilla's exported records.")
    data: str = setting("", "The data set the review items were exported from.")
    source: str = setting("label-studio", "The annotation tool the export comes from.", choices=TOOLS)
    out: str = setting("", "Output folder.")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
