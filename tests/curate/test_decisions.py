"""Decisions round-trip through JSONL and materialise into a new data set without losing anything."""

from tamis.curate.decisions import Decision, apply_decisions, read_decisions, write_decisions
from tamis.records import chat_example


def test_apply_keeps_corrects_and_drops_with_reasons(tmp_path):
    a = chat_example([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}], id="a")
    b = chat_example([{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}], id="b")
    c = chat_example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "asdf"}], id="c")
    d = chat_example([{"role": "user", "content": "Untouched"}, {"role": "assistant", "content": "yes"}], id="d")
    decisions = [
        Decision("a", "correct", "judge prefers candidate (0.91 > 0.8)", {"confidence": 0.2},
                 step="correct", corrected=[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]),
        Decision("b", "keep", "confidence above median", {"confidence": 0.9}, step="filter"),
        Decision("c", "filter", "confidence below median", {"confidence": 0.1}, step="filter"),
    ]
    path = write_decisions(decisions, tmp_path / "decisions.jsonl")
    again = read_decisions(path)
    assert [x.to_dict() for x in again] == [x.to_dict() for x in decisions]
    kept, dropped = apply_decisions([a, b, c, d], again)
    assert [k.id for k in kept] == ["a", "b", "d"]
    assert kept[0].response == "4" and kept[0].meta["original_messages"][1]["content"] == "5"
    assert kept[1].meta["decision"]["action"] == "keep"
    assert dropped[0]["id"] == "c" and dropped[0]["decision"]["reason"] == "confidence below median"
