"""Generation with the real bundled model (llama.cpp): provenance, counts, rejections, resume."""

import re

import pytest

from tamis.generate import (LabelledGenerationConfig, NearCopyConfig, generate_dialogues, generate_instructions,
                            generate_labelled, load_task)

pytestmark = pytest.mark.slow


def _check_accounting(result, n_labels, n_per_label):
    c = result.counts
    assert c["accepted"] == len(result.examples)
    assert c["rejected"] == len(result.rejected) == sum(c["rejected_by_reason"].values())
    # every attempt ends accepted or rejected with a reason (extra accepted beyond the target are
    # impossible: rounds never ask for more than a label still needs)
    assert c["attempts"] == c["accepted"] + c["rejected"]
    assert all(d.reason and d.action == "drop" for d in result.rejected)
    assert c["accepted"] + sum(c.get("short_by_label", {}).values()) == n_labels * n_per_label


def test_zero_and_few_shot_with_provenance(llamacpp_smollm2, sms_pool, minilm):
    pool, _ = sms_pool
    task = load_task("sms_spam")
    for mode in ("zero-shot", "few-shot"):
        config = LabelledGenerationConfig(n_per_label=3, mode=mode, round_size=3)
        result = generate_labelled(task, llamacpp_smollm2, config, pool=pool, embedder=minilm)
        _check_accounting(result, 2, 3)
        assert result.counts["accepted"] >= 2
        for ex in result.examples:
            prov = ex.meta["provenance"]
            assert ex.label in ("ham", "spam") and ex.text and ex.meta["synthetic"]
            assert prov["mode"] == mode and prov["model"] == llamacpp_smollm2.identity
            assert prov["temperature"] == 1.0 and isinstance(prov["seed"], int)
            assert prov["prompt"][0]["role"] == "system"
            assert ("max_cosine" in prov["near_copy_scores"]) and ("max_rouge_l" in prov["near_copy_scores"])
            pool_ids = {e.id for e in pool if e.label == ex.label}
            if mode == "few-shot":
                assert len(prov["few_shot_ids"]) == task.few_shot_k and set(prov["few_shot_ids"]) <= pool_ids
            else:
                assert prov["few_shot_ids"] == []


def test_the_generator_can_reason_before_it_writes(llamacpp_smollm2, sms_pool, minilm):
    pool, _ = sms_pool
    task = load_task("sms_spam")
    config = LabelledGenerationConfig(n_per_label=3, round_size=3, reasoning="step")
    result = generate_labelled(task, llamacpp_smollm2, config, pool=pool, embedder=minilm)
    _check_accounting(result, 2, 3)
    assert result.counts["accepted"] >= 2
    for ex in result.examples:
        prov = ex.meta["provenance"]
        assert "think step by step" in prov["prompt"][1]["content"]
        assert prov["raw"].rstrip().endswith(ex.text.rstrip()[-10:]) or prov["truncated"]
        assert "text:" not in ex.text.lower() and "reasoning" in prov  # only the text is kept
    for d in result.rejected:  # a reply without the marker is rejected for it, never kept whole
        prov = d.evidence["provenance"]
        assert d.reason != "no_text_marker" or not re.search(r"(?<!\w)text[^\w\n:]{0,3}:", prov["raw"], re.I)


def test_near_copies_of_real_examples_are_rejected(llamacpp_smollm2, sms_pool, minilm):
    pool, _ = sms_pool
    task = load_task("sms_spam")
    # a threshold of 0.0 makes everything a near-copy: nothing may slip through uncounted
    config = LabelledGenerationConfig(n_per_label=2, round_size=2, max_attempts_factor=1.0,
                                      near_copy=NearCopyConfig(embedding_threshold=0.0, rouge_threshold=None))
    result = generate_labelled(task, llamacpp_smollm2, config, pool=pool, embedder=minilm)
    assert result.examples == []
    assert result.counts["short_by_label"] == {"ham": 2, "spam": 2}
    _check_accounting(result, 2, 2)
    assert result.counts["rejected_by_reason"].get("near_copy_embedding", 0) >= 1
    copies = [d for d in result.rejected if d.reason == "near_copy_embedding"]
    assert all(d.evidence["closest_id"] for d in copies)  # text is evidence, numbers are scores


def test_generation_resumes_from_the_cache(workspace, sms_pool):
    from tamis.models import load_llm

    pool, _ = sms_pool
    task = load_task("tweeteval_irony")
    config = LabelledGenerationConfig(n_per_label=2, round_size=2, near_copy=NearCopyConfig(None, 0.7))
    llm = load_llm("llamacpp:smollm2", workspace)
    first = generate_labelled(task, llm, config)
    misses = workspace.cache.misses
    again = generate_labelled(task, load_llm("llamacpp:smollm2", workspace), config)
    assert [e.text for e in again.examples] == [e.text for e in first.examples]
    assert workspace.cache.misses == misses  # nothing recomputed


def test_instructions_and_dialogues(llamacpp_smollm2):
    res = generate_instructions(["baking bread", "learning to swim"], llamacpp_smollm2, n_per_topic=2, max_tokens=48)
    assert res.counts["accepted"] + res.counts["rejected"] == 4
    for ex in res.examples:
        assert [m.role for m in ex.messages] == ["user", "assistant"] and ex.response
        assert ex.meta["provenance"]["topic"] in ("baking bread", "learning to swim")
    dia = generate_dialogues(["planning a trip to Rome"], llamacpp_smollm2, n_per_topic=2, n_turns=2, max_tokens=40)
    assert dia.counts["accepted"] + dia.counts["rejected"] == 2
    for ex in dia.examples:
        assert [m.role for m in ex.messages] == ["user", "assistant", "user", "assistant"]
    if len(dia.examples) == 2:
        assert dia.examples[0].messages[0].content != dia.examples[1].messages[0].content
