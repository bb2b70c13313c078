"""The packing arithmetic behind shared-prompt scoring (the model-level check is in test_transformers.py)."""

from __future__ import annotations

import torch

from tamis.models.hf_prefix import MIN_SHARED_PREFIX, common_prefix_length, pack, packed_mask, shared_prompts


def test_pack_restarts_positions_after_the_prompt_and_reads_the_right_logits():
    packed = pack([10, 11, 12], [[20, 21], [30]])
    assert packed.ids == [10, 11, 12, 20, 21, 30]
    assert packed.positions == [0, 1, 2, 3, 4, 3]
    assert packed.reads == [[2, 3], [2]]  # token 20 from the prompt's end, 21 from 20; 30 from the prompt's end


def test_mask_lets_a_response_see_the_prompt_and_itself_only():
    mask = packed_mask(2, [2, 1], width=6)
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # the second response does not see the first
        [0, 0, 0, 0, 0, 1],  # padding sees itself only
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_rows_are_grouped_by_identical_prompt_ids():
    groups, singles = shared_prompts([[1, 2], [1, 2], [3], [1, 2], [4]], todo=[0, 1, 2, 3])
    assert groups == [[0, 1, 3]]
    assert singles == [2]


def test_common_prefix_leaves_each_row_its_last_prompt_token_and_ignores_short_ones():
    head = list(range(100, 100 + MIN_SHARED_PREFIX + 2))
    assert common_prefix_length([head + [1, 2], head + [3], head + [1, 2, 4]]) == len(head)
    assert common_prefix_length([head, head + [5]]) == len(head) - 1  # the shorter one keeps its last token
    assert common_prefix_length([head[:MIN_SHARED_PREFIX - 1] + [1], head[:MIN_SHARED_PREFIX - 1] + [2]]) == 0
    assert common_prefix_length([head + [1]]) == 0  # one row: nothing to share
