"""The job skeleton: settings beside the output, mismatched reuse refused, completion marks, clear errors."""

from __future__ import annotations

import os

import pytest

from tamis.errors import OutputConflict, WorkspaceError
from tamis.runs import Run


def test_settings_saved_and_a_mismatched_rerun_is_refused_naming_the_difference(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("x")
    with Run("filter", {"signal": "confidence", "quantile": None}, tmp_path / "out", inputs=[data]) as run:
        assert not run.complete
        run.finish()
    with Run("filter", {"signal": "confidence", "quantile": None}, tmp_path / "out", inputs=[data]) as run:
        assert run.complete  # same settings, same input: the finished run is reused
    with pytest.raises(OutputConflict) as err:
        Run("filter", {"signal": "ifd", "quantile": None}, tmp_path / "out").__enter__()
    assert "signal: 'confidence' then, 'ifd' now" in str(err.value) and "--overwrite" in str(err.value)
    with pytest.raises(OutputConflict, match="tamis filter"):
        Run("select", {}, tmp_path / "out").__enter__()
    with Run("filter", {"signal": "ifd", "quantile": None}, tmp_path / "out", overwrite=True) as run:
        assert not run.complete


def test_a_changed_input_is_recomputed_not_reused(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("x")
    with Run("profile", {}, tmp_path / "out", inputs=[data]) as run:
        run.finish()
    data.write_text("changed")
    os.utime(data, ns=(1, 1))
    with Run("profile", {}, tmp_path / "out", inputs=[data]) as run:
        assert not run.complete


def test_an_unfinished_run_is_not_complete(tmp_path):
    with Run("profile", {}, tmp_path / "out") as run:
        pass  # killed before finish(): no completion mark
    with Run("profile", {}, tmp_path / "out") as run:
        assert not run.complete


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(WorkspaceError, match="not writable"):
            Run("profile", {}, ro).__enter__()
        with pytest.raises(WorkspaceError, match="cannot create"):
            Run("profile", {}, ro / "sub").__enter__()
    finally:
        ro.chmod(0o700)


def test_a_file_in_the_way_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Run("profile", {}, tmp_path / "f").__enter__()
