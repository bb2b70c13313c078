"""Evaluation: metrics, judges and detector quality, each with per-example outputs and bootstrap CIs."""
