"""Fine-tune an encoder with a classification head; evaluate macro-F1 and accuracy.

Default encoder: the bundled all-MiniLM-L6-v2 (a 6-layer BERT), loaded with transformers'
``AutoModelForSequenceClassification`` (a fresh linear head on the pooled output). Any Hugging Face
encoder folder or id works the same way. A plain PyTorch loop (AdamW, linear warm-up/decay) keeps
it small, seeded and identical on CPU and CUDA.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamis.models.base import ModelError
from tamis.progress import progress
from tamis.records import Example
from tamis.settings import setting

DEFAULT_ENCODER = "minilm"


@dataclass
class ClassifierConfig:
    """Everything that decides the trained model; saved beside every result it produced."""

    model: str = setting(DEFAULT_ENCODER, "Encoder: 'minilm' (bundled), a folder or an HF id.")
    epochs: float = setting(3.0, "Training epochs.", range=(0, None))
    batch_size: int = setting(16, "Batch size.", range=(1, None))
    learning_rate: float = setting(1e-4, "AdamW learning rate.", range=(0, None))
    weight_decay: float = setting(0.01, "AdamW weight decay.", range=(0, None))
    warmup_ratio: float = setting(0.1, "Share of steps with a linear warm-up.", range=(0, 1))
    max_length: int = setting(128, "Truncate texts to this many tokens.", range=(8, None))
    max_steps: int | None = setting(None, "Cap on optimiser steps [default: the epochs decide].", range=(1, None))
    seed: int = setting(0, "Seed for the split, initialisation and order.")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    eval_batch_size: int = setting(64, "Batch size when predicting.", range=(1, None))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encoder_path(name: str) -> str:
    if name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        from tamis.models.bundled import minilm_path

        return str(minilm_path())
    return name


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TrainedClassifier:
    """A fine-tuned encoder with its label names; ``predict`` returns label strings."""

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], config: ClassifierConfig, history: list[float],
                 train_seconds: float = 0.0, train_texts: Sequence[str] = ()):
        self.model, self.tokenizer, self.labels, self.config = model, tokenizer, labels, config
        self.loss_history = history
        self.train_seconds, self.train_texts = train_seconds, list(train_texts)
        self.predict_seconds, self.predicted_texts, self.predicted_tokens = 0.0, 0, 0

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        started = time.perf_counter()
        self.model.eval()
        device = next(self.model.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.config.eval_batch_size):
                batch = self.tokenizer(list(texts[start:start + self.config.eval_batch_size]), truncation=True,
                                       max_length=self.config.max_length, padding=True, return_tensors="pt")
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                self.predicted_tokens += int(batch["attention_mask"].sum())
                out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        self.predict_seconds += time.perf_counter() - started
        self.predicted_texts += len(texts)
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def predict(self, texts: Sequence[str]) -> list[str]:
        probs = self.predict_proba(texts)
        return [self.labels[i] for i in probs.argmax(axis=1)] if len(probs) else []

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self.model.config.id2label = dict(enumerate(self.labels))
        self.model.config.label2id = {lab: i for i, lab in enumerate(self.labels)}
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path


def train_classifier(train: Sequence[Example], config: ClassifierConfig | None = None,
                     labels: Sequence[str] | None = None) -> TrainedClassifier:
    """Fine-tune ``config.model`` on labelled examples (text, label); labels default to those seen."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from tamis.models import _quiet_libraries

    _quiet_libraries()
    config = config or ClassifierConfig()
    texts, gold = _texts_labels(train, "training")
    labels = sorted(set(gold)) if labels is None else list(labels)
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"training labels {unknown} are not in the label set {labels}")
    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two labels; the training set has {labels}")
    seed_everything(config.seed)
    path = encoder_path(config.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    except OSError as err:
        raise ModelError(f"cannot load encoder {config.model!r} ({path}): {err}") from err
    device = _device(config.device)
    model.to(device)
    y = torch.tensor([labels.index(g) for g in gold])
    total = classifier_steps(len(texts), config)
    started = time.perf_counter()
    decay = [p for n, p in model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm", "norm"))]
    rest = [p for n, p in model.named_parameters() if any(k in n for k in ("bias", "LayerNorm", "norm"))]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": rest, "weight_decay": 0.0}], lr=config.learning_rate)
    sched = get_linear_schedule_with_warmup(optim, int(config.warmup_ratio * total), total)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    model.train()
    step = 0
    with progress("training classifier", total) as advance:
        while step < total:
            order = torch.randperm(len(texts), generator=gen).tolist()
            for start in range(0, len(order), config.batch_size):
                idx = order[start:start + config.batch_size]
                batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=config.max_length,
                                  padding=True, return_tensors="pt")
                out = model(**{k: v.to(device) for k, v in batch.items()}, labels=y[idx].to(device))
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                history.append(float(out.loss.detach()))
                step += 1
                advance(1)
                if step >= total:
                    break
    return TrainedClassifier(model, tokenizer, labels, config, history, time.perf_counter() - started, texts)


def classifier_steps(n_texts: int, config: ClassifierConfig) -> int:
    """Optimiser steps of a training on ``n_texts`` (``max_steps``, else the epochs over the batches)."""
    return config.max_steps or max(1, math.ceil(config.epochs * math.ceil(n_texts / config.batch_size)))


def text_tokens(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Tokens of each text as the classifier reads it (truncated to ``max_length``)."""
    return [min(len(ids), max_length) for ids in tokenizer(list(texts), truncation=False)["input_ids"]] if texts else []


def training_tokens(row_tokens: list[int], steps: int, batch_size: int) -> int:
    """Tokens a training of ``steps`` batches reads (rows drawn evenly)."""
    return round(sum(row_tokens) * steps * batch_size / len(row_tokens)) if row_tokens else 0


def record_classifier_speed(workspace: Any, classifier: TrainedClassifier) -> None:
    """Training and prediction tokens per second of this encoder, for ``--dry-run`` estimates (``tamis.plan``)."""
    from tamis.plan import record_throughput

    config, device = classifier.config, next(classifier.model.parameters()).device.type
    rows = text_tokens(classifier.tokenizer, classifier.train_texts, config.max_length)
    steps = len(classifier.loss_history)
    record_throughput(workspace, config.model, "train_classifier", calls=steps, unit="tokens", device=device,
                      tokens=training_tokens(rows, steps, config.batch_size), seconds=classifier.train_seconds)
    record_throughput(workspace, config.model, "classify", calls=classifier.predicted_texts, unit="tokens",
                      device=device, tokens=classifier.predicted_tokens, seconds=classifier.predict_seconds)


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Macro-F1 over the given label set (absent labels count, as in the paper) and accuracy."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"macro_f1": float(f1_score(gold, predicted, labels=list(labels), average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(gold, predicted))}


def evaluate_classifier(classifier: TrainedClassifier, test: Sequence[Example]) -> dict[str, Any]:
    """Metrics on a labelled test set, plus each example's prediction (for agreement curves)."""
    texts, gold = _texts_labels(test, "test")
    predicted = classifier.predict(texts)
    metrics = classification_metrics(gold, predicted, classifier.labels)
    return metrics | {"n": len(texts), "predictions": predicted}


def _texts_labels(examples: Sequence[Example], what: str) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    for ex in examples:
        if ex.kind != "labelled" or ex.text is None or ex.label is None:
            raise ValueError(f"{what} example {ex.id}: needs text and label (kind 'labelled')")
        texts.append(ex.text)
        gold.append(str(ex.label))
    if not texts:
        raise ValueError(f"the {what} set is empty")
    return texts, gold
