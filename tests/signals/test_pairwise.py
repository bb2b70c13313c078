"""LLM-judge pairwise comparison: order un-swapping, ties, fallbacks (scripted judge), and the real
bundled judge inside ``tamis eval --versus``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from tamis.cli import app
from tamis.models.base import LLM, LogprobsUnavailable, ResponseLogprobs
from tamis.signals.pairwise import JudgeConfig, judge_pairs

runner = CliRunner()


class ScriptedJudge(LLM):
    """Plumbing only: prefers the response containing 'good', with a bias towards the letter A."""

    def __init__(self, logprobs: bool = True, bias: float = 0.0, answer: str | None = None):
        self.has_logprobs, self.bias, self.answer = logprobs, bias, answer

    @property
    def identity(self) -> str:
        return "scripted-judge"

    def _probs(self, prompt: str) -> dict[str, float]:
        a = re.search(r"Response \(A\): (.*?)\n\nResponse \(B\)", prompt, re.S).group(1)
        b = re.search(r"Response \(B\): (.*?)\n\n", prompt, re.S).group(1)
        score = {"A": float("good" in a) + self.bias, "B": float("good" in b), "C": 0.5}
        return score

    def generate(self, prompts, params):
        if self.answer is not None:
            return [[self.answer] * params.n for _ in prompts]
        out = []
        for p in prompts:
            s = self._probs(p[-1]["content"])
            out.append([max(s, key=s.get)] * params.n)
        return out

    def logprobs(self, prompts, responses):
        if not self.has_logprobs:
            raise LogprobsUnavailable("scripted judge without log-probs")
        return [ResponseLogprobs((r,), (self._probs(p[-1]["content"])[r] * 4.0,)) for p, r in zip(prompts, responses)]

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return ""


QUESTIONS = ["q1", "q2", "q3", "q4"]
FIRST = ["a good answer", "meh", "same text", "meh too"]
SECOND = ["meh", "a good answer", "same text", "also meh"]


def test_both_orders_cancel_position_bias_and_ties_are_kept():
    judged, counts = judge_pairs(ScriptedJudge(bias=0.6), QUESTIONS, FIRST, SECOND, JudgeConfig())
    verdicts = [j.verdict(0.7)[0] for j in judged]
    assert verdicts[:3] == ["a", "b", "tie"]
    assert judged[2].identical and counts["identical"] == 1
    # the biased judge says A in both orders for q4: un-swapped, one vote each way -> not consistent
    assert not judged[3].consistent and counts["inconsistent_orders"] >= 1
    assert judged[3].probs[0] == pytest.approx(judged[3].probs[1])
    for j in judged:
        if not j.identical:
            assert j.probs.sum() == pytest.approx(1.0)


def test_greedy_fallback_and_unparseable_answers_are_counted():
    judged, counts = judge_pairs(ScriptedJudge(logprobs=False), QUESTIONS, FIRST, SECOND, JudgeConfig(k=2))
    assert [j.verdict(0.7)[0] for j in judged[:2]] == ["a", "b"]
    assert judged[0].verdict(0.7)[1] == pytest.approx(1.0)
    judged, counts = judge_pairs(ScriptedJudge(logprobs=False, answer="I cannot say."), QUESTIONS, FIRST, SECOND,
                                 JudgeConfig(k=2))
    assert counts["verdict_unparsed"] == 6 and counts["verdict_samples_unparsed"] == 12
    assert all(np.isnan(j.verdict(0.7)[1]) for j in judged if not j.identical)


@pytest.mark.slow
def test_eval_versus_an_earlier_run_with_the_real_judge(tmp_path, models_dir, shared_data):
    """The bundled model's answers against broken ones (an earlier run's outputs replaced by noise).

    The bundled 135M model is no judge: it answers with the letter of whichever response comes first
    in both orders (measured: 6 of 6 pairs, even "Paris" vs "Berlin"). Asking both orders must then
    cancel the bias exactly: model and versus get the same probability, so the win rate is not
    inflated by position. Un-swapping wrongly would give the first-shown side ~0.8 instead."""
    test = tmp_path / "test.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {a} plus {b}? Answer with the number."},
                          {"role": "assistant", "content": str(a + b)}], "id": f"q{a}"} for a, b in
            [(2, 3), (4, 4), (10, 5), (7, 1), (6, 6), (3, 9)]]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ws = ["-w", str(tmp_path / "ws")]
    first = runner.invoke(app, ["eval", "transformers:smollm2", str(test), "--max-tokens", "16",
                                "--out", str(tmp_path / "base"), *ws])
    assert first.exit_code == 0, first.output
    broken = tmp_path / "broken"
    broken.mkdir()
    with open(tmp_path / "base" / "outputs.jsonl") as f, open(broken / "outputs.jsonl", "w") as g:
        for line in f:
            row = json.loads(line)
            row["prediction"] = "zebra umbrella purple"
            g.write(json.dumps(row) + "\n")
    res = runner.invoke(app, ["eval", "transformers:smollm2", str(test), "--max-tokens", "16", "--versus",
                              str(broken), "--out", str(tmp_path / "cmp"), *ws])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    win = summary["metrics"]["win_rate"]
    assert win["wins"] + win["ties"] + win["losses"] == len(rows) and win["versus"] == str(broken)
    assert win["inconsistent_orders"] >= 1
    outputs = [json.loads(line) for line in open(tmp_path / "cmp" / "outputs.jsonl")]
    for row in outputs:
        p = row["pairwise"]
        assert p["winner"] in ("model", "versus", "tie") and 0 <= p["confidence"] <= 1
        assert p["versus_prediction"] == "zebra umbrella purple"
        assert p["p_model"] + p["p_versus"] + p["p_tie"] == pytest.approx(1.0)
        assert abs(p["p_model"] - p["p_versus"]) < 0.15, p  # the position bias cancelled
    manifest = json.loads((tmp_path / "cmp" / "manifest.json").read_text())
    assert "judge" in manifest["models"]
    # a missing comparison output is a clear error naming the file
    (broken / "outputs.jsonl").write_text("")
    res = runner.invoke(app, ["eval", "transformers:smollm2", str(test), "--versus", str(broken), *ws])
    assert res.exit_code != 0 and "outputs.jsonl" in res.output and "no output" in res.output


def test_recipe_pairwise_baseline_is_checked_and_judged_first(tmp_path):
    from tamis.io import DataError
    from tamis.pipeline.recipe import load_recipe

    recipe_file = tmp_path / "r.yaml"
    body = "name: x\ndata: {train: a.jsonl, test: b.jsonl}\nvariants: {raw: [], small: [{sample: {n: 2}}]}\n"
    recipe_file.write_text(body + "eval: {pairwise: {baseline: small}}\n")
    assert load_recipe(recipe_file).variant_order() == ["small", "raw"]
    recipe_file.write_text(body + "eval: {pairwise: {baseline: rwa}}\n")
    with pytest.raises(DataError, match=r"r\.yaml: .*baseline 'rwa' is not a variant \(variants: raw, small\)"):
        load_recipe(recipe_file)
