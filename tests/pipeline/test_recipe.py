"""Recipes: validation with clear errors, and the built-in curation steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tamis.errors import ConfigError

from tamis.io import DataError, read_dataset
from tamis.pipeline.demo import demo_data_path
from tamis.pipeline.recipe import load_recipe
from tamis.curate.steps import StepContext, get_step


def test_shipped_recipe_loads_with_paths_relative_to_it():
    from tamis.pipeline.demo import demo_sms_path
    from tamis.pipeline.sources import resolve_reference

    recipe = load_recipe(Path(demo_data_path()).parent / "recipes" / "demo-study.yaml")
    assert set(recipe.variants) == {"raw", "label-filter", "random-same-size", "clean"}
    assert resolve_reference(recipe.data.source.params["path"], recipe.base_dir).resolve() == demo_sms_path().resolve()
    assert recipe.variants["random-same-size"].steps == [{"sample_as": {"variant": "label-filter"}}]
    assert recipe.variant_key("raw") != recipe.variant_key("random-same-size")


def test_typos_are_reported_with_the_field_and_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\ndata: {train: a.jsonl, test: b.jsonl}\nvariants: {raw: []}\ntrian: {max_steps: 1}\n")
    with pytest.raises(DataError, match=r"r\.yaml: trian: Extra inputs"):
        load_recipe(bad)
    bad.write_text("name: x\ndata: {train: a.jsonl}\nvariants: {raw: []}\n")
    with pytest.raises(DataError, match="data: test: required"):
        load_recipe(bad)


def test_engine_key_is_checked_and_left_out_of_the_studys_identity(tmp_path):
    base = "name: x\ndata: {train: a.jsonl, test: b.jsonl}\nvariants: {raw: []}\n"
    bad = tmp_path / "r.yaml"
    bad.write_text(base + "engine: {engine: ray, wrokers: 2}\n")
    with pytest.raises(DataError, match=r"r\.yaml: engine: .*wrokers: not a field of EngineConfig"):
        load_recipe(bad)
    bad.write_text(base + "engine: {engine: ray, workers: 0}\n")
    with pytest.raises(DataError, match="workers"):
        load_recipe(bad)
    good = tmp_path / "g.yaml"
    good.write_text(base + "engine: {engine: ray, workers: 2, gpus_per_worker: 0.5}\n")
    recipe = load_recipe(good)
    assert (recipe.engine_config.engine, recipe.engine_config.workers, recipe.engine_config.gpus_per_worker) == ("ray", 2, 0.5)
    plain = tmp_path / "p.yaml"
    plain.write_text(base)
    assert load_recipe(plain).engine_config.engine == "local"
    assert load_recipe(plain).model_dump(exclude={"engine"}) == recipe.model_dump(exclude={"engine"})


def test_sample_step_is_seeded_and_gives_every_example_a_reason(tmp_path, workspace):
    examples = read_dataset(demo_data_path()).examples
    step = get_step("sample")
    ctx = StepContext(workspace=workspace, out_dir=tmp_path)
    first = step(examples, {"n": 10}, ctx)
    assert len(first) == len(examples) and sum(d.action == "keep" for d in first) == 10
    assert all(d.reason for d in first)
    assert [d.action for d in step(examples, {"n": 10}, ctx)] == [d.action for d in first]
    assert [d.action for d in step(examples, {"n": 10, "seed": 1}, ctx)] != [d.action for d in first]


def test_unknown_step_names_the_available_ones():
    with pytest.raises(ConfigError, match="unknown recipe step 'nope'.*known: .*sample"):
        get_step("nope")
