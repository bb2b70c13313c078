"""Annotation interop: review items out to Label Studio / Argilla, their annotations back in.

Round trips on 20 real Dolly rows (the first with responses of at most 400 characters) (../shared/data): export with a curation run's decisions, write
the tool's export file as the tool would (two annotators, edits, a reject, a skip or discard, an
unknown item), import, and check decisions, HTER and Krippendorff's alpha against direct
computations. No model is loaded.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from tamis.curate.decisions import Decision, read_decisions, write_decisions
from tamis.errors import ConfigError, DataError
from tamis.interop import (ExportReviewJob, ImportAnnotationsJob, argilla_settings, labeling_config,
                           read_argilla, read_label_studio, run_export_review, run_import_annotations,
                           validate_records, validate_tasks)
from tamis.io import read_dataset
from tamis.signals.edits import edit_effort

ANN, BOB = "ann@example.org", "bob"
USERS = {ANN: "6f1c0c4e-0000-4000-8000-000000000001", BOB: "6f1c0c4e-0000-4000-8000-000000000002"}


@pytest.fixture()
def dolly(shared_data: Path, tmp_path: Path) -> Path:
    src = shared_data / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    path = tmp_path / "dolly20.jsonl"
    rows = []
    with open(src, encoding="utf-8") as fh:  # the first 20 rows with short responses: TER's shift search is slow
        for line in fh:
            if len(json.loads(line)["output"]) <= 400:
                rows.append(line)
            if len(rows) == 20:
                break
    path.write_text("".join(rows), encoding="utf-8")
    return path


@pytest.fixture()
def examples(dolly: Path):
    return read_dataset(dolly).examples


@pytest.fixture()
def decisions(examples, tmp_path: Path) -> Path:
    """A curation run's decisions: review for most, a drop, and an edit whose correction pre-fills the box."""
    rows = []
    for n, ex in enumerate(examples):
        if n == 1:
            rows.append(Decision(ex.id, "edit", "judge prefers the model's answer", {"confidence": 0.4}, "correct",
                                 corrected=ex.prompt_messages + [{"role": "assistant", "content": "Corrected answer."}]))
        elif n == 2:
            rows.append(Decision(ex.id, "drop", "confidence 0.1 < median 0.5", {"confidence": 0.1}, "filter"))
        elif n == 19:
            rows.append(Decision(ex.id, "keep", "confidence 0.9 >= median 0.5", {"confidence": 0.9}, "filter"))
        else:
            rows.append(Decision(ex.id, "review", "missing score", {"confidence": None}, "filter"))
    return write_decisions(rows, tmp_path / "decisions.jsonl")


def _edit(text: str) -> str:
    words = text.split()
    return " ".join(words[: max(1, len(words) // 2)] + ["(revised)"])


# what each annotator does, per item index: (status, choice, edited?, rating)
PLAN = {
    0: {ANN: ("submitted", "keep", None, 4), BOB: ("submitted", "keep", None, 4)},        # keep, agreed
    1: {ANN: ("submitted", "keep", "same", 3), BOB: ("submitted", "keep", "same", 3)},    # edit, agreed
    2: {ANN: ("submitted", "drop", None, 1), BOB: ("submitted", "drop", None, 2)},        # drop
    3: {ANN: ("submitted", "keep", None, 5), BOB: ("submitted", "drop", None, 1)},        # review: choices differ
    4: {ANN: ("submitted", "keep", "same", 4), BOB: ("submitted", "keep", "other", 3)},   # review: edits differ
    5: {ANN: ("skip", None, None, None), BOB: ("submitted", "keep", "same", 2)},          # edit by bob alone
}


def _plan(n: int) -> dict:
    return PLAN.get(n, {ANN: ("submitted", "keep", None, 5 if n % 2 else 4)})


def _text(kind, start: str) -> str | None:
    if kind is None:
        return start
    return _edit(start) if kind == "same" else start.upper() + " Extra sentence."


def _expected(examples, starts: dict[str, str]) -> dict[str, str]:
    out = {}
    for n, ex in enumerate(examples):
        plan = {a: p for a, p in _plan(n).items() if p[0] == "submitted"}
        choices = {p[1] for p in plan.values()}
        texts = {_text(p[2], starts[ex.id]) for p in plan.values()}
        if choices == {"drop"}:
            out[ex.id] = "drop"
        elif len(choices) > 1 or len(texts) > 1:
            out[ex.id] = "review"
        else:
            out[ex.id] = "keep" if texts.pop() == ex.response else "edit"
    return out


def _alpha_direct(rows: list[tuple[str, str, str]], level: str) -> float:
    """Krippendorff's alpha straight from the krippendorff package, on items with two answers."""
    items = sorted({r[0] for r in rows if sum(1 for x in rows if x[0] == r[0]) >= 2})
    raters = sorted({r[1] for r in rows})
    values = sorted({r[2] for r in rows if r[0] in items})
    code = {v: float(v) if level == "ordinal" else float(i) for i, v in enumerate(values)}
    matrix = np.full((len(raters), len(items)), np.nan)
    for item, rater, value in rows:
        if item in items:
            matrix[raters.index(rater), items.index(item)] = code[value]
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level,
                                    value_domain=sorted(set(code.values()))))


def _check_import(result, examples, starts, tool: str, names: dict[str, str]):
    out = result.out_dir
    decisions = {d.id: d for d in read_decisions(out / "decisions.jsonl")}
    expected = _expected(examples, starts)
    assert {i: d.action for i, d in decisions.items()} == expected
    assert {d.step for d in decisions.values()} == {tool}
    by_id = {ex.id: ex for ex in examples}
    # HTER and character edits per annotator, against a direct computation on original vs post-edit
    paired = {p["id"]: p for p in map(json.loads, (out / "paired.jsonl").read_text().splitlines())}
    assert set(paired) == set(expected)
    checked = 0
    for n, ex in enumerate(examples):
        for annotator, (status, _, kind, _) in _plan(n).items():
            edit = next(e for e in paired[ex.id]["edits"] if e["annotator"] == names[annotator])
            if status != "submitted":
                assert edit["status"] in ("skipped", "discarded") and "hter" not in edit
                continue
            text = _text(kind, starts[ex.id])
            effort = edit_effort([ex.response], [text])
            assert edit["text"] == text
            assert edit["hter"] == pytest.approx(effort.hter, abs=1e-6)
            assert edit["char_edit_distance"] == effort.char_distance
            checked += 1
    assert checked == sum(1 for n in range(len(examples)) for p in _plan(n).values() if p[0] == "submitted")
    # the item started from a correction: HTER is against the data set's response, and against the start too
    second = paired[examples[1].id]["edits"][0]
    assert paired[examples[1].id]["start"] == "Corrected answer." and "hter_vs_start" in second
    # an edit decision carries the post-edited turns; edited.jsonl keeps both versions
    edited_id = examples[1].id
    assert decisions[edited_id].corrected[-1]["content"] == _edit("Corrected answer.")
    assert decisions[edited_id].scores["hter"] == pytest.approx(edit_effort([by_id[edited_id].response],
                                                                            [_edit("Corrected answer.")]).hter, abs=1e-6)
    assert names[ANN] in decisions[edited_id].reason and names[BOB] in decisions[edited_id].reason
    edited = {r["id"]: r for r in map(json.loads, (out / "edited.jsonl").read_text().splitlines())}
    row = edited[edited_id]
    assert row["messages"][-1]["content"] == _edit("Corrected answer.")
    assert row["meta"]["original_messages"][-1]["content"] == by_id[edited_id].response
    assert row["meta"]["decision"]["step"] == tool
    dropped = {r["id"] for r in map(json.loads, (out / "dropped.jsonl").read_text().splitlines())}
    assert dropped == {i for i, a in expected.items() if a in ("drop", "review")}
    assert len(edited) + len(dropped) == len(examples)
    # agreement: Krippendorff's alpha of keep/drop (nominal) and ratings (ordinal), as computed directly
    choice_rows, rating_rows = [], []
    for n, ex in enumerate(examples):
        for annotator, (status, choice, _, rating) in _plan(n).items():
            if status == "submitted":
                choice_rows.append((ex.id, annotator, choice))
                rating_rows.append((ex.id, annotator, str(rating)))
    agreement = json.loads((out / "agreement.json").read_text())
    assert agreement["decision"]["alpha"] == pytest.approx(_alpha_direct(choice_rows, "nominal"), abs=1e-9)
    assert agreement["rating"]["alpha"] == pytest.approx(_alpha_direct(rating_rows, "ordinal"), abs=1e-9)
    assert agreement["decision"]["n_items_rated_twice"] == 5
    # the unknown item is quarantined with its reason, nothing lost
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [q["id"] for q in quarantined] == ["not-in-the-data"]
    assert "not in the data set" in quarantined[0]["reason"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["quarantined"] == 1 and manifest["counts"]["items"] == len(examples)
    return decisions, agreement


# -- Label Studio ---------------------------------------------------------------------------------

def _label_studio_export(tasks: list[dict]) -> list[dict]:
    """What Label Studio's JSON export holds after two annotators worked through the tasks."""
    users = {ANN: {"id": 1, "email": ANN, "first_name": "Ann"}, BOB: 2}
    exported = []
    for n, task in enumerate(tasks):
        anns = []
        for a, (annotator, (status, choice, kind, rating)) in enumerate(_plan(n).items()):
            result = []
            if status == "submitted":
                text = _text(kind, task["data"]["response"])
                if kind is not None or n % 3:  # untouched boxes sometimes come back, sometimes not
                    result.append({"id": f"r{n}{a}", "from_name": "edited", "to_name": "response", "type": "textarea",
                                   "value": {"text": [text]}, "origin": "manual"})
                result.append({"id": f"c{n}{a}", "from_name": "decision", "to_name": "response", "type": "choices",
                               "value": {"choices": ["reject" if choice == "drop" else "accept"]}})
                result.append({"id": f"q{n}{a}", "from_name": "quality", "to_name": "response", "type": "rating",
                               "value": {"rating": rating}})
            anns.append({"id": 100 * n + a, "completed_by": users[annotator], "result": result,
                         "was_cancelled": status != "submitted", "ground_truth": False, "lead_time": 12.5 + a,
                         "task": n + 1, "created_at": "2026-11-30T20:00:00Z"})
        exported.append({"id": n + 1, "data": task["data"], "meta": task["meta"], "annotations": anns,
                         "predictions": task["predictions"], "project": 7})
    stray = json.loads(json.dumps(exported[0]))
    stray["id"], stray["data"]["tamis_id"] = 999, "not-in-the-data"
    return exported + [stray]


def test_label_studio_round_trip(dolly: Path, examples, decisions: Path, tmp_path: Path) -> None:
    export = run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls"),
                                               decisions=str(decisions)))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    config = (tmp_path / "ls" / "labeling_config.xml").read_text()
    ET.fromstring(config)
    assert validate_tasks(tasks, config) == []
    assert len(tasks) == 20 and export.counts["exported"] == 20
    assert tasks[1]["data"]["response"] == "Corrected answer."
    assert tasks[1]["data"]["original_response"] == examples[1].response
    assert tasks[2]["predictions"][0]["result"][1]["value"] == {"choices": ["reject"]}
    assert tasks[2]["predictions"][0]["model_version"] == "tamis:filter"
    starts = {t["data"]["tamis_id"]: t["data"]["response"] for t in tasks}

    export_file = tmp_path / "project-7-at-2026-11-30.json"
    export_file.write_text(json.dumps(_label_studio_export(tasks)))
    result = run_import_annotations(ImportAnnotationsJob(export=str(export_file), data=str(dolly),
                                                         source="label-studio", out=str(tmp_path / "imp")))
    decided, _ = _check_import(result, examples, starts, "label-studio", {ANN: ANN, BOB: "2"})
    assert decided[examples[5].id].action == "edit" and "skipped by 1" not in decided[examples[5].id].reason
    assert "skipped by ann@example.org" in decided[examples[5].id].reason
    rows = [json.loads(line) for line in (tmp_path / "imp" / "annotations.jsonl").read_text().splitlines()]
    assert {r["annotator"] for r in rows} == {ANN, "2"}  # a user object gives its email, a bare id itself
    assert {r["seconds"] for r in rows} == {12.5, 13.5}
    # a second run with the same settings and inputs is reused
    again = run_import_annotations(ImportAnnotationsJob(export=str(export_file), data=str(dolly),
                                                        source="label-studio", out=str(tmp_path / "imp")))
    assert again.reused and again.agreement == result.agreement


# -- Argilla --------------------------------------------------------------------------------------

def _argilla_export(records: list[dict], *, flatten: bool = False) -> list[dict]:
    """Records as ``dataset.records.to_list()`` gives them (nested, or flattened) after two annotators."""
    users = USERS
    out = []
    for n, rec in enumerate(records):
        responses: dict[str, list[dict]] = {}
        for annotator, (status, choice, kind, rating) in _plan(n).items():
            state = "submitted" if status == "submitted" else "discarded"
            answers = {}
            if status == "submitted":
                answers = {"edited_response": _text(kind, rec["fields"]["response"]), "decision": choice,
                           "quality": rating}
                if kind is None and n % 3 == 0:
                    del answers["edited_response"]  # accepted the suggestion without answering the text question
            else:
                answers = {"decision": None}
            for question, value in answers.items():
                responses.setdefault(question, []).append({"value": value, "user_id": users[annotator],
                                                           "status": state})
        row = dict(rec, responses=responses, status="completed")
        if flatten:
            flat = {"id": row["id"], "status": "completed", "_server_id": "x", **row["fields"], **row["metadata"]}
            for question, answers in responses.items():
                flat[f"{question}.responses"] = [a["value"] for a in answers]
                flat[f"{question}.responses.users"] = [a["user_id"] for a in answers]
                flat[f"{question}.responses.status"] = [a["status"] for a in answers]
            for question, sug in rec["suggestions"].items():
                flat[f"{question}.suggestion"] = sug["value"]
                flat[f"{question}.suggestion.agent"] = sug["agent"]
                flat[f"{question}.suggestion.score"] = sug["score"]
            row = flat
        out.append(row)
    stray = json.loads(json.dumps(out[0]))
    if flatten:
        stray["id"] = stray["tamis_id"] = "not-in-the-data"
    else:
        stray["id"] = stray["metadata"]["tamis_id"] = "not-in-the-data"
    return out + [stray]


@pytest.mark.parametrize("flatten", [False, True], ids=["nested", "flattened"])
def test_argilla_round_trip(dolly: Path, examples, decisions: Path, tmp_path: Path, flatten: bool) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "ar"),
                                      decisions=str(decisions), min_submitted=2))
    settings = json.loads((tmp_path / "ar" / "argilla_settings.json").read_text())
    records = json.loads((tmp_path / "ar" / "records.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "ar" / "records.jsonl").read_text().splitlines()]
    assert lines == records and validate_records(records, settings) == []
    assert [q["settings"]["type"] for q in settings["questions"]] == ["text", "label_selection", "rating"]
    assert settings["distribution"] == {"strategy": "overlap", "min_submitted": 2}
    assert records[1]["suggestions"]["edited_response"]["value"] == "Corrected answer."
    assert records[2]["suggestions"]["decision"] == {"value": "drop", "score": 0.1, "agent": "tamis:filter"}
    assert records[0]["fields"]["prompt"] == examples[0].prompt_messages
    starts = {r["id"]: r["fields"]["response"] for r in records}

    export_file = tmp_path / ("records-flat.jsonl" if flatten else "records-export.json")
    rows = _argilla_export(records, flatten=flatten)
    export_file.write_text("".join(json.dumps(r) + "\n" for r in rows) if flatten else json.dumps(rows))
    result = run_import_annotations(ImportAnnotationsJob(export=str(export_file), data=str(dolly),
                                                         source="argilla", out=str(tmp_path / "imp")))
    _check_import(result, examples, starts, "argilla", USERS)


def test_argilla_item_everyone_discarded_is_dropped(dolly: Path, examples, tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "ar")))
    rec = json.loads((tmp_path / "ar" / "records.json").read_text())[0]
    rec["responses"] = {"decision": [{"value": None, "user_id": "u1", "status": "discarded"},
                                     {"value": "keep", "user_id": "u2", "status": "draft"}]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps([rec]))
    parsed = read_argilla(path)
    assert {a.annotator: a.status for a in parsed.annotations} == {"u1": "discarded", "u2": "draft"}
    from tamis.interop import import_annotations
    combined = import_annotations("argilla", path, examples)
    assert combined.decisions[0].action == "review" and "draft by u2" in combined.decisions[0].reason
    rec["responses"]["decision"].pop()
    path.write_text(json.dumps([rec]))
    combined = import_annotations("argilla", path, examples)
    assert combined.decisions[0].action == "drop" and combined.decisions[0].reason == "discarded by u1"


# -- formats: what the tools document ------------------------------------------------------------

def test_exported_files_match_the_documented_shapes(dolly: Path, tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    root = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    assert root.tag == "View"
    tags = {el.get("name"): el for el in root.iter() if el.get("name")}
    assert tags["edited"].tag == "TextArea" and tags["decision"].tag == "Choices" and tags["quality"].tag == "Rating"
    assert [c.get("value") for c in tags["decision"].iter("Choice")] == ["accept", "reject"]
    for task in tasks:  # Label Studio's import format: data (every $variable of the config), predictions[].result
        assert set(task) == {"data", "meta", "predictions"}
        assert {"prompt", "response", "tamis_id"} <= set(task["data"])
        for res in task["predictions"][0]["result"]:
            assert {"from_name", "to_name", "type", "value"} <= set(res)
    assert validate_tasks(tasks, labeling_config()) == []
    broken = json.loads(json.dumps(tasks))
    broken[0]["data"].pop("response")
    broken[1]["predictions"][0]["result"][0]["from_name"] = "nope"
    problems = validate_tasks(broken, labeling_config())
    assert any("data lacks 'response'" in p for p in problems) and any("'nope'" in p for p in problems)

    settings = argilla_settings()
    for field in settings["fields"]:  # rg.Settings.serialize(): name, title, required, settings.type
        assert {"name", "title", "required", "settings"} <= set(field) and field["settings"]["type"] in ("text", "chat")
    for question in settings["questions"]:
        assert {"name", "title", "description", "required", "settings"} <= set(question)
    bad = [{"id": "a", "fields": {"prompt": [{"role": "user", "content": "q"}], "response": "r"},
            "suggestions": {"decision": {"value": "maybe"}, "nope": {"value": 1}}}]
    problems = validate_records(bad, settings)
    assert any("'maybe'" in p for p in problems) and any("unknown question 'nope'" in p for p in problems)


# -- bad input -----------------------------------------------------------------------------------

def test_bad_exports_are_clear_errors_naming_file_item_and_field(dolly: Path, tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    path = tmp_path / "export.json"

    path.write_text('{"not": "tasks"}')
    with pytest.raises(DataError, match=r"export\.json: expected a JSON list of tasks"):
        read_label_studio(path)
    path.write_text("[{")
    with pytest.raises(DataError, match=r"export\.json: not JSON"):
        read_label_studio(path)
    with pytest.raises(DataError, match="no such file"):
        read_label_studio(tmp_path / "missing.json")

    good = dict(tasks[0], annotations=[{"completed_by": 1, "result": [
        {"from_name": "decision", "to_name": "response", "type": "choices", "value": {"choices": ["accept"]}}]}])
    no_user = dict(tasks[1], annotations=[{"result": []}])
    bad_rating = dict(tasks[2], annotations=[{"completed_by": 1, "result": [
        {"from_name": "quality", "to_name": "response", "type": "rating", "value": {"rating": 9}}]}])
    bad_choice = dict(tasks[3], annotations=[{"completed_by": 1, "result": [
        {"from_name": "decision", "to_name": "response", "type": "choices", "value": {"choices": ["maybe"]}}]}])
    no_id = {"data": {"prompt": [], "response": "x"}, "annotations": []}
    path.write_text(json.dumps([good, no_user, bad_rating, bad_choice, no_id]))
    parsed = read_label_studio(path)
    reasons = [q["reason"] for q in parsed.quarantined]
    item = tasks[1]["data"]["tamis_id"]
    assert f"task 1, item {item!r}: annotations[0]: field 'completed_by': missing" in reasons[0]
    assert str(path) in reasons[0]
    assert "field 'value.rating': rating 9 is outside 1-5" in reasons[1]
    assert "unknown choice 'maybe'" in reasons[2]
    assert "field 'data.tamis_id': missing" in reasons[3]
    assert [q["raw"] for q in parsed.quarantined][0] == no_user  # the raw task is kept: nothing lost
    assert len(parsed.annotations) == 1

    path.write_text(json.dumps([no_user, no_id]))
    with pytest.raises(DataError, match="no usable task"):
        read_label_studio(path)

    rec = {"id": "x", "fields": {"response": "r"}, "metadata": {}, "responses": {
        "decision": [{"value": "keep", "user_id": "u", "status": "pending-ish"}]}}
    path.write_text(json.dumps([rec]))
    with pytest.raises(DataError, match=r"record 0, item 'x': responses.decision: field 'status': unknown status"):
        read_argilla(path)
    path.write_text(json.dumps({"records": [{"id": "x", "fields": {}, "responses": {"decision": [{"value": "keep"}]}}]}))
    with pytest.raises(DataError, match=r"field 'responses.decision\[0\]'.user_id: missing"):
        read_argilla(path)
    path.write_text(json.dumps([{"id": "x", "decision.responses": ["keep"], "decision.responses.users": []}]))
    with pytest.raises(DataError, match=r"field 'decision.responses.users': needs one user per value"):
        read_argilla(path)
    path.write_text("42")
    with pytest.raises(DataError, match="expected Argilla records"):
        read_argilla(path)


def test_changed_data_is_quarantined_and_wrong_decisions_refused(dolly: Path, examples, decisions: Path,
                                                                tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    task = json.loads((tmp_path / "ls" / "tasks.json").read_text())[0]
    task["annotations"] = [{"completed_by": 3, "result": []}]
    changed = tmp_path / "changed.jsonl"
    rows = [json.loads(line) for line in dolly.read_text().splitlines()]
    rows[0]["output"] = "Something else entirely."
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task]))
    from tamis.interop import import_annotations
    combined = import_annotations("label-studio", path, read_dataset(changed).examples)
    assert combined.decisions == [] and "differs in the data set" in combined.quarantined[0]["reason"]

    other = tmp_path / "other-decisions.jsonl"
    write_decisions([Decision("no-such-id", "drop", "x", step="filter")], other)
    with pytest.raises(DataError, match="name ids the data set lacks"):
        run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "x"), decisions=str(other)))
    with pytest.raises(ConfigError, match="unknown action"):
        run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "y"),
                                          decisions=str(decisions), actions=["reviw"]))
    only = run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "z"),
                                             decisions=str(decisions), actions=["review"]))
    assert only.counts["exported"] == 17


# -- command line --------------------------------------------------------------------------------

def test_cli_export_and_import(dolly: Path, examples, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tamis.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["export-review", str(dolly), "--to", "label-studio", "-o", str(tmp_path / "ls")])
    assert res.exit_code == 0, res.output
    assert "exported 20 item(s) for label-studio" in res.output
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    settings = json.loads((tmp_path / "ls" / "settings.json").read_text())
    assert settings["command"] == "export-review"
    for n, task in enumerate(tasks):
        task["annotations"] = [{"completed_by": u, "lead_time": 3.0, "result": [
            {"from_name": "decision", "to_name": "response", "type": "choices",
             "value": {"choices": ["reject" if (n < 4 and u == 2) else "accept"]}}]} for u in (1, 2)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    res = runner.invoke(app, ["import-annotations", str(path), "--from", "label-studio", "--data", str(dolly),
                              "-o", str(tmp_path / "imp")])
    assert res.exit_code == 0, res.output
    assert "20 item(s) annotated: keep 16, review 4" in res.output
    assert "Krippendorff's alpha (decision, nominal)" in res.output
    assert (tmp_path / "imp" / ".complete").is_file()

    res = runner.invoke(app, ["import-annotations", str(tmp_path / "nope.json"), "--from", "argilla", "--data",
                              str(dolly), "-o", str(tmp_path / "imp2")])
    assert res.exit_code == 2 and "no such file" in res.output

    res = runner.invoke(app, ["export-review", str(dolly), "--to", "argilla", "-o", str(tmp_path / "ar"),
                              "--push", "mine"])
    try:
        import argilla  # noqa: F401
    except ImportError:
        assert res.exit_code == 2 and "pip install 'argilla>=2'" in res.output
    res = runner.invoke(app, ["export-review", str(dolly), "--to", "label-studio", "-o", str(tmp_path / "ls2"),
                              "--push", "mine"])
    assert res.exit_code == 2 and "--push works with --to argilla" in res.output


def test_namespace_exports() -> None:
    import tamis

    for name in ("review_items", "write_label_studio", "write_argilla", "import_annotations",
                 "run_export_review", "run_import_annotations"):
        assert callable(getattr(tamis, name))


def test_an_annotators_last_answer_counts(dolly: Path, examples, tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    task = json.loads((tmp_path / "ls" / "tasks.json").read_text())[0]
    choice = lambda c: [{"from_name": "decision", "to_name": "response", "type": "choices",  # noqa: E731
                         "value": {"choices": [c]}}]
    task["annotations"] = [{"completed_by": 1, "result": choice("reject")}, {"completed_by": 1, "result": choice("accept")}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task]))
    from tamis.interop import import_annotations
    combined = import_annotations("label-studio", path, examples)
    assert [d.action for d in combined.decisions] == ["keep"] and len(combined.paired[0]["edits"]) == 1
    path.write_text(json.dumps([{"id": 1, "tamis_id": task["data"]["tamis_id"], "decision": "accept"}]))
    with pytest.raises(DataError, match="not 'JSON-MIN'"):
        read_label_studio(path)


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_reads_what_the_argilla_client_exports(shared_data: Path, tmp_path: Path, shape: str) -> None:
    """Records answered through ``rg.Response`` and exported by Argilla 2.8's own ``to_list`` (see
    fixtures/make_argilla_sdk_export.py) import as expected. Argilla's nested export carries no
    response status, so there a discarded answer reads as submitted; the flattened one keeps it."""
    src = shared_data / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl"
    data = tmp_path / "dolly6.jsonl"
    with open(src, encoding="utf-8") as fh:
        data.write_text("".join(next(fh) for _ in range(6)), encoding="utf-8")
    fixture = json.loads((Path(__file__).parent / "fixtures" / "argilla_sdk_export.json").read_text())
    export = tmp_path / f"{shape}.json"
    export.write_text(json.dumps(fixture[shape]))
    result = run_import_annotations(ImportAnnotationsJob(export=str(export), data=str(data), source="argilla",
                                                         out=str(tmp_path / "imp")))
    actions = [d.action for d in read_decisions(tmp_path / "imp" / "decisions.jsonl")]
    last = "review" if shape == "nested" else "keep"  # d3-00005: u1 discarded, u2 kept
    assert actions == ["keep", "edit", "drop", "review", "review", last]
    examples = read_dataset(data).examples
    paired = [json.loads(x) for x in (tmp_path / "imp" / "paired.jsonl").read_text().splitlines()]
    assert paired[1]["edits"][0]["hter"] == pytest.approx(edit_effort([examples[1].response], ["A fixed answer."]).hter)
    u1, u2 = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
    ratings = [(p["id"], e["annotator"], str(e["rating"])) for p in paired for e in p["edits"]
               if e["status"] == "submitted" and e["rating"] is not None]
    assert {r[1] for r in ratings} == {u1, u2}
    assert result.agreement["rating"]["alpha"] == pytest.approx(_alpha_direct(ratings, "ordinal"), abs=1e-9)


def test_settings_are_what_argilla_serialises() -> None:
    """Argilla 2.8 read our settings (``rg.Settings.from_json``) and serialised them back to exactly
    our dictionary, apart from the server-side keys (ids, timestamps) it adds as null."""
    theirs = json.loads((Path(__file__).parent / "fixtures" / "argilla_settings_serialized.json").read_text())

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("id", "inserted_at", "updated_at", "dataset_id")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    assert strip(theirs) == argilla_settings()


def test_labelled_rows_cannot_be_post_edited(tmp_path: Path) -> None:
    data = tmp_path / "labelled.jsonl"
    data.write_text('{"id": "a", "text": "win a prize now", "label": "spam"}\n'
                    '{"id": "b", "text": "see you at six", "label": "ham"}\n')
    with pytest.raises(DataError, match="nothing to review"):
        run_export_review(ExportReviewJob(data=str(data), to="label-studio", out=str(tmp_path / "ls")))


def test_items_nobody_annotated_are_counted(dolly: Path, tmp_path: Path) -> None:
    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    tasks[0]["annotations"] = [{"completed_by": 1, "result": []}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    result = run_import_annotations(ImportAnnotationsJob(export=str(path), data=str(dolly), source="label-studio",
                                                         out=str(tmp_path / "imp")))
    assert result.counts["items"] == 1 and result.counts["not_annotated"] == 19
    assert result.agreement["decision"]["alpha"] is None
    assert result.agreement["decision"]["note"] == "no item was answered by two annotators"
