"""The transformers backend on the real bundled SmolLM2-135M-Instruct."""

from __future__ import annotations

import math

import pytest

from tamis.models import GenerationParams, ModelSpec, load_llm
from tamis.models.hf_prefix import common_prefix_length

pytestmark = pytest.mark.slow
Q = [{"role": "user", "content": "What is the capital of France?"}]


def test_greedy_answer_is_right(smollm2):
    [[answer]] = smollm2.generate([Q], GenerationParams(max_tokens=24))
    assert "Paris" in answer


def test_right_answer_is_more_likely_than_wrong(smollm2):
    right, wrong = smollm2.logprobs([Q, Q], ["The capital of France is Paris.", "The capital of France is Berlin."])
    assert right.total > wrong.total + 3
    assert right.tokens[-1] == "<|im_end|>"  # the end-of-turn token is scored too
    assert all(lp <= 0 for lp in right.logprobs)
    assert right.n_tokens == len(smollm2.scoring_ids(Q, "The capital of France is Paris.")[1])


def test_batched_logprobs_match_one_at_a_time(smollm2):
    prompts = [Q, [{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Say hi in a long and friendly way to a friend."}]]
    responses = ["Paris.", "Blue is a colour that many people like very much.", "Hi!"]
    batched = smollm2.logprobs(prompts, responses)
    single = [smollm2.logprobs([p], [r])[0] for p, r in zip(prompts, responses)]
    for b, s in zip(batched, single):
        assert b.tokens == s.tokens
        assert b.total == pytest.approx(s.total, abs=1e-3)


def test_options_sharing_a_prompt_score_as_if_alone(smollm2, workspace):
    """Rows that share a prompt are packed into one pass (models/hf_prefix.py): each response must get
    exactly the log-probabilities it gets scored on its own, whatever else shares its prompt or batch."""
    spam = [{"role": "system", "content": "You detect spam."},
            {"role": "user", "content": "Is this SMS message spam? Answer yes or no.\n\nWIN a free cruise, text NOW"}]
    options = ["yes", "no", "I am not sure, it could be either of them."]
    prompts = [spam] * 3 + [Q, Q, [{"role": "user", "content": "Name a colour."}]]
    responses = options + ["Paris.", "The capital of France is Berlin, I think.", "Blue."]
    packed = smollm2.logprobs(prompts, responses)
    unpacked = load_llm("transformers:smollm2?pack_prompts=false", workspace, cache=False)
    alone = [unpacked.logprobs([p], [r])[0] for p, r in zip(prompts, responses)]
    for got, want in zip(packed, alone):
        assert got.tokens == want.tokens
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
    assert packed[0].total != pytest.approx(packed[1].total, abs=1e-3)  # the options really differ


def test_rows_continuing_one_shared_prefix_score_as_if_alone(smollm2, workspace):
    """A call whose prompts all start with the same system prompt and instruction runs that prefix once
    (hf_prefix.encode_prefix) and continues every packed row from its keys and values: each row must get
    the log-probabilities it gets alone, unpacked."""
    messages = ["WIN a free cruise, text NOW to 80082", "are we still on for lunch tomorrow?", "ok"]
    prompts = [[{"role": "system", "content": "You detect spam."},
                {"role": "user", "content": f"Is this SMS message spam? Answer yes or no.\n\n{m}"}] for m in messages]
    rows = [(p, o) for p in prompts for o in ("yes", "no")] + [(prompts[1], "maybe")]
    assert common_prefix_length([smollm2.scoring_ids(p, r)[0] for p, r in rows]) > 20  # the path under test
    shared = smollm2.logprobs([p for p, _ in rows], [r for _, r in rows])
    unpacked = load_llm("transformers:smollm2?pack_prompts=false", workspace, cache=False)
    for (prompt, response), got in zip(rows, shared):
        [want] = unpacked.logprobs([prompt], [response])
        assert got.tokens == want.tokens
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
    assert shared[0].total != pytest.approx(shared[2].total, abs=1e-3)  # the messages really matter


def test_unconditional_logprobs_for_ifd(smollm2):
    [cond] = smollm2.logprobs([Q], ["Paris"])
    [uncond] = smollm2.logprobs([[]], ["Paris"])
    assert cond.mean > uncond.mean  # the question makes the answer more predictable
    assert math.isfinite(uncond.total)


def test_sampling_is_seeded_and_independent_of_batching(smollm2):
    params = GenerationParams(n=3, temperature=1.0, max_tokens=16, seed=7)
    other = [{"role": "user", "content": "Write a word."}]
    alone = smollm2.generate([Q], params)[0]
    together = smollm2.generate([other, Q], params)[1]
    assert alone == together and len(alone) == 3
    assert smollm2.generate([Q], GenerationParams(n=3, temperature=1.0, max_tokens=16, seed=8))[0] != alone


def test_stop_strings_cut_the_output(smollm2):
    [[text]] = smollm2.generate([Q], GenerationParams(max_tokens=24, stop=("Paris",)))
    assert "Paris" not in text


def test_chat_template_is_the_models(smollm2):
    text = smollm2.apply_chat_template(Q)
    assert text.endswith("<|im_start|>assistant\n") and "What is the capital of France?" in text


def test_conversion_is_cached(workspace, smollm2):
    converted = list(workspace.models_dir.glob("smollm2-135m-instruct-*"))
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    again = load_llm("transformers:smollm2", workspace, cache=False)
    assert again.identity == smollm2.identity


def test_spec_parsing():
    spec = ModelSpec.parse("transformers:HuggingFaceTB/SmolLM2-360M?dtype=bfloat16&batch_size=4")
    assert (spec.backend, spec.model, spec.options) == ("transformers", "HuggingFaceTB/SmolLM2-360M",
                                                         {"dtype": "bfloat16", "batch_size": "4"})
    assert ModelSpec.parse("org/model").backend == "transformers"
    assert ModelSpec.parse("openai:gpt-4o-mini?base_url=http://127.0.0.1:8000/v1").options["base_url"].endswith("/v1")
    assert str(ModelSpec.parse("llamacpp:smollm2?n_ctx=512")) == "llamacpp:smollm2?n_ctx=512"


def test_unknown_model_is_a_clear_error(workspace):
    from tamis.models import ModelError

    with pytest.raises(ModelError, match="cannot load"):
        load_llm("transformers:/no/such/model", workspace)


def test_layer_truncated_variant_is_derived_once(workspace, smollm2):
    small = load_llm("transformers:smollm2?layers=4", workspace, cache=False)
    assert small.model.config.num_hidden_layers == 4 and "-layers4" in small.identity
    assert small.identity != smollm2.identity
    assert sum(p.numel() for p in small.model.parameters()) < sum(p.numel() for p in smollm2.model.parameters())
    [lp] = small.logprobs([Q], ["Paris."])
    assert math.isfinite(lp.total)
    assert len(list(workspace.models_dir.glob("*-layers4"))) == 1


def test_impossible_truncation_is_a_clear_error(workspace, smollm2):
    from tamis.models import ModelError

    with pytest.raises(ModelError, match="has 30 layers"):
        load_llm("transformers:smollm2?layers=99", workspace, cache=False)
