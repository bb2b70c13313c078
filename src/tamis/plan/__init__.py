"""Dry runs: what a command would ask of its models, and how long that would take, without running it.

One contract for every model-calling command (``--dry-run``):

- A :class:`Plan` is a list of :class:`Operation` rows: one per (model, operation), with the number of
  calls, the prompt tokens the model reads and the most tokens it may generate.
- Calls and tokens come from running the command's own measurement code against **recording models**
  (:class:`RecordingLLM`, :class:`RecordingEmbedder`): they build every prompt exactly as the real
  command does, count it, and answer with placeholders, so the count follows the command's settings
  (k samples, reflection prompts, both judge orders, ...) without a second copy of that logic. Training
  and gradient commands count optimiser steps and tokens from their settings (LoRA SFT, encoder
  classifiers, influence's gradient passes).
- Tokens are counted with the model's own tokenizer, loaded without its weights (transformers specs; an
  ``openai:`` spec with ``tokenizer=``; sentence-transformers); otherwise as characters / 4, and the
  plan says so.
- Time comes only from measurements: every real run records, per model spec and operation, the tokens
  it computed (cache misses only) and the seconds it took, in ``WORKSPACE/throughput.json``
  (:class:`Meter`). An operation with no measurement shows none and says how to get one (run once, or
  ``--calibrate``, which times one small batch for real).

A dry run writes nothing into the output folder (no run folder, no settings.json). Modules: `tokens`
(counting), `recording` (the recording models, SFT arithmetic), `throughput` (measurements),
`plans` (the plan, its calibration, each command's plan), `table` (showing a plan).
"""

from tamis.plan.plans import (Operation, Plan, calibrate, plan_classifier, plan_confidence, plan_correct, plan_embed,
                              plan_eval, plan_generation, plan_influence, plan_lds, plan_profile, plan_sft,
                              plan_synthetic)
from tamis.plan.table import show
from tamis.plan.recording import RecordingEmbedder, RecordingLLM, sft_row_tokens, sft_steps, sft_tokens
from tamis.plan.throughput import (Meter, count_choices, count_embed, count_generate, count_score, read_throughput,
                                   record_throughput, timed)
from tamis.plan.tokens import TokenCounter, _TokenizerOnly, counter_for, counter_of  # noqa: F401 (_TokenizerOnly: train.sft)

__all__ = ["Meter", "Operation", "Plan", "RecordingEmbedder", "RecordingLLM", "TokenCounter", "calibrate",
           "count_choices", "count_embed", "count_generate", "count_score", "counter_for", "counter_of",
           "plan_classifier", "plan_confidence", "plan_correct", "plan_embed", "plan_eval", "plan_generation", "plan_influence",
           "plan_lds", "plan_profile", "plan_sft", "plan_synthetic", "read_throughput", "record_throughput", "sft_row_tokens", "sft_steps",
           "sft_tokens", "show", "timed"]
