"""--dry-run: every model-calling command has it; it counts what the real command's backend computes,
estimates time only from a recorded measurement, and writes nothing into the output folder."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from tamis.cli import app

runner = CliRunner()

MODEL_PARAMS = {"model", "embedder", "generator", "judge", "versus"}
NOT_CALLING = {("models", "prepare"),  # loads a model once, calls nothing
               ("inspect",)}           # a tokenizer only
EXPECTED = {("profile",), ("score", "confidence"), ("score", "influence"), ("score", "diversity"), ("correct",),
            ("generate", "labelled"), ("generate", "instructions"), ("generate", "dialogues"), ("train", "sft"),
            ("train", "classifier"), ("experiment", "synthetic"), ("eval",)}


def commands():
    import typer.main

    def walk(cmd, path=()):
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + (name,))
        else:
            yield path, cmd

    yield from walk(typer.main.get_command(app))


def test_every_model_calling_command_has_dry_run():
    calling = set()
    for path, cmd in commands():
        names = {p.name for p in cmd.params}
        if names & MODEL_PARAMS and path not in NOT_CALLING:
            calling.add(path)
        if "dry_run" in names:
            assert {"as_json", "calibrate", "workspace"} <= names, path
            assert path not in NOT_CALLING, path
    assert EXPECTED <= calling
    missing = sorted(p for p in calling if "dry_run" not in {q.name for q in dict(commands())[p].params})
    assert not missing, f"model-calling commands without --dry-run: {missing}"


def test_json_and_calibrate_need_dry_run(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    res = runner.invoke(app, ["profile", str(data), "--json", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "go with --dry-run" in res.output


def _data(tmp_path, n=6):
    data = tmp_path / "data.jsonl"
    rows = [{"id": f"e{i}", "instruction": f"What is {i} plus {i}?", "output": f"{i} plus {i} is {2 * i}."}
            for i in range(n)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _plan(*args):
    res = runner.invoke(app, [str(a) for a in args] + ["--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    return {(op["model"], op["op"]): op for op in plan["operations"]}, plan


@pytest.mark.slow
def test_profile_dry_run_counts_what_the_backend_scores_and_uses_the_measurement(tmp_path, models_dir):
    from tamis.plan import read_throughput

    data, ws = _data(tmp_path), tmp_path / "ws"
    before, _ = _plan("profile", data, "-w", ws, "-o", tmp_path / "dry")
    assert not (tmp_path / "dry").exists()  # nothing written: no run folder, no settings.json
    score = before[("transformers:smollm2", "score")]
    assert score["calls"] == 6 and score["seconds"] is None and score["unit"] == "tokens"
    res = runner.invoke(app, ["profile", str(data), "-w", str(ws), "--dry-run"])
    assert "no measurement yet for transformers:smollm2 (score): run once or pass --calibrate" in " ".join(res.output.split())

    real = runner.invoke(app, ["profile", str(data), "-w", str(ws), "-o", str(tmp_path / "real")])
    assert real.exit_code == 0, real.output
    measured = read_throughput(ws)
    m = measured["transformers:smollm2"]["score"]
    # the real backend's own tokenisation (scoring_ids: template + response + end of turn) of the same rows
    assert m["calls"] == 6 and m["tokens"] == score["prompt_tokens"]
    e = measured["sentence-transformers:minilm"]["embed"]
    assert e["calls"] == 6 and e["tokens"] == before[("sentence-transformers:minilm", "embed")]["prompt_tokens"]

    after, plan = _plan("profile", data, "-w", ws, "-o", tmp_path / "dry2")
    assert not (tmp_path / "dry2").exists()
    assert after[("transformers:smollm2", "score")]["seconds"] == pytest.approx(m["seconds"])
    assert plan["estimated_seconds"] == pytest.approx(m["seconds"] + e["seconds"])


@pytest.mark.slow
def test_confidence_dry_run_counts_samples_and_reflection_like_the_real_run(tmp_path, models_dir):
    from tamis.plan import read_throughput

    data, ws = _data(tmp_path, 3), tmp_path / "ws"
    args = ["score", "confidence", data, "-w", ws, "--k", "2", "--max-tokens", "8", "--no-baselines"]
    plan, _ = _plan(*args, "-o", tmp_path / "dry")
    gen, choices = plan[("transformers:smollm2", "generate")], plan[("transformers:smollm2", "choices")]
    assert gen["calls"] == 6 and gen["generated_tokens"] == 6 * 8  # k samples per example, at most max_tokens
    from tamis.signals.confidence import ConfidenceConfig

    # every reflection prompt of every example, one shared forward pass each
    assert choices["calls"] == 3 * len(ConfidenceConfig().reflection_prompts)
    assert not (tmp_path / "dry").exists()

    real = runner.invoke(app, [str(a) for a in args] + ["-o", str(tmp_path / "real")])
    assert real.exit_code == 0, real.output
    m = read_throughput(ws)["transformers:smollm2"]
    assert m["choices"]["calls"] == choices["calls"] and m["choices"]["tokens"] == choices["prompt_tokens"]
    assert m["generate"]["calls"] == gen["calls"] and 0 < m["generate"]["tokens"] <= gen["generated_tokens"]
    again, _ = _plan(*args, "-o", tmp_path / "dry")
    g = again[("transformers:smollm2", "generate")]
    # generation is paced by generated tokens: the estimate is an upper bound at max_tokens per sample
    assert g["seconds"] == pytest.approx(gen["generated_tokens"] * m["generate"]["seconds"] / m["generate"]["tokens"])


@pytest.mark.slow
def test_sft_dry_run_counts_steps_and_estimates_from_the_last_training(tmp_path, models_dir):
    from tamis.plan import read_throughput

    data, ws = _data(tmp_path, 6), tmp_path / "ws"
    args = ["train", "sft", data, "-w", ws, "--max-steps", "2", "--batch-size", "2", "--max-length", "64"]
    plan, _ = _plan(*args, "-o", tmp_path / "dry")
    train = plan[("transformers:smollm2", "train")]
    assert train["calls"] == 2 and train["seconds"] is None
    assert not (tmp_path / "dry").exists()
    real = runner.invoke(app, [str(a) for a in args] + ["-o", str(tmp_path / "real")])
    assert real.exit_code == 0, real.output
    m = read_throughput(ws)["transformers:smollm2"]["train"]
    assert m["calls"] == 2 and m["tokens"] == train["prompt_tokens"]
    again, _ = _plan(*args, "-o", tmp_path / "dry")
    assert again[("transformers:smollm2", "train")]["seconds"] == pytest.approx(m["seconds"])


@pytest.mark.slow
def test_calibrate_times_a_few_real_calls_and_still_writes_no_output(tmp_path, models_dir):
    data, ws = _data(tmp_path, 12), tmp_path / "ws"
    plan, summary = _plan("profile", data, "-w", ws, "-o", tmp_path / "dry", "--calibrate")
    assert not (tmp_path / "dry").exists()
    for key in (("transformers:smollm2", "score"), ("sentence-transformers:minilm", "embed")):
        row = plan[key]
        assert row["measured"]["calls"] == 8 if key[1] == "score" else row["measured"]["calls"] == 12
        assert row["seconds"] > 0
    assert summary["estimated_seconds"] > 0


@pytest.mark.slow
def test_study_and_demo_dry_runs_count_every_training_evaluation_and_step_call(tmp_path, models_dir):
    """experiment run --dry-run: per (variant, model, seed) one training and one evaluation, plus the
    label filter's fold trainings and option scores, counted by the steps' own code; nothing written."""
    ws = tmp_path / "ws"
    sets = ["--set", "data.source.params.n_train=16", "--set", "data.source.params.n_test=10",
            "--set", "seeds=[0, 1]", "--set", "train.max_steps=3"]
    plan, whole = _plan("experiment", "run", "demo-study", "-w", ws, "-o", tmp_path / "dry", *sets)
    train, score = plan[("transformers:smollm2", "train")], plan[("transformers:smollm2", "score")]
    # 4 variants x 2 seeds x 3 steps + 2 fold warm-ups of 8 rows (the warm-up keeps 32 steps, max_steps wins)
    assert train["calls"] == 4 * 2 * 3 + 2 * 32
    # each evaluation scores 10 test items x 2 options; the label filter scores its 16 rows x 2 options
    assert score["calls"] == 4 * 2 * 10 * 2 + 16 * 2
    assert "8 trainings and evaluations" in " ".join(whole["notes"])
    assert not (tmp_path / "dry").exists()
    demo, _ = _plan("demo", "-w", ws)
    assert ("transformers:smollm2", "train") in demo and ("sentence-transformers:minilm", "embed") in demo
    assert not (ws / "runs" / "demo").exists()


@pytest.mark.slow
def test_study_dry_run_plans_influence_selection_once_for_the_variants_that_share_it(tmp_path, models_dir):
    """gdig-spam: four influence_select variants share one warm-up and one influence run (as the real run
    does), planned as gradient passes: K-FAC factors over the candidates, the candidates, the seed set."""
    sets = ["--set", "data.source.params.n_train=16", "--set", "data.source.params.n_test=10",
            "--set", "data.source.params.n_seed=4", "--set", "seeds=[0]", "--set", "train.max_steps=2"]
    plan, whole = _plan("experiment", "run", "gdig-spam", "-w", tmp_path / "ws", "-o", tmp_path / "dry", *sets)
    assert plan[("transformers:smollm2", "gradients")]["calls"] == 16 + 16 + 4
    # 8 variants x 1 seed x 2 steps + one warm-up of one epoch over 16 rows in batches of 4
    assert plan[("transformers:smollm2", "train")]["calls"] == 8 * 2 + 4
    assert not any("not planned" in note for note in whole["notes"])
    assert not (tmp_path / "dry").exists()


@pytest.mark.slow
def test_classifier_and_synthetic_dry_runs_count_steps_and_use_the_measured_speed(tmp_path, shared_data):
    """train classifier: steps from its settings, tokens by the encoder's tokenizer, time from the last real
    training; experiment synthetic: both generation modes by the generator's own code, the diversity
    embeddings and one training per (set, seed)."""
    from tamis.plan import read_throughput

    ws = tmp_path / "ws"
    data = tmp_path / "labelled.jsonl"
    rows = [{"id": f"t{i}", "text": f"message number {i} " + ("win a prize now" if i % 2 else "see you at lunch"),
             "label": "spam" if i % 2 else "ham"} for i in range(20)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", "classifier", data, "-w", ws, "-o", tmp_path / "clf", "--epochs", "2", "--batch-size", "4"]
    plan, _ = _plan(*args)
    assert plan[("minilm", "train_classifier")]["calls"] == 2 * 4  # 16 training texts (20 % held out), batches of 4
    assert plan[("minilm", "classify")]["calls"] == 4 and plan[("minilm", "classify")]["seconds"] is None
    assert not (tmp_path / "clf").exists()
    real = runner.invoke(app, [str(a) for a in args])
    assert real.exit_code == 0, real.output
    measured = read_throughput(ws)["minilm"]
    assert measured["train_classifier"]["calls"] == 8 and measured["classify"]["calls"] == 4
    plan, whole = _plan(*args[:-6], "-o", tmp_path / "clf2", "--epochs", "2", "--batch-size", "4")
    assert plan[("minilm", "train_classifier")]["seconds"] > 0 and whole["estimated_seconds"] > 0

    plan, whole = _plan("experiment", "synthetic", "-w", ws, "--n-per-label", "3", "--test-size", "10",
                        "--seeds", "0,1", "--data-root", shared_data, "-o", tmp_path / "syn")
    assert plan[("llamacpp:smollm2", "generate")]["calls"] >= 2 * 2 * 3  # two modes x two labels x 3 texts
    assert plan[("minilm", "classify")]["calls"] == 3 * 2 * 10  # 3 sets x 2 seeds x 10 test texts
    assert plan[("minilm", "train_classifier")]["calls"] == 3 * 2 * math.ceil(5 * math.ceil(6 / 16))
    assert ("sentence-transformers:minilm", "embed") in plan
    assert not (tmp_path / "syn").exists()
