"""Classification as generation: option log-probabilities, argmax prediction, accuracy and macro-F1."""

from __future__ import annotations

import pytest

from tamis.errors import DataError
from tamis.evaluate.choices import example_options, macro_f1, option_logprobs, predict, score_options
from tamis.models.base import ResponseLogprobs
from tamis.records import chat_example


class KeywordLLM:
    """Plumbing stand-in: an option is likely when the prompt contains it (one token plus end of turn)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def logprobs(self, prompts, responses):
        self.calls.append((len(prompts), len(responses)))
        return [ResponseLogprobs(tokens=(r, "<end>"), logprobs=(-0.1 if r in p[-1]["content"] else -3.0, -0.2))
                for p, r in zip(prompts, responses)]


def _example(text: str, label: str, **meta):
    return chat_example([{"role": "user", "content": text}, {"role": "assistant", "content": label}], meta=meta)


def test_macro_f1_known_values() -> None:
    assert macro_f1(["a", "a", "b", "b"], ["a", "a", "b", "b"]) == 1.0
    # a: tp 1 fp 1 fn 1 -> 0.5; b: tp 1 fp 1 fn 1 -> 0.5
    assert macro_f1(["a", "b", "b", "a"], ["a", "a", "b", "b"]) == pytest.approx(0.5)
    # always "a" on 3 a / 1 b: F1(a) = 6/7, F1(b) = 0
    assert macro_f1(["a"] * 4, ["a", "a", "a", "b"]) == pytest.approx((6 / 7) / 2)


def test_option_scores_one_batched_call_and_argmax() -> None:
    llm = KeywordLLM()
    examples = [_example("this is spam", "spam"), _example("just ham here", "ham"), _example("neither", "ham")]
    opts = example_options(examples, ["ham", "spam"])
    scores = option_logprobs(llm, [ex.prompt_messages for ex in examples], opts)
    assert llm.calls == [(6, 6)]
    assert scores[0] == {"ham": pytest.approx(-3.2), "spam": pytest.approx(-0.3)}
    assert [predict(s) for s in scores] == ["spam", "ham", "ham"]  # a tie goes to the first option
    per_item, summary = score_options([predict(s) for s in scores], ["spam", "ham", "ham"], n_resamples=50)
    assert [r["accuracy"] for r in per_item] == [1.0, 1.0, 1.0]
    assert summary["accuracy"]["value"] == 1.0 and summary["macro_f1"]["value"] == 1.0


def test_options_come_from_meta_and_the_reference_must_be_one() -> None:
    ex = _example("text", "neutral", options=["positive", "neutral", "negative"])
    assert example_options([ex], None) == [["positive", "neutral", "negative"]]
    with pytest.raises(DataError, match="at least two label options"):
        example_options([_example("text", "x")], None)
    with pytest.raises(DataError, match="not one of the options"):
        example_options([_example("text", "maybe")], ["yes", "no"])
