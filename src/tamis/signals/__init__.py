"""Measurements of examples: one module per signal, each returning rows keyed by example id."""
