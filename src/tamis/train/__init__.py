"""Training: LoRA/full SFT of causal LMs (TRL + PEFT) and encoder classifiers."""
