"""Task configurations for labelled generation (YAML): labels and their descriptions, context, style.

A task file names the label set with a short description of each label, the kind of text, the
context that sets the scene, a style and a word limit; optionally where its real data lives and how
to read it (column renames, label names, split and agreement fields). Bundled tasks live in
``tamis/data/tasks/`` and are found by name.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tamis.io import DataError


@dataclass
class TaskData:
    """How to read the task's real data (relative paths resolve against a data root)."""

    path: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    label_map: dict[str, str] = field(default_factory=dict)
    split_field: str | None = None
    agreement_field: str | None = None
    agreement_map: dict[str, float] = field(default_factory=dict)


@dataclass
class TaskConfig:
    name: str
    labels: dict[str, str]
    text_kind: str = "text"
    context: str = ""
    style: str = ""
    max_words: int = 40
    diversity_every: int = 5  # every n-th generation per label asks for something more diverse
    few_shot_k: int = 3
    data: TaskData = field(default_factory=TaskData)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bundled_tasks() -> list[str]:
    """Names of the task files shipped with tamis."""
    folder = importlib.resources.files("tamis") / "data" / "tasks"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def task_from_dict(raw: dict[str, Any], where: str) -> TaskConfig:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: a task file must be a mapping with at least 'name' and 'labels'")
    labels = raw.get("labels")
    if isinstance(labels, list):
        labels = {str(lab): "" for lab in labels}
    if not isinstance(labels, dict) or len(labels) < 2:
        raise DataError(f"{where}: field 'labels' must map at least two labels to descriptions")
    known = {f for f in TaskConfig.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    data_raw = raw.get("data") or {}
    try:
        data = TaskData(**data_raw)
    except TypeError as err:
        raise DataError(f"{where}: field 'data': {err}") from None
    fields = {k: v for k, v in raw.items() if k not in ("labels", "data")}
    try:
        task = TaskConfig(labels={str(k): str(v or "") for k, v in labels.items()}, data=data, **fields)
    except TypeError as err:
        raise DataError(f"{where}: {err}") from None
    if not isinstance(task.max_words, int) or task.max_words < 1:
        raise DataError(f"{where}: field 'max_words' must be a positive integer")
    return task


def load_task(name_or_path: str | Path) -> TaskConfig:
    """A bundled task by name (``sms_spam``) or a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        if str(name_or_path) in bundled_tasks():
            text = (importlib.resources.files("tamis") / "data" / "tasks" / f"{name_or_path}.yaml").read_text("utf-8")
            return task_from_dict(yaml.safe_load(text), f"task {name_or_path}")
        raise DataError(f"{name_or_path}: no such task file and no bundled task of that name; "
                        f"bundled: {', '.join(bundled_tasks())}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({err})") from None
    return task_from_dict(raw, str(path))
