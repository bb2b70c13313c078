"""Hostile and damaged input: each bad row is quarantined with its reason, each unusable file or
folder is one clear error, and nothing the user gave is lost or overwritten."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.errors import WorkspaceError
from tamis.io import DataError, read_dataset
from tamis.io.files import MAX_NESTING, TruncatedFile
from tamis.io.writers import write_rows

runner = CliRunner()


def chat(i: int, **extra: object) -> dict:
    return {"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                        {"role": "assistant", "content": f"answer {i}"}], **extra}


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


HUGE = "9" * 5000  # over Python's int-string conversion limit (4300 digits)


@pytest.fixture
def hostile_jsonl(tmp_path: Path) -> Path:
    lines = [json.dumps(chat(1)),
             '{"id": "deep", "messages": ' + deep(10_000) + "}",
             '{"id": "huge", "score": ' + HUGE + ', "messages": []}',
             '{"id": "deepish", "meta": {"x": ' + deep(MAX_NESTING + 20) + "}, " + json.dumps(chat(2))[1:],
             json.dumps(chat(3))]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_deep_and_huge_rows_are_quarantined_with_reasons(hostile_jsonl, tmp_path):
    q = tmp_path / "q.jsonl"
    result = read_dataset(hostile_jsonl, quarantine=q)
    assert [e.id for e in result.examples] == ["r1", "r3"]
    assert {p.row: p.kind for p in result.problems} == {2: "too_deep", 3: "number_too_long", 4: "too_deep"}
    assert "4300" in next(p.message for p in result.problems if p.row == 3)
    assert f"more than {MAX_NESTING} levels" in next(p.message for p in result.problems if p.row == 4)
    assert "parser" in next(p.message for p in result.problems if p.row == 2)
    lines = hostile_jsonl.read_text(encoding="utf-8").splitlines()
    kept = [json.loads(line) for line in q.read_text(encoding="utf-8").splitlines()]
    assert [rec["raw"] for rec in kept] == lines[1:4]  # the original text, byte for byte


def test_deep_and_huge_cells_in_csv_are_quarantined(tmp_path):
    path = tmp_path / "hostile.csv"
    write_rows([{"id": "ok", "prompt": "p", "completion": "c"},
                {"id": "deep", "prompt": "p", "completion": "c", "meta": json.loads(deep(50))},
                {"id": "huge", "prompt": "p", "completion": "c", "meta": "x"}], path)
    text = path.read_text(encoding="utf-8")
    text = text.replace(json.dumps(json.loads(deep(50))), deep(5_000)).replace('"x"', f'"[{HUGE}]"')
    path.write_text(text, encoding="utf-8")
    result = read_dataset(path)
    assert [e.id for e in result.examples] == ["ok"]
    assert {p.row: (p.field, p.kind) for p in result.problems} == {2: ("meta", "too_deep"),
                                                                   3: ("meta", "number_too_long")}


def test_a_deep_json_document_is_one_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" + json.dumps(chat(1)) + ", " + deep(10_000) + "]", encoding="utf-8")
    with pytest.raises(DataError, match=r"deep\.json: .*nests deeper.*\.jsonl"):
        read_dataset(path)


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_cli_survives_hostile_rows(command, hostile_jsonl, tmp_path):
    out = tmp_path / "out.jsonl"
    args = [command, str(hostile_jsonl)] + ([str(out)] if command == "convert" else ["--json"])
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    if command == "convert":
        assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r1", "r3"]
        quarantine = tmp_path / "out.jsonl.quarantine.jsonl"  # beside the output, though not asked for
        assert len(quarantine.read_text().splitlines()) == 3
        assert str(quarantine) in res.output


# -- convert never destroys its input, and keeps what it rejects ------------------------------------
def test_convert_refuses_to_overwrite_its_input(hostile_jsonl, monkeypatch):
    before = hostile_jsonl.read_bytes()
    monkeypatch.chdir(hostile_jsonl.parent)
    for output in (str(hostile_jsonl), "hostile.jsonl", f"./sub/../{hostile_jsonl.name}"):
        (hostile_jsonl.parent / "sub").mkdir(exist_ok=True)
        res = runner.invoke(app, ["convert", str(hostile_jsonl), output])
        assert res.exit_code == 2 and "is the input" in res.output, res.output
    link = hostile_jsonl.parent / "link.jsonl"
    link.symlink_to(hostile_jsonl)
    res = runner.invoke(app, ["convert", str(hostile_jsonl), str(link)])
    assert res.exit_code == 2 and "is the input" in res.output
    res = runner.invoke(app, ["convert", str(hostile_jsonl), "out.parquet", "--quarantine", str(hostile_jsonl)])
    assert res.exit_code == 2 and "quarantine" in res.output
    assert hostile_jsonl.read_bytes() == before


def test_convert_writes_no_quarantine_when_nothing_is_rejected(tmp_path):
    src = tmp_path / "clean.jsonl"
    src.write_text("".join(json.dumps(chat(i)) + "\n" for i in range(3)))
    stale = tmp_path / "out.csv.quarantine.jsonl"
    stale.write_text('{"row": 1}\n')  # from an earlier run of a dirtier file
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.csv"), "--to", "prompt_completion"])
    assert res.exit_code == 0, res.output
    assert not stale.exists()


def test_all_rejected_rows_are_kept_even_when_convert_fails(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "a", "messages": ' + deep(10_000) + "}\n" + '{"id": "b", "messages": []}\n')
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.jsonl"), "--format", "messages"])
    assert res.exit_code == 2
    quarantine = tmp_path / "out.jsonl.quarantine.jsonl"
    assert str(quarantine) in res.output
    assert [json.loads(line)["row"] for line in quarantine.read_text().splitlines()] == [1, 2]


# -- a truncated download ---------------------------------------------------------------------------
@pytest.fixture
def truncated_gz(tmp_path: Path) -> Path:
    whole = gzip.compress("".join(json.dumps(chat(i)) + "\n" for i in range(2000)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def test_truncated_gzip_names_the_file_and_keeps_the_rows_before(truncated_gz, tmp_path):
    with pytest.raises(TruncatedFile, match=r"cut\.jsonl\.gz: the gzip stream ends early \(truncated\) after line") as info:
        read_dataset(truncated_gz, quarantine=tmp_path / "q.jsonl")
    err = info.value
    assert 100 < err.rows_before < 2000
    partial = err.partial
    assert partial.n_kept >= err.rows_before - 1  # the last, cut line may be quarantined
    assert [e.id for e in partial.examples[:3]] == ["r0", "r1", "r2"]
    assert f"kept {partial.n_kept}" in str(err)


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_truncated_gzip_on_the_cli_is_one_clear_line(command, truncated_gz, tmp_path):
    args = [command, str(truncated_gz)] + ([str(tmp_path / "out.jsonl")] if command == "convert" else [])
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert "Aborted" not in res.output and "truncated" in res.output and str(truncated_gz) in res.output
    assert not (tmp_path / "out.jsonl").exists()


# -- folders that cannot be written -----------------------------------------------------------------
def unwritable_dirs(tmp_path: Path) -> list[Path]:
    """Folders this process cannot write into: under a file (always), a read-only folder (not as
    root, who may write anyway), and a read-only file system (when the machine has one)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    found = [blocker / "sub"]
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        found.append(ro / "sub")
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        found.append(Path("/sys/tamis-test"))
    return found


def test_unwritable_workspace_is_a_workspace_error(tmp_path):
    from tamis.store import CallCache, Workspace, atomic_write_text

    for folder in unwritable_dirs(tmp_path):
        with pytest.raises(WorkspaceError, match=f"cannot write {folder}"):
            Workspace(folder)
        with pytest.raises(WorkspaceError, match="cannot write"):
            CallCache(folder / "cache" / "calls.sqlite")
        with pytest.raises(WorkspaceError, match="cannot write"):
            atomic_write_text(folder / "x.txt", "x")


def test_unwritable_output_folder_is_one_clear_line(hostile_jsonl, tmp_path):
    for folder in unwritable_dirs(tmp_path):
        for suffix in (".jsonl", ".parquet", ""):
            res = runner.invoke(app, ["convert", str(hostile_jsonl), str(folder / f"out{suffix}")])
            assert res.exit_code == 2, res.output
            assert "cannot write" in res.output and "Traceback" not in res.output


# -- what is written is valid and safe to open ------------------------------------------------------
def strict_json(text: str) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_nan_and_infinity_are_written_as_null(suffix, tmp_path):
    rows = [{"id": "a", "score": float("nan"), "meta": {"x": float("inf"), "y": [1.5, float("-inf")]}}]
    path = write_rows(rows, tmp_path / f"out{suffix}")
    if suffix == ".jsonl":
        assert strict_json(path.read_text()) == {"id": "a", "score": None, "meta": {"x": None, "y": [1.5, None]}}
    elif suffix == ".json":
        assert strict_json(path.read_text()) == [{"id": "a", "score": None, "meta": {"x": None, "y": [1.5, None]}}]
    elif suffix == ".csv":
        [row] = csv.DictReader(path.read_text().splitlines())
        assert row["score"] == ""  # a missing number is an empty cell
        assert strict_json(row["meta"]) == {"x": None, "y": [1.5, None]}
    else:
        import pyarrow.parquet as pq

        meta = pq.read_table(path).column("meta").to_pylist()[0]  # structure is stored as JSON text
        assert strict_json(meta) == {"x": None, "y": [1.5, None]}


def test_json_writers_of_the_store_write_valid_json(tmp_path):
    from tamis.store import atomic_write_json, atomic_write_jsonl, to_json

    atomic_write_json(tmp_path / "a.json", {"x": float("nan"), "ok": 1.0})
    atomic_write_jsonl(tmp_path / "b.jsonl", [{"x": float("-inf")}, {"x": 2}])
    assert strict_json((tmp_path / "a.json").read_text()) == {"x": None, "ok": 1.0}
    assert [strict_json(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [{"x": None}, {"x": 2}]
    assert to_json({"p": Path("/x"), "v": float("nan")}, default=str) == '{"p": "/x", "v": null}'


FORMULAS = {"=HYPERLINK(\"http://evil\",\"click\")": True, "+cmd|' /C calc'!A0": True, "-2+3": True,
            "@SUM(A1:A9)": True, "\tTAB": True, "\rCR": True, "-1": False, "+2.5e3": False, "plain": False,
            "'already quoted": False, "a=b": False}


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_csv_output_neutralises_formulas_and_reading_keeps_user_data(suffix, tmp_path):
    rows = [{"id": f"r{i}", "text": cell, "label": "x"} for i, cell in enumerate(FORMULAS)]
    path = write_rows(rows, tmp_path / f"out{suffix}")
    back = {e.id: e.text for e in read_dataset(path).examples}
    for i, (cell, is_formula) in enumerate(FORMULAS.items()):
        assert back[f"r{i}"] == ("'" + cell if is_formula else cell), cell
    assert "\n=HYPERLINK" not in path.read_text() and ",=HYPERLINK" not in path.read_text()
