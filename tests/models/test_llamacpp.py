"""llama.cpp backend on the real bundled SmolLM2 GGUF."""

from __future__ import annotations

import pytest

from tamis.models.base import GenerationParams, ModelError, ModelSpec
from tamis.models.llamacpp import LlamaCppLLM, derive_seed

# With the default system prompt, Q4_1 llama.cpp greedy starts "L'Étoile..." (a near-tie with
# "The" that dequantised fp32 transformers wins); asking for one word is unambiguous in both.
FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
POEM = [{"role": "user", "content": "Write a short poem about cats."}]


@pytest.fixture(scope="module")
def llm():
    # one thread: as fast as two for this 135M model, and immune to busy neighbours (see test_openai_http)
    model = LlamaCppLLM(ModelSpec.parse("llamacpp:smollm2?n_threads=1"))
    yield model
    model.close()


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    from tamis.models.bundled import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def test_spec_errors(tmp_path):
    with pytest.raises(ModelError, match="gguf"):
        LlamaCppLLM(ModelSpec.parse(f"llamacpp:{tmp_path / 'missing.gguf'}"))
    with pytest.raises(ModelError, match="unknown options"):
        LlamaCppLLM(ModelSpec.parse("llamacpp:smollm2?n_gpu=3"))


def test_derive_seed_is_stable_and_valid():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert len({derive_seed(s, i) for s in range(5) for i in range(5)}) == 25
    assert all(0 <= derive_seed(s, i) < 2**31 for s in range(20) for i in range(20))


@pytest.mark.slow
def test_identity(llm):
    assert llm.identity.startswith("llamacpp:")
    assert "n_ctx=2048" in llm.identity
    other = LlamaCppLLM(ModelSpec.parse("llamacpp:smollm2?n_ctx=4096"))
    assert other.identity != llm.identity


@pytest.mark.slow
def test_chat_template_matches_transformers(llm, hf_tokenizer):
    conversations = [
        FRANCE,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        FRANCE + [{"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"}],
    ]
    for messages in conversations:
        for gen in (True, False):
            expected = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert llm.apply_chat_template(messages, gen) == expected
    text = llm.apply_chat_template(FRANCE)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_greedy_answers_paris(llm):
    [[a, b]] = llm.generate([FRANCE], GenerationParams(n=2, temperature=0.0, max_tokens=24))
    assert "Paris" in a
    assert a == b


@pytest.mark.slow
def test_sampling_reproducible_and_batch_independent(llm):
    params = GenerationParams(n=3, temperature=1.0, max_tokens=16, seed=7)
    [france, poems] = llm.generate([FRANCE, POEM], params)
    assert len(france) == 3 and len(poems) == 3
    assert len(set(poems)) > 1  # samples of one prompt differ
    [alone] = llm.generate([POEM], params)
    assert alone == poems  # same seed, other batch: same samples
    [fewer] = llm.generate([POEM], GenerationParams(n=2, temperature=1.0, max_tokens=16, seed=7))
    assert fewer == poems[:2]  # sample i depends on (seed, i), not on n
    [other] = llm.generate([POEM], GenerationParams(n=3, temperature=1.0, max_tokens=16, seed=8))
    assert other != poems


@pytest.mark.slow
def test_stop_and_max_tokens(llm):
    [[full]] = llm.generate([FRANCE], GenerationParams(max_tokens=24))
    [[cut]] = llm.generate([FRANCE], GenerationParams(max_tokens=24, stop=(" France",)))
    assert " France" in full and " France" not in cut and full.startswith(cut)
    [[short]] = llm.generate([POEM], GenerationParams(max_tokens=3))
    assert 0 < len(llm.sampler.tokenize(short.encode(), add_bos=False)) <= 3


@pytest.mark.slow
def test_logprobs_prefer_correct_answer(llm):
    right, wrong = "The capital of France is Paris.", "The capital of France is Berlin."
    lp_right, lp_wrong = llm.logprobs([FRANCE, FRANCE], [right, wrong])
    assert lp_right.mean > lp_wrong.mean
    assert all(v < 0 for v in lp_right.logprobs)
    # response tokens + the end-of-turn token, nothing of the prompt
    n_response = len(llm.scorer.tokenize(right.encode(), add_bos=False, special=False))
    assert lp_right.n_tokens == n_response + 1
    assert lp_right.tokens[-1] == "<|im_end|>"
    assert "".join(lp_right.tokens) == right + "<|im_end|>"
    assert lp_right.tokens[5] == " Paris" and lp_wrong.tokens[5] == " Berlin"
    assert lp_right.logprobs[5] > lp_wrong.logprobs[5]


@pytest.mark.slow
def test_logprobs_unconditional_and_consistent(llm):
    text = "The capital of France is Paris."
    [bare] = llm.logprobs([[]], [text])
    assert "".join(bare.tokens) == text + "<|im_end|>"  # no template; EOS as the transformers backend
    [cond] = llm.logprobs([FRANCE], [text])
    assert cond.mean > bare.mean  # the question makes the answer likelier
    # scoring is independent of batch composition
    [again] = llm.logprobs([FRANCE], [text])
    assert again.logprobs == pytest.approx(cond.logprobs, abs=1e-4)
    with pytest.raises(ModelError, match="prompts"):
        llm.logprobs([FRANCE], [])


@pytest.mark.slow
def test_logprobs_match_transformers_tokenisation(llm, hf_tokenizer):
    response = "Paris, of course!\nIt is lovely."
    [lp] = llm.logprobs([FRANCE], [response])
    prefix = hf_tokenizer.apply_chat_template(FRANCE, tokenize=False, add_generation_prompt=True)
    ids_prefix = hf_tokenizer(prefix, add_special_tokens=False).input_ids
    ids_full = hf_tokenizer(prefix + response + "<|im_end|>", add_special_tokens=False).input_ids
    assert ids_full[: len(ids_prefix)] == ids_prefix
    assert lp.n_tokens == len(ids_full) - len(ids_prefix)


@pytest.mark.slow
def test_context_overflow_is_clear():
    small = LlamaCppLLM(ModelSpec.parse("llamacpp:smollm2?n_ctx=64&n_threads=1"))
    with pytest.raises(ModelError, match="n_ctx"):
        small.generate([[{"role": "user", "content": "word " * 200}]], GenerationParams(max_tokens=4))
    small.close()
