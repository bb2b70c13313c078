"""Answer normalisation and overlap, shared by signals (BSDetector's exact match and token F1) and by
evaluation metrics, so both compare answers the same way (SQuAD-style)."""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise_answer(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise_answer(prediction) == normalise_answer(reference))


def contains_answer(prediction: str, reference: str) -> float:
    """1 when the normalised reference occurs in the normalised prediction (chatty models pad answers)."""
    ref = normalise_answer(reference)
    return float(bool(ref) and f" {ref} " in f" {normalise_answer(prediction)} ")


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise_answer(prediction).split(), normalise_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)
