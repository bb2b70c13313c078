"""A killed featurisation resumes: committed chunks are reused, the rest computed, results identical."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import translation_examples
from tamis.signals.influence.features import featurise, store_for
from tamis.signals.influence.projection import CountSketch


def test_featurise_resumes_after_a_crash(make_tracked, tmp_path):
    tracked = make_tracked(params="lora", batch_size=2)
    encoded = tracked.encode(translation_examples())
    projection = CountSketch(tracked.shapes, 128, seed=1)
    clean, computed = featurise(tracked, encoded, projection, None)
    assert computed == len(encoded)

    store = store_for(tmp_path, tracked, projection)
    real = tracked.forward_backward
    calls = {"n": 0}

    def dies_on_third_batch(batch, labels=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(batch, labels)

    tracked.forward_backward = dies_on_third_batch
    with pytest.raises(KeyboardInterrupt):
        featurise(tracked, encoded, projection, store, chunk_size=2)
    tracked.forward_backward = real
    resumed_store = store_for(tmp_path, tracked, projection)
    assert len(resumed_store.load()) == 4  # two committed chunks of two
    resumed, computed = featurise(tracked, encoded, projection, resumed_store, chunk_size=2)
    assert computed == len(encoded) - 4
    np.testing.assert_allclose(resumed, clean, rtol=1e-5, atol=1e-8)
    _, computed = featurise(tracked, encoded, projection, store_for(tmp_path, tracked, projection))
    assert computed == 0
