"""The YAML recipe that describes a whole study: data variants x models x seeds, training, evaluation.

    name: clear-small
    data: {train: train.jsonl, test: test.jsonl}     # paths relative to the recipe file
    variants:
      raw: []                                       # the training data as it is
      random-half: [{sample: {fraction: 0.5}}]      # a list of curation steps
      selected-100: {steps: [{sample: {n: 100}}], group: selected, x: 100}   # x/group draw curves
    models: ["transformers:smollm2", "transformers:smollm2?layers=10"]
    seeds: [0]
    train: {max_steps: 30, batch_size: 8}           # tamis.train.sft.SFTSettings fields
    eval: {metrics: [accuracy, token_f1], max_tokens: 64, limit: 40,
           pairwise: {baseline: raw}}               # LLM-judge win rate of each variant vs raw

Validated with pydantic, so a typo names the field and the recipe file.

Data references (``data.train``, ``data.test``, a variant's ``train``, file parameters of steps) may
be paths relative to the recipe, ``data-root:REL`` (the shared real data sets) or ``split:NAME`` (a
split built by ``data.source``, a named builder: see tamis.pipeline.sources):

    data: {source: {builder: post_edits, params: {n_train: 200}}}   # builds split:edited, ...
    variants:
      unedited: {train: "split:unedited"}           # this variant starts from other training data

A recipe with ``study: synthetic`` runs the synthetic-data study instead (every other field is a
tamis.pipeline.synthetic.SyntheticStudyConfig field). Shipped recipes are found by name
(``find_recipe``); ``--set key.path=VALUE`` overrides (YAML values) are applied before validation.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tamis.io import DataError
from tamis.pipeline.recipe_schema import Recipe, SyntheticRecipe


def _problem(error: Any) -> str:
    """One pydantic error as 'field.path: message' (a model-level error has no path)."""
    where = ".".join(map(str, error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


STUDIES = ("variants", "synthetic")
_SYNTHETIC_META = ("study", "name", "description", "base_dir")


def shipped_recipes() -> dict[str, Path]:
    """The recipes shipped with tamis (``src/tamis/data/recipes``), by name."""
    folder = Path(str(importlib.resources.files("tamis") / "data" / "recipes"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, else the shipped recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise DataError(f"{name_or_path}: recipe not found (no such file, and no shipped recipe of that name; "
                    f"shipped: {', '.join(shipped)})")


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key.path=VALUE`` overrides (VALUE is YAML: 1, true, [0, 1], {n: 5}); a number picks a list position
    (``variants.auto-filter.0.confidence_filter.k=2``); missing mappings are created. A YAML alias
    (``warmup: *train``) is a copy here: an override changes the path it names, not the anchor's other uses."""
    raw = _unshared(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise DataError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.max_steps=1")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise DataError(f"--set {item!r}: the value is not valid YAML: {err}") from None
        node: Any = raw
        for i, part in enumerate(parts):
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):  # a list position: variants.clean.0.sample.n=5
                if not (part.isdigit() and int(part) < len(node)):
                    raise DataError(f"--set {item!r}: {where}: {'.'.join(parts[:i])} is a list of {len(node)}; "
                                    f"give a position 0..{len(node) - 1}")
                key: Any = int(part)
            elif isinstance(node, dict):
                key = part
            else:
                raise DataError(f"--set {item!r}: {'.'.join(parts[:i])} is a value, not a mapping or list")
            if i == len(parts) - 1:
                node[key] = parsed
            else:
                if isinstance(node, dict) and node.get(key) is None:
                    node[key] = {}
                node = node[key]
    return raw


def _unshared(node: Any) -> Any:
    """A copy in which no two places share one dict or list (YAML aliases are shared objects)."""
    if isinstance(node, dict):
        return {k: _unshared(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unshared(v) for v in node]
    return node


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe | SyntheticRecipe:
    """Read, override and validate a recipe file (or a shipped recipe's name)."""
    path = find_recipe(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: recipe not found") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a recipe is a YAML mapping with name, data, variants, models, train, eval")
    raw = apply_overrides(raw, overrides)
    raw.setdefault("base_dir", str(path.resolve().parent))
    study = raw.get("study", "variants")
    if study not in STUDIES:
        raise DataError(f"{path}: study: {study!r} is not one of {', '.join(STUDIES)}")
    try:
        if study == "synthetic":
            config = {k: v for k, v in raw.items() if k not in _SYNTHETIC_META}
            return SyntheticRecipe.model_validate({k: v for k, v in raw.items() if k in _SYNTHETIC_META}
                                                  | {"config": config})
        raw.pop("study", None)
        return Recipe.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(_problem(e) for e in err.errors())
        raise DataError(f"{path}: {problems}") from None
