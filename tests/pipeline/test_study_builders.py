"""The data builders of the shipped studies: seeded, and the held-out data never overlaps training data."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tamis.io import DataError, read_dataset
from tamis.pipeline.sources import BUILDERS, build_source, builder_params, get_builder, register_builder
from tamis.records import chat_example


def _build(name, params, shared_data, monkeypatch):
    monkeypatch.setenv("TAMIS_DATA_ROOT", str(shared_data))
    builder = get_builder(name)
    from tamis.pipeline.sources import resolve_reference

    return builder.fn(builder_params(name, params), lambda ref: resolve_reference(ref))


def _prompts(examples):
    return {ex.messages[0].content for ex in examples}


def _ids(examples):
    return [ex.id for ex in examples]


def test_noisy_instructions(shared_data, monkeypatch):
    params = {"n_train": 100, "n_test": 30, "noise": 0.2}
    splits = _build("noisy_instructions", params, shared_data, monkeypatch)
    train, clean, test = splits["train"], splits["clean"], splits["test"]
    assert (len(train), len(clean), len(test)) == (100, 100, 30)
    assert _ids(train) == _ids(clean) and not set(_ids(train)) & set(_ids(test))
    assert not _prompts(train) & _prompts(test)
    assert all(len(ex.response) <= 300 for ex in test)
    corrupted = [ex for ex in train if "corruption" in ex.meta]
    assert len(corrupted) == 20
    by_id = {ex.id: ex for ex in clean}
    for ex in corrupted:  # a swapped response is another training example's, of similar length
        donor = by_id[ex.meta["corruption"]["from"]]
        assert ex.response == donor.response != by_id[ex.id].response
    assert all(ex.response == by_id[ex.id].response for ex in train if "corruption" not in ex.meta)
    again = _build("noisy_instructions", params, shared_data, monkeypatch)
    assert _ids(again["train"]) == _ids(train) and [e.response for e in again["train"]] == [e.response for e in train]
    other = _build("noisy_instructions", params | {"seed": 1}, shared_data, monkeypatch)
    assert _ids(other["train"]) != _ids(train)


def test_translation_candidates(shared_data, monkeypatch):
    params = {"n_candidates": 60, "n_seed": 10, "n_test": 20, "systems_per_segment": 2}
    splits = _build("translation_candidates", params, shared_data, monkeypatch)
    cands, seed, test = splits["train"], splits["seed"], splits["test"]
    assert (len(cands), len(seed), len(test)) == (120, 10, 20)
    segments = {name: {ex.meta["segment"] for ex in split} for name, split in splits.items()}
    assert len(segments["train"]) == 60
    assert not segments["train"] & segments["seed"] and not segments["train"] & segments["test"]
    assert not segments["seed"] & segments["test"]
    assert not _prompts(cands) & _prompts(test) and not _prompts(seed) & _prompts(test)
    assert all(ex.meta["system"] and ex.id.endswith(ex.meta["system"]) for ex in cands)
    assert all(ex.id.endswith(":ref_A") for ex in seed + test)
    assert all(ex.meta["translation"]["source_lang"] == "de" and ex.meta["translation"]["target_lang"] == "en"
               for ex in cands + seed + test)
    assert "from German to English" in test[0].messages[0].content
    assert _ids(_build("translation_candidates", params, shared_data, monkeypatch)["train"]) == _ids(cands)
    assert _ids(_build("translation_candidates", params | {"seed": 3}, shared_data, monkeypatch)["test"]) != _ids(test)


def test_post_edits(shared_data, monkeypatch):
    params = {"n_train": 50, "n_test": 20}
    splits = _build("post_edits", params, shared_data, monkeypatch)
    unedited, edited, test = splits["unedited"], splits["edited"], splits["test"]
    assert (len(unedited), len(edited), len(test)) == (50, 50, 20)
    assert _ids(unedited) == _ids(edited) and _prompts(unedited) == _prompts(edited)
    assert all(ex.meta["upstream_split"] == "train" for ex in edited)
    assert all(ex.meta["upstream_split"] == "test" for ex in test)
    assert not set(_ids(edited)) & set(_ids(test)) and not _prompts(edited) & _prompts(test)
    changed = [(u, e) for u, e in zip(unedited, edited) if u.meta["hter"] > 0]
    assert changed and all(u.response != e.response for u, e in changed)
    assert all(ex.meta["version"] == "post-edit" for ex in edited + test)
    assert "from English to German" in test[0].messages[0].content
    again = _build("post_edits", params, shared_data, monkeypatch)
    assert _ids(again["edited"]) == _ids(edited) and _ids(again["test"]) == _ids(test)
    assert _ids(_build("post_edits", params | {"seed": 1}, shared_data, monkeypatch)["edited"]) != _ids(edited)


def test_too_few_rows_is_a_clear_error(shared_data, monkeypatch):
    with pytest.raises(DataError, match="usable segments, .* needed"):
        _build("translation_candidates", {"n_candidates": 5000}, shared_data, monkeypatch)


def test_build_source_writes_splits_and_refuses_overlap(tmp_path):
    class Params(BaseModel):
        overlap: bool = False

    def toy(p, resolve):
        a = chat_example([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}], id="a")
        b = chat_example([{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}], id="b")
        c = chat_example([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "other"}], id="c")
        return {"train": [a], "test": [c if p.overlap else b]}

    register_builder("toy-test", Params)(toy)
    try:
        files = build_source("toy-test", {}, lambda r: tmp_path / r, tmp_path / "out")
        assert set(files) == {"train", "test"} and (tmp_path / "out" / "splits.json").is_file()
        assert [ex.id for ex in read_dataset(files["test"]).examples] == ["b"]
        with pytest.raises(DataError, match="held-out data overlaps.*shares 0 ids and 1 prompts"):
            build_source("toy-test", {"overlap": True}, lambda r: tmp_path / r, tmp_path / "out2")
    finally:
        del BUILDERS["toy-test"]
