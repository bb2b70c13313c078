"""HTER and character edit distance: known values, pooling over turns, and agreement with MLQE-PE's HTER."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from tamis.signals.edits import char_edit_distance, edit_effort, hter


def test_known_values():
    assert hter("the cat sat on the mat", "the cat sat on the mat") == 0.0
    # one substitution against a 4-word reference
    assert hter("a b c d", "a b x d") == pytest.approx(0.25)
    # a shift counts as one edit (TER), not a deletion plus an insertion
    assert hter("b c d a", "a b c d") == pytest.approx(0.25)
    assert char_edit_distance("kitten", "sitting") == 3
    assert char_edit_distance("", "abc") == 3


def test_pooling_weights_turns_by_length():
    effort = edit_effort(["a b", "c d e f g h i j"], ["a x", "c d e f g h i j"])
    assert effort.word_edits == 1 and effort.ref_words == 10
    assert effort.hter == pytest.approx(0.1)  # not the mean of per-turn ratios (0.25)
    assert effort.char_distance == 1
    with pytest.raises(ValueError, match="turn counts differ"):
        edit_effort(["a"], ["a", "b"])


def test_empty_reference():
    assert edit_effort([""], [""]).hter == 0.0
    assert edit_effort(["two words"], [""]).hter == 2.0


@pytest.mark.parametrize("pair", ["ende", "enzh"])
def test_hter_agrees_with_mlqe_pe(shared_data, pair):
    """Our HTER on MLQE-PE's tokenised MT/post-edit pairs against the HTER its authors published."""
    path = shared_data / "mlqe_pe_ende_enzh" / f"mlqe_pe_{pair}_post_editing.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][::30][:300]
    ours = np.array([hter(r["mt_tok"], r["pe_tok"]) for r in rows])
    theirs = np.array([r["hter"] for r in rows])
    pearson, spearman = pearsonr(ours, theirs)[0], spearmanr(ours, theirs)[0]
    mae = float(np.abs(ours - theirs).mean())
    exact = float(np.mean(np.abs(ours - theirs) < 1e-3))
    print(f"\nMLQE-PE {pair}: n={len(rows)} pearson={pearson:.4f} spearman={spearman:.4f} "
          f"MAE={mae:.4f} exact(<1e-3)={exact:.3f}")
    assert pearson > 0.97 and spearman > 0.99
    assert mae < 0.01
    assert exact > 0.95
    # every disagreement is the data set capping HTER at 1.0; capped, ours matches theirs row for row
    assert np.abs(np.minimum(ours, 1.0) - theirs).max() < 1e-3
