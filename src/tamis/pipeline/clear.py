"""CLEAR jobs: score confidence (+ baselines), Auto-Filter, Auto-Correct, evaluate a detector.

Each job reads, computes through the workspace call cache (a killed run started again recomputes
nothing already done), and writes its outputs with a manifest beside them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamis.curate.correct import CorrectConfig, auto_correct
from tamis.curate.decisions import Decision, action_counts, apply_decisions, read_decisions, write_decisions
from tamis.curate.filter import FilterRule, auto_filter
from tamis.evaluate.detection import evaluate_signals
from tamis.io import DataError, read_dataset, write_dataset
from tamis.manifest import Manifest
from tamis.models import DEFAULT_LLM, load_embedder, load_llm
from tamis.records import Example
from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence
from tamis.signals.quality_baselines import SIGNAL_DIRECTION, quality_baselines
from tamis.store import Workspace, atomic_write_text


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=float) + "\n" for r in rows)


def read_signals(path: str | Path) -> list[dict[str, Any]]:
    """Signal rows from a signals.jsonl file or a score run's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "signals.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no signals file; run 'tamis score confidence' first or give its signals.jsonl")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{n}: not valid JSON ({err.msg})") from err
    return rows


@dataclass
class ScoreJob:
    data: str
    out: str | None = None
    format: str | None = None
    model: str = DEFAULT_LLM
    limit: int | None = None
    baselines: bool = True
    judge: bool = True
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)


def _read(data: str, fmt: str | None, out: Path, limit: int | None, manifest: Manifest) -> list[Example]:
    with manifest.stage("read"):
        read = read_dataset(data, format=fmt, quarantine=out / "quarantine.jsonl", limit=limit)
    manifest.count(read=read.n_read, kept=read.n_kept, rejected=read.n_rejected)
    if read.n_rejected:
        manifest.output("quarantine", out / "quarantine.jsonl")
    return read.examples


def run_score_confidence(job: ScoreJob, workspace: Workspace) -> dict[str, Any]:
    out = Path(job.out) if job.out else workspace.run_dir(f"confidence-{Path(job.data).stem}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("score confidence", asdict(job) | {"workspace": str(workspace.root)})
    examples = _read(job.data, job.format, out, job.limit, manifest)
    with manifest.stage("load_models"):
        llm = load_llm(job.model, workspace)
        embedder = load_embedder(job.confidence.embedder, workspace) if job.confidence.similarity == "embedding" else None
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
    rows = {r["id"]: r for r in report.rows}
    if job.baselines:
        with manifest.stage("baselines"):
            base_rows, base_counts = quality_baselines(examples, llm, judge=job.judge,
                                                       max_response_chars=job.confidence.max_response_chars,
                                                       max_prompt_chars=job.confidence.max_prompt_chars)
        for b in base_rows:
            rows[b["id"]].update(b)
        manifest.count(**base_counts)
    # calls reused from the cache vs computed now (a resumed run computes only what was missing)
    manifest.count(cache_hits=workspace.cache.hits - hits0, cache_misses=workspace.cache.misses - misses0)
    manifest.count(**llm.call_stats())  # e.g. HTTP requests and retries of a server backend
    signals = [rows[ex.id] for ex in examples]
    with manifest.stage("write"):
        atomic_write_text(out / "signals.jsonl", _jsonl(signals))
        atomic_write_text(out / "samples.jsonl", _jsonl([{"id": i, "samples": s} for i, s in report.samples.items()]))
        atomic_write_text(out / "summary.md", score_summary(signals, manifest.data["counts"], llm.identity))
    for name in ("signals", "samples", "summary"):
        manifest.output(name, out / f"{name}.{'md' if name == 'summary' else 'jsonl'}")
    manifest.write(out / "manifest.json")
    return {"out_dir": out, "signals": signals, "counts": manifest.data["counts"]}


def describe(values: list[float]) -> str:
    arr = np.array([v for v in values if isinstance(v, (int, float))], dtype=float)
    if not arr.size:
        return "none"
    return f"mean {arr.mean():.3f}, sd {arr.std():.3f}, min {arr.min():.3f}, median {np.median(arr):.3f}, max {arr.max():.3f}"


def score_summary(signals: list[dict[str, Any]], counts: dict[str, Any], identity: str) -> str:
    lines = ["# tamis score confidence", "", f"- model: `{identity}`", f"- counts: {counts}", "",
             "| signal | distribution (check it is not collapsed) |", "|---|---|"]
    for name in SIGNAL_DIRECTION:
        values = [s.get(name) for s in signals if s.get(name) is not None]
        if values:
            lines.append(f"| {name} | {describe(values)} |")
    scored = sorted((s for s in signals if s.get("confidence") is not None), key=lambda s: s["confidence"])
    lines += ["", "## Lowest confidence (look here first)", ""]
    lines += [f"- {s['id']}: C={s['confidence']:.3f} O={s['observed_consistency']:.3f} "
              f"S={s['self_reflection'] if s.get('self_reflection') is not None else 'n/a'}" for s in scored[:10]]
    notes = [s for s in signals if s.get("notes")]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {s['id']}: {'; '.join(s['notes'])}" for s in notes[:50]]
    return "\n".join(lines) + "\n"


def _materialise(examples: list[Example], decisions: list[Decision], out: Path, manifest: Manifest) -> None:
    write_decisions(decisions, out / "decisions.jsonl")
    kept, dropped = apply_decisions(examples, decisions)
    write_dataset(kept, out / "kept.jsonl")
    atomic_write_text(out / "dropped.jsonl", _jsonl(dropped))
    for name in ("decisions", "kept", "dropped"):
        manifest.output(name, out / f"{name}.jsonl")
    manifest.count(**action_counts(decisions))


def run_filter(data: str, signals_path: str, rule: FilterRule, out: Path, fmt: str | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("filter", {"data": data, "signals": signals_path} | asdict(rule))
    examples = _read(data, fmt, out, None, manifest)
    signals = {r["id"]: r for r in read_signals(signals_path)}
    rows = [signals.get(ex.id, {"id": ex.id, "notes": ["no signal row for this example"]}) for ex in examples]
    decisions, threshold = auto_filter(rows, rule)
    manifest.count(threshold=threshold)
    _materialise(examples, decisions, out, manifest)
    manifest.write(out / "manifest.json")
    return {"out_dir": out, "threshold": threshold, "counts": manifest.data["counts"]}


def run_correct(data: str, decisions_path: str, answer_model: str, judge_model: str, cfg: CorrectConfig,
                out: Path, workspace: Workspace, fmt: str | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("correct", {"data": data, "decisions": decisions_path, "answer_model": answer_model,
                                    "judge_model": judge_model} | asdict(cfg))
    examples = _read(data, fmt, out, None, manifest)
    answer = load_llm(answer_model, workspace)
    judge = answer if judge_model == answer_model else load_llm(judge_model, workspace)
    manifest.model("answer", answer.identity)
    manifest.model("judge", judge.identity)
    with manifest.stage("correct"):
        decisions, counts = auto_correct(examples, read_decisions(decisions_path), answer, judge, cfg)
    manifest.count(**{k: v for k, v in counts.items() if k not in ("keep", "filter", "correct", "review")})
    _materialise(examples, decisions, out, manifest)
    manifest.write(out / "manifest.json")
    return {"out_dir": out, "counts": manifest.data["counts"], "decisions": decisions}


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


def run_evaluate_detector(data: str, signals_path: str, flag: str, bad_values: list[str], good_values: list[str],
                          out: Path, fmt: str | None = None, n_resamples: int = 1000) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("evaluate-detector", {"data": data, "signals": signals_path, "flag": flag,
                                              "bad_values": bad_values, "good_values": good_values})
    examples = _read(data, fmt, out, None, manifest)
    bad, evaluated = bad_ids_from(examples, flag, bad_values, good_values)
    signals = {r["id"]: r for r in read_signals(signals_path)}
    rows = [signals[i] for i in (ex.id for ex in examples) if i in evaluated and i in signals]
    manifest.count(evaluated=len(rows), bad=len(bad & {r["id"] for r in rows}), without_scores=len(evaluated - signals.keys()))
    results = evaluate_signals(rows, bad, SIGNAL_DIRECTION, n_resamples=n_resamples)
    atomic_write_text(out / "detection.json", json.dumps(results, indent=2) + "\n")
    manifest.output("detection", out / "detection.json")
    manifest.write(out / "manifest.json")
    return {"out_dir": out, "results": results, "counts": manifest.data["counts"]}
