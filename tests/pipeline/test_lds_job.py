"""The LDS job on the real bundled model at tiny scale: warm-up, influence per Hessian, subset
retrainings, per-seed losses, and a resume that retrains nothing already measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tamis.errors import ConfigError
from tamis.io import write_dataset
from tamis.pipeline.demo import demo_sms_path
from tamis.pipeline.lds import LDSJob, run_lds
from tamis.pipeline.sources import builder_params, get_builder

pytestmark = pytest.mark.slow


def _data(tmp_path: Path) -> tuple[Path, Path]:
    params = builder_params("noisy_labels", {"path": str(demo_sms_path()), "n_train": 8, "n_test": 3, "noise": 0.5,
                                             "max_chars": 100, "answers": {"spam": "yes", "ham": "no"},
                                             "instruction": "Is this SMS message spam? Answer yes or no.\n\n"})
    splits = get_builder("noisy_labels").fn(params, Path)
    write_dataset(splits["train"], tmp_path / "candidates.jsonl")
    write_dataset(splits["test"], tmp_path / "seeds.jsonl")
    return tmp_path / "candidates.jsonl", tmp_path / "seeds.jsonl"


def test_lds_job_measures_every_subset_and_resumes(tmp_path, workspace):
    candidates, seeds = _data(tmp_path)
    job = LDSJob(candidates=str(candidates), seed_set=str(seeds), out=str(tmp_path / "lds"), n_subsets=4,
                 hessians=("kfac", "identity"), projection_dim=512, n_resamples=100,
                 train={"max_steps": 1, "batch_size": 2, "max_length": 64, "learning_rate": 0.01})
    result = run_lds(job, workspace)
    assert set(result.scores) == {"kfac", "identity", "random"}
    assert all(-1 <= r["value"] <= 1 for r in result.scores.values() if r["n"])
    out = tmp_path / "lds"
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [r["subset"] for r in rows] == [0, 1, 2, 3] and all(len(r["losses"]) == 3 for r in rows)
    assert len({tuple(r["losses"]) for r in rows}) == 4  # each subset model is its own model
    saved = json.loads((out / "lds.json").read_text())
    assert len(saved["subsets"]) == 4 and all(sum(m) == 4 for m in saved["subsets"])
    influence = json.loads((out / "influence-kfac" / "config.json").read_text())
    assert influence["gradients"]["adapter"] == str(out / "warmup" / "adapter")  # through the warm-up adapter
    assert "| kfac |" in (out / "summary.md").read_text()

    # an interrupted run: the last subset's losses and the completion mark lost -> only that subset is redone
    (out / "losses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (out / ".complete").unlink()
    again = run_lds(job, workspace)
    redone = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert redone[:3] == rows[:3] and redone[3]["losses"] == pytest.approx(rows[3]["losses"], abs=1e-6)
    assert again.scores["kfac"]["value"] == pytest.approx(result.scores["kfac"]["value"])


def test_lds_job_names_a_bad_hessian():
    with pytest.raises(ConfigError, match="hessians"):
        LDSJob(candidates="a", seed_set="b", hessians=("ekfac", "diagonal"))
