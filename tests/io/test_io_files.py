"""Every file type reads and writes back the same examples; writes are atomic."""

import json

import pytest

from tamis.io import DataError, read_dataset, write_dataset

SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".parquet", "", ".jsonl.gz"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name,fmt", [
    ("messages.jsonl", "messages"), ("alpaca.jsonl", "alpaca"), ("sharegpt.json", "sharegpt"),
    ("translation.jsonl", "translation"), ("labelled.jsonl", "labelled"),
])
def test_every_file_type_round_trips(fixtures, tmp_path, suffix, name, fmt):
    original = read_dataset(fixtures / name)
    out = write_dataset(original.examples, tmp_path / f"out{suffix}", format=fmt)
    again = read_dataset(out)
    assert again.format == fmt and again.n_rejected == 0
    if suffix in (".csv", ".tsv"):
        # CSV/TSV hold text only: scalars in meta and raw labels come back as strings
        assert [e.id for e in again.examples] == [e.id for e in original.examples]
        assert [(e.messages, e.text, e.label, e.annotations) for e in again.examples] == \
            [(e.messages, e.text, e.label, e.annotations) for e in original.examples]
    else:
        assert again.examples == original.examples


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_messages_written_as_canonical_rows(fixtures, tmp_path, suffix):
    examples = read_dataset(fixtures / "alpaca.jsonl").examples
    out = write_dataset(examples, tmp_path / f"canon{suffix}")
    again = read_dataset(out)
    assert again.format == "messages"
    assert again.examples == examples  # alpaca meta (instruction/input) survives as messages meta
    assert write_dataset(again.examples, tmp_path / "back.jsonl", format="alpaca").read_text().splitlines()[0] \
        == json.dumps({"id": "a1", "instruction": "Summarise the text.", "input": "Cats sleep a lot. Dogs too.",
                       "output": "Pets sleep.", "category": "summarization"}, ensure_ascii=False)


def test_json_variants(tmp_path):
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": [{"id": "1", "messages": msgs}]}))
    (tmp_path / "columns.json").write_text(json.dumps({"text": ["a", "b"], "label": ["x", "y"]}))
    (tmp_path / "single.json").write_text(json.dumps({"id": "1", "messages": msgs}))
    assert read_dataset(tmp_path / "wrapped.json").n_kept == 1
    cols = read_dataset(tmp_path / "columns.json")
    assert cols.format == "labelled" and [e.text for e in cols.examples] == ["a", "b"]
    assert read_dataset(tmp_path / "single.json").examples[0].id == "1"
    (tmp_path / "broken.json").write_text('[{"a": 1},')
    with pytest.raises(DataError, match="broken.json.*line 1"):
        read_dataset(tmp_path / "broken.json")


def test_csv_reading_keeps_text_and_decodes_structure(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('id,text,label,annotations\n007,"a, b",1,"{""x"": ""1""}"\n008,"multi\nline",0,\n')
    r = read_dataset(p)
    assert [e.id for e in r.examples] == ["007", "008"]
    assert r.examples[0].text == "a, b" and r.examples[0].annotations == {"x": "1"}
    assert r.examples[1].text == "multi\nline" and r.examples[1].meta == {}


def test_csv_bad_row_is_reported_not_fatal(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("id,text,label\n1,ok,a\n2,too,many,cells\n3,fine,b\n")
    r = read_dataset(p)
    assert [e.id for e in r.examples] == ["1", "3"]
    assert r.problems[0].kind == "malformed_row" and r.problems[0].row == 2


def test_hf_dataset_dict_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"text": "a", "label": 0}]),
        "test": datasets.Dataset.from_list([{"text": "b", "label": 1}, {"text": "c", "label": 1}]),
    })
    dd.save_to_disk(str(tmp_path / "dd"))
    assert read_dataset(tmp_path / "dd").examples[0].text == "a"
    assert read_dataset(tmp_path / "dd", split="test").n_kept == 2
    del dd["train"]
    dd["validation"] = dd["test"]
    dd.save_to_disk(str(tmp_path / "dd2"))
    with pytest.raises(DataError, match="test.*validation|validation.*test"):
        read_dataset(tmp_path / "dd2")


def test_write_is_atomic_and_replaces(fixtures, tmp_path):
    examples = read_dataset(fixtures / "messages.jsonl").examples
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    write_dataset(examples[:1], target)
    assert len(target.read_text().splitlines()) == 1
    for p in (tmp_path / "dir", tmp_path / "dir"):  # a datasets folder can be overwritten too
        write_dataset(examples, p)
    assert read_dataset(tmp_path / "dir").n_kept == 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["dir", "out.jsonl"]  # no temp files left


def test_limit_and_missing_file(fixtures, tmp_path):
    assert read_dataset(fixtures / "labelled.jsonl", limit=2).n_read == 2
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unknown file type"):
        (tmp_path / "x.xlsx").write_text("")
        read_dataset(tmp_path / "x.xlsx")
