"""Fixtures for the synthetic-data tests: the bundled generator through llama.cpp, a small real pool."""

import pytest


@pytest.fixture(scope="module")
def llamacpp_smollm2():
    from tamis.models import load_llm

    return load_llm("llamacpp:smollm2", cache=False)


@pytest.fixture(scope="module")
def sms_pool(shared_data):
    from tamis.io import read_dataset

    examples = read_dataset(shared_data / "sms_spam" / "sms_spam.jsonl").examples
    ham = [e for e in examples if e.label == "ham"]
    spam = [e for e in examples if e.label == "spam"]
    return ham[:200] + spam[:200], ham[200:260] + spam[200:260]
