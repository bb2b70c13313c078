"""The G-DIG selection job behind ``tamis select``: influence run -> decisions -> selected data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tamis.curate.decisions import Decision, read_decisions
from tamis.curate.select import STEP, SelectionConfig, select
from tamis.errors import DataError
from tamis.pipeline.clear import CurationResult, materialise, read_input
from tamis.runs import Run, with_data_paths
from tamis.settings import setting

INFLUENCE_FILES = ("ids.json", "influence_batches.npy", "features.npy")


@dataclass
class SelectJob:
    candidates: str = setting("", "The candidate data set that was scored.")
    scores: str = setting("", "Output folder of `tamis score influence`.")
    out: str = setting("", "Output folder.")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    output_format: str | None = setting(None, "Format of the selected data [default: the input's].")
    selection: SelectionConfig = field(default_factory=SelectionConfig)


def run_select(job: SelectJob, *, overwrite: bool = False) -> CurationResult:
    job = with_data_paths(job, None, "candidates")
    scores = Path(job.scores)
    for name in INFLUENCE_FILES:
        if not (scores / name).is_file():
            raise DataError(f"{scores / name} not found: pass the output folder of `tamis score influence`")
    out = Path(job.out)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    with Run("select", settings, out, inputs=[job.candidates, *(scores / n for n in INFLUENCE_FILES)],
             overwrite=overwrite) as run:
        if run.complete:
            stored = run.stored_manifest()
            return CurationResult(out, stored["counts"], decisions=read_decisions(out / "decisions.jsonl"),
                                  data_path=Path(stored["outputs"]["selected"]), reused=True)
        manifest = run.manifest
        ids = json.loads((scores / "ids.json").read_text(encoding="utf-8"))
        read = read_input(job.candidates, job.format, out, None, manifest)
        known = {ex.id for ex in read.examples}
        missing = [i for i in ids if i not in known]
        if missing:
            raise DataError(f"{len(missing)} scored ids are not in {job.candidates} (first: {missing[0]}); "
                            "same file and format?")
        response = {ex.id: (ex.response or "").strip() for ex in read.examples}
        decisions = select(ids, np.load(scores / "influence_batches.npy"), np.load(scores / "features.npy"),
                           job.selection, labels=[response[i] for i in ids])
        scored = set(ids)
        decisions += [Decision(ex.id, "review", "no influence score (not in the scored run)", step=STEP)
                      for ex in read.examples if ex.id not in scored]
        path = materialise(read, decisions, out, manifest, job.output_format, name="selected")
        counts = run.finish()["counts"]
    return CurationResult(out, counts, decisions=decisions, data_path=path)
