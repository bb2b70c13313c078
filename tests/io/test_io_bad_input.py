"""Bad rows are reported with file, row, field and hint, quarantined with the raw row; the rest is kept."""

import base64
import json

import pytest

from tamis.io import DataError, read_dataset

# line -> (field, kind) for tests/fixtures/io/bad_chat.jsonl (line 3 is blank and skipped)
EXPECTED = {
    2: (None, "malformed_json"),
    4: ("messages", "wrong_type"),
    5: ("messages[0].content", "wrong_type"),
    6: ("messages[0].content", "empty"),
    7: ("messages", "empty"),
    8: ("messages", "missing_field"),
    9: ("messages[1].role", "role_order"),
    10: ("messages[2].role", "role_order"),
    11: ("messages[1].role", "role_order"),
    12: ("messages[1].role", "bad_role"),
    13: ("messages[1].role", "role_order"),
    14: ("id", "duplicate_id"),
    15: (None, "wrong_type"),
    17: ("id", "wrong_type"),
}


def test_every_bad_kind_reported_with_row_and_field(fixtures, tmp_path):
    q = tmp_path / "q.jsonl"
    r = read_dataset(fixtures / "bad_chat.jsonl", format="messages", quarantine=q)
    assert [e.id for e in r.examples] == ["g1", "g2"]
    assert {p.row: (p.field, p.kind) for p in r.problems} == EXPECTED
    assert r.n_read == 16 and r.n_rejected == 14 and r.n_kept == 2
    assert r.summary() == f"read 16, kept 2, rejected 14 (quarantine: {q})"
    by_row = {p.row: p for p in r.problems}
    assert "row 1" in by_row[14].hint
    assert "tool" in by_row[12].hint
    assert str(by_row[9]).startswith(f"{fixtures / 'bad_chat.jsonl'}:9: messages[1].role: ")
    assert "(" in str(by_row[9]) and str(by_row[9]).endswith(")")


def test_quarantine_keeps_the_raw_rows(fixtures, tmp_path):
    q = tmp_path / "sub" / "q.jsonl"
    read_dataset(fixtures / "bad_chat.jsonl", quarantine=q)
    records = [json.loads(line) for line in q.read_text(encoding="utf-8").splitlines()]
    assert [rec["row"] for rec in records] == sorted(EXPECTED)
    assert set(records[0]) >= {"file", "row", "field", "reason", "hint", "raw"}
    assert records[0]["raw"] == '{"id": "x", "messages": ['  # unparseable: the line text
    lines = (fixtures / "bad_chat.jsonl").read_text(encoding="utf-8").splitlines()
    for rec in records[1:]:
        assert rec["raw"] == json.loads(lines[rec["row"] - 1])  # parsed: the original row


def test_no_quarantine_file_unless_asked(fixtures, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = read_dataset(fixtures / "bad_chat.jsonl")
    assert r.quarantine_path is None and list(tmp_path.iterdir()) == []
    assert r.summary() == "read 16, kept 2, rejected 14"


def test_labelled_bad_rows(fixtures):
    r = read_dataset(fixtures / "bad_labelled.jsonl")
    assert [e.id for e in r.examples] == ["ok1", "ok2"]
    assert {p.row: (p.field, p.kind) for p in r.problems} == {
        2: ("label", "wrong_type"), 3: ("text", "empty"), 4: ("label", "missing_field"), 5: ("text", "wrong_type"),
    }


def test_invalid_utf8_line_is_quarantined_with_its_bytes(fixtures, tmp_path):
    q = tmp_path / "q.jsonl"
    r = read_dataset(fixtures / "invalid_utf8.jsonl", quarantine=q)
    assert [e.text for e in r.examples] == ["café", "ok"]
    (p,) = r.problems
    assert (p.row, p.kind) == (2, "invalid_utf8") and "UTF-8" in p.hint
    (rec,) = [json.loads(line) for line in q.read_text(encoding="utf-8").splitlines()]
    assert base64.b64decode(rec["raw_bytes_b64"]) == (fixtures / "invalid_utf8.jsonl").read_bytes().splitlines()[1]
    assert "\\xe9" in rec["raw"]


def test_invalid_utf8_cell_in_csv(fixtures):
    r = read_dataset(fixtures / "invalid_utf8.csv")
    assert [e.id for e in r.examples] == ["c1", "c3"] and r.examples[1].text == "quoted, comma"
    (p,) = r.problems
    assert (p.row, p.field, p.kind) == (2, "text", "invalid_utf8")


def test_duplicate_content_without_ids(tmp_path):
    p = tmp_path / "d.jsonl"
    row = {"text": "same", "label": "a"}
    p.write_text("\n".join(json.dumps(x) for x in (row, {"text": "other", "label": "a"}, row)) + "\n")
    r = read_dataset(p)
    assert r.n_kept == 2 and r.problems[0].row == 3 and r.problems[0].kind == "duplicate_id"


@pytest.mark.parametrize("name,match", [
    ("empty.jsonl", "no rows"),
    ("all_bad.jsonl", "no row could be parsed|no usable row"),
    ("unknown.jsonl", r"columns \['bar', 'foo'\].*supported formats"),
])
def test_whole_file_errors(fixtures, name, match):
    with pytest.raises(DataError, match=match) as e:
        read_dataset(fixtures / name)
    assert name in str(e.value)


def test_all_bad_file_still_writes_quarantine(fixtures, tmp_path):
    q = tmp_path / "q.jsonl"
    with pytest.raises(DataError, match="no usable row") as e:
        read_dataset(fixtures / "all_bad.jsonl", format="messages", quarantine=q)
    assert "all_bad.jsonl:1" in str(e.value) and "all_bad.jsonl:2: messages" in str(e.value)
    assert len(q.read_text().splitlines()) == 2
