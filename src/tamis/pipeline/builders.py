"""The data builders of the shipped studies (registered into tamis.pipeline.sources).

- ``noisy_instructions`` (CLEAR): clean instruction data with a share of responses swapped between
  examples of similar length (CLEAR's Emails-N style noise), plus held-out questions;
- ``translation_candidates`` (G-DIG): a test set whose system outputs are the candidate pool, whose
  references of other segments are the trusted seed set, and whose remaining segments are the test;
- ``post_edits`` (HED-IT): the same source segments with the machine output (unedited) or its
  professional post-edit (edited) as target, and held-out segments with post-edits as references.

Every builder is seeded and splits by source segment / prompt, so the held-out split shares no
prompt with any training split (``tamis.pipeline.sources.build_source`` checks this again).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tamis.evaluate.corruption import swap_responses
from tamis.io import DataError, read_dataset
from tamis.io.files import iter_raw_rows
from tamis.io.formats import from_row
from tamis.pipeline.sources import Resolver, missing_file_hint, register_builder
from tamis.records import Example, chat_example


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0


def _file(ref: str, resolve: Resolver) -> Path:
    path = resolve(ref)
    if not path.is_file():
        raise DataError(missing_file_hint(ref, path))
    return path


def _rows(ref: str, resolve: Resolver, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    path = _file(ref, resolve)
    for raw in iter_raw_rows(path):
        if raw.error is not None or raw.data is None:
            raise DataError(f"{path}:{raw.row}: {raw.error}")
        missing = [f for f in required if f not in raw.data]
        if missing:
            raise DataError(f"{path}:{raw.row}: missing field(s) {', '.join(missing)} (found {sorted(raw.data)})")
        yield raw.data


def _translation(ex_id: str, source: str, target: str, source_lang: str, target_lang: str, **meta: Any) -> Example:
    return from_row({"id": ex_id, "source": source, "target": target, "source_lang": source_lang,
                     "target_lang": target_lang, **meta}, "translation")


# -- CLEAR -------------------------------------------------------------------------------------------

class NoisyInstructionsParams(_Params):
    path: str = "data-root:dolly_alpagasus_3k/dolly_filtered_3k.jsonl"
    n_train: int = Field(300, ge=2)
    n_test: int = Field(60, ge=1)
    noise: float = Field(0.2, ge=0, le=1)
    length_matched: bool = True
    test_max_chars: int | None = Field(300, ge=1)
    max_chars: int | None = Field(1500, ge=1)


@register_builder("noisy_instructions", NoisyInstructionsParams)
def noisy_instructions(p: NoisyInstructionsParams, resolve: Resolver) -> dict[str, list[Example]]:
    """Instruction data with a seeded share of responses swapped (length-matched), and held-out questions.

    Splits: ``train`` (noisy; corrupted rows carry meta.corruption), ``clean`` (the same rows before
    the swaps, an oracle), ``test`` (other rows, references of at most ``test_max_chars``). Rows longer
    than ``max_chars`` (prompt + response) are left out, so training stays cheap on a CPU."""
    path = _file(p.path, resolve)
    examples = [ex for ex in read_dataset(path).examples if ex.kind == "chat" and ex.response
                and not (p.max_chars and len(_key(ex)) + len(ex.response or "") > p.max_chars)]
    order = random.Random(p.seed).sample(examples, len(examples))
    test, seen = [], set()
    for ex in order:
        if len(test) == p.n_test:
            break
        if (p.test_max_chars is None or len(ex.response or "") <= p.test_max_chars) and _key(ex) not in seen:
            test.append(ex)
            seen.add(_key(ex))
    train = []
    for ex in order:
        if len(train) == p.n_train:
            break
        if _key(ex) not in seen:
            train.append(ex)
            seen.add(_key(ex))
    if len(test) < p.n_test or len(train) < p.n_train:
        raise DataError(f"{path}: only {len(train)} training and {len(test)} test rows available for "
                        f"n_train={p.n_train}, n_test={p.n_test}")
    noisy, _ = swap_responses(train, fraction=p.noise, seed=p.seed, length_matched=p.length_matched)
    return {"train": noisy, "clean": train, "test": test}


def _key(ex: Example) -> str:
    return "\n".join(m["content"] for m in ex.prompt_messages)


# -- G-DIG -------------------------------------------------------------------------------------------

class TranslationCandidatesParams(_Params):
    segments: str = "data-root:wmt22_general_zhen_deen/generaltest2022.de-en.jsonl"
    system_outputs: str = "data-root:wmt22_general_zhen_deen/generaltest2022.de-en.system_outputs.jsonl"
    source_lang: str = "de"
    target_lang: str = "en"
    reference: str = "ref_A"
    n_candidates: int = Field(300, ge=1)
    systems_per_segment: int = Field(1, ge=1)
    n_seed: int = Field(20, ge=1)
    n_test: int = Field(100, ge=1)
    max_source_chars: int | None = Field(250, ge=1)


@register_builder("translation_candidates", TranslationCandidatesParams)
def translation_candidates(p: TranslationCandidatesParams, resolve: Resolver) -> dict[str, list[Example]]:
    """MT system outputs as candidates, references of other segments as the seed set, the rest as test.

    Segments (deduplicated by source text, at most ``max_source_chars``) are shuffled with the seed and
    cut into three disjoint groups: ``train`` = ``systems_per_segment`` randomly chosen systems' outputs
    for each of ``n_candidates`` segments (meta.system), ``seed`` = the references of ``n_seed``
    segments, ``test`` = ``n_test`` segments with their references."""
    segments: dict[str, dict[str, Any]] = {}
    by_source: set[str] = set()
    for row in _rows(p.segments, resolve, ("id", "src", p.reference)):
        src, ref = str(row["src"]).strip(), str(row[p.reference] or "").strip()
        if not src or not ref or src in by_source or (p.max_source_chars and len(src) > p.max_source_chars):
            continue
        by_source.add(src)
        segments[str(row["id"])] = row
    outputs: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(p.system_outputs, resolve, ("id", "system", "hyp")):
        if str(row["id"]) in segments and str(row["hyp"] or "").strip():
            outputs.setdefault(str(row["id"]), []).append(row)
    rng = random.Random(p.seed)
    ids = sorted(segments)
    rng.shuffle(ids)
    need = p.n_candidates + p.n_seed + p.n_test
    if len(ids) < need:
        raise DataError(f"{resolve(p.segments)}: {len(ids)} usable segments, {need} needed "
                        f"(n_candidates + n_seed + n_test)")
    test_ids, seed_ids = ids[:p.n_test], ids[p.n_test:p.n_test + p.n_seed]
    cand_ids = [i for i in ids[p.n_test + p.n_seed:] if outputs.get(i)][:p.n_candidates]

    def reference(i: str, split: str) -> Example:
        seg = segments[i]
        return _translation(f"{i}:{p.reference}", seg["src"].strip(), seg[p.reference].strip(), p.source_lang,
                            p.target_lang, segment=i, split=split)

    candidates = []
    for i in cand_ids:
        systems = sorted(outputs[i], key=lambda r: str(r["system"]))
        for out in rng.sample(systems, min(p.systems_per_segment, len(systems))):
            candidates.append(_translation(f"{i}:{out['system']}", segments[i]["src"].strip(), out["hyp"].strip(),
                                           p.source_lang, p.target_lang, segment=i, system=out["system"],
                                           split="candidate"))
    return {"train": candidates, "seed": [reference(i, "seed") for i in seed_ids],
            "test": [reference(i, "test") for i in test_ids]}


# -- HED-IT ------------------------------------------------------------------------------------------

class PostEditsParams(_Params):
    path: str = "data-root:mlqe_pe_ende_enzh/mlqe_pe_ende_post_editing.jsonl"
    source_lang: str = "en"
    target_lang: str = "de"
    source: str = "src_tok"
    machine: str = "mt_tok"
    edited: str = "pe_tok"
    train_split: str = "train"
    test_split: str = "test"
    n_train: int = Field(200, ge=1)
    n_test: int = Field(100, ge=1)
    max_source_chars: int | None = Field(200, ge=1)


@register_builder("post_edits", PostEditsParams)
def post_edits(p: PostEditsParams, resolve: Resolver) -> dict[str, list[Example]]:
    """The same source segments with the machine output (unedited) or its post-edit (edited) as target.

    Splits: ``unedited`` and ``edited`` (``n_train`` segments of the upstream ``train_split``, same ids,
    meta.hter), ``test`` (``n_test`` segments of ``test_split`` with the post-edit as reference)."""
    pools: dict[str, list[dict[str, Any]]] = {p.train_split: [], p.test_split: []}
    for row in _rows(p.path, resolve, ("id", "split", p.source, p.machine, p.edited)):
        src = str(row[p.source] or "").strip()
        if row["split"] in pools and src and str(row[p.edited] or "").strip() and str(row[p.machine] or "").strip() \
                and not (p.max_source_chars and len(src) > p.max_source_chars):
            pools[row["split"]].append(row)
    if p.train_split == p.test_split:
        raise DataError(f"builder post_edits: train_split and test_split are both {p.train_split!r}")
    rng = random.Random(p.seed)
    test_rows = rng.sample(pools[p.test_split], min(p.n_test, len(pools[p.test_split])))
    test_sources = {str(r[p.source]).strip() for r in test_rows}
    train_pool = [r for r in pools[p.train_split] if str(r[p.source]).strip() not in test_sources]
    train_rows = rng.sample(train_pool, min(p.n_train, len(train_pool)))
    if len(test_rows) < p.n_test or len(train_rows) < p.n_train:
        raise DataError(f"{resolve(p.path)}: {len(train_rows)} training / {len(test_rows)} test segments usable, "
                        f"n_train={p.n_train} / n_test={p.n_test} asked")

    def pair(row: dict[str, Any], target: str, version: str) -> Example:
        return _translation(str(row["id"]), str(row[p.source]).strip(), str(row[target]).strip(), p.source_lang,
                            p.target_lang, version=version, hter=row.get("hter"), upstream_split=row["split"])

    return {"unedited": [pair(r, p.machine, "machine output") for r in train_rows],
            "edited": [pair(r, p.edited, "post-edit") for r in train_rows],
            "test": [pair(r, p.edited, "post-edit") for r in test_rows]}


# -- label noise (classification as generation) ------------------------------------------------------

class NoisyLabelsParams(_Params):
    path: str = "data-root:sms_spam/sms_spam.jsonl"
    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] | None = None  # the label options [default: every label in the file, sorted]
    answers: dict[str, str] = Field(default_factory=dict)  # the answer the model gives for a label (spam: "yes")
    system: str | None = "You are a text classifier."  # short: every token is trained and scored on a CPU
    instruction: str = "Label this text as one of: {options}.\n\n"  # the text follows
    n_train: int = Field(200, ge=2)
    n_test: int = Field(300, ge=1)
    n_seed: int = Field(0, ge=0)  # a trusted seed set: other texts with their true labels (G-DIG, LDS)
    noise: float = Field(0.3, ge=0, le=0.9)
    balanced: bool = True
    max_chars: int | None = Field(200, ge=1)
    where: dict[str, Any] = Field(default_factory=dict)  # keep only rows with these field values


@register_builder("noisy_labels", NoisyLabelsParams)
def noisy_labels(p: NoisyLabelsParams, resolve: Resolver) -> dict[str, list[Example]]:
    """Labelled texts as chat classification with a seeded share of training labels made wrong.

    Each row becomes ``[system], user: instruction + text, assistant: label`` with ``meta.options``
    (the label set, for option scoring; ``answers`` maps a data label to the answer the model gives,
    e.g. spam -> "yes" for "Is this message spam?"). Texts are deduplicated; ``balanced`` takes the same number of
    rows per label. ``noise`` x n_train training rows (chosen at random) get a wrong label drawn
    uniformly from the other options; every training row records ``meta.label_noise`` (injected or
    not) and ``meta.clean_label``. Splits: ``train`` (noisy), ``clean`` (the same rows with their
    original labels: the oracle), ``test`` (other texts, original labels) and, when ``n_seed`` > 0,
    ``seed`` (a trusted seed set of further texts with their original labels, for influence)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for row in _rows(p.path, resolve, (p.text_field, p.label_field)):
        text, label = " ".join(str(row[p.text_field] or "").split()), str(row[p.label_field] or "").strip()
        if not text or not label or text.lower() in seen or (p.max_chars and len(text) > p.max_chars):
            continue
        if any(row.get(k) != v for k, v in p.where.items()):
            continue
        seen.add(text.lower())
        rows.setdefault(label, []).append({"id": str(row.get("id") or f"row{len(seen)}"), "text": text,
                                           "label": label})
    options = list(p.labels) if p.labels else sorted(rows)
    unknown = sorted(set(options) - set(rows))
    if len(options) < 2 or unknown:
        raise DataError(f"{resolve(p.path)}: labels {options} (found {sorted(rows)}); a classification task needs "
                        "at least two labels that occur in the data")
    rng = random.Random(p.seed)
    pools = {label: rng.sample(rows[label], len(rows[label])) for label in options}
    test = _take(pools, p.n_test, p.balanced, rng)
    train = _take(pools, p.n_train, p.balanced, rng)
    seed = _take(pools, p.n_seed, p.balanced, rng) if p.n_seed else []
    if len(test) < p.n_test or len(train) < p.n_train or len(seed) < p.n_seed:
        raise DataError(f"{resolve(p.path)}: {len(train)} training / {len(test)} test / {len(seed)} seed texts "
                        f"available (n_train={p.n_train}, n_test={p.n_test}, n_seed={p.n_seed}, "
                        f"balanced={p.balanced}, max_chars={p.max_chars})")
    noisy_ids = set(rng.sample([r["id"] for r in train], int(round(p.noise * len(train)))))
    answer = {label: p.answers.get(label, label) for label in options}
    if len(set(answer.values())) != len(answer):
        raise DataError(f"builder noisy_labels: answers {answer} give two labels the same answer")

    def example(row: dict[str, Any], label: str, split: str, **meta: Any) -> Example:
        user = p.instruction.format(options=", ".join(answer[o] for o in options)) + row["text"]
        messages = ([{"role": "system", "content": p.system}] if p.system else []) + [
            {"role": "user", "content": user}, {"role": "assistant", "content": answer[label]}]
        return chat_example(messages, id=row["id"], meta={"options": [answer[o] for o in options], "split": split,
                                                          "label": label, **meta})

    noisy, clean = [], []
    for row in train:
        wrong = row["id"] in noisy_ids
        label = rng.choice([o for o in options if o != row["label"]]) if wrong else row["label"]
        noisy.append(example(row, label, "train", label_noise=wrong, clean_label=answer[row["label"]]))
        clean.append(example(row, row["label"], "clean", label_noise=False, clean_label=answer[row["label"]]))
    splits = {"train": noisy, "clean": clean, "test": [example(r, r["label"], "test") for r in test]}
    if seed:
        splits["seed"] = [example(r, r["label"], "seed") for r in seed]
    return splits


def _take(pools: dict[str, list[dict[str, Any]]], n: int, balanced: bool, rng: random.Random) -> list[dict[str, Any]]:
    """n rows popped from the label pools: the same number per label (remainder to the first labels) when
    balanced, else a random draw from all of them; shuffled."""
    if balanced:
        labels = list(pools)
        counts = {label: n // len(labels) + (i < n % len(labels)) for i, label in enumerate(labels)}
        taken = [row for label in labels for row in pools[label][:counts[label]]]
        for label in labels:
            del pools[label][:counts[label]]
    else:
        everything = [(label, row) for label in pools for row in pools[label]]
        chosen = rng.sample(everything, min(n, len(everything)))
        ids = {id(row) for _, row in chosen}
        for label in pools:
            pools[label] = [r for r in pools[label] if id(r) not in ids]
        taken = [row for _, row in chosen]
    rng.shuffle(taken)
    return taken
