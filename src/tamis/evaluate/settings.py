"""Evaluation settings (no model libraries here: the CLI builds its options from this class)."""

from __future__ import annotations

from dataclasses import dataclass

from tamis.settings import setting, validate


@dataclass
class EvalSettings:
    model: str = setting("", "Model spec, or a folder with a trained adapter/model.")
    data: str = setting("", "Test set whose final assistant turns are the references.")
    out: str | None = setting(None, "Output folder [default: workspace/runs/eval-NAME].")
    format: str | None = setting(None, "Input format, if auto-detection should be overridden.")
    metrics: tuple[str, ...] | None = setting(None, "exact_match, accuracy, token_f1, chrf, bleu, ter, corpus_chrf "
                                                    "[default: BLEU/chrF/TER for translation, else short-answer "
                                                    "metrics].")
    max_tokens: int = setting(256, "Maximum new tokens per output.", range=(1, None))
    n_resamples: int = setting(1000, "Bootstrap resamples for the 95% CIs.", range=(10, None))
    seed: int = setting(0, "Seed for generation and the bootstrap.")
    ratings: str | None = setting(None, "Human ratings file (id, score[, rater]) to join in.")
    limit: int | None = setting(None, "Evaluate at most this many rows.", range=(1, None))
    versus: str | None = setting(None, "Compare with a second model (spec or adapter folder) or an earlier `tamis "
                                       "eval` output folder: an LLM judge picks the better output of each example, "
                                       "both orders, ties allowed.")
    judge: str | None = setting(None, "The pairwise judge's model spec [default: the bundled model].")
    scoring: str = setting("generate", "How predictions are made: generate (greedy decoding, then the metrics) or "
                                       "options (classification as generation: the label option with the highest "
                                       "log-probability is the prediction; accuracy and macro-F1; nothing sampled).",
                           choices=("generate", "options"))
    options: tuple[str, ...] | None = setting(None, "The label options for scoring=options [default: each test "
                                                    "example's meta.options].")
    judge_k: int = setting(0, "Sampled verdicts per order for each verdict's confidence (0: the judge's letter "
                              "probabilities only).", range=(0, None))

    def __post_init__(self) -> None:
        validate(self)
