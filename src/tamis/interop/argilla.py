"""Argilla 2.x: review items as records plus dataset settings; its exported records back as annotations.

``argilla_settings()`` is the dictionary ``rg.Settings.serialize()`` produces (and
``rg.Settings.from_json`` reads): ``fields`` (``prompt``: a chat field of {role, content} turns,
``response``: a text field), ``questions`` (``edited_response``: a text question pre-filled by a
suggestion, ``decision``: a label question keep/drop, ``quality``: a rating question 1-5),
``metadata`` (terms properties for the tamis decision that sent the item) and ``distribution``
(how many submitted answers complete a record). ``argilla_records()`` are records in the shape of
``rg.Record.to_dict()`` / what ``Dataset.records.log`` takes: ``id`` (the tamis id), ``fields``,
``metadata``, ``suggestions`` ({question: {value, score, agent}}) and empty ``responses``.

Read back: records exported with ``dataset.records.to_json()`` / ``to_list()`` (nested:
``responses`` = {question: [{value, user_id, status?}]}), or flattened (``to_list(flatten=True)``,
``to_datasets()``, the Hub export: ``decision.responses``, ``decision.responses.users``,
``decision.responses.status`` columns), as JSON, a JSON list or JSONL. Only ``submitted`` answers
decide; ``discarded`` answers are kept as such (an item everyone discarded is dropped); ``draft``
answers are reported and ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tamis.errors import ConfigError, DataError
from tamis.interop.common import RATING_SCALE, STATUSES, Annotation, Parsed, ReviewItem, choice_value, rating_value

PROMPT, RESPONSE = "prompt", "response"
EDITED, DECISION, RATING = "edited_response", "decision", "quality"
AGENT = "tamis"
ACTION_VALUES = ["keep", "drop", "edit", "review", "none"]


def argilla_settings(*, min_submitted: int = 1, guidelines: str | None = None, steps: Sequence[str] = ()) -> dict[str, Any]:
    """The dataset settings matching ``argilla_records`` (``rg.Settings`` serialised)."""
    return {
        "guidelines": guidelines or (
            "Read the conversation and the response. Post-edit the response so it is correct and helpful, "
            "changing as little as needed (leave it as it is when it is right). Choose 'drop' when the "
            "example should not be trained on at all. Rate the final response from 1 (useless) to 5 (excellent)."),
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": int(min_submitted)},
        "fields": [
            {"name": PROMPT, "title": "Conversation", "required": True, "description": None, "type": "chat",
             "settings": {"type": "chat", "use_markdown": False}},
            {"name": RESPONSE, "title": "Response", "required": True, "description": None, "type": "text",
             "settings": {"type": "text", "use_markdown": False}},
        ],
        "questions": [
            {"name": EDITED, "title": "Your post-edit of the response", "required": False, "type": "text",
             "description": "Pre-filled with the response; change only what is wrong.",
             "settings": {"type": "text", "use_markdown": False}},
            {"name": DECISION, "title": "Keep this example?", "required": True, "type": "label_selection",
             "description": "keep: train on it (with your edit); drop: leave it out.",
             "settings": {"type": "label_selection", "visible_options": None,
                          "options": [{"value": v, "text": v, "description": None} for v in ("keep", "drop")]}},
            {"name": RATING, "title": "Quality of the final response", "required": False, "type": "rating",
             "description": "1 useless ... 5 excellent",
             "settings": {"type": "rating", "options": [{"value": v} for v in RATING_SCALE]}},
        ],
        "metadata": [
            {"name": "tamis_action", "title": "tamis decision", "visible_for_annotators": True,
             "settings": {"type": "terms", "values": ACTION_VALUES, "visible_for_annotators": True}},
            {"name": "tamis_step", "title": "tamis step", "visible_for_annotators": False,
             "settings": {"type": "terms", "values": sorted(set(steps)) or None, "visible_for_annotators": False}},
        ] + [
            {"name": name, "title": name, "visible_for_annotators": False,
             "settings": {"type": "terms", "values": None, "visible_for_annotators": False}}
            for name in ("tamis_id", "tamis_digest")
        ],
        "vectors": [],
        "mapping": None,
    }


def argilla_records(items: Sequence[ReviewItem]) -> list[dict[str, Any]]:
    """One record per review item, in ``rg.Record.to_dict()`` shape, with suggestions from the decision."""
    records = []
    for item in items:
        agent = f"{AGENT}:{item.step}" if item.step else AGENT
        suggestions: dict[str, Any] = {EDITED: {"value": item.start, "score": None, "agent": agent}}
        if item.action in ("keep", "edit", "drop"):
            score = item.scores.get("confidence")
            suggestions[DECISION] = {"value": "drop" if item.action == "drop" else "keep",
                                     "score": float(score) if isinstance(score, (int, float)) and 0 <= score <= 1 else None,
                                     "agent": agent}
        meta = item.metadata()
        meta.setdefault("tamis_action", "none")
        records.append({"id": item.id, "fields": {PROMPT: item.prompt, RESPONSE: item.start}, "metadata": meta,
                        "suggestions": suggestions, "responses": {}, "vectors": {}, "status": "pending",
                        "_server_id": None})
    return records


def validate_records(records: Any, settings: dict[str, Any]) -> list[str]:
    """Problems that would make ``Dataset.records.log`` refuse the records under ``settings`` (empty: none)."""
    problems: list[str] = []
    if not isinstance(records, list):
        return ["records must be a list"]
    fields = {f["name"]: f["settings"]["type"] for f in settings["fields"]}
    questions = {q["name"]: q["settings"] for q in settings["questions"]}
    terms = {m["name"]: m["settings"].get("values") for m in settings.get("metadata", [])
             if m["settings"]["type"] == "terms"}
    seen: set[str] = set()
    for n, rec in enumerate(records):
        where = f"record {n}"
        if not isinstance(rec, dict) or not isinstance(rec.get("fields"), dict):
            problems.append(f"{where}: needs a 'fields' object")
            continue
        rid = rec.get("id")
        if not isinstance(rid, str) or not rid or rid in seen:
            problems.append(f"{where}: id must be a unique non-empty string")
        seen.add(str(rid))
        for name, kind in fields.items():
            value = rec["fields"].get(name)
            if kind == "text" and not isinstance(value, str):
                problems.append(f"{where}: field {name!r} must be text")
            if kind == "chat" and not (isinstance(value, list) and value and all(
                    isinstance(t, dict) and set(t) == {"role", "content"} and isinstance(t["content"], str)
                    for t in value)):
                problems.append(f"{where}: field {name!r} must be a non-empty list of {{role, content}} turns")
        for name in rec["fields"]:
            if name not in fields:
                problems.append(f"{where}: field {name!r} is not in the settings")
        for name, sug in (rec.get("suggestions") or {}).items():
            q = questions.get(name)
            if q is None:
                problems.append(f"{where}: suggestion for unknown question {name!r}")
                continue
            if not isinstance(sug, dict) or "value" not in sug:
                problems.append(f"{where}: suggestion {name!r} needs a value")
                continue
            problems += [f"{where}: suggestion {name!r}: {p}" for p in _value_problems(q, sug["value"])]
            score = sug.get("score")
            if score is not None and not (isinstance(score, (int, float)) and 0 <= score <= 1):
                problems.append(f"{where}: suggestion {name!r}: score must lie in [0, 1]")
        for name, value in (rec.get("metadata") or {}).items():
            allowed = terms.get(name)
            if allowed and value not in allowed:
                problems.append(f"{where}: metadata {name!r}: {value!r} is not one of {allowed}")
            if not isinstance(value, (str, int, float, list)):
                problems.append(f"{where}: metadata {name!r} must be text, a number or a list")
    return problems


def _value_problems(question: dict[str, Any], value: Any) -> list[str]:
    kind = question["type"]
    if kind == "text" and not isinstance(value, str):
        return ["a text question's value is a string"]
    if kind in ("label_selection", "rating"):
        allowed = [o["value"] for o in question["options"]]
        if value not in allowed:
            return [f"{value!r} is not one of {allowed}"]
    return []


def write_argilla(items: Sequence[ReviewItem], out: Path, *, min_submitted: int = 1) -> dict[str, Path]:
    """records.json, records.jsonl and argilla_settings.json in ``out`` (checked against each other first)."""
    from tamis.store import atomic_write_jsonl, atomic_write_text

    settings = argilla_settings(min_submitted=min_submitted, steps=[i.step for i in items if i.step])
    records = argilla_records(items)
    problems = validate_records(records, settings)
    if problems:  # a bug, not bad input: records and settings are made for each other
        raise AssertionError("; ".join(problems[:5]))
    atomic_write_text(out / "argilla_settings.json", json.dumps(settings, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(out / "records.json", json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    atomic_write_jsonl(out / "records.jsonl", records)
    return {"argilla_settings": out / "argilla_settings.json", "records": out / "records.json", "records_jsonl": out / "records.jsonl"}


def push_to_argilla(out: Path, name: str, *, api_url: str | None = None, api_key: str | None = None,
                    workspace: str | None = None) -> str:
    """Create dataset ``name`` on an Argilla server from an export folder (needs the ``argilla`` client).

    The URL and key default to ``$ARGILLA_API_URL`` and ``$ARGILLA_API_KEY``. Without the client
    installed, or without a URL and key, this is a ConfigError saying what to do."""
    try:
        import argilla as rg  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("--push needs the Argilla client: pip install 'argilla>=2' (or import "
                          f"{out / 'records.json'} with settings {out / 'argilla_settings.json'} yourself)") from None
    api_url = api_url or os.environ.get("ARGILLA_API_URL")
    api_key = api_key or os.environ.get("ARGILLA_API_KEY")
    if not api_url or not api_key:
        raise ConfigError("--push needs the server: set ARGILLA_API_URL and ARGILLA_API_KEY")
    try:
        client = rg.Argilla(api_url=api_url, api_key=api_key)
        settings = rg.Settings.from_json(str(out / "argilla_settings.json"))
        dataset = rg.Dataset(name=name, settings=settings, workspace=workspace, client=client)
        dataset.create()
        records = json.loads((out / "records.json").read_text(encoding="utf-8"))
        dataset.records.log([rg.Record.from_dict(r, dataset=dataset) for r in records])
    except Exception as exc:  # the client's errors (connection, auth, an existing name) as one clear line
        raise ConfigError(f"--push to Argilla at {api_url} failed ({type(exc).__name__}: {exc}); the files in "
                          f"{out} are written and can be pushed later") from None
    return name


# -- import ------------------------------------------------------------------------------------

def _load(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; give the records exported from Argilla") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not JSON ({exc.msg}); give records as JSON or JSONL") from None
    if isinstance(data, dict):
        data = data.get("records", [data] if "fields" in data or "id" in data else None)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected Argilla records (a JSON list, JSONL, or {{\"records\": [...]}}), "
                        f"got {type(data).__name__}")
    return data


def read_argilla(path: str | Path) -> Parsed:
    """Annotations from records exported from Argilla (nested or flattened; JSON, JSON list or JSONL)."""
    path = Path(path)
    records = _load(path)
    annotations: list[Annotation] = []
    starts: dict[str, str] = {}
    digests: dict[str, str] = {}
    quarantined: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, rec in enumerate(records):
        where = f"record {n}"
        try:
            item, start, digest, found = _record_annotations(rec, where)
        except DataError as exc:
            quarantined.append({"where": where, "reason": f"{path}: {exc}", "raw": rec})
            continue
        seen.add(item)
        if start is not None:
            starts[item] = start
        if digest:
            digests[item] = digest
        annotations += found
    if records and len(quarantined) == len(records):
        raise DataError(f"{path}: no usable record ({len(records)} quarantined); first problem: "
                        f"{quarantined[0]['reason']}")
    return Parsed(annotations, starts, digests, quarantined, len(records), seen)


def _record_annotations(rec: Any, where: str) -> tuple[str, str | None, str | None, list[Annotation]]:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: not an object")
    flat = "fields" not in rec and not isinstance(rec.get("responses"), dict)
    metadata = rec if flat else (rec.get("metadata") or {})
    if not isinstance(metadata, dict):
        raise DataError(f"{where}: field 'metadata': not an object")
    item = metadata.get("tamis_id") or rec.get("id")
    if item in (None, ""):
        raise DataError(f"{where}: field 'id': missing (and no metadata.tamis_id)")
    item = str(item)
    where = f"{where}, item {item!r}"
    fields = rec if flat else rec.get("fields")
    start = fields.get(RESPONSE) if isinstance(fields, dict) else None
    per_user: dict[str, Annotation] = {}
    for question, user, value, status in (_flat_responses(rec, where) if flat else _nested_responses(rec, where)):
        at = f"{where}: responses.{question}"
        if status not in STATUSES:
            raise DataError(f"{at}: field 'status': unknown status {status!r} (known: submitted, discarded, draft)")
        ann = per_user.setdefault(user, Annotation(item=item, annotator=user, status=status, source=f"{where}"))
        if status != "submitted" and ann.status == "submitted":
            ann.status = status
        if value is None:
            continue
        if question == EDITED:
            if not isinstance(value, str):
                raise DataError(f"{at}: value {value!r} is not text")
            ann.text = value
        elif question == DECISION:
            ann.choice = choice_value(value, f"{at}: value")
        elif question == RATING:
            ann.rating = rating_value(value, f"{at}: value")
    digest = metadata.get("tamis_digest")
    return item, start if isinstance(start, str) else None, str(digest) if digest else None, list(per_user.values())


def _nested_responses(rec: dict[str, Any], where: str):
    responses = rec.get("responses") or {}
    if not isinstance(responses, dict):
        raise DataError(f"{where}: field 'responses': expected {{question: [{{value, user_id}}]}}")
    for question, answers in responses.items():
        if not isinstance(answers, list):
            raise DataError(f"{where}: field 'responses.{question}': not a list")
        for k, ans in enumerate(answers):
            at = f"{where}: field 'responses.{question}[{k}]'"
            if not isinstance(ans, dict):
                raise DataError(f"{at}: not an object")
            user = ans.get("user_id")
            if user in (None, ""):
                raise DataError(f"{at}.user_id: missing")
            yield question, str(user), ans.get("value"), str(ans.get("status") or "submitted")


def _flat_responses(rec: dict[str, Any], where: str):
    for key in [k for k in rec if k.endswith(".responses")]:
        question = key[: -len(".responses")]
        values, users = rec.get(key), rec.get(f"{key}.users")
        statuses = rec.get(f"{key}.status")
        if values is None:
            continue
        if not isinstance(values, list) or not isinstance(users, list) or len(users) != len(values):
            raise DataError(f"{where}: field '{key}.users': needs one user per value of '{key}'")
        if statuses is None:
            statuses = ["submitted"] * len(values)
        if not isinstance(statuses, list) or len(statuses) != len(values):
            raise DataError(f"{where}: field '{key}.status': needs one status per value of '{key}'")
        for value, user, status in zip(values, users, statuses):
            if user in (None, ""):
                raise DataError(f"{where}: field '{key}.users': a user is missing")
            yield question, str(user), value, str(status or "submitted")
