"""inspect_dataset: a JSON-serialisable first look at a read."""

import json

from tamis.io import inspect_dataset, read_dataset


class WordTokenizer:
    """Stands in for a HF tokenizer: only `encode` is used."""

    def encode(self, text):
        return text.split()


def test_chat_report(fixtures):
    report = inspect_dataset(read_dataset(fixtures / "bad_chat.jsonl"), tokenizer=WordTokenizer())
    json.dumps(report)
    assert report["format"] == "messages"
    assert report["counts"] == {"read": 16, "kept": 2, "rejected": 14}
    assert report["kinds"] == {"chat": 2}
    assert report["turns"]["max"] == 2
    assert report["chars"]["response"] == {"min": 5, "mean": 6.0, "median": 6.0, "p95": 7, "max": 7}
    assert report["tokens"]["prompt"]["max"] == 1
    assert report["problems"]["role_order"]["count"] == 4
    assert len(report["problems"]["role_order"]["examples"]) == 4
    assert report["duplicates"]["groups"] == 0


def test_labelled_report_with_duplicates_and_callable_tokenizer(tmp_path):
    p = tmp_path / "l.jsonl"
    rows = [{"id": "1", "text": "a b", "label": "x"}, {"id": "2", "text": "a b", "label": "x"},
            {"id": "3", "text": "c", "label": "y", "annotations": {"r1": "y", "r2": "x"}}]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    report = inspect_dataset(read_dataset(p), tokenizer=lambda t: {"input_ids": list(t)})
    json.dumps(report)
    assert report["labels"] == {"x": 2, "y": 1}
    assert report["duplicates"] == {"groups": 1, "examples": 1, "ids": [["1", "2"]]}
    assert report["annotations"]["annotators"] == 2
    assert report["tokens"]["text"]["max"] == 3
    assert report["problems"] == {}
