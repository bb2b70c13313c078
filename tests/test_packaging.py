"""Packaging: ranges in pyproject.toml, the tested pins in constraints.txt, and a core that works
without the extras (the heavy libraries blocked in a subprocess), naming the extra when one is needed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEMO = ROOT / "src" / "tamis" / "data" / "demo_instructions.jsonl"


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def _all_requirements() -> list[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("tamis[")]
    return reqs


def test_dependencies_are_ranges_and_constraints_pin_the_tested_versions():
    pins = _constraints()
    for req in _all_requirements():
        assert "==" not in req, f"{req}: an exact pin belongs in constraints.txt; pyproject.toml holds ranges"
        lower = re.search(r">=([\w.]+)", req)
        assert lower, f"{req}: give a tested lower bound (>=)"
        name = _name(req)
        assert name in pins, f"{name} has no tested version in constraints.txt"
        if name != "ray":  # ray's floor is the oldest with the Data API tamis uses, not the tested one
            assert pins[name] == lower.group(1), f"{name}: the lower bound {lower.group(1)} is not the tested {pins[name]}"
    assert pins["torch"] == "2.13.0"  # never an unconstrained torch (the CUDA build is several GB)


def test_extras_and_the_core():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"models", "llamacpp", "studio", "train", "influence", "ray", "all", "dev"} <= set(extras)
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    heavy = {"torch", "transformers", "llama-cpp-python", "fastapi", "sqlalchemy", "psycopg", "faiss-cpu", "peft",
             "trl", "ray"}
    assert not core & heavy, f"the core must not need {core & heavy}"
    everything = set(extras["all"][0][len("tamis["):-1].split(","))
    assert everything == set(extras) - {"all", "dev"}
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[all,dev]'" in makefile
    assert "-c constraints.txt torch==2.13.0" in makefile


BLOCKER = r'''
import importlib.abc, sys
BLOCKED = {"torch", "transformers", "fastapi", "llama_cpp", "peft", "trl", "sentence_transformers", "faiss",
           "sqlalchemy", "uvicorn", "accelerate", "safetensors", "ray", "kronfluence", "starlette"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, Block())
'''

SCRIPT = BLOCKER + r'''
import json
from pathlib import Path
from typer.testing import CliRunner
import tamis
from tamis.cli import app

tmp = Path(sys.argv[1])
demo = sys.argv[2]
run = CliRunner()
out = {}
r = run.invoke(app, ["inspect", demo, "--json"]); out["inspect"] = (r.exit_code, r.output[:200])
r = run.invoke(app, ["convert", demo, str(tmp / "c.parquet"), "--to", "messages"]); out["convert"] = (r.exit_code, r.output)
r = run.invoke(app, ["signals"]); out["signals"] = (r.exit_code, "response_chars" in r.output)
data = tamis.read_dataset(demo)
tamis.example_stats(data.examples).write(tmp / "stats")
r = run.invoke(app, ["filter", demo, "-s", str(tmp / "stats"), "--keep", "best 50% response_chars", "-o", str(tmp / "f")])
out["filter"] = (r.exit_code, r.output)
out["card"] = (tmp / "f" / "README.md").is_file()
r = run.invoke(app, ["studio", "projects"]); out["studio"] = (r.exit_code, r.output)
for spec in ("transformers:smollm2", "llamacpp:smollm2"):
    try:
        tamis.load_llm(spec)
    except tamis.TamisError as exc:
        out[spec] = str(exc)
try:
    tamis.train_sft
except ImportError as exc:
    out["train_sft"] = str(exc)
out["loaded"] = sorted(m for m in BLOCKED if m in sys.modules)
print(json.dumps(out))
'''


def test_the_core_works_without_the_extras_and_names_the_missing_one(tmp_path: Path):
    env = {**os.environ, "TAMIS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(DEMO)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["inspect"][0] == 0, out["inspect"]
    assert out["convert"][0] == 0 and "wrote 36 examples" in out["convert"][1], out["convert"]
    assert out["signals"] == [0, True]
    assert out["filter"][0] == 0, out["filter"]
    assert out["card"] is True
    code, text = out["studio"]
    assert code == 2 and "pip install 'tamis[studio]'" in text and "fastapi" in text
    assert "pip install 'tamis[models]'" in out["transformers:smollm2"]
    assert "pip install 'tamis[llamacpp]'" in out["llamacpp:smollm2"]
    assert "pip install 'tamis[train]'" in out["train_sft"]
    assert out["loaded"] == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_fresh_core_install_runs_inspect_convert_and_a_signal(tmp_path: Path):
    """pip install -c constraints.txt . into a fresh venv (needs a package index; minutes when pip's cache is cold)."""
    if shutil.which("git") is None and not (ROOT / "pyproject.toml").exists():  # pragma: no cover
        pytest.skip("no checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "tamis-workspace", "__pycache__",
                                                              "*.egg-info", "build", "node_modules"))
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c",
                          str(ROOT / "constraints.txt"), str(src)], capture_output=True, text=True, timeout=800)
    if pip.returncode != 0 and ("No matching distribution" in pip.stderr or "Could not fetch" in pip.stderr
                                or "NewConnectionError" in pip.stderr):
        pytest.skip(f"no package index reachable: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    assert not re.search(r"(?im)^(torch|transformers|llama.cpp.python|fastapi)==", freeze)
    tamis = str(venv / "bin" / "tamis")
    env = {**os.environ, "TAMIS_WORKSPACE": str(tmp_path / "ws")}
    for cmd in ([tamis, "inspect", str(DEMO)], [tamis, "convert", str(DEMO), str(tmp_path / "out.parquet")],
                [str(venv / "bin" / "python"), "-c",
                 f"import tamis; tamis.example_stats(tamis.read_dataset({str(DEMO)!r}).examples).write({str(tmp_path / 's')!r})"],
                [tamis, "filter", str(DEMO), "-s", str(tmp_path / "s"), "--keep", "best 50% response_chars",
                 "-o", str(tmp_path / "f")]):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert res.returncode == 0, (cmd, res.stdout[-1000:], res.stderr[-2000:])
    assert (tmp_path / "f" / "README.md").is_file()
    res = subprocess.run([tamis, "studio", "projects"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and "pip install 'tamis[studio]'" in res.stdout + res.stderr


def test_missing_extra_is_a_config_error_and_an_import_error():
    from tamis.errors import ConfigError
    from tamis.extras import MissingExtra, extra_for, extra_of_module, needs

    exc = MissingExtra("studio", "fastapi", "the studio")
    assert isinstance(exc, ConfigError) and isinstance(exc, ImportError)
    assert str(exc) == ("the studio needs the 'studio' extra (missing: fastapi); "
                        "install it with: pip install 'tamis[studio]'")
    assert extra_for("fastapi.routing") == "studio" and extra_for("numpy") is None
    assert extra_of_module("tamis.train.sft") == "train" and extra_of_module("tamis.models.llamacpp") == "llamacpp"
    with pytest.raises(MissingExtra, match=r"tamis\[train\]"):
        with needs("train"):
            raise ModuleNotFoundError("No module named 'peft'", name="peft")
    with pytest.raises(ModuleNotFoundError):  # not an optional dependency: a bug, raised as is
        with needs("train"):
            raise ModuleNotFoundError("No module named 'nonexistent'", name="nonexistent")
