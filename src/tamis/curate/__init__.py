"""Decisions about examples: keep, filter, correct, select; each with a reason, never silent."""
