"""The two interop jobs behind ``tamis export-review`` and ``tamis import-annotations``, as ``tamis.runs.Run``s.

export-review writes, for Label Studio: ``tasks.json`` + ``labeling_config.xml``; for Argilla:
``records.json`` (and ``records.jsonl``) + ``argilla_settings.json``; for both ``items.jsonl`` (what was
exported, with the decision that sent it), ``left_out.jsonl`` when some examples could not be
post-edited, ``manifest.json``.

import-annotations writes ``decisions.jsonl`` (one per annotated item, step ``argilla`` or
``label-studio``), ``annotations.jsonl`` (one row per item and annotator), ``paired.jsonl``
(original vs each annotator's edit with HTER and character edits), ``agreement.json``
(Krippendorff's alpha of the keep/drop choices, ratings and whether the text was changed),
``edited.jsonl`` (the data set with the decisions applied: post-edited turns in place, the original
turns in ``meta.original_messages``), ``dropped.jsonl`` (dropped rows and rows still to review,
with their decisions), ``quarantine.jsonl`` (export entries that could not be used, with reasons),
``manifest.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tamis.curate.decisions import ACTIONS, action_counts, apply_decisions, read_decisions, write_decisions
from tamis.errors import ConfigError
from tamis.interop.common import Combined, combine, review_items
from tamis.interop.options import TOOLS, ExportReviewJob, ImportAnnotationsJob
from tamis.io import read_dataset, write_dataset
from tamis.runs import Run, with_data_paths
from tamis.settings import validate
from tamis.store import atomic_write_json, atomic_write_jsonl


@dataclass
class InteropResult:
    out_dir: Path
    counts: dict[str, Any]
    outputs: dict[str, str]
    agreement: dict[str, Any] | None = None
    reused: bool = False


def _read(data: str, fmt: str | None, out: Path, run: Run):
    read = read_dataset(data, format=fmt, quarantine=out / "data-quarantine.jsonl")
    run.manifest.count(read=read.n_read, kept=read.n_kept, rejected=read.n_rejected)
    run.manifest.data["format"] = read.format
    if read.n_rejected:
        run.manifest.output("data_quarantine", out / "data-quarantine.jsonl")
    return read


def run_export_review(job: ExportReviewJob, *, overwrite: bool = False) -> InteropResult:
    """Export review items for Label Studio or Argilla (see the module docstring)."""
    job = with_data_paths(job, None, "data")
    from tamis.interop.argilla import write_argilla
    from tamis.interop.labelstudio import write_label_studio

    validate(job)
    for action in job.actions:
        if action not in ACTIONS:
            raise ConfigError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    if job.actions and not job.decisions:
        raise ConfigError("--action selects among decisions: give --decisions too")
    out = Path(job.out)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    inputs = [job.data] + ([job.decisions] if job.decisions else [])
    with Run("export-review", settings, out, inputs=inputs, overwrite=overwrite) as run:
        if run.complete:
            stored = run.stored_manifest()
            return InteropResult(out, stored["counts"], stored["outputs"], reused=True)
        read = _read(job.data, job.format, out, run)
        decisions = read_decisions(job.decisions) if job.decisions else None
        items, left_out = review_items(read.examples, decisions, actions=job.actions or None)
        if job.to == "label-studio":
            paths = write_label_studio(items, out)
        else:
            paths = write_argilla(items, out, min_submitted=job.min_submitted)
        atomic_write_jsonl(out / "items.jsonl", ({"id": i.id, "action": i.action, "step": i.step, "reason": i.reason,
                                                  "original": i.original, "start": i.start} for i in items))
        paths["items"] = out / "items.jsonl"
        if left_out:
            atomic_write_jsonl(out / "left_out.jsonl", left_out)
            paths["left_out"] = out / "left_out.jsonl"
        for name, path in paths.items():
            run.manifest.output(name, path)
        run.manifest.count(exported=len(items), left_out=len(left_out), prefilled_with_correction=sum(
            i.start != i.original for i in items), **{f"action_{k}": v for k, v in Counter(
                i.action or "none" for i in items).items()})
        manifest = run.finish()
        return InteropResult(out, manifest["counts"], manifest["outputs"])


def parse_export(source: str, path: str | Path):
    from tamis.interop.argilla import read_argilla
    from tamis.interop.labelstudio import read_label_studio

    return read_label_studio(path) if source == "label-studio" else read_argilla(path)


def import_annotations(source: str, export: str | Path, examples: list[Any]) -> Combined:
    """Decisions, paired data and agreement from a tool's export and the data set's examples (no files written)."""
    if source not in TOOLS:
        raise ConfigError(f"unknown tool {source!r} (known: {', '.join(TOOLS)})")
    return combine(parse_export(source, export), examples, source, str(export))


def run_import_annotations(job: ImportAnnotationsJob, *, overwrite: bool = False) -> InteropResult:
    """Import a tool's completed annotations as tamis decisions, paired data and agreement."""
    job = with_data_paths(job, None, "data")
    validate(job)
    out = Path(job.out)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    with Run("import-annotations", settings, out, inputs=[job.export, job.data], overwrite=overwrite) as run:
        if run.complete:
            stored = run.stored_manifest()
            agreement = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
            return InteropResult(out, stored["counts"], stored["outputs"], agreement, reused=True)
        read = _read(job.data, job.format, out, run)
        with run.manifest.stage("import"):
            combined = import_annotations(job.source, job.export, read.examples)
        rows = [edit | {"id": p["id"]} for p in combined.paired for edit in p["edits"]]
        write_decisions(combined.decisions, out / "decisions.jsonl")
        atomic_write_jsonl(out / "annotations.jsonl", rows)
        atomic_write_jsonl(out / "paired.jsonl", combined.paired)
        atomic_write_json(out / "agreement.json", combined.agreement)
        atomic_write_jsonl(out / "quarantine.jsonl", combined.quarantined)
        kept, dropped = apply_decisions(read.examples, combined.decisions)
        write_dataset(kept, out / "edited.jsonl", format="messages")
        atomic_write_jsonl(out / "dropped.jsonl", dropped)
        for name in ("decisions", "annotations", "paired", "agreement", "edited", "dropped", "quarantine"):
            run.manifest.output(name, out / (f"{name}.json" if name == "agreement" else f"{name}.jsonl"))
        run.manifest.count(**combined.counts, **{f"final_{k}": v for k, v in action_counts(combined.decisions).items()},
                           edited_rows=len(kept), dropped_rows=len(dropped))
        run.manifest.data["agreement"] = {k: v.get("alpha") for k, v in combined.agreement.items()}
        manifest = run.finish()
        return InteropResult(out, manifest["counts"], manifest["outputs"], combined.agreement)
