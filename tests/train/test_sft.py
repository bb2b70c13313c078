"""TRL's fused LM head restricted to labelled positions on a CPU: the same loss and gradients."""

from __future__ import annotations

import pytest
import torch

from tamis.train.sft import labelled_positions_only, resolve_model_path

pytestmark = pytest.mark.slow


def _loss_and_lora_grads(model, ids: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    loss = -out.log_probs.sum() / out.label_mask.sum()  # as SFTTrainer.compute_loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_labelled_positions_only_gives_the_same_loss_and_gradients(workspace):
    import trl.trainer.utils as trl_utils
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cpu = torch.device("cpu")
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path("transformers:smollm2", workspace))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                                            task_type="CAUSAL_LM"))
    trl_utils.add_fused_lm_head(model.get_base_model())  # as SFTTrainer does
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 20000, (2, 24), generator=generator)
    labels = torch.full_like(ids, -100)
    labels[0, -3:], labels[1, -5:-1] = ids[0, -3:], ids[1, -5:-1]  # a completion-only loss: a few tokens

    assert not trl_utils._use_triton(cpu)  # TRL itself scores every position on a CPU
    every_loss, every_grads = _loss_and_lora_grads(model, ids, labels)
    with labelled_positions_only():
        assert trl_utils._use_triton(cpu)  # the switch this relies on still exists in TRL
        only_loss, only_grads = _loss_and_lora_grads(model, ids, labels)
    assert not trl_utils._use_triton(cpu)  # restored

    assert only_loss == pytest.approx(every_loss, rel=1e-6)
    assert every_grads.keys() == only_grads.keys() and len(every_grads) == 2 * 2 * 30  # A and B of q, v per layer
    for name, grad in every_grads.items():
        assert grad.abs().sum() > 0, name
        # float sums in another order: within 1e-3 of the gradient's size (a wrong head is off by O(1))
        assert ((only_grads[name] - grad).norm() / grad.norm()).item() < 1e-3, name
