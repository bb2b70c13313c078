"""The exported files, checked by the tools' own clients when they are installed (skipped otherwise).

tamis does not depend on either client; install them beside it to run these checks
(``pip install label-studio-sdk "argilla>=2"``). Label Studio's ``LabelInterface`` validates the
labeling config, that every task's data holds each object tag's variable, and every prediction and
annotation result; Argilla reads the settings (``rg.Settings.from_json``) and the records
(``rg.Record.from_dict``) back to the same dictionaries. No server is contacted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tamis.interop import ExportReviewJob, run_export_review


def _sibling(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_interop_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def dolly(shared_data: Path, tmp_path: Path) -> Path:
    src = shared_data / "dolly_alpagasus_3k" / "dolly_filtered_3k.jsonl"
    path = tmp_path / "dolly20.jsonl"
    with open(src, encoding="utf-8") as fh:
        path.write_text("".join(next(fh) for _ in range(20)), encoding="utf-8")
    return path


def test_label_studio_sdk_accepts_config_tasks_and_annotations(dolly: Path, tmp_path: Path) -> None:
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk.label_interface import LabelInterface

    _label_studio_export = _sibling("test_interop")._label_studio_export

    run_export_review(ExportReviewJob(data=str(dolly), to="label-studio", out=str(tmp_path / "ls")))
    li = LabelInterface((tmp_path / "ls" / "labeling_config.xml").read_text())
    li.validate()  # raises on an invalid config
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    for task in tasks:
        assert all(task["data"].get(o.value_name) is not None for o in li.objects if o.value_is_variable)
        for prediction in task["predictions"]:
            assert li.validate_prediction(prediction, return_errors=True) == []
    for task in _label_studio_export(tasks):
        for annotation in task["annotations"]:
            assert li._validate_object(annotation, return_errors=True) == []
    broken = dict(tasks[0]["predictions"][0])
    broken["result"] = [dict(broken["result"][0], from_name="nope")]
    assert li.validate_prediction(broken, return_errors=True)


def test_argilla_client_reads_settings_and_records(dolly: Path, tmp_path: Path) -> None:
    rg = pytest.importorskip("argilla")
    from argilla._api._client import APIClient

    run_export_review(ExportReviewJob(data=str(dolly), to="argilla", out=str(tmp_path / "ar")))
    mp = pytest.MonkeyPatch()
    mp.setattr(APIClient, "_validate_connection", lambda self: None)  # offline: no server
    try:
        client = rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline-check")
        settings = rg.Settings.from_json(str(tmp_path / "ar" / "argilla_settings.json"))
        ours = json.loads((tmp_path / "ar" / "argilla_settings.json").read_text())

        def strip(x):
            if isinstance(x, dict):
                return {k: strip(v) for k, v in x.items() if k not in ("id", "inserted_at", "updated_at", "dataset_id")}
            return [strip(v) for v in x] if isinstance(x, list) else x

        assert strip(settings.serialize()) == ours
        dataset = rg.Dataset(name="check", settings=settings, client=client)
        for record in json.loads((tmp_path / "ar" / "records.json").read_text()):
            assert rg.Record.from_dict(record, dataset=dataset).to_dict() == record
    finally:
        mp.undo()
