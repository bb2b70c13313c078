"""The recipe's schema: pydantic models of a study (data, variants, models, seeds, training,
evaluation, comparison, engine) and of the synthetic study; ``dataclass_config`` checks a mapping
against a config dataclass. Loading and finding recipes: tamis.pipeline.recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tamis.io import DataError


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    group: str | None = None
    x: float | None = None
    train: str | None = None  # this variant's training data before its steps [default: data.train]

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, steps: Any) -> Any:
        """Allow ``- sample: {n: 10}`` and bare ``- raw`` (a step with no parameters)."""
        return [{s: {}} if isinstance(s, str) else {k: (v or {}) for k, v in s.items()} for s in steps or []]

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        import tamis.pipeline.label_curation  # noqa: F401  (registers label_filter, sample_as)
        from tamis.curate.steps import get_step

        for step in steps:
            if len(step) != 1:
                raise ValueError(f"a step is one name with its parameters, got {sorted(step)}")
            try:
                get_step(next(iter(step)))
            except DataError as err:
                raise ValueError(str(err)) from None
        return steps


class SourceSpec(BaseModel):
    """A named builder (tamis.pipeline.sources) that makes the recipe's data splits for each run."""

    model_config = ConfigDict(extra="forbid")
    builder: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_builder(self) -> SourceSpec:
        from tamis.pipeline.sources import builder_params

        try:
            builder_params(self.builder, self.params)
        except DataError as err:
            raise ValueError(str(err)) from None
        return self


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: str | None = None  # default with a source: split:train
    test: str | None = None  # default with a source: split:test
    source: SourceSpec | None = None
    format: str | None = None
    test_format: str | None = None
    limit: int | None = None

    @model_validator(mode="after")
    def _train_and_test(self) -> DataSpec:
        if self.source is not None:
            self.train = self.train or "split:train"
            self.test = self.test or "split:test"
        missing = [f for f in ("train", "test") if not getattr(self, f)]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required (a data file, or a data.source whose builder makes "
                             "the splits)")
        return self


class PairwiseSpec(BaseModel):
    """Judge every variant's outputs against the baseline variant's (same model and seed)."""

    model_config = ConfigDict(extra="forbid")
    baseline: str
    judge: str | None = None  # default: the bundled model
    k: int = 0


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None
    max_tokens: int = 128
    limit: int | None = None
    n_resamples: int = 1000
    pairwise: PairwiseSpec | None = None
    scoring: Literal["generate", "options"] = "generate"  # options: the most likely label option is the prediction
    options: list[str] | None = None  # label options for scoring: options [default: each test row's meta.options]
    base_model: bool = False  # also evaluate each model untuned (a row of its own, the same for every seed)


class CompareSpec(BaseModel):
    """How the report answers its question: every variant against ``baseline`` by a paired bootstrap over
    test items and seeds; with an ``oracle`` (clean data) the share of the noise gap each recovers; with
    ``flag`` (a meta field marking injected flaws in the training data) each curation's detection quality."""

    model_config = ConfigDict(extra="forbid")
    baseline: str | None = None  # default: the first variant
    oracle: str | None = None
    metric: str | None = None  # a per-item metric [default: the first one the evaluation scores per item]
    flag: str = "label_noise"
    n_resamples: int = Field(10000, ge=100)


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
    compare: CompareSpec = Field(default_factory=CompareSpec)
    # where the steps' model calls run (tamis.engine.EngineConfig's fields: engine, address, workers, ...);
    # not part of the study's identity: it changes how fast, never what
    engine: dict[str, Any] = Field(default_factory=dict)
    base_dir: str = "."
    _splits: dict[str, Path] = PrivateAttr(default_factory=dict)  # split:NAME -> file, set by the runner

    @field_validator("train")
    @classmethod
    def _sft_settings(cls, train: dict[str, Any]) -> dict[str, Any]:
        """Every training setting must be a tamis.train.sft.SFTSettings field of the right type."""
        from tamis.train.sft import SFTSettings

        owned = sorted(set(train) & {"model", "seed"})
        if owned:
            raise ValueError(f"{owned[0]}: set by the study (top-level models: and seeds:), not under train")
        dataclass_config(SFTSettings, train)
        return train

    @field_validator("engine")
    @classmethod
    def _engine(cls, engine: dict[str, Any]) -> dict[str, Any]:
        from tamis.engine.base import EngineConfig

        dataclass_config(EngineConfig, engine, "engine.")
        return engine

    @property
    def engine_config(self) -> Any:
        """The ``engine:`` mapping as a tamis.engine.EngineConfig (defaults: this process)."""
        from tamis.engine.base import EngineConfig

        return dataclass_config(EngineConfig, self.engine, "engine.")

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, variants: Any) -> Any:
        if not variants:
            raise ValueError("a recipe needs at least one variant")
        return {name: ({"steps": v} if isinstance(v, list) or v is None else v) for name, v in variants.items()}

    @model_validator(mode="after")
    def _pairwise_baseline(self) -> "Recipe":
        pairwise = self.eval.pairwise
        if pairwise is not None and pairwise.baseline not in self.variants:
            raise ValueError(f"eval.pairwise.baseline {pairwise.baseline!r} is not a variant "
                             f"(variants: {', '.join(self.variants)})")
        for field in ("baseline", "oracle"):
            name = getattr(self.compare, field)
            if name is not None and name not in self.variants:
                raise ValueError(f"compare.{field} {name!r} is not a variant (variants: {', '.join(self.variants)})")
        return self

    @property
    def baseline(self) -> str:
        """The variant every other is compared with (compare.baseline, else the first variant)."""
        return self.compare.baseline or next(iter(self.variants))

    def variant_order(self) -> list[str]:
        """Variants in recipe order, the pairwise baseline first (the others are judged against it)."""
        first = [self.eval.pairwise.baseline] if self.eval.pairwise else []
        return first + [v for v in self.variants if v not in first]

    def path(self, relative: str) -> Path:
        """The file a data reference names: a path relative to the recipe, data-root:REL or split:NAME."""
        from tamis.pipeline.sources import resolve_reference

        return resolve_reference(relative, self.base_dir, self._splits)

    def use_splits(self, splits: dict[str, Path]) -> None:
        """The files ``data.source`` built for this run (what ``split:NAME`` references resolve to)."""
        self._splits = dict(splits)

    def variant_train(self, name: str) -> str:
        """The training data a variant's steps start from."""
        return self.variants[name].train or str(self.data.train)

    def data_references(self) -> list[str]:
        """Every data file the recipe reads: train and test, variants' train, string step parameters
        that are references (data-root:, split:)."""
        refs = [str(self.data.test)] + [self.variant_train(v) for v in self.variants]
        for variant in self.variants.values():
            for step in variant.steps:
                for params in step.values():
                    refs += [v for v in params.values() if isinstance(v, str) and v.startswith(("data-root:", "split:"))]
        return list(dict.fromkeys(refs))

    def check_references(self) -> None:
        """Raise one DataError naming every data reference that does not resolve to a file."""
        from tamis.pipeline.sources import missing_file_hint

        problems = []
        for ref in self.data_references():
            try:
                path = self.path(ref)
            except DataError as err:
                problems.append(str(err))
                continue
            if not path.exists():
                problems.append(missing_file_hint(ref, path))
        if problems:
            raise DataError(f"recipe {self.name!r}: " + "; ".join(problems))

    def variant_key(self, name: str) -> str:
        """A hash of everything that determines a variant's training data."""
        blob = json.dumps([self.data.model_dump(), self.variants[name].model_dump()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class SyntheticRecipe(BaseModel):
    """``study: synthetic``: the real vs zero-shot vs few-shot study (tamis.pipeline.synthetic); every
    field besides name, description and study is a SyntheticStudyConfig field (nested ones merge with
    their defaults, so ``classifier: {max_steps: 2}`` keeps the other classifier settings)."""

    model_config = ConfigDict(extra="forbid")
    study: Literal["synthetic"]
    name: str
    description: str = ""
    base_dir: str = "."
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _config_fields(self) -> SyntheticRecipe:
        self.study_config()
        return self

    def study_config(self, out: str | Path | None = None):
        """The SyntheticStudyConfig this recipe describes (``data`` may be any data reference)."""
        from tamis.pipeline.sources import resolve_reference
        from tamis.pipeline.synthetic import SyntheticStudyConfig

        config = dataclass_config(SyntheticStudyConfig, self.config)
        if config.data:
            config.data = str(resolve_reference(config.data, self.base_dir))
        if out is not None:
            config.out = str(out)
        return config


def dataclass_config(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """A config dataclass from a mapping: unknown fields are errors, nested dataclass fields merge with
    their defaults, values are checked and converted by pydantic."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}{unknown[0]}: not a field of {cls.__name__} (fields: {', '.join(fields)})")
    merged: dict[str, Any] = {}
    for name, value in values.items():
        field = fields[name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = dataclasses.asdict(dataclass_config(type(default), dataclasses.asdict(default) | value,
                                                        f"{where}{name}."))
        merged[name] = value
    try:
        return TypeAdapter(cls).validate_python(merged)
    except ValidationError as err:
        e = err.errors()[0]
        raise ValueError(f"{where}{'.'.join(map(str, e['loc']))}: {e['msg']}") from None
