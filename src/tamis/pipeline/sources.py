"""Where a recipe's data comes from: the shared data root, data references, and named builders.

A recipe names a data file in one of three ways (``resolve_reference``):

- a path, absolute or relative to the recipe file;
- ``data-root:REL``: REL inside the folder of shared real data sets (``data_root``:
  ``$TAMIS_DATA_ROOT``, else ``../shared/data`` from the working directory, else ``../shared/data``
  beside the source checkout), so a shipped recipe never holds a machine's path;
- ``split:NAME``: a split that the recipe's ``data.source`` builder wrote for this run.

A builder turns raw files whose shape no reader covers (a test set and its system outputs in
separate files, a post-editing table with several target columns) into named splits of examples,
seeded, with the held-out split sharing no prompt with any other split (``build_source`` checks
this and writes every split as JSONL with a ``splits.json`` summary). Builders register by name with
``@register_builder(name, ParamsModel)``; their parameters are a pydantic model, so a recipe typo
names the field. The builders of the shipped studies live in ``tamis.pipeline.builders``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tamis.io import DataError, write_dataset
from tamis.records import Example
from tamis.store import atomic_write_text

DATA_ROOT_ENV = "TAMIS_DATA_ROOT"
DATA_ROOT_PREFIX = "data-root:"
SPLIT_PREFIX = "split:"

Resolver = Callable[[str], Path]


def data_root(explicit: str | Path | None = None) -> Path:
    """The folder of shared real data sets: ``explicit``, else $TAMIS_DATA_ROOT, else ../shared/data
    from the working directory, else ../shared/data beside the source checkout (the first that exists;
    the working-directory one when none does, so errors name the conventional place)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    candidates = [Path("../shared/data"), Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def resolve_reference(ref: str, base_dir: str | Path = ".", splits: Mapping[str, Path] | None = None) -> Path:
    """The file a recipe's data reference names (see the module docstring)."""
    if ref.startswith(DATA_ROOT_PREFIX):
        return data_root() / ref[len(DATA_ROOT_PREFIX):]
    if ref.startswith(SPLIT_PREFIX):
        name = ref[len(SPLIT_PREFIX):]
        if not splits:
            raise DataError(f"{ref}: no data source has built splits yet; a recipe refers to split:NAME only "
                            "when its data.source builder makes that split")
        if name not in splits:
            raise DataError(f"{ref}: the data source built no split {name!r}; it built: {', '.join(sorted(splits))}")
        return Path(splits[name])
    path = Path(ref)
    return path if path.is_absolute() else Path(base_dir) / path


def missing_file_hint(ref: str, path: Path) -> str:
    if ref.startswith(DATA_ROOT_PREFIX):
        return (f"{ref}: {path} not found; set ${DATA_ROOT_ENV} to the folder of the shared data sets "
                f"(default ../shared/data from the working directory)")
    return f"{ref}: {path} not found"


@dataclass
class Builder:
    name: str
    fn: Callable[[Any, Resolver], dict[str, list[Example]]]
    params: type[BaseModel]
    description: str


BUILDERS: dict[str, Builder] = {}


def register_builder(name: str, params: type[BaseModel]) -> Callable:
    """Register ``fn(params, resolve) -> {split name: examples}``; its docstring's first line describes it."""

    def decorate(fn: Callable[[Any, Resolver], dict[str, list[Example]]]) -> Callable:
        BUILDERS[name] = Builder(name, fn, params, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorate


def get_builder(name: str) -> Builder:
    import tamis.pipeline.builders  # noqa: F401  (registers the shipped builders)

    if name not in BUILDERS:
        raise DataError(f"unknown data builder {name!r}; available: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[name]


def builder_params(name: str, params: Mapping[str, Any]) -> BaseModel:
    """The builder's parameters, validated; errors name the builder and the field."""
    builder = get_builder(name)
    try:
        return builder.params.model_validate(dict(params))
    except ValidationError as err:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise DataError(f"builder {name!r}: {problems}") from None


def held_out_overlap(splits: Mapping[str, list[Example]], held_out: str = "test") -> list[str]:
    """Problems where the held-out split shares an example id or a prompt with another split."""
    if held_out not in splits:
        return []
    test_ids = {ex.id for ex in splits[held_out]}
    test_prompts = {_prompt(ex) for ex in splits[held_out]}
    problems = []
    for name, examples in splits.items():
        if name == held_out:
            continue
        ids = sorted(test_ids & {ex.id for ex in examples})
        prompts = test_prompts & {_prompt(ex) for ex in examples}
        if ids or prompts:
            problems.append(f"split {name!r} shares {len(ids)} ids and {len(prompts)} prompts with {held_out!r}"
                            + (f" (e.g. {ids[0]})" if ids else ""))
    return problems


def _prompt(ex: Example) -> str:
    return json.dumps(ex.prompt_messages, sort_keys=True) if ex.kind == "chat" else ex.text or ""


def build_source(name: str, params: Mapping[str, Any], resolve: Resolver, out_dir: str | Path) -> dict[str, Path]:
    """Run a builder and write its splits to ``out_dir/NAME.jsonl``; returns {split name: file}."""
    builder = get_builder(name)
    splits = builder.fn(builder_params(name, params), resolve)
    empty = [s for s, examples in splits.items() if not examples]
    if empty:
        raise DataError(f"builder {name!r} produced empty splits: {', '.join(empty)}; check its parameters")
    problems = held_out_overlap(splits)
    if problems:
        raise DataError(f"builder {name!r}: held-out data overlaps the training data: {'; '.join(problems)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {split: write_dataset(examples, out / f"{split}.jsonl") for split, examples in splits.items()}
    summary = {"builder": name, "params": dict(params), "splits": {s: len(e) for s, e in splits.items()}}
    atomic_write_text(out / "splits.json", json.dumps(summary, indent=2, default=str) + "\n")
    return files
