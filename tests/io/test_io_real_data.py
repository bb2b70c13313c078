"""Read real public data sets when the shared folder is present; skip cleanly otherwise."""

from pathlib import Path

import pytest

from tamis.io import DataError, inspect_dataset, read_dataset, write_dataset

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def need(rel: str) -> Path:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"{rel} not in the shared data")
    return path


def test_dolly_is_alpaca_and_round_trips(tmp_path):
    r = read_dataset(need("dolly_alpagasus_3k/dolly_filtered_3k.jsonl"))
    assert r.format == "alpaca" and r.n_rejected == 0 and r.n_kept == 2996
    assert r.examples[0].id == "d3-00000" and "category" in r.examples[0].meta
    out = write_dataset(r.examples, tmp_path / "dolly.parquet", format="alpaca")
    assert read_dataset(out).examples == r.examples


def test_alpaca_libre_rejects_empty_outputs():
    r = read_dataset(need("alpaca_libre_status/alpaca_libre_tasks_v1-v3.jsonl"))
    assert r.format == "alpaca" and r.n_rejected > 0
    assert {p.field for p in r.problems} <= {"output", "instruction", "input", "id"}


def test_sms_spam_is_labelled():
    r = read_dataset(need("sms_spam/sms_spam.jsonl"))
    assert r.format == "labelled" and r.n_rejected == 0
    assert set(inspect_dataset(r)["labels"]) == {"ham", "spam"}


def test_financial_phrasebank_uses_sentence():
    r = read_dataset(need("financial_phrasebank/financial_phrasebank_agreement.jsonl"))
    assert r.format == "labelled" and r.n_kept == r.n_read
    assert r.examples[0].meta["max_agreement_tier"]


def test_lewidi_annotators_become_annotations():
    r = read_dataset(need("lewidi_multi_annotator/HS-Brexit.jsonl"), columns={"hard_label": "label"})
    ex = r.examples[0]
    assert ex.annotations and set(ex.annotations) == {"Ann1", "Ann2", "Ann3", "Ann4", "Ann5", "Ann6"}
    assert ex.label == "0"


def test_wmt22_needs_a_column_mapping():
    path = need("wmt22_general_zhen_deen/generaltest2022.de-en.jsonl")
    with pytest.raises(DataError, match="ref_A"):
        read_dataset(path)
    r = read_dataset(path, format="translation", columns={"src": "source", "ref_A": "target"},
                     defaults={"source_lang": "de", "target_lang": "en"})
    assert r.n_kept == r.n_read == 1984
    assert r.examples[0].messages[0].content.startswith("Translate the following text from German to English.")
