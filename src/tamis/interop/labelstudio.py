"""Label Studio: review items as JSON tasks with a labeling config; its JSON export back as annotations.

Tasks follow Label Studio's import format (a JSON list of ``{"data": {...}, "meta": {...},
"predictions": [...]}``): ``data`` holds the prompt turns (``prompt``, shown as a dialogue by a
``Paragraphs`` tag), the response to post-edit (``response``) and the tamis id; ``predictions`` hold
one prediction whose ``textarea`` result pre-fills the post-edit box with the response (or the
correction an ``edit`` decision proposed) and whose ``choices`` result suggests accept/reject from
the decision, so annotators correct instead of retyping. ``labeling_config()`` is the matching XML:
``Paragraphs`` + ``Text``, a ``TextArea`` (the post-edit), ``Choices`` accept/reject and a
``Rating`` of 1-5.

The export read back is Label Studio's "JSON" export: the same list of tasks, each with
``annotations``: ``completed_by`` (a user id, or a user object with ``email``), ``result`` (a
list of ``{"from_name", "to_name", "type", "value"}``), ``was_cancelled`` (a skipped task) and
``lead_time`` (seconds).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tamis.errors import DataError
from tamis.interop.common import Annotation, Parsed, ReviewItem, choice_value, rating_value

TEXTAREA, CHOICES, RATING = "edited", "decision", "quality"
PROMPT, RESPONSE = "prompt", "response"
MODEL_VERSION = "tamis"


def labeling_config(title: str = "Post-edit the response") -> str:
    """The labeling config XML that matches ``label_studio_tasks``."""
    return f"""<View>
  <Header value="{_xml_escape(title)}"/>
  <Header value="Conversation" size="5"/>
  <Paragraphs name="{PROMPT}" value="${PROMPT}" layout="dialogue" nameKey="role" textKey="content"/>
  <Header value="Response" size="5"/>
  <Text name="{RESPONSE}" value="${RESPONSE}"/>
  <Header value="Your post-edit (leave it as it is when the response is right)" size="5"/>
  <TextArea name="{TEXTAREA}" toName="{RESPONSE}" editable="true" maxSubmissions="1" rows="8" transcription="true"/>
  <Header value="Keep this example?" size="5"/>
  <Choices name="{CHOICES}" toName="{RESPONSE}" choice="single" required="true">
    <Choice value="accept"/>
    <Choice value="reject"/>
  </Choices>
  <Header value="Quality of the final response" size="5"/>
  <Rating name="{RATING}" toName="{RESPONSE}" maxRating="5"/>
</View>
"""


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def label_studio_tasks(items: Sequence[ReviewItem]) -> list[dict[str, Any]]:
    """One Label Studio task per review item (import format, with a pre-filling prediction)."""
    tasks = []
    for item in items:
        result: list[dict[str, Any]] = [{"id": f"{item.id}-edit", "from_name": TEXTAREA, "to_name": RESPONSE,
                                         "type": "textarea", "value": {"text": [item.start]}}]
        if item.action in ("keep", "edit", "drop"):
            result.append({"id": f"{item.id}-choice", "from_name": CHOICES, "to_name": RESPONSE, "type": "choices",
                           "value": {"choices": ["reject" if item.action == "drop" else "accept"]}})
        prediction: dict[str, Any] = {"model_version": f"{MODEL_VERSION}:{item.step}" if item.step else MODEL_VERSION,
                                      "result": result}
        score = item.scores.get("confidence")
        if isinstance(score, (int, float)):
            prediction["score"] = float(score)
        tasks.append({
            "data": {"tamis_id": item.id, PROMPT: item.prompt or [{"role": "user", "content": ""}],
                     RESPONSE: item.start, "original_response": item.original},
            "meta": item.metadata() | {"tamis_scores": item.scores},
            "predictions": [prediction],
        })
    return tasks


def config_names(config: str) -> dict[str, Any]:
    """The object tags' data variables and the control tags' (name -> type, toName) of a labeling config."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise DataError(f"labeling config is not valid XML ({exc})") from None
    objects, controls = {}, {}
    for el in root.iter():
        value = el.get("value", "")
        if el.get("name") and value.startswith("$") and el.tag in ("Text", "Paragraphs", "HyperText"):
            objects[el.get("name")] = value[1:]
        elif el.get("name") and el.get("toName"):
            controls[el.get("name")] = {"type": el.tag.lower(), "toName": el.get("toName"),
                                        "choices": [c.get("value") for c in el.iter("Choice")],
                                        "maxRating": int(el.get("maxRating", "5")) if el.tag == "Rating" else None}
    return {"objects": objects, "controls": controls}


def validate_tasks(tasks: Any, config: str) -> list[str]:
    """Problems that would make Label Studio refuse the tasks or show them wrongly (empty: none).

    Checks the documented import shape: a list of objects each with a ``data`` object holding every
    variable the config's object tags read; predictions as objects with a ``result`` list whose
    items name a control of the config (``from_name``), its object (``to_name``), its type and a
    value of that type's shape."""
    names = config_names(config)
    problems = []
    if not isinstance(tasks, list):
        return ["tasks must be a JSON list"]
    for n, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(f"task {n}: needs a 'data' object")
            continue
        for obj, var in names["objects"].items():
            if var not in task["data"]:
                problems.append(f"task {n}: data lacks {var!r} (read by <{obj}>)")
        prompt = task["data"].get(PROMPT)
        if not isinstance(prompt, list) or not all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in prompt):
            problems.append(f"task {n}: data.{PROMPT} must be a list of {{role, content}} turns for <Paragraphs>")
        for p, pred in enumerate(task.get("predictions", [])):
            if not isinstance(pred, dict) or not isinstance(pred.get("result"), list):
                problems.append(f"task {n}: predictions[{p}] needs a 'result' list")
                continue
            for r, res in enumerate(pred["result"]):
                problems += [f"task {n}: predictions[{p}].result[{r}]: {x}" for x in _result_problems(res, names)]
    return problems


def _result_problems(res: Any, names: dict[str, Any]) -> list[str]:
    if not isinstance(res, dict):
        return ["not an object"]
    control = names["controls"].get(res.get("from_name"))
    if control is None:
        return [f"from_name {res.get('from_name')!r} is no control of the config"]
    out = []
    if res.get("to_name") != control["toName"]:
        out.append(f"to_name {res.get('to_name')!r} is not {control['toName']!r}")
    if res.get("type") != control["type"]:
        out.append(f"type {res.get('type')!r} is not {control['type']!r}")
    value = res.get("value")
    if control["type"] == "textarea" and not (isinstance(value, dict) and isinstance(value.get("text"), list)):
        out.append("a textarea value is {'text': [...]}")
    if control["type"] == "choices":
        chosen = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(chosen, list) or not set(chosen) <= set(control["choices"]):
            out.append(f"choices must be a list drawn from {control['choices']}")
    if control["type"] == "rating":
        rating = value.get("rating") if isinstance(value, dict) else None
        if not isinstance(rating, int) or not 1 <= rating <= (control["maxRating"] or 5):
            out.append("a rating value is {'rating': 1..maxRating}")
    return out


def write_label_studio(items: Sequence[ReviewItem], out: Path) -> dict[str, Path]:
    """tasks.json and labeling_config.xml in ``out`` (checked against each other before they are written)."""
    from tamis.store import atomic_write_text

    tasks = label_studio_tasks(items)
    config = labeling_config()
    problems = validate_tasks(tasks, config)
    if problems:  # a bug, not bad input: the two files are made for each other
        raise AssertionError("; ".join(problems[:5]))
    atomic_write_text(out / "tasks.json", json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(out / "labeling_config.xml", config)
    return {"tasks": out / "tasks.json", "labeling_config": out / "labeling_config.xml"}


# -- import ------------------------------------------------------------------------------------

def _annotator(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("email", "username", "id"):
            if value.get(key) not in (None, ""):
                return str(value[key])
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != "":
        return str(value)
    return None


def read_label_studio(path: str | Path) -> Parsed:
    """Annotations from Label Studio's JSON export (a list of tasks with ``annotations``).

    A file that is no list of tasks is a DataError naming the file. A task without a ``tamis_id``
    in its data, or with an annotation whose fields are malformed, is quarantined with the file,
    the task and the field; tasks without annotations count as not annotated."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; give Label Studio's JSON export") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc}); export the project from Label Studio as 'JSON'") from None
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a JSON list of tasks (Label Studio's 'JSON' export), "
                        f"got {type(tasks).__name__}")
    annotations: list[Annotation] = []
    starts: dict[str, str] = {}
    digests: dict[str, str] = {}
    quarantined: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, task in enumerate(tasks):
        where = f"task {n}" + (f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else "")
        try:
            item, found = _task_annotations(task, where)
        except DataError as exc:
            quarantined.append({"where": where, "reason": f"{path}: {exc}", "raw": task})
            continue
        seen.add(item)
        if isinstance(task["data"].get(RESPONSE), str):
            starts[item] = task["data"][RESPONSE]
        digest = (task.get("meta") or {}).get("tamis_digest") if isinstance(task.get("meta"), dict) else None
        if digest:
            digests[item] = str(digest)
        annotations += found
    if tasks and len(quarantined) == len(tasks):
        raise DataError(f"{path}: no usable task ({len(tasks)} quarantined); first problem: {quarantined[0]['reason']}")
    return Parsed(annotations, starts, digests, quarantined, len(tasks), seen)


def _task_annotations(task: Any, where: str) -> tuple[str, list[Annotation]]:
    if not isinstance(task, dict):
        raise DataError(f"{where}: not an object")
    data = task.get("data")
    if not isinstance(data, dict):
        raise DataError(f"{where}: field 'data': missing or not an object (export the project as 'JSON', "
                        "not 'JSON-MIN' or CSV)")
    item = data.get("tamis_id")
    if item in (None, ""):
        raise DataError(f"{where}: field 'data.tamis_id': missing (was the task exported by tamis export-review?)")
    item = str(item)
    where = f"{where}, item {item!r}"
    raw = task.get("annotations", [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise DataError(f"{where}: field 'annotations': not a list")
    found = []
    for a, ann in enumerate(raw):
        at = f"{where}: annotations[{a}]"
        if not isinstance(ann, dict):
            raise DataError(f"{at}: not an object")
        annotator = _annotator(ann.get("completed_by"))
        if annotator is None:
            raise DataError(f"{at}: field 'completed_by': missing")
        result = ann.get("result")
        if not isinstance(result, list):
            raise DataError(f"{at}: field 'result': missing or not a list")
        lead = ann.get("lead_time")
        if lead is not None and not isinstance(lead, (int, float)):
            raise DataError(f"{at}: field 'lead_time': {lead!r} is not a number of seconds")
        record = Annotation(item=item, annotator=annotator, status="skipped" if ann.get("was_cancelled") else "submitted",
                            seconds=float(lead) if lead is not None else None, source=at)
        for r, res in enumerate(result):
            _apply_result(record, res, f"{at}.result[{r}]")
        found.append(record)
    return item, found


def _apply_result(record: Annotation, res: Any, at: str) -> None:
    if not isinstance(res, dict):
        raise DataError(f"{at}: not an object")
    name, value = res.get("from_name"), res.get("value")
    if not isinstance(value, dict):
        raise DataError(f"{at}: field 'value': missing or not an object")
    if name == TEXTAREA:
        text = value.get("text")
        if isinstance(text, str):
            text = [text]
        if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
            raise DataError(f"{at}: field 'value.text': expected a list of strings")
        record.text = "\n".join(text)
    elif name == CHOICES:
        chosen = value.get("choices")
        if not isinstance(chosen, list) or len(chosen) != 1:
            raise DataError(f"{at}: field 'value.choices': expected one choice, got {chosen!r}")
        record.choice = choice_value(chosen[0], f"{at}: field 'value.choices'")
    elif name == RATING:
        record.rating = rating_value(value.get("rating"), f"{at}: field 'value.rating'")
    # results of controls this config does not have (a team's own additions) are left alone
