"""Shared fixtures: one converted copy of the bundled model per test session, real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TAMIS_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted weights shared by every workspace of the session (the GGUF is dequantised once)."""
    path = Path(os.environ.get("TAMIS_TEST_MODELS") or tmp_path_factory.mktemp("models"))
    os.environ["TAMIS_MODELS"] = str(path)
    return path


@pytest.fixture()
def workspace(tmp_path: Path, models_dir: Path):
    from tamis.store import Workspace

    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def smollm2(models_dir: Path):
    """The bundled SmolLM2-135M-Instruct through transformers, uncached (loaded once per session)."""
    from tamis.models import load_llm
    from tamis.store import Workspace

    return load_llm("transformers:smollm2", Workspace(models_dir.parent / "session-ws"), cache=False)


@pytest.fixture(scope="session")
def minilm():
    from tamis.models import load_embedder

    return load_embedder("sentence-transformers:minilm", cache=False)


@pytest.fixture(scope="module")
def llamacpp_smollm2():
    from tamis.models import load_llm

    return load_llm("llamacpp:smollm2", cache=False)


@pytest.fixture(scope="module")
def sms_pool(shared_data):
    from tamis.io import read_dataset

    examples = read_dataset(shared_data / "sms_spam" / "sms_spam.jsonl").examples
    ham = [e for e in examples if e.label == "ham"]
    spam = [e for e in examples if e.label == "spam"]
    return ham[:200] + spam[:200], ham[200:260] + spam[200:260]
