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
    eval: {metrics: [accuracy, token_f1], max_tokens: 64, limit: 40}

Validated with pydantic, so a typo names the field and the recipe file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tamis.io import DataError


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    group: str | None = None
    x: float | None = None

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, steps: Any) -> Any:
        """Allow ``- sample: {n: 10}`` and bare ``- raw`` (a step with no parameters)."""
        return [{s: {}} if isinstance(s, str) else {k: (v or {}) for k, v in s.items()} for s in steps or []]


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: str
    test: str
    format: str | None = None
    test_format: str | None = None
    limit: int | None = None


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None
    max_tokens: int = 128
    limit: int | None = None
    n_resamples: int = 1000


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    data: DataSpec
    variants: dict[str, Variant]
    models: list[str] = Field(default_factory=lambda: ["transformers:smollm2"])
    seeds: list[int] = Field(default_factory=lambda: [0])
    train: dict[str, Any] = Field(default_factory=dict)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    base_dir: str = "."

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, variants: Any) -> Any:
        if not variants:
            raise ValueError("a recipe needs at least one variant")
        return {name: ({"steps": v} if isinstance(v, list) or v is None else v) for name, v in variants.items()}

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def variant_key(self, name: str) -> str:
        """A hash of everything that determines a variant's training data."""
        blob = json.dumps([self.data.model_dump(), self.variants[name].model_dump()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: recipe not found") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a recipe is a YAML mapping with name, data, variants, models, train, eval")
    raw.setdefault("base_dir", str(path.resolve().parent))
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise DataError(f"{path}: {problems}") from None
