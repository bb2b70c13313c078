"""CLEAR jobs: score confidence (+ baselines), filter by a policy, Auto-Correct, evaluate a detector.

Each job is a ``tamis.runs.Run``: its settings saved beside its output (a folder made with other
settings is refused), model calls through the workspace cache (a killed run started again
recomputes nothing already done), a manifest and a completion mark (a finished run is not redone).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamis.curate.correct import CorrectConfig, auto_correct
from tamis.curate.decisions import Decision, action_counts, apply_decisions, read_decisions, write_decisions
from tamis.curate.filter import FilterRule, label_groups
from tamis.curate.policy import Policy
from tamis.engine.base import EngineConfig
from tamis.engine.llm import record_engine, stage_llm
from tamis.errors import ConfigError, DataError
from tamis.evaluate.detection import evaluate_signals
from tamis.io import read_dataset, write_dataset
from tamis.io.reader import ReadResult
from tamis.manifest import Manifest
from tamis.models import DEFAULT_LLM, load_embedder, load_llm
from tamis.records import Example
from tamis.runs import Run, with_data_paths
from tamis.settings import setting, validate
from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence
from tamis.signals.quality_baselines import quality_baselines
from tamis.signals.registry import SignalSet, SignalTable, read_signals, signal_specs
from tamis.store import Workspace, atomic_write_json, atomic_write_jsonl, atomic_write_text


def read_input(data: str, fmt: str | None, out: Path, limit: int | None, manifest: Manifest) -> ReadResult:
    """Read the data a job works on, quarantining bad rows into the run folder."""
    with manifest.stage("read"):
        read = read_dataset(data, format=fmt, quarantine=out / "quarantine.jsonl", limit=limit)
    manifest.count(read=read.n_read, kept=read.n_kept, rejected=read.n_rejected)
    manifest.data["format"] = read.format
    if read.n_rejected:
        manifest.output("quarantine", out / "quarantine.jsonl")
    return read


def note_counts(table: SignalTable) -> dict[str, int]:
    """How often each note occurs (the manifest keeps these; the rows keep the details)."""
    return dict(Counter(note for notes in table.notes.values() for note in notes).most_common(20))


@dataclass
class ScoreJob:
    data: str = setting("", "Data set of (prompt, response) pairs.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/confidence-NAME].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    model: str = setting(DEFAULT_LLM, "LLM spec (the model to fine-tune).")
    limit: int | None = setting(None, "Read at most this many rows.", range=(1, None))
    baselines: bool = setting(True, "Also compute log-likelihood, IFD, judge, length, random.")
    judge: bool = setting(True, "Include the LLM-judge 0-5 baseline.")
    judge_reasoning: str = setting("direct", "How the judge rates: direct (one digit) or step (it reasons first, "
                                   "then gives the digit in a second turn).", choices=("direct", "step"))
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)
    # where the model calls run: not a saved setting (it changes how fast, never what)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        validate(self)  # ranges and choices as declared above


@dataclass
class ScoreResult:
    out_dir: Path
    table: SignalTable
    counts: dict[str, Any]
    reused: bool = False


def run_score_confidence(job: ScoreJob, workspace: Workspace, *, overwrite: bool = False) -> ScoreResult:
    job = with_data_paths(job, workspace, "data")
    out = Path(job.out) if job.out else workspace.run_dir(f"confidence-{Path(job.data).stem}")
    settings = {k: v for k, v in asdict(job).items() if k not in ("out", "engine")}
    with Run("score confidence", settings, out, inputs=[job.data], overwrite=overwrite) as run:
        if run.complete:
            return ScoreResult(out, read_signals(out), run.stored_manifest()["counts"], reused=True)
        manifest = run.manifest
        examples = read_input(job.data, job.format, out, job.limit, manifest).examples
        with manifest.stage("load_models"):
            llm = stage_llm(job.model, workspace, job.engine, job.engine.shards or out / "shards")
            embedder = (load_embedder(job.confidence.embedder, workspace) if job.confidence.similarity == "embedding"
                        else None)
            nli = None
            if job.confidence.nli_model:
                from tamis.signals.nli import NLISimilarity

                nli = NLISimilarity(job.confidence.nli_model)
        manifest.model("llm", llm.identity)
        if embedder is not None:
            manifest.model("embedder", embedder.identity)
        if nli is not None:
            manifest.model("nli", nli.identity)
        hits0, misses0 = workspace.cache.hits, workspace.cache.misses
        with manifest.stage("confidence"):
            report = bsdetector_confidence(examples, llm, job.confidence, embedder=embedder, nli=nli)
        manifest.count(**report.counts)
        if not report.counts.get("scored"):
            reasons = Counter(n for r in report.rows for n in r.get("notes", []))
            raise DataError(f"{job.data}: none of the {len(examples)} examples can be scored for confidence "
                            f"({', '.join(f'{n}: {c}' for n, c in reasons.most_common(3))}); it needs chat "
                            "examples with a prompt and an assistant response")
        table = report.table
        if job.baselines:
            with manifest.stage("baselines"):
                baselines = quality_baselines(examples, llm, judge=job.judge, judge_reasoning=job.judge_reasoning,
                                              max_response_chars=job.confidence.max_response_chars,
                                              max_prompt_chars=job.confidence.max_prompt_chars)
            table.update(baselines)
            manifest.count(**baselines.counts)
        # calls reused from the cache vs computed now (a resumed run computes only what was missing)
        manifest.count(cache_hits=workspace.cache.hits - hits0, cache_misses=workspace.cache.misses - misses0)
        manifest.count(**llm.call_stats())  # e.g. HTTP requests and retries of a server backend
        record_engine(manifest, llm)
        manifest.data["notes"] = note_counts(table)
        with manifest.stage("write"):
            manifest.output("signals", table.write(out))
            atomic_write_jsonl(out / "samples.jsonl", ({"id": i, "samples": s} for i, s in report.samples.items()))
            atomic_write_text(out / "summary.md", score_summary(table, manifest.data["counts"], llm.identity))
        manifest.output("samples", out / "samples.jsonl")
        manifest.output("summary", out / "summary.md")
        counts = run.finish()["counts"]
    return ScoreResult(out, table, counts)


def describe(values: list[float]) -> str:
    arr = np.array([v for v in values if isinstance(v, (int, float))], dtype=float)
    if not arr.size:
        return "none"
    return (f"mean {arr.mean():.3f}, sd {arr.std():.3f}, min {arr.min():.3f}, median {np.median(arr):.3f}, "
            f"max {arr.max():.3f}")


def distributions(table: SignalTable) -> list[tuple[str, str, str]]:
    """(signal, direction, distribution) of every registered, ordered signal in a table."""
    specs = signal_specs()
    return [(name, specs[name].direction, describe(list(table.value_map(name).values())))
            for name in table.names if name in specs and specs[name].direction != "none" and table.value_map(name)]


def score_summary(table: SignalTable, counts: dict[str, Any], identity: str) -> str:
    lines = ["# tamis score confidence", "", f"- model: `{identity}`", f"- counts: {counts}", "",
             "| signal | better | distribution (check it is not collapsed) |", "|---|---|---|"]
    lines += [f"| {name} | {direction} | {text} |" for name, direction, text in distributions(table)]
    rows = table.rows()
    scored = sorted((r for r in rows if r.get("confidence") is not None), key=lambda r: r["confidence"])
    lines += ["", "## Lowest confidence (look here first)", ""]
    lines += [f"- {r['id']}: C={r['confidence']:.3f} O={r['observed_consistency']:.3f} "
              f"S={'n/a' if r.get('self_reflection') is None else format(r['self_reflection'], '.3f')}"
              for r in scored[:10]]
    noted = [r for r in rows if r.get("notes")]
    if noted:
        lines += ["", "## Notes", ""] + [f"- {r['id']}: {'; '.join(r['notes'])}" for r in noted[:50]]
    return "\n".join(lines) + "\n"


def curated_path(out: Path, name: str, read: ReadResult, output_format: str | None) -> tuple[Path, str]:
    """Where curated data goes: the input's file type and format unless another format is asked for."""
    suffix = "".join(read.source.suffixes[-2:]) if read.source.suffix == ".gz" else read.source.suffix
    if read.source.is_dir() or not suffix:
        suffix = ".jsonl"
    return out / f"{name}{suffix}", output_format or read.format


def materialise(read: ReadResult, decisions: list[Decision], out: Path, manifest: Manifest,
                output_format: str | None = None, name: str = "kept") -> Path:
    """Write decisions, the kept data (input's format) and the dropped rows with their reasons."""
    manifest.output("decisions", write_decisions(decisions, out / "decisions.jsonl"))
    kept, dropped = apply_decisions(read.examples, decisions)
    path, fmt = curated_path(out, name, read, output_format)
    manifest.output(name, write_dataset(kept, path, format=fmt))
    atomic_write_jsonl(out / "dropped.jsonl", dropped, default=float)
    manifest.output("dropped", out / "dropped.jsonl")
    manifest.count(**action_counts(decisions))
    write_output_card(out, path, fmt, len(kept), read, decisions, manifest)
    return path


def write_output_card(out: Path, path: Path, fmt: str, n_rows: int, read: ReadResult, decisions: list[Decision],
                      manifest: Manifest) -> Path:
    """README.md beside curated data: the Hub's YAML header, then source, signals, policy, counts, reasons."""
    from tamis.report.card import dataset_card, write_card

    data = manifest.data
    text = dataset_card(data_file=path.name, n_rows=n_rows, format=fmt, source=str(read.source),
                        command=data["command"], decisions=decisions, config=data.get("config"),
                        counts=data.get("counts"), thresholds=data.get("thresholds"), policy=data.get("policy"))
    card = write_card(out, text)
    manifest.output("card", card)
    return card


@dataclass
class FilterJob:
    data: str = setting("", "The data set that was scored.")
    scores: list[str] = setting([], "Scoring run folders or score files (several: their signals combine).")
    out: str | None = setting(None, "Output folder (decisions, kept data, dropped rows, manifest) [default: "
                                    "workspace/runs/filter-NAME].")
    rule: FilterRule | None = None  # the single-signal form (default: confidence >= its median)
    keep: list[str] = setting([], "Keep rules, all must pass: 'confidence>=median', 'best 50% judge'.")
    drop: list[str] = setting([], "Drop rules, any drops: 'worst 5% nn_similarity', 'ifd>1'.")
    per_label: bool = setting(False, "Take medians, quantiles and shares within each label (the response), as "
                                     "confident learning's per-class thresholds: for classification data, where a "
                                     "tuned model's label bias shifts every row of a label alike.")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    output_format: str | None = setting(None, "Format of the kept data [default: the input's].")

    def policy(self, available: list[str]) -> Policy:
        if self.keep or self.drop:
            if self.rule is not None:
                raise ConfigError("give either --signal with its threshold options or --keep/--drop rules, not both")
            return Policy(keep=list(self.keep), drop=list(self.drop), step="filter")
        return (self.rule or FilterRule()).policy(available, step="filter")


@dataclass
class CurationResult:
    out_dir: Path
    counts: dict[str, Any]
    thresholds: dict[str, float | dict[str, float]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    data_path: Path | None = None
    reused: bool = False


def _out(job_out: str | None, workspace: Workspace | None, name: str, data: str) -> Path:
    """The run folder: ``-o`` when given, else ``WORKSPACE/runs/NAME-DATASTEM``."""
    if job_out:
        return Path(job_out)
    return (workspace or Workspace()).run_dir(f"{name}-{Path(data).stem}")


def run_filter(job: FilterJob, workspace: Workspace | None = None, *, overwrite: bool = False) -> CurationResult:
    job = with_data_paths(job, workspace, "data")
    out = _out(job.out, workspace, "filter", job.data)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    with Run("filter", settings, out, inputs=[job.data, *job.scores], overwrite=overwrite) as run:
        if run.complete:
            stored = run.stored_manifest()
            return CurationResult(out, stored["counts"], stored.get("thresholds", {}),
                                  read_decisions(out / "decisions.jsonl"), Path(stored["outputs"]["kept"]), True)
        manifest = run.manifest
        read = read_input(job.data, job.format, out, None, manifest)
        signals = SignalSet.read(job.scores)
        policy = job.policy(signals.names)
        manifest.data["policy"] = policy.describe()
        ids = [ex.id for ex in read.examples]
        manifest.count(without_scores=len(set(ids) - signals.ids))
        decisions, thresholds = policy.apply(ids, signals, groups=label_groups(read.examples) if job.per_label else None)
        manifest.data["thresholds"] = thresholds
        path = materialise(read, decisions, out, manifest, job.output_format)
        counts = run.finish()["counts"]
    return CurationResult(out, counts, thresholds, decisions, path)


@dataclass
class CorrectJob:
    data: str = setting("", "The data set that was filtered.")
    decisions: str = setting("", "decisions.jsonl of 'tamis filter' (or its run folder).")
    out: str | None = setting(None, "Output folder [default: workspace/runs/correct-NAME].")
    model: str = setting(DEFAULT_LLM, "Model that answers (e.g. the fine-tuned one).")
    judge: str | None = setting(None, "Judge model spec [default: the answer model].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    output_format: str | None = setting(None, "Format of the corrected data [default: the input's].")
    correct: CorrectConfig = field(default_factory=CorrectConfig)


def run_correct(job: CorrectJob, workspace: Workspace, *, overwrite: bool = False) -> CurationResult:
    job = with_data_paths(job, workspace, "data")
    out = _out(job.out, workspace, "correct", job.data)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    with Run("correct", settings, out, inputs=[job.data, job.decisions], overwrite=overwrite) as run:
        if run.complete:
            stored = run.stored_manifest()
            return CurationResult(out, stored["counts"], decisions=read_decisions(out / "decisions.jsonl"),
                                  data_path=Path(stored["outputs"]["kept"]), reused=True)
        manifest = run.manifest
        read = read_input(job.data, job.format, out, None, manifest)
        previous = read_decisions(job.decisions)
        known = {ex.id for ex in read.examples}
        if not known & {d.id for d in previous}:
            raise DataError(f"{job.decisions}: none of its decisions is about an example of {job.data}; "
                            "give the data the filter ran on")
        answer = load_llm(job.model, workspace)
        judge_spec = job.judge or job.model
        judge = answer if judge_spec == job.model else load_llm(judge_spec, workspace)
        manifest.model("answer", answer.identity)
        manifest.model("judge", judge.identity)
        with manifest.stage("correct"):
            decisions, counts = auto_correct(read.examples, previous, answer, judge, job.correct)
        manifest.count(**{k: v for k, v in counts.items() if k not in ("keep", "drop", "edit", "review")})
        materialise(read, decisions, out, manifest, job.output_format)
        counts = run.finish()["counts"]
    return CurationResult(out, counts, decisions=decisions, data_path=Path(manifest.data["outputs"]["kept"]))


def bad_ids_from(examples: list[Example], flag: str, bad_values: list[str], good_values: list[str]) -> tuple[set[str], set[str]]:
    """(ids of known-bad examples, ids to evaluate) from a meta field (dotted path allowed).

    With ``bad_values`` an example is bad when the field's value is one of them, else when it is
    truthy; with ``good_values`` only examples whose value is bad or good are evaluated."""
    bad, evaluated = set(), set()
    for ex in examples:
        value: Any = ex.meta
        for part in flag.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        is_bad = str(value) in bad_values if bad_values else bool(value)
        if good_values and not is_bad and str(value) not in good_values:
            continue
        evaluated.add(ex.id)
        if is_bad:
            bad.add(ex.id)
    return bad, evaluated


@dataclass
class DetectorJob:
    data: str = setting("", "Data with a field marking known-bad rows.")
    scores: list[str] = setting([], "Scoring run folders or score files.")
    flag: str = setting("", "Meta field (dotted path) marking bad rows, e.g. status or corruption.")
    bad: list[str] = setting([], "Value(s) of the field that mean bad [default: any truthy value].")
    good: list[str] = setting([], "Value(s) that mean good; other rows are left out.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/detector-NAME].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    resamples: int = setting(1000, "Bootstrap resamples for the 95% CIs.", range=(10, None))


@dataclass
class DetectorResult:
    out_dir: Path
    results: dict[str, dict[str, Any]]
    counts: dict[str, Any]


def run_evaluate_detector(job: DetectorJob, workspace: Workspace | None = None, *,
                          overwrite: bool = False) -> DetectorResult:
    job = with_data_paths(job, workspace, "data")
    out = _out(job.out, workspace, "detector", job.data)
    settings = {k: v for k, v in asdict(job).items() if k != "out"}
    with Run("evaluate-detector", settings, out, inputs=[job.data, *job.scores], overwrite=overwrite) as run:
        if run.complete:
            results = json.loads((out / "detection.json").read_text(encoding="utf-8"))
            return DetectorResult(out, results, run.stored_manifest()["counts"])
        manifest = run.manifest
        examples = read_input(job.data, job.format, out, None, manifest).examples
        bad, evaluated = bad_ids_from(examples, job.flag, job.bad, job.good)
        if not bad:
            raise DataError(f"{job.data}: no example is marked bad by the field {job.flag!r}"
                            + (f" with a value in {job.bad}" if job.bad else "") + "; nothing to detect")
        signals = SignalSet.read(job.scores)
        if not evaluated & signals.ids:
            raise DataError(f"none of the evaluated examples of {job.data} has a row in the given scores; "
                            "were they scored from this file?")
        specs = signal_specs()
        directions = {n: int(specs[n].sign) for n in signals.names if n in specs and specs[n].direction != "none"}
        values = {n: signals.values(n) for n in directions}
        ids = [ex.id for ex in examples if ex.id in evaluated and ex.id in signals.ids]
        rows = [{"id": i} | {n: values[n].get(i) for n in directions} for i in ids]
        manifest.count(evaluated=len(rows), bad=len(bad & set(ids)), without_scores=len(evaluated - signals.ids))
        by_id = {ex.id: ex for ex in examples}
        lengths = [len(by_id[i].response or by_id[i].text or "") for i in ids]  # the confounder to control
        results = evaluate_signals(rows, bad, directions, n_resamples=job.resamples, lengths=lengths)
        atomic_write_json(out / "detection.json", results)
        manifest.output("detection", out / "detection.json")
        counts = run.finish()["counts"]
    return DetectorResult(out, results, counts)
