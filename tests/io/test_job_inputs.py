"""Every job takes what read_dataset takes: in-memory data is written once, named by its content, into
the workspace, so the run folder records a file it can fingerprint, quarantine against and reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import tamis
from tamis.io.convert import data_path
from tamis.signals.registry import SignalTable


def _rows() -> list[dict]:
    rows = [{"id": f"r{i}", "instruction": f"What is {i} + {i}?", "output": str(2 * i)} for i in range(6)]
    rows[2] = {"id": "r2", "instruction": "What is 2 + 2?"}  # no output: quarantined, by row number
    return rows


def test_a_job_runs_on_a_dataframe_a_dataset_or_rows_and_reuses_its_run(tmp_path: Path) -> None:
    import datasets

    SignalTable.from_rows([{"id": f"r{i}", "confidence": i / 10} for i in range(6)]).write(tmp_path / "scores")
    ws = tamis.Workspace(tmp_path / "ws")
    job = tamis.FilterJob(data=pd.DataFrame(_rows()), scores=[str(tmp_path / "scores")], out=str(tmp_path / "f"))
    first = tamis.run_filter(job, ws)
    assert first.counts["read"] == 6 and first.counts["kept"] == 5 and not first.reused
    recorded = json.loads((tmp_path / "f" / "settings.json").read_text())["settings"]["data"]
    assert Path(recorded).parent == ws.root / "inputs" and Path(recorded).is_file()
    (bad,) = [json.loads(line) for line in open(tmp_path / "f" / "quarantine.jsonl")]
    assert bad["row"] == 3 and bad["field"] == "output"  # the object's own row number (from 1)
    assert [d.id for d in first.decisions if d.action == "keep"] == ["r3", "r4", "r5"]

    # the same rows as a list of dicts: the same input file, so the finished run is reused
    again = tamis.run_filter(tamis.FilterJob(data=_rows(), scores=[str(tmp_path / "scores")], out=str(tmp_path / "f")), ws)
    assert again.reused
    # a Hugging Face Dataset (rows without the bad one) is another input: another run, same rules
    ds = datasets.Dataset.from_list([r for r in _rows() if "output" in r])
    other = tamis.run_filter(tamis.FilterJob(data=ds, scores=[str(tmp_path / "scores")], out=str(tmp_path / "g")), ws)
    assert other.counts["read"] == 5 and other.counts["rejected"] == 0


def test_data_path_keeps_paths_and_names_objects_by_content(tmp_path: Path) -> None:
    assert data_path("train.jsonl", tmp_path) == "train.jsonl"
    a = data_path(_rows(), tmp_path, "candidates")
    b = data_path(pd.DataFrame(_rows()), tmp_path, "candidates")
    assert a == b and Path(a).name.startswith("candidates-")  # a DataFrame drops no column a row lacks
    c = data_path(_rows()[:3], tmp_path, "candidates")
    assert c != a
    assert [json.loads(line) for line in open(a)] == _rows()  # row for row, nothing lost
