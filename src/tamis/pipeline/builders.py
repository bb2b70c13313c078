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
from tamis.records import Example


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
