"""Instance agreement and Krippendorff's alpha from long-format ratings."""

import math

import krippendorff
import numpy as np
import pytest

from tamis.io import DataError
from tamis.signals.agreement import (instance_agreement, krippendorff_alpha, read_ratings, subjectivity_summary)

# Krippendorff (2011) "Computing Krippendorff's alpha-reliability", the example with missing values:
# 4 observers x 12 units; nominal alpha = 0.743, interval alpha = 0.849.
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def k2011_rows():
    return [(f"u{j}", f"r{i}", str(v)) for i, row in enumerate(K2011) for j, v in enumerate(row) if v is not None]


def test_alpha_matches_published_values():
    assert krippendorff_alpha(k2011_rows(), "nominal") == pytest.approx(0.743, abs=1e-3)
    assert krippendorff_alpha(k2011_rows(), "interval") == pytest.approx(0.849, abs=1e-3)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in K2011], dtype=float)
    assert krippendorff_alpha(k2011_rows(), "ordinal") == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal"))


def test_nominal_labels_may_be_strings_and_order_does_not_matter():
    rows = [("a", "x", "cat"), ("a", "y", "cat"), ("b", "x", "dog"), ("b", "y", "cat"), ("c", "x", "dog"),
            ("c", "y", "dog")]
    assert krippendorff_alpha(rows) == pytest.approx(krippendorff_alpha(list(reversed(rows))))


def test_all_identical_and_unpairable():
    assert krippendorff_alpha([("a", "x", "1"), ("a", "y", "1"), ("b", "x", "1"), ("b", "y", "1")]) == 1.0
    assert math.isnan(krippendorff_alpha([("a", "x", "1"), ("b", "y", "0")]))
    assert math.isnan(krippendorff_alpha([]))
    with pytest.raises(DataError, match="not a number"):
        krippendorff_alpha([("a", "x", "high"), ("a", "y", "low")], "interval")


def test_instance_agreement_and_summary():
    rows = [{"item": "a", "annotator": str(k), "label": lab} for k, lab in enumerate("xxxy")]
    rows += [{"item_id": "b", "rater": "0", "label": "y"}, {"item_id": "b", "rater": "1", "label": "x"}]
    per = {r["id"]: r for r in instance_agreement(rows).rows()}
    assert per["a"]["agreement"] == 0.75 and per["a"]["majority_label"] == "x" and per["a"]["n_ratings"] == 4
    assert per["b"]["agreement"] == 0.5 and per["b"]["majority_label"] == "x"  # tie -> first label
    s = subjectivity_summary(rows)
    assert s["n_items"] == 2 and s["mean_agreement"] == pytest.approx(0.625) and s["unanimous_share"] == 0


def test_read_ratings_errors_name_file_row_and_field(tmp_path):
    bad = tmp_path / "r.tsv"
    bad.write_text("item_id\tannotator\tlabel\na\tx\t1\nb\t\t0\n")
    with pytest.raises(DataError, match=r"r.tsv: row 3: missing field 'annotator'"):
        read_ratings(bad)


def test_real_multi_annotator_data(shared_data):
    rows = read_ratings(shared_data / "lewidi_multi_annotator" / "HS-Brexit.ratings_long.tsv")
    s = subjectivity_summary(rows)
    assert s["n_items"] == 1120 and s["ratings_per_item"] == 6
    assert 0 < s["alpha"] < 0.667  # hate speech is subjective: raters disagree a lot
    assert 0.5 < s["mean_agreement"] < 1
