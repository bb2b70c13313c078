"""A row longer than the model's context is scored with its prompt cut from the left (as
lm-evaluation-harness does for loglikelihood) or skipped, and the row says so; never silently."""

from __future__ import annotations

import math

import pytest
import torch

from tamis.models import load_llm
from tamis.models.base import ResponseLogprobs, fit_to_context
from tamis.records import Message, chat_example
from tamis.signals.likelihood import response_likelihood

pytestmark = pytest.mark.slow

LONG_PROMPT = [{"role": "user", "content": "Tell me about Paris. " * 40 + "What is the capital of France?"}]
SHORT_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."
LONG_ANSWER = "Paris is the capital of France and its largest city. " * 30


def test_fit_to_context_rules():
    assert fit_to_context(10, 5, 20) == (0, "")
    drop, note = fit_to_context(30, 5, 20)
    assert drop == 15 and "truncated from the left: 15 of 30" in note and "lm-evaluation-harness" in note
    drop, note = fit_to_context(3, 20, 20)
    assert drop == -1 and note.startswith("skipped")


def test_notes_survive_the_cache_round_trip():
    kept = ResponseLogprobs(("a",), (-1.0,), note="prompt truncated", context_dropped=7)
    assert ResponseLogprobs.from_dict(kept.to_dict()) == kept
    skipped = ResponseLogprobs((), (), note="skipped", skipped=True)
    assert ResponseLogprobs.from_dict(skipped.to_dict()) == skipped and math.isnan(skipped.mean)
    assert ResponseLogprobs.from_dict({"tokens": ["a"], "logprobs": [-1.0]}).note == ""  # entries from before


@pytest.fixture(scope="module")
def small_context(models_dir):
    """The bundled model through transformers, told its context holds 48 tokens."""
    return load_llm("transformers:smollm2?max_length=48", cache=False)


def test_transformers_truncates_the_prompt_from_the_left(small_context, smollm2):
    llm = small_context
    fits, cut, skipped = llm.logprobs([SHORT_PROMPT, LONG_PROMPT, SHORT_PROMPT], [ANSWER, ANSWER, LONG_ANSWER])
    context, target = llm.scoring_ids(LONG_PROMPT, ANSWER)
    assert len(context) + len(target) > 48
    assert cut.context_dropped == len(context) + len(target) - 48 and "truncated from the left" in cut.note
    assert cut.n_tokens == len(target) and not skipped.tokens
    # the same numbers as the model's forward pass on the last 48 tokens
    ids = torch.tensor([(context + target)[-48:]])
    with torch.inference_mode():
        logp = torch.log_softmax(llm.model(input_ids=ids).logits[0].float(), dim=-1)
    positions = range(48 - len(target) - 1, 47)
    expected = [float(logp[p, t]) for p, t in zip(positions, target)]
    assert cut.logprobs == pytest.approx(expected, abs=1e-4)
    assert skipped.skipped and skipped.note.startswith("skipped") and math.isnan(skipped.mean)
    # a row that fits is untouched: no note, the same numbers as with the full context
    assert fits.note == "" and fits.context_dropped == 0
    assert fits.logprobs == pytest.approx(smollm2.logprobs([SHORT_PROMPT], [ANSWER])[0].logprobs, abs=1e-4)
    assert "max_length=48" in llm.identity and "max_length" not in smollm2.identity


def test_llamacpp_truncates_instead_of_failing(models_dir):
    llm = load_llm("llamacpp:smollm2?n_ctx=64", cache=False)
    n_ctx = 64
    fits, cut, skipped = llm.logprobs([SHORT_PROMPT, LONG_PROMPT, SHORT_PROMPT], [ANSWER, ANSWER, LONG_ANSWER])
    assert fits.note == "" and cut.n_tokens == fits.n_tokens
    assert cut.context_dropped > 0 and f"{n_ctx}-token context" in cut.note
    assert all(math.isfinite(x) for x in cut.logprobs)
    assert skipped.skipped and math.isnan(skipped.total)
    llm.close()


def test_likelihood_rows_carry_the_note_and_are_counted(small_context, workspace):
    from tamis.models.cached import CachedLLM

    examples = [chat_example([Message("user", p[0]["content"]), Message("assistant", r)], id=name)
                for name, p, r in (("fits", SHORT_PROMPT, ANSWER), ("cut", LONG_PROMPT, ANSWER),
                                   ("skipped", SHORT_PROMPT, LONG_ANSWER))]
    cached = CachedLLM(small_context, workspace.cache)
    for _ in range(2):  # computed, then read back from the cache: the notes are kept
        table = response_likelihood(examples, cached)
        rows = {r["id"]: r for r in table.rows()}
        assert "notes" not in rows["fits"] and rows["fits"]["loglik_mean"] < 0
        assert rows["cut"]["loglik_context_dropped"] > 0 and "truncated" in rows["cut"]["notes"][0]
        assert rows["skipped"]["loglik_mean"] is None and rows["skipped"]["perplexity"] is None
        assert "skipped" in rows["skipped"]["notes"][0]
        assert table.counts == {"likelihood_scored": 2, "likelihood_truncated": 1, "likelihood_skipped": 1}
    assert workspace.cache.hits == 3
