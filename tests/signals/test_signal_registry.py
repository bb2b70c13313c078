"""The signal registry and the one table type: directions known once, typos refused with the known names."""

from __future__ import annotations

import json

import pytest

from tamis.errors import DataError, SignalError
from tamis.signals.registry import SignalSet, SignalTable, get_signal, read_signals, register_signal, signal_specs


def test_builtin_signals_declare_their_direction():
    specs = signal_specs()
    assert specs["confidence"].direction == "higher"
    assert specs["ifd"].direction == "lower"  # lower IFD = the prompt helps predict the response
    assert specs["nn_similarity"].direction == "lower"
    assert specs["influence_mean"].needs == ("llm", "seed set")
    assert specs["judge"].range == (0.0, 5.0)


def test_registering_the_same_name_with_other_facts_is_refused():
    register_signal("test_only_signal", "higher", "for this test")
    register_signal("test_only_signal", "higher", "for this test")  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_signal("test_only_signal", "lower", "for this test")


def test_unknown_name_lists_known_ones_and_suggests():
    with pytest.raises(SignalError) as err:
        get_signal("confidance")
    assert "did you mean confidence?" in str(err.value)
    assert "ifd" in str(err.value)  # the list of known names


def test_table_round_trips_through_parquet_with_notes(tmp_path):
    table = SignalTable.from_rows([{"id": "a", "confidence": 0.7, "notes": ["prompt truncated"]},
                                   {"id": "b", "confidence": float("nan")}], {"scored": 1})
    path = table.write(tmp_path)
    assert path.name == "signals.parquet"
    again = read_signals(tmp_path)
    assert again.ids == ["a", "b"]
    assert again.columns["confidence"] == [0.7, None]  # NaN is stored as missing, never as NaN
    assert again.notes == {"a": ["prompt truncated"]}
    assert again.value_map("confidence") == {"a": 0.7}


def test_reads_score_files_from_elsewhere_and_legacy_runs(tmp_path):
    (tmp_path / "mine.csv").write_text("id,my_score\na,0.5\nb,\n")
    assert read_signals(tmp_path / "mine.csv").value_map("my_score") == {"a": 0.5}
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "signals.jsonl").write_text(json.dumps({"id": "a", "confidence": 0.1}) + "\n")
    assert read_signals(legacy).value_map("confidence") == {"a": 0.1}
    (tmp_path / "bad.jsonl").write_text(json.dumps({"confidence": 0.1}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: id"):
        read_signals(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="no such signals file"):
        read_signals(tmp_path / "missing")


def test_signal_set_combines_runs_and_refuses_ambiguity(tmp_path):
    a = SignalTable.from_rows([{"id": "x", "loglik_mean": -1.0, "confidence": 0.2}], source="A")
    b = SignalTable.from_rows([{"id": "x", "loglik_mean": -1.0, "influence_mean": 0.3}], source="B")
    both = SignalSet([a, b])
    assert both.values("loglik_mean") == {"x": -1.0}  # in both runs, same values: fine
    assert both.values("influence_mean") == {"x": 0.3}
    c = SignalTable.from_rows([{"id": "x", "loglik_mean": -2.0}], source="C")
    with pytest.raises(SignalError, match="differs between runs"):
        SignalSet([a, c]).values("loglik_mean")
    with pytest.raises(SignalError, match="did you mean"):
        both.values("confidance")
    with pytest.raises(SignalError, match="not in the given runs"):
        both.values("ifd")


def test_listing_the_signals_loads_no_model_library():
    """`tamis filter` and `tamis signals` must not pay for torch/transformers just to learn directions."""
    import subprocess
    import sys

    code = ("import sys; from tamis.signals.registry import signal_specs; signal_specs(); "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'sacrebleu') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
