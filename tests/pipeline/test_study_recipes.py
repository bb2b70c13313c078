"""The shipped study recipes: each loads, validates and finds its data; names, overrides, references."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.io import DataError
from tamis.pipeline.recipe import Recipe, SyntheticRecipe, apply_overrides, find_recipe, load_recipe, shipped_recipes
from tamis.pipeline.sources import build_source, data_root, resolve_reference

STUDIES = {"clear", "clear-spam", "gdig", "gdig-spam", "hedit", "synthetic", "synthetic-irony", "synthetic-fpb",
           "demo-study", "label-noise"}


def test_every_study_ships_as_a_recipe_with_a_description():
    assert set(shipped_recipes()) == STUDIES
    for name, path in shipped_recipes().items():
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.description.strip(), name
        assert load_recipe(path).model_dump() == recipe.model_dump()
    synthetic = {"synthetic", "synthetic-irony", "synthetic-fpb"}
    assert all(isinstance(load_recipe(n), SyntheticRecipe) for n in synthetic)
    assert all(isinstance(load_recipe(n), Recipe) for n in STUDIES - synthetic)


def test_shipped_recipes_name_no_machine_paths():
    for path in shipped_recipes().values():
        text = path.read_text()
        assert "/work/" not in text and "shared/data" not in text, path


def test_recipes_command_lists_them():
    result = CliRunner().invoke(app, ["experiment", "recipes"])
    assert result.exit_code == 0, result.output
    for name in STUDIES:
        assert name in result.output


def test_a_name_or_a_path_finds_a_recipe(tmp_path):
    assert find_recipe("gdig") == shipped_recipes()["gdig"]
    own = tmp_path / "gdig"  # an existing file wins over a shipped name
    own.write_text("name: mine\ndata: {train: a.jsonl, test: b.jsonl}\nvariants: {raw: []}\n")
    assert find_recipe(own) == own
    with pytest.raises(DataError, match="no shipped recipe of that name; shipped: clear-spam, clear, "):
        find_recipe("no-such-study")


def test_overrides_set_nested_fields_and_are_validated():
    raw = apply_overrides({"train": {"epochs": 2}}, ["train.max_steps=1", "data.limit=20", "seeds=[0, 1]",
                                                     "eval.metrics=[bleu]"])
    assert raw == {"train": {"epochs": 2, "max_steps": 1}, "data": {"limit": 20}, "seeds": [0, 1],
                   "eval": {"metrics": ["bleu"]}}
    # a YAML alias is a copy: overriding the training leaves a warm-up that aliased it (demo-study) alone
    demo = load_recipe("demo-study", ["train.max_steps=7"])
    assert demo.train["max_steps"] == 7
    assert demo.variants["label-filter"].steps[0]["label_filter"]["warmup"]["max_steps"] == 32
    recipe = load_recipe("hedit", ["train.max_steps=1", "data.source.params.n_train=8", "eval.limit=3"])
    assert recipe.train["max_steps"] == 1 and recipe.eval.limit == 3
    assert recipe.data.source.params["n_train"] == 8
    with pytest.raises(DataError, match="train: max_step: not a field of SFTSettings"):
        load_recipe("hedit", ["train.max_step=1"])
    with pytest.raises(DataError, match="params.n_trian: Extra inputs"):
        load_recipe("hedit", ["data.source.params.n_trian=8"])
    with pytest.raises(DataError, match="expected KEY.PATH=VALUE"):
        load_recipe("hedit", ["train.max_steps"])
    with pytest.raises(DataError, match="unknown recipe step 'smple'"):
        load_recipe("gdig", ["variants.random-50.steps=[{smple: {n: 5}}]"])
    with pytest.raises(DataError, match="classifier.bogus: not a field of ClassifierConfig"):
        load_recipe("synthetic", ["classifier.bogus=1"])


def test_synthetic_recipe_fields_become_the_study_config(tmp_path):
    recipe = load_recipe("synthetic", ["classifier.max_steps=2", "n_per_label=3", "seeds=[0]"])
    config = recipe.study_config(out=tmp_path)
    assert (config.task, config.n_per_label, config.seeds, config.out) == ("sms_spam", 3, (0,), str(tmp_path))
    # a nested config merges with its defaults: the recipe's epochs and max_length stay
    assert (config.classifier.max_steps, config.classifier.epochs, config.classifier.max_length) == (2, 5.0, 64)


def test_data_references_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_DATA_ROOT", str(tmp_path))
    assert data_root() == tmp_path and data_root("elsewhere") == Path("elsewhere")
    assert resolve_reference("data-root:a/b.jsonl") == tmp_path / "a/b.jsonl"
    assert resolve_reference("x.jsonl", "/r") == Path("/r/x.jsonl")
    assert resolve_reference("split:seed", splits={"seed": tmp_path / "seed.jsonl"}) == tmp_path / "seed.jsonl"
    with pytest.raises(DataError, match="built no split 'sed'; it built: seed"):
        resolve_reference("split:sed", splits={"seed": tmp_path / "seed.jsonl"})
    with pytest.raises(DataError, match="no data source has built splits"):
        resolve_reference("split:seed")
    recipe = load_recipe("hedit")
    with pytest.raises(DataError, match="TAMIS_DATA_ROOT"):  # the missing file names the setting to fix
        build_source(recipe.data.source.builder, recipe.data.source.params, recipe.path, tmp_path / "out")


def test_without_a_source_train_and_test_are_required(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\ndata: {test: b.jsonl}\nvariants: {raw: []}\n")
    with pytest.raises(DataError, match="data: train: required"):
        load_recipe(bad)
    bad.write_text("name: x\ndata: {source: {builder: nope}}\nvariants: {raw: []}\n")
    with pytest.raises(DataError, match="unknown data builder 'nope'; available: noisy_instructions"):
        load_recipe(bad)


@pytest.mark.parametrize("name", ["clear", "clear-spam", "gdig", "hedit", "label-noise", "demo-study"])
def test_shipped_recipe_data_resolves(name, shared_data, tmp_path, monkeypatch):
    """Build the recipe's data at its default size: every reference then names an existing file."""
    monkeypatch.setenv("TAMIS_DATA_ROOT", str(shared_data))
    recipe = load_recipe(name)
    source = recipe.data.source
    splits = build_source(source.builder, source.params, recipe.path, tmp_path)
    recipe.use_splits(splits)
    recipe.check_references()
    assert (tmp_path / "splits.json").is_file()
    for ref in recipe.data_references():
        assert recipe.path(ref).is_file(), ref


def test_synthetic_recipe_data_resolves(shared_data, monkeypatch):
    from tamis.generate import load_task
    from tamis.pipeline.synthetic import load_task_data

    monkeypatch.setenv("TAMIS_DATA_ROOT", str(shared_data))
    config = load_recipe("synthetic").study_config()
    train, test, path = load_task_data(load_task(config.task), config)
    assert path.is_file() and len(test) == config.test_size and len(train) > config.n_per_label


def test_step_parameter_typos_fail_before_any_model_loads(tmp_path, workspace):
    from tamis.io import read_dataset
    from tamis.pipeline.demo import demo_data_path
    from tamis.curate.steps import StepContext, get_step
    from tamis.errors import ConfigError

    examples = read_dataset(demo_data_path()).examples[:4]
    ctx = StepContext(workspace=workspace, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="'auto_correct': unknown parameter 'judgek'; did you mean judge_k"):
        get_step("auto_correct")(examples, {"judgek": 1}, ctx)
    with pytest.raises(ConfigError, match="'confidence_filter': unknown parameter"):
        get_step("confidence_filter")(examples, {"quantiel": 0.5}, ctx)
    with pytest.raises(ConfigError, match="'influence_select' needs seed_set"):
        get_step("influence_select")(examples, {"budget": 2}, ctx)
