"""Format detection and conversion: every format reads to the canonical form and writes back exactly."""

import json

import pytest

from tamis.io import FORMATS, ConversionError, DataError, RowError, detect_format, from_row, read_dataset, to_row
from tamis.records import chat_example, labelled_example


def rows(path):
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name,fmt", [
    ("messages.jsonl", "messages"), ("alpaca.jsonl", "alpaca"), ("sharegpt.json", "sharegpt"),
    ("prompt_completion.jsonl", "prompt_completion"), ("translation.jsonl", "translation"),
    ("labelled.jsonl", "labelled"),
])
def test_detects_and_reads_every_format(fixtures, name, fmt):
    result = read_dataset(fixtures / name)
    assert result.format == fmt
    assert result.n_rejected == 0 and result.n_kept == result.n_read > 0
    assert detect_format(rows(fixtures / name)) == fmt


@pytest.mark.parametrize("name,fmt", [
    ("alpaca.jsonl", "alpaca"), ("sharegpt.json", "sharegpt"), ("prompt_completion.jsonl", "prompt_completion"),
    ("translation.jsonl", "translation"), ("labelled.jsonl", "labelled"),
])
def test_rows_round_trip_exactly_through_examples(fixtures, name, fmt):
    """row -> Example -> messages row -> Example -> row in the original format is the original row."""
    for row in rows(fixtures / name):
        ex = from_row(row, fmt)
        again = from_row(to_row(ex, "messages"), "messages") if fmt != "labelled" else ex
        assert again == ex
        back = to_row(again, fmt)
        expected = dict(row)
        expected["id"] = str(row["id"])
        assert back == expected


def test_alpaca_conversion(fixtures):
    a1, a2, a3 = read_dataset(fixtures / "alpaca.jsonl").examples
    assert [m.role for m in a1.messages] == ["user", "assistant"]
    assert a1.messages[0].content == "Summarise the text.\n\nCats sleep a lot. Dogs too."
    assert a2.messages[0].content == "Name a colour."
    assert a1.response == "Pets sleep."
    assert a1.meta["category"] == "summarization"
    assert a3.id == "3"  # numeric ids become strings
    assert "input" not in to_row(a3, "alpaca")  # a row without 'input' stays without it


def test_sharegpt_roles_and_aliases(fixtures):
    s1, s2 = read_dataset(fixtures / "sharegpt.json").examples
    assert [m.role for m in s1.messages] == ["system", "user", "assistant"]
    assert [m.role for m in s2.messages] == ["user", "assistant", "user", "assistant"]
    assert to_row(s2, "sharegpt")["conversations"][1]["from"] == "chatgpt"
    plain = chat_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert [t["from"] for t in to_row(plain, "sharegpt")["conversations"]] == ["human", "gpt"]


def test_translation_prompt_and_languages(fixtures):
    t1, t2, t3 = read_dataset(fixtures / "translation.jsonl").examples
    assert t1.messages[0].content == (
        "Translate the following text from German to English.\n\nDie Ware hat unter 20 Euro gekostet.")
    assert t1.response == "The goods cost less than 20 euros."
    assert t2.messages[0].content.startswith("Translate the following text from Chinese to English.")
    assert "from xx-custom to English" in t3.messages[0].content
    assert t1.meta["translation"]["source_lang"] == "de"


def test_labelled_with_annotations(fixtures):
    l1, l2, l3, l4, l5 = read_dataset(fixtures / "labelled.jsonl").examples
    assert (l1.text, l1.label, l1.annotations) == ("Free prize! Call now", "spam", None)
    assert l2.annotations == {"ann1": "ham", "ann2": "spam"}
    assert l3.text == "Profits rose." and l3.label == "2" and l3.annotations == {"0": "2", "1": "2", "2": "1"}
    assert l4.label is None and l4.annotations == {"A": "1", "B": "0"} and l4.meta["hard_label"] is None
    assert l5.label == "true"  # booleans as JSON writes them, so CSV and JSON agree


def test_format_override_and_column_mapping(tmp_path):
    p = tmp_path / "wmt.jsonl"
    p.write_text(json.dumps({"id": "w1", "src": "Hallo", "ref_A": "Hello", "ref_B": "Hi"}) + "\n")
    with pytest.raises(DataError, match="ref_A"):
        read_dataset(p)
    r = read_dataset(p, format="translation", columns={"src": "source", "ref_A": "target"},
                     defaults={"source_lang": "de", "target_lang": "en"})
    ex = r.examples[0]
    assert ex.response == "Hello" and "from German to English" in ex.messages[0].content
    assert ex.meta["ref_B"] == "Hi"
    # override wins over detection: a messages-looking file read as labelled is rejected row by row
    q = tmp_path / "both.jsonl"
    q.write_text(json.dumps({"text": "t", "label": "x", "prompt": "p", "completion": "c"}) + "\n")
    assert read_dataset(q).format == "prompt_completion"
    assert read_dataset(q, format="labelled").examples[0].meta == {"prompt": "p", "completion": "c"}
    with pytest.raises(DataError, match="unknown format"):
        read_dataset(q, format="csv")


def test_multi_turn_cannot_be_single_turn_formats(fixtures):
    m2 = read_dataset(fixtures / "messages.jsonl").examples[1]
    for fmt in ("alpaca", "prompt_completion", "translation"):
        with pytest.raises(ConversionError, match="messages or sharegpt"):
            to_row(m2, fmt)
    assert len(to_row(m2, "sharegpt")["conversations"]) == 4
    with pytest.raises(ConversionError):
        to_row(m2, "labelled")
    with pytest.raises(ConversionError):
        to_row(labelled_example("t", "l"), "messages")


def test_chat_converts_to_every_generative_format():
    ex = chat_example([{"role": "user", "content": "Translate: chat"}, {"role": "assistant", "content": "cat"}],
                      meta={"k": 1})
    for fmt in FORMATS:
        if fmt in ("labelled", "translation"):
            continue
        row = to_row(ex, fmt)
        back = from_row(row, fmt)
        assert back.messages == ex.messages and back.id == ex.id
        assert (row["meta"] if fmt == "messages" else row)["k"] == 1
    # a chat that was not read as a translation becomes one with its user turn as the source
    row = to_row(ex, "translation")
    assert (row["source"], row["target"]) == ("Translate: chat", "cat")
    assert from_row(row, "translation").response == "cat"


def test_ids_are_stable_and_content_based(fixtures):
    a = read_dataset(fixtures / "messages.jsonl").examples[2]
    b = read_dataset(fixtures / "messages.jsonl").examples[2]
    assert a.id == b.id and len(a.id) == 16
    other = chat_example([{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi! 👋"}])
    assert other.id == a.id


def test_meta_is_preserved(fixtures):
    m1, m2, _ = read_dataset(fixtures / "messages.jsonl").examples
    assert m1.meta == {"source": "hand", "topic": "geo"}
    assert m2.meta == {"difficulty": 1}


def test_message_extras_round_trip():
    row = {"id": "e", "messages": [{"role": "user", "content": "q", "name": "bob"},
                                    {"role": "assistant", "content": "a"}]}
    assert to_row(from_row(row, "messages"), "messages") == row


def test_from_row_errors_name_the_field():
    with pytest.raises(RowError) as e:
        from_row({"instruction": "x", "output": ""}, "alpaca")
    assert e.value.field == "output" and e.value.kind == "empty"
    with pytest.raises(RowError) as e:
        from_row({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}, "sharegpt")
    assert e.value.field == "conversations[1].from"
    with pytest.raises(DataError, match="columns"):
        detect_format([{"a": 1}])
