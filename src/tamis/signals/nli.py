"""NLI non-contradiction similarity for BSDetector's s_i (optional: no NLI model is bundled).

Any Hugging Face sequence-classification NLI model works (a local folder or an id available
offline, e.g. microsoft/deberta-large-mnli as in the paper); its label names must include one
containing "contradiction". s = mean over both orders of 1 − P(contradiction).
"""

from __future__ import annotations

import numpy as np

from tamis.models.base import ModelError


class NLISimilarity:
    def __init__(self, model: str, batch_size: int = 16, max_length: int = 256):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        except OSError as err:
            raise ModelError(f"cannot load NLI model {model!r}: {err}; give a local folder or an offline "
                             "Hugging Face id of a sequence-classification NLI model") from err
        labels = {i: str(name).lower() for i, name in self.model.config.id2label.items()}
        found = [i for i, name in labels.items() if "contradict" in name]
        if not found:
            raise ModelError(f"NLI model {model!r} has labels {sorted(labels.values())}; none is 'contradiction'")
        self.contradiction = found[0]
        self.identity = f"nli:{model}"
        self.batch_size, self.max_length = batch_size, max_length

    def _p_contradiction(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        import torch  # here, not at import: registering the signals must not load torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(premises), self.batch_size):
                enc = self.tokenizer(premises[i:i + self.batch_size], hypotheses[i:i + self.batch_size],
                                     return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
                probs = torch.softmax(self.model(**enc).logits.float(), dim=-1)
                out.extend(probs[:, self.contradiction].tolist())
        return np.asarray(out)

    def non_contradiction(self, a: list[str], b: list[str]) -> np.ndarray:
        if not a:
            return np.zeros(0)
        return 1.0 - 0.5 * (self._p_contradiction(a, b) + self._p_contradiction(b, a))
