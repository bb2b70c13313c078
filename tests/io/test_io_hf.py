"""Data in memory, in and out: Hugging Face datasets, pandas, lists of dicts; meta as a struct column."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tamis.errors import DataError
from tamis.io import examples_from, inspect_dataset, read_dataset, to_hf, to_pandas, write_dataset
from tamis.records import chat_example, Message

ROWS = [
    {"id": "a", "instruction": "What is 2+2?", "input": "", "output": "4", "source": "math"},
    {"id": "b", "instruction": "Name a colour.", "input": "", "output": "Blue.", "source": "misc", "flaw": "none"},
    {"id": "c", "instruction": "Capital of France?", "input": "", "output": "Paris."},
]


def _meta(result):
    return [e.meta for e in result.examples]


def test_a_dataset_reads_like_a_file(tmp_path: Path):
    from_list = read_dataset(ROWS)
    ds = datasets.Dataset.from_pandas(pd.DataFrame(ROWS))  # from_list would keep the first row's columns only
    from_hf = read_dataset(ds)
    assert from_hf.format == "alpaca" and from_hf.n_kept == 3
    assert [e.id for e in from_hf.examples] == ["a", "b", "c"]
    assert [e.messages for e in from_hf.examples] == [e.messages for e in from_list.examples]
    # a user's table holds null where a row has no value; it is kept as such, as from a Parquet file
    assert from_hf.examples[0].meta.get("flaw") is None and from_hf.examples[1].meta["flaw"] == "none"
    assert from_hf.source == "datasets.Dataset"


def test_dataset_dict_picks_train_by_default_and_names_the_splits():
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                               "test": datasets.Dataset.from_list(ROWS[:1])})
    assert read_dataset(dd).n_kept == 3
    assert read_dataset(dd, split="test").n_kept == 1
    with pytest.raises(DataError, match=r"no split 'dev'.*\['train', 'test'\]"):
        read_dataset(dd, split="dev")
    only_test = datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)})
    assert read_dataset(only_test).n_kept == 3  # one split: that one
    two = datasets.DatasetDict({"a": datasets.Dataset.from_list(ROWS), "b": datasets.Dataset.from_list(ROWS)})
    with pytest.raises(DataError, match="choose a split"):
        read_dataset(two)


def test_iterable_dataset_and_dataframe():
    it = datasets.Dataset.from_list(ROWS).to_iterable_dataset()
    assert read_dataset(it).n_kept == 3
    df = pd.DataFrame(ROWS)  # "flaw" is NaN where a row lacks it
    got = read_dataset(df)
    assert got.n_kept == 3 and got.format == "alpaca"
    assert "flaw" not in got.examples[0].meta and got.examples[1].meta["flaw"] == "none"
    assert got.source == "DataFrame"


def test_bad_in_memory_rows_are_quarantined_with_row_and_field(tmp_path: Path):
    rows = [ROWS[0], {"id": "x", "instruction": "no answer"}, "not a row", {**ROWS[1], "id": "a"}]
    q = tmp_path / "q.jsonl"
    got = read_dataset(rows, quarantine=q)
    assert got.n_read == 4 and got.n_kept == 1 and got.n_rejected == 3
    assert [(p.row, p.field) for p in got.problems] == [(2, "output"), (3, None), (4, "id")]
    assert str(got.problems[0]).startswith("rows:2: output: missing required field")
    lines = [json.loads(x) for x in q.read_text().splitlines()]
    assert [x["row"] for x in lines] == [2, 3, 4] and lines[0]["raw"] == {"id": "x", "instruction": "no answer"}
    df_got = read_dataset(pd.DataFrame([ROWS[0], {"id": "x", "instruction": "no answer"}]))
    assert [(p.file, p.row, p.field) for p in df_got.problems] == [("DataFrame", 2, "output")]
    with pytest.raises(DataError, match="no usable row"):
        read_dataset([{"id": "x", "instruction": "no answer"}], format="alpaca")


def test_what_cannot_be_read_says_what_can():
    with pytest.raises(DataError, match="list of row dicts"):
        read_dataset({"instruction": "x", "output": "y"})
    with pytest.raises(DataError, match="pass a path, a datasets.Dataset"):
        read_dataset(42)
    with pytest.raises(DataError, match="split="):
        read_dataset(ROWS, split="train")


def test_results_convert_to_dataset_and_dataframe_and_back():
    got = read_dataset(ROWS)
    ds = got.to_hf()
    assert isinstance(ds, datasets.Dataset) and ds.column_names[:4] == ["id", "instruction", "input", "output"]
    assert [e.meta for e in read_dataset(ds).examples] == _meta(got)
    chat = got.to_hf("messages")
    assert chat.column_names == ["id", "messages", "meta"]
    meta = chat.features["meta"]
    assert isinstance(meta, dict) and set(meta) == {"alpaca", "source", "flaw"}  # a struct, not JSON text
    back = read_dataset(chat)
    assert back.format == "messages" and _meta(back) == _meta(got)
    df = got.to_pandas("messages")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["id", "messages", "meta"]
    assert _meta(read_dataset(df)) == _meta(got)
    assert to_pandas(got.examples, "alpaca").shape == (3, 6)
    assert examples_from(got.examples) is got.examples
    assert [e.id for e in examples_from(ds)] == ["a", "b", "c"]
    assert inspect_dataset(ds)["source"] == "datasets.Dataset"


def test_meta_is_a_struct_in_parquet_and_hf_folders(tmp_path: Path):
    exs = [chat_example([Message("user", "hi"), Message("assistant", "hello")], id="1",
                        meta={"source": "web", "scores": {"q": 0.5}}),
           chat_example([Message("user", "yo"), Message("assistant", "hey")], id="2", meta={"source": "app"}),
           chat_example([Message("user", "hm"), Message("assistant", "ok")], id="3")]
    pq_path = write_dataset(exs, tmp_path / "out.parquet")
    field = pq.read_schema(pq_path).field("meta")
    assert pa.types.is_struct(field.type)
    assert [e.meta for e in read_dataset(pq_path).examples] == [e.meta for e in exs]
    folder = write_dataset(exs, tmp_path / "out_hf")
    ds = datasets.load_from_disk(str(folder))
    assert isinstance(ds.features["meta"], dict)
    assert [e.meta for e in read_dataset(folder).examples] == [e.meta for e in exs]


def test_meta_that_a_struct_would_change_stays_json_text(tmp_path: Path):
    # an explicit null, and a value whose type differs between rows (1 vs "1"): JSON text keeps both
    for metas in ([{"a": None}, {"a": 1}], [{"a": 1}, {"a": "1"}], [{"a": 1}, {"a": 1.5}]):
        exs = [chat_example([Message("user", f"q{i}"), Message("assistant", "a")], id=str(i), meta=m)
               for i, m in enumerate(metas)]
        path = write_dataset(exs, tmp_path / "m.parquet")
        assert pq.read_schema(path).field("meta").type == pa.string()
        assert [e.meta for e in read_dataset(path).examples] == metas


def test_old_files_with_json_text_meta_still_read(tmp_path: Path):
    rows = [{"id": "1", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
             "meta": json.dumps({"source": "old"})}]
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    old = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata({b"tamis.json_columns": b'["meta"]'}), old)
    assert read_dataset(old).examples[0].meta == {"source": "old"}
    # an HF folder written before structs: description "tamis:json_columns=[...]"
    info = datasets.DatasetInfo(description='tamis:json_columns=["meta"]')
    folder = tmp_path / "old_hf"
    datasets.Dataset(datasets.table.InMemoryTable(table), info=info).save_to_disk(str(folder))
    assert read_dataset(folder).examples[0].meta == {"source": "old"}
    # a user's own parquet with meta as JSON text and no tamis metadata
    plain = tmp_path / "plain.parquet"
    pq.write_table(table, plain)
    assert read_dataset(plain).examples[0].meta == {"source": "old"}


def test_to_hf_writes_any_format():
    got = read_dataset(ROWS)
    assert to_hf(got.examples, "prompt_completion").column_names[:3] == ["id", "prompt", "completion"]
    with pytest.raises(DataError, match="unknown format"):
        to_hf(got.examples, "chatml")
