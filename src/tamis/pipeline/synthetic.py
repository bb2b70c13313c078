"""The synthetic-data study (Li et al. 2023, Table 1) as one resumable job.

On a labelled data set with a train/test split: build a real, a zero-shot and a few-shot training
set of the same size (balanced over labels), fine-tune an encoder classifier on each over several
seeds, evaluate macro-F1 and accuracy on the same real test sample, measure each set's diversity,
and, where test items carry annotator agreement, accuracy as a function of the agreement threshold
(R^2 and Spearman rho). Writes the sets, a table, PNG plots, an HTML report and a manifest.
Generation and every trained model's test predictions are cached, so a killed run resumes.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamis.curate.decisions import write_decisions
from tamis.generate import LabelledGenerationConfig, NearCopyConfig, generate_labelled, load_task
from tamis.generate.tasks import TaskConfig
from tamis.io import DataError, read_dataset, write_dataset
from tamis.manifest import Manifest
from tamis.models import DEFAULT_EMBEDDER, load_embedder, load_llm
from tamis.pipeline.sources import data_root
from tamis.records import Example
from tamis.report import HtmlReport, bar_chart, curve_chart, markdown_table
from tamis.signals.agreement import instance_agreement, ratings_from_examples
from tamis.signals.diversity import diversity, diversity_table
from tamis.store import Workspace, atomic_write_text, cache_key
from tamis.train.classifier import ClassifierConfig, evaluate_classifier, record_classifier_speed, train_classifier

SETS = ("real", "zero-shot", "few-shot")


@dataclass
class SyntheticStudyConfig:
    """Defaults fit ~20 minutes on 2 CPU cores: 40 texts per label, 400 test texts, 3 seeds."""

    task: str = "sms_spam"
    data: str | None = None  # default: the task's data path under data_root
    data_root: str | None = None  # default: tamis.pipeline.sources.data_root() ($TAMIS_DATA_ROOT, else ../shared/data)
    out: str | None = None
    n_per_label: int = 40
    test_size: int = 400
    seeds: tuple[int, ...] = (0, 1, 2)
    generator: str = "llamacpp:smollm2"
    embedder: str = DEFAULT_EMBEDDER
    temperature: float = 1.0
    reasoning: str = "direct"  # LabelledGenerationConfig.reasoning: step lets the generator think first
    near_copy: NearCopyConfig = field(default_factory=NearCopyConfig)
    classifier: ClassifierConfig = field(default_factory=lambda: ClassifierConfig(epochs=5, max_length=64))
    split_seed: int = 0


@dataclass
class StudyResult:
    out_dir: Path
    table: list[dict[str, Any]]
    agreement: dict[str, Any] | None
    counts: dict[str, Any]
    comparison: list[dict[str, Any]] = field(default_factory=list)  # each synthetic set vs real, paired


def load_task_data(task: TaskConfig, config: SyntheticStudyConfig) -> tuple[list[Example], list[Example], Path]:
    """(train pool, test set) of the task's real data, labels mapped to the task's label names."""
    if config.data:
        path = Path(config.data)
    elif task.data.path:
        root = data_root(config.data_root)
        path = root / task.data.path
    else:
        raise DataError(f"task {task.name} names no data file; pass --data")
    read = read_dataset(path, columns=task.data.columns or None)
    examples = []
    for ex in read.examples:
        label = task.data.label_map.get(str(ex.label), str(ex.label))
        if label not in task.labels:
            raise DataError(f"{path}: row {ex.id}: label {label!r} is not one of the task's labels "
                            f"{list(task.labels)}; add a label_map to the task file")
        ex.label = label
        if task.data.agreement_field:
            tier = ex.meta.get(task.data.agreement_field)
            if str(tier) not in task.data.agreement_map:
                raise DataError(f"{path}: row {ex.id}: field {task.data.agreement_field!r} value {tier!r} "
                                f"is not in the task's agreement_map")
            ex.meta["agreement"] = float(task.data.agreement_map[str(tier)])
        examples.append(ex)
    if any(ex.annotations for ex in examples):
        for ex in examples:
            if ex.annotations:
                ex.meta["agreement"] = instance_agreement(ratings_from_examples([ex])).value_map("agreement")[ex.id]
    if task.data.split_field:
        train = [ex for ex in examples if ex.meta.get(task.data.split_field) == "train"]
        test = [ex for ex in examples if ex.meta.get(task.data.split_field) == "test"]
    else:
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(examples, test_size=0.2, random_state=config.split_seed,
                                       stratify=[ex.label for ex in examples])
    if not train or not test:
        raise DataError(f"{path}: found {len(train)} training and {len(test)} test rows; both are needed")
    if len(test) > config.test_size:
        from sklearn.model_selection import train_test_split

        test, _ = train_test_split(test, train_size=config.test_size, random_state=config.split_seed,
                                   stratify=[ex.label for ex in test])
    return list(train), list(test), path


def balanced_sample(pool: list[Example], labels: list[str], n_per_label: int, seed: int) -> list[Example]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in pool:
        by_label[str(ex.label)].append(ex)
    rng = random.Random(seed)
    out = []
    for lab in labels:
        if len(by_label[lab]) < n_per_label:
            raise DataError(f"only {len(by_label[lab])} real training examples of label {lab!r}; "
                            f"lower --n-per-label to at most that")
        out += rng.sample(by_label[lab], n_per_label)
    return out


def equalise(sets: dict[str, list[Example]], labels: list[str]) -> int:
    """Cut every set to the same count per label (the smallest any set reached); returns it."""
    m = min(sum(1 for ex in s if ex.label == lab) for s in sets.values() for lab in labels)
    for name, s in sets.items():
        seen: dict[str, int] = defaultdict(int)
        kept = []
        for ex in s:
            if seen[str(ex.label)] < m:
                kept.append(ex)
                seen[str(ex.label)] += 1
        sets[name] = kept
    return m


def run_synthetic_study(config: SyntheticStudyConfig, workspace: Workspace) -> StudyResult:
    task = load_task(config.task)
    labels = list(task.labels)
    out = Path(config.out) if config.out else workspace.run_dir(f"synthetic-{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("experiment synthetic", asdict(config) | {"task_config": task.to_dict(),
                                                                  "workspace": str(workspace.root)})
    with manifest.stage("read"):
        pool, test, data_path = load_task_data(task, config)
    manifest.data["data"] = str(data_path)
    sets: dict[str, list[Example]] = {"real": balanced_sample(pool, labels, config.n_per_label, config.split_seed)}

    with manifest.stage("load_models"):
        llm = load_llm(config.generator, workspace)
        embedder = load_embedder(config.embedder, workspace)
    manifest.model("generator", llm.identity)
    manifest.model("embedder", embedder.identity)
    references = random.Random(config.split_seed).sample(pool, min(len(pool), 2000))
    generation: dict[str, Any] = {}
    for mode in ("zero-shot", "few-shot"):
        with manifest.stage(f"generate_{mode}"):
            gen_config = LabelledGenerationConfig(n_per_label=config.n_per_label, mode=mode,  # type: ignore[arg-type]
                                                  temperature=config.temperature, near_copy=config.near_copy,
                                                  reasoning=config.reasoning)
            result = generate_labelled(task, llm, gen_config, pool=pool, embedder=embedder, references=references)
        sets[mode] = result.examples
        generation[mode] = result.counts
        write_decisions(result.rejected, out / f"rejected-{mode}.jsonl")
        manifest.output(f"rejected_{mode}", out / f"rejected-{mode}.jsonl")
    per_label = equalise(sets, labels)
    manifest.count(per_label=per_label, train_size=per_label * len(labels), test=len(test), pool=len(pool),
                   generation=generation)
    if per_label < 2:
        raise DataError(f"generation kept fewer than 2 texts for some label ({generation}); see rejected-*.jsonl")
    for name, s in sets.items():
        write_dataset(s, out / f"train-{name}.jsonl", format="labelled")
        manifest.output(f"train_{name}", out / f"train-{name}.jsonl")
    write_dataset(test, out / "test.jsonl", format="labelled")

    div_rows, div_items = [], []
    with manifest.stage("diversity"):
        for name, s in sets.items():
            d = diversity(embedder.embed([ex.text or "" for ex in s]))
            div_rows.append({"set": name} | d.summary())
            div_items += [{"set": name} | r for r in diversity_table([ex.id for ex in s], d).rows()]
    atomic_write_text(out / "diversity_items.jsonl", "".join(json.dumps(r) + "\n" for r in div_items))

    runs = train_and_evaluate(sets, test, labels, config, workspace, manifest)
    table = summary_table(runs, div_rows, sets)
    agreement = agreement_curves(runs, test)
    comparison = compare_to_real(runs, test)
    write_outputs(out, task, config, table, agreement, generation, runs, manifest, comparison)
    manifest.write(out / "manifest.json")
    return StudyResult(out, table, agreement, manifest.data["counts"], comparison)


def train_and_evaluate(sets: dict[str, list[Example]], test: list[Example], labels: list[str],
                       config: SyntheticStudyConfig, workspace: Workspace, manifest: Manifest) -> dict[str, list[dict]]:
    """Every (set, seed) run's metrics and test predictions, cached by data, config and seed."""
    runs: dict[str, list[dict]] = {name: [] for name in sets}
    test_ids = [ex.id for ex in test]
    with manifest.stage("train_evaluate"):
        for name, s in sets.items():
            for seed in config.seeds:
                clf_config = ClassifierConfig(**(asdict(config.classifier) | {"seed": seed}))
                key = cache_key("tamis-synthetic-classifier", [(ex.id, ex.text, ex.label) for ex in s], test_ids,
                                labels, {k: v for k, v in clf_config.to_dict().items() if k != "device"})
                found = workspace.cache.get_many([key])
                if key not in found:
                    clf = train_classifier(s, clf_config, labels=labels)
                    result = evaluate_classifier(clf, test)
                    record_classifier_speed(workspace, clf)
                    found[key] = result | {"final_loss": clf.loss_history[-1], "steps": len(clf.loss_history)}
                    workspace.cache.put_many({key: found[key]})
                runs[name].append(found[key] | {"seed": seed})
    return runs


def _mean_sd(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summary_table(runs: dict[str, list[dict]], div_rows: list[dict], sets: dict[str, list[Example]]) -> list[dict]:
    div = {r["set"]: r for r in div_rows}
    rows = []
    for name, rs in runs.items():
        f1, f1_sd = _mean_sd([r["macro_f1"] for r in rs])
        acc, acc_sd = _mean_sd([r["accuracy"] for r in rs])
        rows.append({"set": name, "n_train": len(sets[name]), "seeds": len(rs), "macro_f1": f1, "macro_f1_sd": f1_sd,
                     "accuracy": acc, "accuracy_sd": acc_sd, "remote_clique": div[name]["remote_clique"],
                     "chamfer": div[name]["chamfer"]})
    return rows


def compare_to_real(runs: dict[str, list[dict]], test: list[Example], n_resamples: int = 10000) -> list[dict[str, Any]]:
    """Each generated set's accuracy minus the real set's, by a paired bootstrap over the test items and
    the seeds (the same resamples for every set; ``tamis.evaluate.paired``), with its verdict line."""
    from tamis.evaluate.paired import paired_difference, resampled_means

    gold = np.array([ex.label for ex in test])
    correct = {name: np.array([np.array(r["predictions"]) == gold for r in rs], dtype=float)
               for name, rs in runs.items()}
    if "real" not in correct:
        return []
    means = resampled_means(correct, n_resamples=n_resamples)
    return [paired_difference(correct, name, "real", metric="accuracy", means=means).to_dict()
            for name in correct if name != "real"]


def agreement_curves(runs: dict[str, list[dict]], test: list[Example]) -> dict[str, Any] | None:
    """Accuracy on test items with agreement >= threshold, per set; R^2 (linear fit) and Spearman rho."""
    from scipy import stats

    agree = np.array([ex.meta.get("agreement", np.nan) for ex in test], dtype=float)
    if np.isnan(agree).all():
        return None
    gold = np.array([ex.label for ex in test])
    thresholds = sorted(set(agree[~np.isnan(agree)].tolist()))
    curves: dict[str, Any] = {"thresholds": thresholds, "n_items": [int((agree >= g).sum()) for g in thresholds],
                              "sets": {}}
    for name, rs in runs.items():
        per_seed = np.array([[float((np.array(r["predictions"])[agree >= g] == gold[agree >= g]).mean())
                              for g in thresholds] for r in rs])
        acc = per_seed.mean(axis=0)
        entry = {"accuracy": acc.tolist(), "accuracy_sd": per_seed.std(axis=0, ddof=1).tolist() if len(rs) > 1
                 else [0.0] * len(thresholds), "r2": float("nan"), "spearman_rho": float("nan")}
        if len(thresholds) >= 3 and np.ptp(acc) > 0:
            entry["r2"] = float(stats.linregress(thresholds, acc).rvalue ** 2)
            entry["spearman_rho"] = float(stats.spearmanr(thresholds, acc).statistic)
        curves["sets"][name] = entry
    return curves


def write_outputs(out: Path, task: TaskConfig, config: SyntheticStudyConfig, table: list[dict],
                  agreement: dict[str, Any] | None, generation: dict[str, Any], runs: dict[str, list[dict]],
                  manifest: Manifest, comparison: list[dict[str, Any]]) -> None:
    pm = lambda m, s: f"{100 * m:.1f} ± {100 * s:.1f}"  # noqa: E731
    paper = {"task": task.name} | {f"{r['set']} {m}": pm(r[k], r[f"{k}_sd"]) for r in table
                                   for m, k in (("F1", "macro_f1"), ("Acc", "accuracy"))}
    table_md = "# Macro-F1 / accuracy (%), mean ± sd over seeds (cf. Li et al. 2023, Table 1)\n\n"
    table_md += markdown_table([paper]) + "\n" + markdown_table(table)
    verdicts = [c["verdict"] for c in comparison]
    table_md += "\n## Against the real data (paired bootstrap over test items and seeds)\n\n" + "".join(
        f"- {v}\n" for v in verdicts)
    atomic_write_text(out / "table.md", table_md)
    atomic_write_text(out / "results.json", json.dumps({"table": table, "comparison": comparison,
                                                        "agreement": agreement, "generation": generation,
                                                        "runs": {k: [{x: y for x, y in r.items() if x != "predictions"}
                                                                     for r in v] for k, v in runs.items()}},
                                                       indent=2, default=str) + "\n")
    names = [r["set"] for r in table]
    bar_chart(out / "metrics.png", ["macro-F1", "accuracy"],
              {r["set"]: [r["macro_f1"], r["accuracy"]] for r in table},
              {r["set"]: [r["macro_f1_sd"], r["accuracy_sd"]] for r in table},
              title=f"{task.name}: real vs synthetic training data", ylim=(0, 1))
    bar_chart(out / "diversity.png", names, {"Remote Clique": [r["remote_clique"] for r in table],
                                             "Chamfer": [r["chamfer"] for r in table]},
              title="Diversity of each training set (cosine distance)")
    report = HtmlReport(f"Synthetic data study: {task.name}")
    report.paragraph(f"Training sets of {table[0]['n_train']} texts (balanced over {len(task.labels)} labels); "
                     f"test: {manifest.data['counts']['test']} real texts; seeds {list(config.seeds)}; "
                     f"generator {config.generator}; classifier {config.classifier.model}.")
    report.heading("Against the real data")
    for line in verdicts:
        report.paragraph(line)
    report.heading("Macro-F1 and accuracy (mean ± sd over seeds)").table([paper]).table(table).image(out / "metrics.png")
    report.heading("Diversity").image(out / "diversity.png")
    report.heading("Generation").table([{"mode": m} | {k: v for k, v in c.items() if not isinstance(v, dict)} |
                                        {"rejected by reason": json.dumps(c.get("rejected_by_reason"))}
                                        for m, c in generation.items()])
    if agreement:
        curve_chart(out / "agreement.png", {n: (agreement["thresholds"], e["accuracy"]) for n, e in agreement["sets"].items()},
                    errors={n: e["accuracy_sd"] for n, e in agreement["sets"].items()},
                    title="Accuracy on test items with agreement ≥ γ", xlabel="agreement threshold γ",
                    ylabel="accuracy")
        report.heading("Accuracy vs annotator agreement").image(out / "agreement.png")
        report.table([{"set": n, "R2": e["r2"], "Spearman rho": e["spearman_rho"]} for n, e in agreement["sets"].items()])
        manifest.output("agreement_plot", out / "agreement.png")
    report.paragraph("The bundled generator is a 135M-parameter model: its texts are weak, and the gap to real data "
                     "says as much about the generator as about synthetic data.", note=True)
    report.write(out / "report.html")
    for name in ("table.md", "results.json", "metrics.png", "diversity.png", "report.html", "diversity_items.jsonl"):
        manifest.output(name.split(".")[0], out / name)
