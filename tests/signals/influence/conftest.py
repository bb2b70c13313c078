"""A tiny randomly initialised Llama (small enough for exact Hessians) with the bundled model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tamis.records import chat_example

SENTENCES = [
    ("Die Ware hat unter 20 Euro gekostet.", "The goods cost less than 20 euros."),
    ("Ich habe das Paket gestern bekommen.", "I received the parcel yesterday."),
    ("Wo ist der Bahnhof?", "Where is the station?"),
    ("Das Wetter ist heute schön.", "The weather is nice today."),
    ("Können Sie mir helfen?", "Can you help me?"),
    ("Der Preis ist zu hoch.", "The price is too high."),
    ("Wir fahren morgen nach Berlin.", "We are going to Berlin tomorrow."),
    ("Die Lieferung kam zu spät.", "The delivery came too late."),
    ("Bitte senden Sie mir eine Rechnung.", "Please send me an invoice."),
    ("Mein Konto wurde gesperrt.", "My account has been blocked."),
    ("Das Essen war kalt.", "The food was cold."),
    ("Ich möchte mein Geld zurück.", "I want my money back."),
]


def translation_examples(pairs=SENTENCES, prefix="ex"):
    return [chat_example([{"role": "user", "content": f"Translate from German to English.\n\n{src}"},
                          {"role": "assistant", "content": tgt}], id=f"{prefix}{i}") for i, (src, tgt) in enumerate(pairs)]


@pytest.fixture(scope="session")
def tokenizer(models_dir: Path):
    from transformers import AutoTokenizer

    from tamis.models.hf import converted_smollm2_dir

    return AutoTokenizer.from_pretrained(str(converted_smollm2_dir(models_dir)))


def tiny_llama(seed: int = 0, hidden: int = 16, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True, attn_implementation="eager")  # eager: double backward
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a less uniform next-token distribution than the default init gives
        model.model.embed_tokens.weight.mul_(20)
    return model


@pytest.fixture()
def make_tracked(tokenizer):
    from tamis.signals.influence import GradientConfig, TrackedModel, prepare_model

    def make(seed: int = 0, **config):
        cfg = GradientConfig(**config)
        return TrackedModel(prepare_model(tiny_llama(seed), cfg), tokenizer, cfg, identity=f"tiny-llama-{seed}")

    return make
