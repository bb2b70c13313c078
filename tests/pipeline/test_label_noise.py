"""The label-noise study's parts that need no model: the builder, the same-size random control,
detection against injected flags, and the paired comparison read from per-item eval outputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tamis.curate.steps import StepContext, get_step
from tamis.errors import ConfigError
from tamis.evaluate.comparison import compare_study, detection, verdict_lines
from tamis.io import DataError
import tamis.pipeline.label_curation  # noqa: F401  (registers label_filter and sample_as)
from tamis.pipeline.demo import demo_sms_path
from tamis.pipeline.recipe import load_recipe
from tamis.pipeline.sources import build_source, builder_params, get_builder
from tamis.records import chat_example
from tamis.store import Workspace


def _build(tmp_path: Path, **params):
    builder = get_builder("noisy_labels")
    return builder.fn(builder_params("noisy_labels", {"path": str(demo_sms_path())} | params), Path)


def test_noisy_labels_injects_exactly_the_share_asked_and_keeps_the_clean_oracle(tmp_path: Path) -> None:
    splits = _build(tmp_path, n_train=100, n_test=60, noise=0.3, seed=3)
    train, clean, test = splits["train"], splits["clean"], splits["test"]
    assert len(train) == len(clean) == 100 and len(test) == 60
    flagged = [ex for ex in train if ex.meta["label_noise"]]
    assert len(flagged) == 30
    for noisy, orig in zip(train, clean):
        assert noisy.id == orig.id and noisy.prompt_messages == orig.prompt_messages
        assert (noisy.response != orig.response) == noisy.meta["label_noise"]
        assert orig.response == noisy.meta["clean_label"]
    assert Counter(ex.response for ex in clean) == {"ham": 50, "spam": 50}  # balanced
    assert Counter(ex.response for ex in test) == {"ham": 30, "spam": 30}
    assert all(ex.meta["options"] == ["ham", "spam"] for ex in train + test)
    assert not {ex.id for ex in test} & {ex.id for ex in train}
    assert train[0].messages[0].role == "system" and "ham, spam" in train[0].messages[1].content
    again = _build(tmp_path, n_train=100, n_test=60, noise=0.3, seed=3)["train"]
    assert [ex.to_dict() for ex in again] == [ex.to_dict() for ex in train]  # seeded


def test_noisy_labels_seed_split_is_trusted_and_held_out(tmp_path: Path) -> None:
    splits = _build(tmp_path, n_train=40, n_test=20, n_seed=10, noise=0.5, seed=1)
    seed = splits["seed"]
    assert len(seed) == 10 and Counter(ex.response for ex in seed) == {"ham": 5, "spam": 5}
    texts = {split: {ex.prompt_messages[-1]["content"] for ex in splits[split]} for split in ("train", "test", "seed")}
    assert not texts["seed"] & (texts["train"] | texts["test"])  # other texts
    assert all(not ex.meta.get("label_noise") and ex.meta["label"] == ex.response for ex in seed)  # true labels
    assert "seed" not in _build(tmp_path, n_train=40, n_test=20)  # only when asked
    with pytest.raises(DataError, match="seed"):
        _build(tmp_path, n_train=100, n_test=100, n_seed=100_000)


def test_noisy_labels_refuses_more_rows_than_the_file_has(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="available"):
        _build(tmp_path, n_train=400, n_test=300)
    with pytest.raises(DataError, match="at least two labels"):
        _build(tmp_path, labels=["ham", "eggs"])


def test_build_source_writes_the_splits(tmp_path: Path) -> None:
    files = build_source("noisy_labels", {"path": str(demo_sms_path()), "n_train": 20, "n_test": 10},
                         Path, tmp_path / "data")
    assert set(files) == {"train", "clean", "test"}


def test_sample_as_matches_the_other_variants_size(tmp_path: Path) -> None:
    examples = _build(tmp_path, n_train=40, n_test=10)["train"]
    (tmp_path / "variants" / "curated").mkdir(parents=True)
    (tmp_path / "variants" / "curated" / "train.jsonl").write_text("{}\n" * 13)
    ctx = StepContext(workspace=Workspace(tmp_path / "ws"), out_dir=tmp_path / "variants" / "random" / "step0-sample_as")
    decisions = get_step("sample_as")(examples, {"variant": "curated"}, ctx)
    assert sum(d.action == "keep" for d in decisions) == 13
    with pytest.raises(ConfigError, match="list it before"):
        get_step("sample_as")(examples, {"variant": "missing"}, ctx)
    with pytest.raises(ConfigError, match="unknown parameter|not a parameter|parameter"):
        get_step("label_filter")(examples, {"rulez": "x"}, ctx)


def test_detection_precision_and_recall(tmp_path: Path) -> None:
    examples = [chat_example([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                             id=f"e{i}", meta={"label_noise": i < 4}) for i in range(10)]
    rows = [{"id": "e0", "action": "drop"}, {"id": "e1", "action": "drop"}, {"id": "e7", "action": "drop"},
            {"id": "e2", "action": "keep"}]
    (tmp_path / "decisions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = detection(examples, tmp_path / "decisions.jsonl", "label_noise")
    assert d["precision"] == pytest.approx(2 / 3) and d["recall"] == pytest.approx(0.5)
    assert d["flagged_share_before"] == pytest.approx(0.4) and d["flagged_share_after"] == pytest.approx(2 / 7)
    assert detection(examples, tmp_path / "decisions.jsonl", "no_such_flag") is None


def test_detection_reports_the_score_beside_length_alone_and_length_matched(tmp_path: Path) -> None:
    """A score that only tracks length looks like a detector when flawed rows are longer; the length-only
    baseline and the length-matched AUROC beside it show that. Ten length groups of 9 rows, group g
    with g flawed rows, all of one length: length predicts the flaw, nothing does within a group."""
    examples = [chat_example([{"role": "user", "content": f"q{g}-{j}"}, {"role": "assistant", "content": "x" * (10 + 100 * g)}],
                             id=f"e{g}-{j}", meta={"flaw": j < g}) for g in range(10) for j in range(9)]
    rows = [{"id": ex.id, "action": "keep", "scores": {"confidence": -len(ex.response)}} for ex in examples]
    (tmp_path / "decisions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = detection(examples, tmp_path / "decisions.jsonl", "flaw")
    assert d["score"] == "confidence" and d["auroc"]["value"] > 0.8
    assert d["length_only_auroc"]["value"] == pytest.approx(d["auroc"]["value"])  # length alone does as well
    assert d["length_matched_auroc"]["value"] == pytest.approx(0.5)  # and within a length group nothing is left


def _write_eval(folder: Path, correct: list[int]) -> None:
    folder.mkdir(parents=True)
    folder.joinpath("outputs.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "scores": {"accuracy": float(c)}}) + "\n" for i, c in enumerate(correct)))


def test_compare_study_reads_per_item_scores_and_gives_verdicts(tmp_path: Path) -> None:
    n = 300
    patterns = {"raw": lambda i: i % 10 < 6, "clean": lambda i: i % 10 < 9, "curated": lambda i: i % 10 < 8,
                "random": lambda i: i % 10 < 6}
    rows = []
    for variant, right in patterns.items():
        for seed in (0, 1):
            eval_dir = f"runs/{variant}/m/seed{seed}/eval"
            _write_eval(tmp_path / eval_dir, [int(right(i)) for i in range(n)])
            rows.append({"variant": variant, "model": "m", "seed": seed, "eval_dir": eval_dir,
                         "metrics": {"accuracy": {}}})
    result = compare_study(rows, tmp_path, baseline="raw", oracle="clean", n_resamples=2000)
    entry = result["models"]["m"]
    assert result["metric"] == "accuracy" and entry["n_items"] == n and entry["n_seeds"] == 2
    verdicts = {d["variant"]: d["verdict"] for d in entry["differences"]}
    assert verdicts["curated"].startswith("curated beats raw by +20.0 points")
    assert "no difference detected at this size" in verdicts["random"]
    shares = {r["variant"]: r["share"] for r in entry["recovered"]}
    assert shares["curated"] == pytest.approx(2 / 3) and shares["random"] == 0
    lines = verdict_lines(result)
    assert lines[0].startswith("Verdicts (m; paired bootstrap over 300 test items x 2 seed(s)")
    assert any(line.strip().startswith("curated recovers 67% [") for line in lines)


def test_recipe_compare_names_must_be_variants(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndata: {train: a.jsonl, test: b.jsonl}\nvariants: {raw: []}\n"
                      "compare: {oracle: clean}\n")
    with pytest.raises(DataError, match="compare.oracle 'clean' is not a variant"):
        load_recipe(recipe)


def test_confident_rule_uses_per_label_thresholds() -> None:
    """A model that favours 'ham' everywhere: 'disagree' drops every spam-labelled row, the confident
    rule's per-label thresholds drop only the rows whose other label is unusually likely."""
    from tamis.pipeline.label_curation import label_decisions

    def ex(i: int, label: str):
        return chat_example([{"role": "user", "content": f"t{i}"}, {"role": "assistant", "content": label}], id=f"e{i}")

    examples = [ex(0, "spam"), ex(1, "spam"), ex(2, "spam"), ex(3, "ham"), ex(4, "ham"), ex(5, "ham")]
    p_spam = [0.45, 0.40, 0.05, 0.10, 0.15, 0.50]  # e2 looks like ham, e5 looks like spam
    probs = {f"e{i}": {"ham": 1 - p, "spam": p} for i, p in enumerate(p_spam)}
    disagree = {d.id for d in label_decisions(examples, probs, "disagree") if d.action == "drop"}
    assert disagree == {"e0", "e1", "e2"}
    confident = {d.id for d in label_decisions(examples, probs, "confident") if d.action == "drop"}
    # t_spam = mean(0.45, 0.40, 0.05) = 0.30, t_ham = mean(0.90, 0.85, 0.50) = 0.75
    assert confident == {"e2", "e5"}
    median = {d.id for d in label_decisions(examples, probs, "median") if d.action == "drop"}
    assert median == {"e0", "e1", "e2"}  # p(given) 0.45 0.40 0.05 0.90 0.85 0.50: median 0.475


def test_neighbour_vote_drops_labels_their_neighbours_contradict() -> None:
    """Two tight clusters; one 'spam' sits inside the ham cluster: its neighbours vote it out."""
    import numpy as np

    from tamis.pipeline.label_curation import neighbour_decisions

    rng = np.random.default_rng(0)
    centres = {"ham": np.array([1.0, 0, 0]), "spam": np.array([0, 1.0, 0])}
    truth = ["ham"] * 6 + ["spam"] * 6
    vectors = np.stack([centres[t] + rng.normal(0, 0.05, 3) for t in truth])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = list(truth)
    labels[2] = "spam"  # a wrong label
    examples = [chat_example([{"role": "user", "content": f"t{i}"}, {"role": "assistant", "content": label}],
                             id=f"e{i}") for i, label in enumerate(labels)]
    decisions = neighbour_decisions(examples, labels, vectors, k=4)
    assert [d.id for d in decisions if d.action == "drop"] == ["e2"]
    assert decisions[2].scores["neighbour_agreement"] == 0 and "4 of its 4 nearest neighbours are labelled 'ham'" \
        in decisions[2].reason


def test_answers_map_labels_to_the_words_the_model_says(tmp_path: Path) -> None:
    splits = _build(tmp_path, n_train=20, n_test=10, noise=0.5, answers={"spam": "yes", "ham": "no"})
    assert {ex.response for ex in splits["test"]} == {"yes", "no"}
    assert all(ex.meta["options"] == ["no", "yes"] for ex in splits["train"])
    for noisy, clean in zip(splits["train"], splits["clean"]):
        assert clean.response == noisy.meta["clean_label"] and (noisy.response != clean.response) == \
            noisy.meta["label_noise"]
    with pytest.raises(DataError, match="the same answer"):
        _build(tmp_path, answers={"spam": "yes", "ham": "yes"})


def test_fold_splits_hold_out_every_example_exactly_once():
    from tamis.curate.steps import fold_splits

    splits = fold_splits(10, 3, seed=7)
    held = [i for _, h in splits for i in h]
    assert sorted(held) == list(range(10)) and [len(h) for _, h in splits] == [4, 3, 3]
    assert all(not set(train) & set(h) and sorted(train + h) == list(range(10)) for train, h in splits)
    assert fold_splits(10, 3, seed=7) == splits and fold_splits(10, 3, seed=8) != splits
    with pytest.raises(ConfigError, match="folds must lie in"):
        fold_splits(3, 4, seed=0)
