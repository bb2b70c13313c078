"""BSDetector confidence and the baselines with the real bundled model; resume; bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tamis.models.base import LLM, GenerationParams, LogprobsUnavailable, ModelSpec
from tamis.errors import ConfigError
from tamis.models.cached import CachedLLM
from tamis.records import Message, chat_example, labelled_example
from tamis.signals.choices import choice_logprobs
from tamis.signals.confidence import ConfidenceConfig, bsdetector_confidence
from tamis.signals.quality_baselines import quality_baselines

QA = [("What is the capital of France?", "The capital of France is Paris."),
      ("How many legs does a spider have?", "A spider has eight legs."),
      ("What colour is the sky on a clear day?", "The sky is blue on a clear day.")]
FAST = ConfidenceConfig(k=3, max_tokens=32)


def _pairs(swapped: bool):
    answers = [a for _, a in QA]
    if swapped:
        answers = answers[1:] + answers[:1]
    tag = "bad" if swapped else "good"
    return [chat_example([Message("user", q), Message("assistant", a)], id=f"{tag}{i}")
            for i, ((q, _), a) in enumerate(zip(QA, answers))]


@pytest.mark.slow
def test_swapped_responses_get_lower_confidence(smollm2, minilm):
    report = bsdetector_confidence(_pairs(False) + _pairs(True), smollm2, FAST, embedder=minilm)
    rows = {r["id"]: r for r in report.rows}
    for r in rows.values():
        assert 0 <= r["observed_consistency"] <= 1 and 0 <= r["self_reflection"] <= 1
        assert r["confidence"] == pytest.approx(0.7 * r["observed_consistency"] + 0.3 * r["self_reflection"])
        assert r["reflection_mode"] == "logprobs"
    good = [rows[f"good{i}"]["confidence"] for i in range(3)]
    bad = [rows[f"bad{i}"]["confidence"] for i in range(3)]
    assert np.mean(good) > np.mean(bad) + 0.1
    assert sum(g > b for g in good for b in bad) >= 7  # of 9 pairs
    assert all(len(s) == 3 for s in report.samples.values())


@pytest.mark.slow
def test_choice_fast_path_matches_scored_letters(smollm2):
    prompts = [[{"role": "user", "content": "Is Paris in France? Reply with one letter: A yes, B no, C unsure."}],
               [{"role": "user", "content": "Pick a letter."}]]
    fast = choice_logprobs(smollm2, prompts, ["A", "B", "C"])
    slow = [[smollm2.logprobs([p], [c])[0].logprobs[0] for c in "ABC"] for p in prompts]
    np.testing.assert_allclose(fast, slow, atol=2e-3)


@pytest.mark.slow
def test_baselines_rank_right_answers_above_swapped(smollm2):
    table = quality_baselines(_pairs(False) + _pairs(True), smollm2)
    rows = table.rows()
    by = {r["id"]: r for r in rows}
    assert table.counts["judge_logprobs"] == 6
    for r in rows:
        assert math.isfinite(r["ifd"]) and r["ifd"] > 0 and 0 <= r["judge"] <= 5 and 0 <= r["random"] < 1
    assert np.mean([by[f"good{i}"]["loglik_mean"] for i in range(3)]) > np.mean([by[f"bad{i}"]["loglik_mean"] for i in range(3)])
    assert np.mean([by[f"good{i}"]["ifd"] for i in range(3)]) < np.mean([by[f"bad{i}"]["ifd"] for i in range(3)])
    assert quality_baselines(_pairs(False), smollm2, judge=False).rows()[0]["random"] == by["good0"]["random"]


@pytest.mark.slow
def test_judge_reasons_step_by_step_before_it_rates(smollm2):
    direct = {r["id"]: r["judge"] for r in quality_baselines(_pairs(False) + _pairs(True), smollm2).rows()}
    table = quality_baselines(_pairs(False) + _pairs(True), smollm2, judge_reasoning="step")
    assert table.counts["judge_reasoned"] == 6 and table.counts["judge_logprobs"] == 6
    step = {r["id"]: r["judge"] for r in table.rows()}
    assert all(0 <= v <= 5 for v in step.values())
    # the rating is read after the model's own reasoning, so it is another reading of the same pairs
    assert any(abs(step[i] - direct[i]) > 1e-3 for i in direct)


def test_judge_reasoning_must_be_direct_or_step():
    with pytest.raises(ConfigError, match="judge_reasoning"):
        quality_baselines(_pairs(False), _NoCalls(), judge_reasoning="aloud")


class _NoCalls(LLM):
    """Plumbing: a model that must not be asked anything but log-probabilities it does not have."""

    tokenizer = None
    identity = "no-calls"

    def apply_chat_template(self, messages, add_generation_prompt=True):
        raise AssertionError("not used")

    def generate(self, prompts, params):
        raise AssertionError("the judge's settings are checked before any call")

    def logprobs(self, prompts, targets):
        raise LogprobsUnavailable("none")


class _FailingAfter(LLM):
    """Plumbing: forwards to the real model but fails on the Nth generate call (a crashed run)."""

    def __init__(self, inner, fail_on: int | None):
        self.inner, self.spec, self.fail_on, self.calls, self.prompts = inner, inner.spec, fail_on, 0, 0
        self.tokenizer = inner.tokenizer

    identity = property(lambda self: self.inner.identity)

    def generate(self, prompts, params):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise TimeoutError("server timed out")
        self.prompts += len(prompts)
        return self.inner.generate(prompts, params)

    def logprobs(self, prompts, responses):
        return self.inner.logprobs(prompts, responses)

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return self.inner.apply_chat_template(messages, add_generation_prompt)


@pytest.mark.slow
def test_interrupted_run_resumes_from_cache(smollm2, workspace):
    examples = _pairs(False) + _pairs(True)[:1]
    cfg = ConfidenceConfig(k=2, max_tokens=16, similarity="token_f1")
    crashing = _FailingAfter(smollm2, fail_on=2)
    with pytest.raises(TimeoutError):
        bsdetector_confidence(examples, CachedLLM(crashing, workspace.cache, chunk_size=2), cfg)
    # bad0 asks good0's question: 3 distinct sampling prompts; one chunk of two was committed
    assert crashing.prompts == 2
    resumed = _FailingAfter(smollm2, fail_on=None)
    first = bsdetector_confidence(examples, CachedLLM(resumed, workspace.cache, chunk_size=2), cfg)
    assert resumed.prompts == 1  # only the prompt not done before
    again = _FailingAfter(smollm2, fail_on=None)
    second = bsdetector_confidence(examples, CachedLLM(again, workspace.cache, chunk_size=2), cfg)
    assert again.prompts == 0 and [r["confidence"] for r in first.rows] == [r["confidence"] for r in second.rows]


class _TextOnly(LLM):
    """Plumbing: a backend without log-probabilities whose answers never name a letter."""

    spec = ModelSpec("fake", "text-only")
    identity = "fake:text-only"

    def generate(self, prompts, params: GenerationParams):
        return [["explanation: hmm, answer: Paris"] * params.n for _ in prompts]

    def logprobs(self, prompts, responses):
        raise LogprobsUnavailable("no logprobs here")

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return str(messages)


def test_unparseable_reflections_are_counted_and_bad_input_noted():
    long = "word " * 1000
    examples = [chat_example([Message("user", "Capital of France?"), Message("assistant", "Paris")], id="ok"),
                chat_example([Message("user", "Say something long."), Message("assistant", long)], id="long"),
                chat_example([Message("user", "Say nothing."), Message("assistant", "")], id="empty"),
                labelled_example("some text", "spam", id="lab")]
    report = bsdetector_confidence(examples, _TextOnly(), ConfidenceConfig(k=2, similarity="token_f1"))
    rows = {r["id"]: r for r in report.rows}
    assert report.counts["reflection_unparsed"] == 6 and report.counts["unscorable"] == 1
    assert rows["ok"]["reflection_missing"] and rows["ok"]["confidence"] == rows["ok"]["observed_consistency"]
    assert rows["ok"]["r_mean"] == 1.0 and rows["ok"]["confidence"] == pytest.approx(1.0)
    assert any("truncated" in n for n in rows["long"]["notes"])
    assert "empty response" in rows["empty"]["notes"] and rows["empty"]["confidence"] == 0.0
    assert rows["lab"]["confidence"] is None and rows["lab"]["notes"]
    with pytest.raises(LogprobsUnavailable):
        bsdetector_confidence(examples[:1], _TextOnly(), ConfidenceConfig(k=1, similarity="token_f1", reflection="logprobs"))


class _Capturing(_TextOnly):
    """Plumbing: records the prompts the k samples are asked with."""

    def __init__(self):
        self.sample_prompts = []

    def generate(self, prompts, params: GenerationParams):
        if params.n > 1:
            self.sample_prompts += prompts
        return [["Paris"] * params.n for _ in prompts]


def test_direct_reasoning_samples_answers_to_the_examples_own_prompt():
    """reasoning=direct asks for answers with the example's own prompt (system turn included), the form a
    tuned model learned; the default asks for step-by-step reasoning in BSDetector's template."""
    ex = chat_example([Message("system", "Answer briefly."), Message("user", "Capital of France?"),
                       Message("assistant", "Paris")], id="q")
    direct, step = _Capturing(), _Capturing()
    report = bsdetector_confidence([ex], direct, ConfidenceConfig(k=2, similarity="token_f1", reasoning="direct"))
    bsdetector_confidence([ex], step, ConfidenceConfig(k=2, similarity="token_f1"))
    assert direct.sample_prompts == [ex.prompt_messages]
    assert [m["role"] for m in step.sample_prompts[0]] == ["user"] and "step by step" in step.sample_prompts[0][0]["content"]
    assert report.rows[0]["r_mean"] == 1.0
    with pytest.raises(ConfigError, match="reasoning"):
        ConfidenceConfig(reasoning="free")
