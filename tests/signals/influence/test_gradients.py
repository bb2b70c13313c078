"""Per-example gradients from hooks equal autograd run one example at a time (LoRA and Linear layers)."""

from __future__ import annotations

import pytest
import torch

from conftest import translation_examples


@pytest.mark.parametrize("params", ["linear", "lora"])
def test_hook_gradients_match_one_at_a_time_autograd(make_tracked, params):
    tracked = make_tracked(params=params, layer_stride=1, batch_size=5, linear_modules=("mlp.down_proj", "mlp.up_proj"))
    if params == "lora":  # fresh LoRA has B = 0 (so grad A = 0): give B values so both sides are tested
        for name, p in tracked.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
    encoded = tracked.encode(translation_examples())
    assert len({len(e.ids) for e in encoded}) > 1  # batches are padded
    grads = tracked.gradients(encoded)
    weights = [m.weight for _, m in tracked.modules]
    for i in (0, 3, 7):
        e = encoded[i]
        ids = torch.tensor([e.ids])
        logits = tracked.model(input_ids=ids).logits[0, e.n_context - 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits, ids[0, e.n_context :])
        reference = torch.autograd.grad(loss, weights)
        for got, want in zip(grads, reference):
            assert float(want.abs().max()) > 0
            torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-7)


def test_loss_is_on_response_tokens_only(make_tracked):
    tracked = make_tracked(params="linear", layer_stride=1)
    a, b = translation_examples()[:2]
    enc = tracked.encode([a, b])
    assert enc[0].n_response == len(tracked.tokenizer(a.response, add_special_tokens=False)["input_ids"]) + 1  # + <|im_end|>
    assert tracked.tokenizer.decode(enc[0].ids[enc[0].n_context :]).startswith(a.response)
