"""The CLI contract without models: typos and mismatches fail loudly (exit 2, one line), --config works,
and the filter reads any run's signals by name with the registered direction."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tamis.cli import app
from tamis.curate.decisions import read_decisions
from tamis.io import read_dataset
from tamis.signals.registry import SignalTable

runner = CliRunner()


def make_run(tmp_path, n: int = 8):
    """An alpaca CSV (no model needed) and a scored run whose signals.parquet is written by the library."""
    data = tmp_path / "data.csv"
    data.write_text("id,instruction,input,output\n" + "".join(f"e{i},question {i},,answer {i}\n" for i in range(n)))
    run = tmp_path / "score"
    SignalTable.from_rows([{"id": f"e{i}", "confidence": i / n, "ifd": i / n} for i in range(n)]).write(run)
    prof = tmp_path / "profile"
    SignalTable.from_rows([{"id": f"e{i}", "nn_similarity": 0.5 + (i % 3) / 10} for i in range(n)]).write(prof)
    return data, run, prof


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def flat(output: str) -> str:
    """The output with typer's error box and line breaks removed."""
    return " ".join(output.replace("│", " ").split())


def test_typo_in_a_signal_is_an_error_with_a_suggestion(tmp_path):
    data, run, _ = make_run(tmp_path)
    res = invoke("filter", data, "--scores", run, "--signal", "confidance", "-o", tmp_path / "f")
    assert res.exit_code == 2, res.output
    assert "did you mean confidence?" in res.output and "Traceback" not in res.output


def test_ids_that_match_no_scored_row_are_an_error(tmp_path):
    _, run, _ = make_run(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("id,instruction,input,output\nz1,q,,a\nz2,q2,,a2\n")
    res = invoke("filter", other, "--scores", run, "-o", tmp_path / "f")
    assert res.exit_code == 2 and "has a row in the given scores" in res.output


def test_ifd_keeps_the_better_half_and_the_output_keeps_the_input_format(tmp_path):
    data, run, _ = make_run(tmp_path)
    res = invoke("filter", data, "--scores", run, "--signal", "ifd", "-o", tmp_path / "f")
    assert res.exit_code == 0, res.output
    kept = read_dataset(tmp_path / "f" / "kept.csv")
    assert kept.format == "alpaca" and [ex.id for ex in kept.examples] == ["e0", "e1", "e2", "e3"]


def test_policy_over_two_runs_and_a_mismatched_rerun(tmp_path):
    data, run, prof = make_run(tmp_path)
    out = tmp_path / "f"
    res = invoke("filter", data, "-s", run, "-s", prof, "--keep", "confidence>=median", "--drop",
                 "worst 25% nn_similarity", "-o", out)
    assert res.exit_code == 0, res.output
    decisions = {d.id: d for d in read_decisions(out)}
    assert decisions["e5"].action == "drop" and "[drop worst 25% nn_similarity]" in decisions["e5"].reason
    assert decisions["e4"].action == "keep" and "confidence 0.5 >= median" in decisions["e4"].reason
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["policy"] == "keep confidence>=median; drop worst 25% nn_similarity"
    again = invoke("filter", data, "-s", run, "-s", prof, "--keep", "confidence>=median", "--drop",
                   "worst 25% nn_similarity", "-o", out)
    assert again.exit_code == 0 and "reused" in again.output
    other = invoke("filter", data, "-s", run, "--keep", "confidence>=0.9", "-o", out)
    assert other.exit_code == 2 and "other settings" in other.output and "keep:" in other.output


def test_a_policy_that_keeps_nothing_is_an_error(tmp_path):
    data, run, _ = make_run(tmp_path)
    res = invoke("filter", data, "-s", run, "--keep", "confidence>2", "-o", tmp_path / "f")
    assert res.exit_code == 2 and "keeps none" in res.output


def test_config_file_sets_options_and_unknown_keys_fail(tmp_path):
    data, run, _ = make_run(tmp_path)
    cfg = tmp_path / "filter.yaml"
    cfg.write_text(f"scores: [{run}]\nkeep: ['best 25% confidence']\nout: {tmp_path / 'f'}\n")
    res = invoke("filter", data, "--config", cfg)
    assert res.exit_code == 0, res.output
    assert sorted(d.id for d in read_decisions(tmp_path / "f") if d.action == "keep") == ["e6", "e7"]
    cfg.write_text("kep: ['best 25% confidence']\n")
    res = invoke("filter", data, "--config", cfg)
    assert res.exit_code == 2 and "did you mean keep?" in flat(res.output)


def test_option_values_are_checked_at_parse_time(tmp_path):
    data, _, _ = make_run(tmp_path)
    res = invoke("score", "confidence", data, "--similarity", "embeding")
    assert res.exit_code == 2 and "did you mean embedding?" in flat(res.output)
    res = invoke("score", "confidence", data, "--alpha", "1.5")
    assert res.exit_code == 2 and "alpha must lie in [0, 1]" in flat(res.output)
    res = invoke("score", "agreement", data, "--level", "ordnial")
    assert res.exit_code == 2 and "did you mean ordinal?" in flat(res.output)


def test_help_shows_defaults_and_brackets():
    res = invoke("filter", "--help")
    assert res.exit_code == 0
    assert "[default: the input's]" in flat(res.output) and "(range 0 to 1)" in flat(res.output)


def test_signals_command_lists_the_registry():
    res = invoke("signals")
    assert res.exit_code == 0
    row = next(line for line in res.output.splitlines() if "│ ifd " in line)
    assert "lower" in row
    res = invoke("signals", "confidance")
    assert res.exit_code == 2 and "did you mean confidence?" in res.output


def test_every_command_takes_config_and_scoring_outputs_are_run_folders():
    import typer.main

    group = typer.main.get_command(app)

    def commands(cmd, path: tuple[str, ...] = ()):
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                yield from commands(sub, path + (name,))
        else:
            yield path, cmd

    seen = 0
    for path, cmd in commands(group):
        seen += 1
        names = {p.name for p in cmd.params}
        assert "config" in names, path
        if names & {"data", "candidates"}:
            assert "columns" in names, path  # every command that reads a data set maps columns
        outs = [p for p in cmd.params if "--out" in getattr(p, "opts", [])]
        writes = path[0] in ("score", "filter", "select", "correct", "evaluate-detector", "profile", "generate")
        if writes and path != ("generate", "tasks"):
            assert outs and "folder" in (outs[0].help or "").lower(), path
            assert "workspace" in names, path
    assert seen > 25


def test_unknown_backends_models_and_formats_fail_at_once(tmp_path):
    data, run, _ = make_run(tmp_path)
    res = invoke("score", "confidence", data, "-m", "transfomers:smollm2")
    assert res.exit_code == 2 and "did you mean transformers?" in flat(res.output)
    res = invoke("filter", data, "-s", run, "-f", "alpacca")
    assert res.exit_code == 2 and "did you mean alpaca?" in flat(res.output)
    res = invoke("profile", data, "-m", "transformers:smollm", "--no-embed", "-o", tmp_path / "p", "-w", tmp_path / "ws")
    assert res.exit_code == 2 and "unknown model 'smollm'; did you mean smollm2?" in res.output


def test_columns_map_a_near_miss_layout_on_every_reading_command(tmp_path):
    data = tmp_path / "odd.csv"
    data.write_text("key,question,answer\n" + "".join(f"e{i},question {i},answer {i}\n" for i in range(6)))
    run = tmp_path / "score"
    SignalTable.from_rows([{"id": f"e{i}", "confidence": i / 6} for i in range(6)]).write(run)
    assert invoke("inspect", data).exit_code == 2  # no known layout
    mapping = "key=id,question=instruction,answer=output"
    res = invoke("filter", data, "--scores", run, "--columns", mapping, "-o", tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert [ex.id for ex in read_dataset(tmp_path / "f" / "kept.csv").examples] == ["e3", "e4", "e5"]
    saved = json.loads((tmp_path / "f" / "settings.json").read_text())["settings"]
    assert saved["columns"] == {"key": "id", "question": "instruction", "answer": "output"}
    other = invoke("filter", data, "--scores", run, "--columns", "key=id,question=instruction,answer=output,x=y",
                   "-o", tmp_path / "f")
    assert other.exit_code == 2 and "columns" in other.output  # another mapping is another run
    bad = invoke("filter", data, "--scores", run, "--columns", "key", "-o", tmp_path / "g")
    assert bad.exit_code == 2 and "is not SOURCE=FIELD" in flat(bad.output)


def test_library_warnings_are_hidden_unless_verbose():
    import subprocess
    import sys

    script = ("import warnings, sys; from typer.testing import CliRunner; from tamis.cli import app; "
              "CliRunner().invoke(app, sys.argv[1:] + ['signals']); "
              "warnings.warn('library noise', FutureWarning)")
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", script, "--verbose"], capture_output=True, text=True)
    assert "library noise" not in quiet.stderr and "library noise" in loud.stderr


def test_per_label_filter_takes_the_median_within_each_label(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("id,instruction,input,output\n" + "".join(f"e{i},question {i},,{'yes' if i % 2 else 'no'}\n"
                                                               for i in range(8)))
    run = tmp_path / "score"
    SignalTable.from_rows([{"id": f"e{i}", "confidence": i / 10 + (0.5 if i % 2 else 0)} for i in range(8)]).write(run)
    res = invoke("filter", data, "--scores", run, "--per-label", "-o", tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert "for 'no'" in flat(res.output) and "for 'yes'" in flat(res.output)
    kept = [ex.id for ex in read_dataset(tmp_path / "f" / "kept.csv").examples]
    assert kept == ["e4", "e5", "e6", "e7"]  # two of each label, where the global median keeps only "yes"
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert set(manifest["thresholds"]["confidence>=median"]) == {"no", "yes"}
    assert "'no'" in (tmp_path / "f" / "README.md").read_text()
