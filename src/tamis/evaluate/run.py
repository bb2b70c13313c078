"""The evaluation job: generate on a test set (batched, cached) and score against the references, or,
with ``scoring="options"``, predict the most likely label option (``tamis.evaluate.choices``).

Writes per-example outputs and scores (``outputs.jsonl``), a summary with bootstrap CIs
(``summary.json``) and a manifest. Human ratings from a file (id, score[, rater]) are joined in and
summarised the same way. With ``versus`` (a second model, or the folder of an earlier evaluation) an
LLM judge compares the two outputs of every example in both orders (``signals/pairwise.py``): the
win rate (win 1, tie 0.5, loss 0) gets a bootstrap CI, every verdict a confidence.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamis.evaluate.bootstrap import mean_ci
from tamis.evaluate.choices import example_options, option_logprobs, predict, score_options
from tamis.evaluate.metrics import SHORT_ANSWER_METRICS, score_outputs
from tamis.evaluate.settings import EvalSettings  # noqa: F401  (re-exported: the public name)
from tamis.io import DataError, read_dataset
from tamis.io.files import iter_raw_rows
from tamis.manifest import Manifest
from tamis.models import GenerationParams, load_llm
from tamis.records import Example
from tamis.runs import Run, with_data_paths
from tamis.store import Workspace, atomic_write_text

TRANSLATION_METRICS = ("bleu", "corpus_chrf", "ter")


@dataclass
class EvalResult:
    out_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    reused: bool = False


def default_metrics(examples: list[Example]) -> tuple[str, ...]:
    if examples and all("translation" in ex.meta for ex in examples):
        return TRANSLATION_METRICS
    return SHORT_ANSWER_METRICS


def read_ratings(path: str | Path) -> dict[str, list[float]]:
    """Human ratings, one row per (item, rater): columns ``id`` and ``score`` (``rater`` optional)."""
    ratings: dict[str, list[float]] = {}
    for raw in iter_raw_rows(Path(path)):
        if raw.error is not None or raw.data is None:
            raise DataError(f"{path}:{raw.row}: {raw.error}")
        row = raw.data
        if "id" not in row or "score" not in row:
            raise DataError(f"{path}:{raw.row}: a rating needs the fields 'id' and 'score' (found {sorted(row)})")
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise DataError(f"{path}:{raw.row}: score: {row['score']!r} is not a number") from None
        ratings.setdefault(str(row["id"]), []).append(score)
    return ratings


def run_eval(settings: EvalSettings, workspace: Workspace, *, overwrite: bool = False) -> EvalResult:
    """Evaluate in a run folder (``tamis.runs.Run``): a finished evaluation with the same settings and
    unchanged inputs (test set, ratings, a trained model's folder) is returned as it is."""
    settings = with_data_paths(settings, workspace, "data")
    out = Path(settings.out) if settings.out else workspace.run_dir(f"eval-{Path(settings.data).stem}")
    with Run("eval", asdict(settings), out, inputs=_eval_inputs(settings), overwrite=overwrite) as run:
        if run.complete and (out / "summary.json").is_file() and (out / "outputs.jsonl").is_file():
            rows = [json.loads(line) for line in open(out / "outputs.jsonl", encoding="utf-8")]
            return EvalResult(out, json.loads((out / "summary.json").read_text(encoding="utf-8")), rows, reused=True)
        result = _evaluate(settings, workspace, out, run.manifest)
        run.finish()
        return result


def _eval_inputs(settings: EvalSettings) -> list[str]:
    """The files an evaluation depends on: a retrained adapter or a changed test set means recompute."""
    inputs = [settings.data] + ([settings.ratings] if settings.ratings else [])
    for spec in (settings.model, settings.versus, settings.judge):
        folder = spec.split(":", 1)[1] if spec and spec.startswith("transformers:") else spec
        if folder and Path(folder).is_dir():
            inputs.append(folder)
    return inputs


def _evaluate(settings: EvalSettings, workspace: Workspace, out: Path, manifest: Manifest) -> EvalResult:
    with manifest.stage("read"):
        read = read_dataset(settings.data, format=settings.format, quarantine=out / "quarantine.jsonl",
                            limit=settings.limit)
    examples = [ex for ex in read.examples if ex.kind == "chat" and ex.response is not None]
    if not examples:
        raise DataError(f"{settings.data}: no example ends with an assistant turn to compare against")
    metrics = settings.metrics or default_metrics(examples)
    if settings.scoring == "options":
        options = example_options(examples, settings.options)  # checked before the model loads
    with manifest.stage("load_model"):
        llm = load_llm(settings.model, workspace)
    manifest.model("model", llm.identity)
    references = [(ex.response or "").strip() if settings.scoring == "options" else ex.response or ""
                  for ex in examples]
    option_scores: list[dict[str, float]] = []
    if settings.scoring == "options":
        with manifest.stage("score_options"):
            option_scores = option_logprobs(llm, [ex.prompt_messages for ex in examples], options)
            predictions = [predict(lp) for lp in option_scores]
            per_example, summary = score_options(predictions, references, n_resamples=settings.n_resamples,
                                                 seed=settings.seed)
    else:
        with manifest.stage("generate"):
            params = GenerationParams(n=1, temperature=0.0, max_tokens=settings.max_tokens, seed=settings.seed)
            predictions = [o[0].strip() for o in llm.generate([ex.prompt_messages for ex in examples], params)]
        with manifest.stage("score"):
            per_example, summary = score_outputs(predictions, references, metrics,
                                                 n_resamples=settings.n_resamples, seed=settings.seed)
    rows = [
        {"id": ex.id, "prompt": ex.prompt_messages, "reference": ref, "prediction": pred, "scores": scores}
        for ex, ref, pred, scores in zip(examples, references, predictions, per_example)
    ]
    for row, lp in zip(rows, option_scores):
        row["option_logprobs"] = lp
    if settings.ratings:
        ratings = read_ratings(settings.ratings)
        for row in rows:
            if row["id"] in ratings:
                row["human"] = {"mean": float(np.mean(ratings[row["id"]])), "n": len(ratings[row["id"]])}
        rated = [row["human"]["mean"] for row in rows if "human" in row]
        summary["human_rating"] = mean_ci(rated, n_resamples=settings.n_resamples, seed=settings.seed).to_dict()
        manifest.count(rated=len(rated), unmatched_ratings=len(set(ratings) - {r["id"] for r in rows}))
    if settings.versus:
        with manifest.stage("pairwise"):
            summary["win_rate"] = _pairwise(settings, workspace, examples, predictions, rows, manifest)
    result_summary = {"model": llm.identity, "data": settings.data, "n": len(rows), "scoring": settings.scoring,
                      "metrics": summary}
    atomic_write_text(out / "outputs.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out / "summary.json", json.dumps(result_summary, indent=2, ensure_ascii=False) + "\n")
    manifest.count(read=read.n_read, evaluated=len(rows), rejected=read.n_rejected)
    manifest.output("outputs", out / "outputs.jsonl")
    manifest.output("summary", out / "summary.json")
    return EvalResult(out, result_summary, rows)


def _versus_outputs(settings: EvalSettings, workspace: Workspace, examples: list[Example],
                    manifest: Manifest) -> tuple[str, list[str]]:
    """(name, outputs) of the comparison: read from an earlier evaluation's folder, or generated."""
    folder = Path(settings.versus)  # type: ignore[arg-type]
    if (folder / "outputs.jsonl").is_file():
        earlier = {r["id"]: r["prediction"] for r in map(json.loads, open(folder / "outputs.jsonl", encoding="utf-8"))}
        missing = [ex.id for ex in examples if ex.id not in earlier]
        if missing:
            raise DataError(f"{folder / 'outputs.jsonl'}: no output for {len(missing)} test example(s), e.g. "
                            f"{missing[:3]}; evaluate the same test set there")
        return str(folder), [earlier[ex.id] for ex in examples]
    other = load_llm(settings.versus, workspace)  # type: ignore[arg-type]
    manifest.model("versus", other.identity)
    params = GenerationParams(n=1, temperature=0.0, max_tokens=settings.max_tokens, seed=settings.seed)
    return other.identity, [o[0].strip() for o in other.generate([ex.prompt_messages for ex in examples], params)]


def _pairwise(settings: EvalSettings, workspace: Workspace, examples: list[Example], predictions: list[str],
              rows: list[dict[str, Any]], manifest: Manifest) -> dict[str, Any]:
    """Judge this model's outputs (a) against the comparison's (b); per-row verdicts, the win rate with CI."""
    from tamis.models import DEFAULT_LLM
    from tamis.signals.pairwise import JudgeConfig, instruction_text, judge_pairs

    name, theirs = _versus_outputs(settings, workspace, examples, manifest)
    judge = load_llm(settings.judge or DEFAULT_LLM, workspace)
    manifest.model("judge", judge.identity)
    cfg = JudgeConfig(k=settings.judge_k, seed=settings.seed)
    judged, counts = judge_pairs(judge, [instruction_text(ex.prompt_messages) for ex in examples], predictions,
                                 theirs, cfg)
    points = {"a": 1.0, "b": 0.0, "tie": 0.5}
    wins = []
    for row, other, j in zip(rows, theirs, judged):
        winner, conf = j.verdict(cfg.beta)
        row["pairwise"] = {"versus_prediction": other, "winner": {"a": "model", "b": "versus", "tie": "tie"}[winner],
                           "confidence": conf, "p_model": float(j.probs[0]), "p_versus": float(j.probs[1]),
                           "p_tie": float(j.probs[2]), "consistent": j.consistent}
        wins.append(points[winner])
    tally = {"wins": wins.count(1.0), "losses": wins.count(0.0), "ties": wins.count(0.5)}
    manifest.count(**tally, **{f"judge_{k}": v for k, v in counts.items()})
    estimate = mean_ci(wins, n_resamples=settings.n_resamples, seed=settings.seed).to_dict()
    return estimate | tally | {"versus": name, "judge": judge.identity,
                               "inconsistent_orders": counts.get("inconsistent_orders", 0)}


def format_estimate(est: dict[str, Any]) -> str:
    if not math.isfinite(est.get("ci_low", float("nan"))):
        return f"{est['value']:.4g}"
    return f"{est['value']:.4g} [{est['ci_low']:.4g}, {est['ci_high']:.4g}]"
