"""Row formats <-> Example: detect a row layout, convert it to the canonical form and back.

Conversion must lose nothing: every column tamis does not interpret goes to ``meta`` unchanged, and
what a format needs to be written back exactly (alpaca's instruction/input split, a translation's
source and languages, a label's original type) is kept in ``meta[<format>]``.
"""

from __future__ import annotations

from typing import Any

from tamis.io.errors import ConversionError, DataError, RowError
from tamis.io.validate import check_turns, id_value, label_value, require, scalar_text, text_field
from tamis.records import Example, Message, chat_example, labelled_example

FORMATS: tuple[str, ...] = ("messages", "alpaca", "sharegpt", "prompt_completion", "translation", "labelled")

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                  "system": "system"}
SHAREGPT_DEFAULT = {"user": "human", "assistant": "gpt", "system": "system"}

LANGUAGES = {"en": "English", "de": "German", "zh": "Chinese", "fr": "French", "es": "Spanish",
             "it": "Italian", "pt": "Portuguese", "ru": "Russian", "ja": "Japanese", "ko": "Korean",
             "ar": "Arabic", "cs": "Czech", "nl": "Dutch", "pl": "Polish", "tr": "Turkish",
             "uk": "Ukrainian", "hi": "Hindi", "sv": "Swedish", "fi": "Finnish", "et": "Estonian",
             "ro": "Romanian", "he": "Hebrew", "hr": "Croatian", "da": "Danish", "no": "Norwegian",
             "el": "Greek", "hu": "Hungarian", "vi": "Vietnamese", "th": "Thai", "id": "Indonesian",
             "is": "Icelandic", "lt": "Lithuanian", "lv": "Latvian", "bg": "Bulgarian", "sk": "Slovak"}


def language_name(code: str) -> str:
    """'de' -> 'German'; unknown codes (or already-named languages) are returned as given."""
    return LANGUAGES.get(code.lower().replace("_", "-").split("-")[0], code) if len(code) <= 6 else code


def translation_prompt(source: str, source_lang: str | None, target_lang: str | None) -> str:
    """The user turn a translation pair becomes; languages are named when known."""
    if source_lang and target_lang:
        head = f"Translate the following text from {language_name(source_lang)} to {language_name(target_lang)}."
    elif target_lang:
        head = f"Translate the following text into {language_name(target_lang)}."
    else:
        head = "Translate the following text."
    return f"{head}\n\n{source}"


def alpaca_prompt(instruction: str, inp: str | None) -> str:
    """Alpaca's user turn: the instruction, then the input (if any) after a blank line."""
    return instruction + ("\n\n" + inp if inp and inp.strip() else "")


def detect_format(rows: list[dict[str, Any]]) -> str:
    """The format of these rows, judged by their columns. Raises DataError if it cannot tell."""
    cols: set[str] = set()
    for r in rows:
        if isinstance(r, dict):
            cols.update(r)
    if "messages" in cols:
        return "messages"
    if "conversations" in cols:
        return "sharegpt"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if "prompt" in cols and cols & {"completion", "response"}:
        return "prompt_completion"
    if {"source", "target"} <= cols:
        return "translation"
    if cols & {"text", "sentence"} and ("label" in cols or "annotations" in cols or {"labels", "annotators"} <= cols):
        return "labelled"
    raise DataError(
        f"cannot tell the format from the columns {sorted(cols)}; supported formats: {', '.join(FORMATS)} "
        "(messages | conversations | instruction+output | prompt+completion | source+target | text+label). "
        "Rename columns with --columns SOURCE=FIELD,... (columns={...} in Python), or pass the format."
    )


# -- rows -> examples -------------------------------------------------------------------------------

def from_row(row: dict[str, Any], format: str, *, id_field: str = "id") -> Example:
    """Convert one row of `format` to an Example; raises RowError naming the bad field."""
    if not isinstance(row, dict):
        raise RowError(None, f"expected an object per row, got {type(row).__name__}",
                       "each row must be a JSON object / table row", "wrong_type")
    if format not in _READERS:
        raise DataError(f"unknown format {format!r}; supported formats: {', '.join(FORMATS)}")
    rest = dict(row)
    ex_id = None
    if id_field in rest and rest[id_field] is not None:
        ex_id = id_value(rest.pop(id_field), id_field)
    else:
        rest.pop(id_field, None)
    return _READERS[format](rest, ex_id)


def _messages(rest: dict[str, Any], ex_id: str | None) -> Example:
    raw = require(rest, "messages")
    del rest["messages"]
    msgs, _ = check_turns(raw, "messages")
    meta = rest.pop("meta") if isinstance(rest.get("meta"), dict) else {}
    meta = {**meta, **rest}
    extras = {str(i): {k: v for k, v in t.items() if k not in ("role", "content")}
              for i, t in enumerate(raw) if set(t) - {"role", "content"}}
    if extras:
        meta["message_extras"] = extras
    return chat_example(msgs, id=ex_id, meta=meta)


def _alpaca(rest: dict[str, Any], ex_id: str | None) -> Example:
    instruction = text_field(require(rest, "instruction"), "instruction")
    output = text_field(require(rest, "output"), "output")
    keep: dict[str, Any] = {"instruction": instruction}
    inp = ""
    if "input" in rest:
        keep["input"] = rest.pop("input")
        if keep["input"] is not None:
            inp = text_field(keep["input"], "input", allow_empty=True)
    del rest["instruction"], rest["output"]
    msgs = [Message("user", alpaca_prompt(instruction, inp)), Message("assistant", output)]
    return chat_example(msgs, id=ex_id, meta={**rest, "alpaca": keep})


def _sharegpt(rest: dict[str, Any], ex_id: str | None) -> Example:
    raw = require(rest, "conversations")
    del rest["conversations"]
    msgs, froms = check_turns(raw, "conversations", role_key="from", content_key="value", role_map=SHAREGPT_ROLES)
    keep: dict[str, Any] = {}
    if froms != [SHAREGPT_DEFAULT[m.role] for m in msgs]:
        keep["from"] = froms
    extras = {str(i): {k: v for k, v in t.items() if k not in ("from", "value")}
              for i, t in enumerate(raw) if set(t) - {"from", "value"}}
    if extras:
        keep["extras"] = extras
    return chat_example(msgs, id=ex_id, meta={**rest, **({"sharegpt": keep} if keep else {})})


def _prompt_completion(rest: dict[str, Any], ex_id: str | None) -> Example:
    prompt = text_field(require(rest, "prompt"), "prompt")
    key = "completion" if "completion" in rest or "response" not in rest else "response"
    completion = text_field(require(rest, key, "add a 'completion' (or 'response') value"), key)
    del rest["prompt"], rest[key]
    meta = {**rest, **({"prompt_completion": {"completion_key": key}} if key != "completion" else {})}
    return chat_example([Message("user", prompt), Message("assistant", completion)], id=ex_id, meta=meta)


def _pick(rest: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The first alias column with a value (CSV files of mixed rows have every alias, mostly empty)."""
    present = [k for k in keys if k in rest]
    if not present:
        return keys[0]
    key = next((k for k in present if rest[k] not in (None, "")), present[0])
    for other in present:
        if other != key and rest.get(other) in (None, ""):
            del rest[other]
    return key


def _lang(rest: dict[str, Any], keys: tuple[str, str]) -> tuple[str | None, str | None]:
    if not any(k in rest for k in keys):
        return None, None
    key = _pick(rest, keys)
    value = rest.pop(key)
    if value is not None and not isinstance(value, str):
        raise RowError(key, f"expected a language code, got {type(value).__name__}", "e.g. 'de'", "wrong_type")
    return key, value or None


def _translation(rest: dict[str, Any], ex_id: str | None) -> Example:
    source = text_field(require(rest, "source"), "source")
    target = text_field(require(rest, "target"), "target")
    del rest["source"], rest["target"]
    skey, slang = _lang(rest, ("source_lang", "src_lang"))
    tkey, tlang = _lang(rest, ("target_lang", "tgt_lang"))
    keep: dict[str, Any] = {"source": source}
    if skey:
        keep["source_lang"] = slang
    if tkey:
        keep["target_lang"] = tlang
    if (skey, tkey) not in ((None, None), ("source_lang", "target_lang"), ("source_lang", None), (None, "target_lang")):
        keep["lang_keys"] = [skey, tkey]
    msgs = [Message("user", translation_prompt(source, slang, tlang)), Message("assistant", target)]
    return chat_example(msgs, id=ex_id, meta={**rest, "translation": keep})


def _labelled(rest: dict[str, Any], ex_id: str | None) -> Example:
    text_key = _pick(rest, ("text", "sentence"))
    text = text_field(require(rest, text_key, "add a 'text' (or 'sentence') value"), text_key)
    del rest[text_key]
    keep: dict[str, Any] = {"text_key": text_key} if text_key != "text" else {}
    annotations: dict[str, str] | None = None
    if rest.get("annotations") is not None:
        raw = rest.pop("annotations")
        if not isinstance(raw, dict):
            raise RowError("annotations", f"expected an {{annotator: label}} object, got {type(raw).__name__}",
                           "or give a 'labels' list", "wrong_type")
        annotations = {str(k): label_value(v, f"annotations.{k}") for k, v in raw.items() if v is not None}
        if raw != annotations:
            keep["annotations"] = raw
    elif rest.get("labels") is not None:
        raw = rest.pop("labels")
        if not isinstance(raw, list):
            raise RowError("labels", f"expected a list of annotator labels, got {type(raw).__name__}",
                           "or give an 'annotations' {annotator: label} object", "wrong_type")
        names = rest.get("annotators")
        ids = [str(a) for a in names] if isinstance(names, list) and len(names) == len(raw) else None
        if ids is not None:
            keep["annotators"] = rest.pop("annotators")
        ids = ids or [str(i) for i in range(len(raw))]
        annotations = {a: label_value(v, f"labels[{i}]") for i, (a, v) in enumerate(zip(ids, raw)) if v is not None}
        keep["labels"] = raw
    label = None
    if annotations and rest.get("label") == "":  # an empty label cell next to annotator labels: no gold label
        del rest["label"]
    if rest.get("label") is not None:
        raw_label = rest.pop("label")
        label = label_value(raw_label, "label")
        if not isinstance(raw_label, str):
            keep["label"] = raw_label
    elif not annotations:
        raise RowError("label", "missing required field", "add a 'label' (or per-annotator 'annotations')",
                       "missing_field")
    meta = {**rest, **({"labelled": keep} if keep else {})}
    return labelled_example(text, label, id=ex_id, annotations=annotations or None, meta=meta)


_READERS = {"messages": _messages, "alpaca": _alpaca, "sharegpt": _sharegpt,
            "prompt_completion": _prompt_completion, "translation": _translation, "labelled": _labelled}


# -- examples -> rows -------------------------------------------------------------------------------

def _single_turn(ex: Example, fmt: str) -> tuple[str, str]:
    roles = [m.role for m in ex.messages]
    if roles != ["user", "assistant"]:
        raise ConversionError(
            f"example {ex.id}: {fmt} holds one user turn and one answer, this one has turns {roles}; "
            "write it as messages or sharegpt instead")
    return ex.messages[0].content, ex.messages[1].content


def _rest(ex: Example, *reserved: str) -> dict[str, Any]:
    return {k: v for k, v in ex.meta.items() if k not in reserved}


def to_row(example: Example, format: str) -> dict[str, Any]:
    """One example as a row of `format`; raises ConversionError when the format cannot hold it."""
    ex = example
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; supported formats: {', '.join(FORMATS)}")
    if (ex.kind == "labelled") != (format == "labelled"):
        raise ConversionError(f"example {ex.id}: a {ex.kind} example cannot be written as {format}")
    if format == "messages":
        row = ex.to_dict()
        extras = ex.meta.get("message_extras")
        if isinstance(extras, dict) and all(k.isdigit() and int(k) < len(ex.messages) for k in extras):
            row["messages"] = [{**m, **extras.get(str(i), {})} for i, m in enumerate(row["messages"])]
            row["meta"] = _rest(ex, "message_extras")
            if not row["meta"]:
                del row["meta"]
        return row
    if format == "sharegpt":
        keep = ex.meta.get("sharegpt") or {}
        froms = keep.get("from")
        if not (isinstance(froms, list) and len(froms) == len(ex.messages)
                and all(SHAREGPT_ROLES.get(str(f).lower()) == m.role for f, m in zip(froms, ex.messages))):
            froms = [SHAREGPT_DEFAULT[m.role] for m in ex.messages]
        extras = keep.get("extras") or {}
        conv = [{"from": f, "value": m.content, **extras.get(str(i), {})}
                for i, (f, m) in enumerate(zip(froms, ex.messages))]
        return {"id": ex.id, "conversations": conv, **_rest(ex, "sharegpt")}
    if format == "labelled":
        return _labelled_row(ex)
    user, answer = _single_turn(ex, format)
    if format == "alpaca":
        keep = ex.meta.get("alpaca") or {}
        if isinstance(keep.get("instruction"), str) and alpaca_prompt(keep["instruction"], keep.get("input")) == user:
            fields = dict(keep)
        else:
            fields = {"instruction": user, "input": ""}
        return {"id": ex.id, **fields, "output": answer, **_rest(ex, "alpaca")}
    if format == "prompt_completion":
        key = (ex.meta.get("prompt_completion") or {}).get("completion_key", "completion")
        return {"id": ex.id, "prompt": user, key: answer, **_rest(ex, "prompt_completion")}
    keep = ex.meta.get("translation") or {}
    row: dict[str, Any] = {"id": ex.id}
    if isinstance(keep.get("source"), str) and translation_prompt(
            keep["source"], keep.get("source_lang"), keep.get("target_lang")) == user:
        skey, tkey = keep.get("lang_keys") or ("source_lang", "target_lang")
        row.update(source=keep["source"], target=answer)
        if "source_lang" in keep:
            row[skey or "source_lang"] = keep["source_lang"]
        if "target_lang" in keep:
            row[tkey or "target_lang"] = keep["target_lang"]
    else:
        row.update(source=user, target=answer)
    return {**row, **_rest(ex, "translation")}


def _labelled_row(ex: Example) -> dict[str, Any]:
    keep = ex.meta.get("labelled") or {}
    row: dict[str, Any] = {"id": ex.id, keep.get("text_key", "text"): ex.text}
    raw_label = keep.get("label")
    if ex.label is not None:
        row["label"] = raw_label if raw_label is not None and scalar_text(raw_label) == ex.label else ex.label
    ann = ex.annotations
    if ann:
        if "labels" in keep and _from_list(keep) == ann:
            if "annotators" in keep:
                row["annotators"] = keep["annotators"]
            row["labels"] = keep["labels"]
        elif "annotations" in keep and {str(k): scalar_text(v) for k, v in keep["annotations"].items()
                                        if v is not None} == ann:
            row["annotations"] = keep["annotations"]
        else:
            row["annotations"] = dict(ann)
    return {**row, **_rest(ex, "labelled")}


def _from_list(keep: dict[str, Any]) -> dict[str, str]:
    raw = keep["labels"]
    names = keep.get("annotators")
    ids = [str(a) for a in names] if isinstance(names, list) else [str(i) for i in range(len(raw))]
    return {a: scalar_text(v) for a, v in zip(ids, raw) if v is not None}
