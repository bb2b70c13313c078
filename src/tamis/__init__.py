"""tamis: make fine-tuning data for language models better, and prove it."""

__version__ = "0.1.0"
