"""Install time of the core vs every extra, each into a fresh virtual environment.

    python bench/bench_install.py                       # core and [all], pip's cache as it is
    python bench/bench_install.py --only core --no-cache  # a cold core install (downloads everything)
    nice -n 19 python bench/bench_install.py --only all --no-cache   # cold [all]: compiles llama.cpp

Each run: `python -m venv DIR`, then the Makefile's order: for [all] the CPU torch wheel first, then
`pip install -c constraints.txt '.[EXTRA]'` (a regular, non-editable install of this checkout). The
time is the wall time of the pip commands; the venv's creation is reported apart. After a core install
the script checks that the core works without the extras: `tamis inspect` and `tamis convert` on the
bundled demo data and `tamis signals`, and that torch is not installed. Figures go to
docs/BENCHMARKS.md by hand; the JSON line printed last has them all.

With pip's cache warm (a machine that ran `make install` before), nothing is compiled and the time
is mostly unpacking; `--no-cache` (pip's --no-cache-dir) downloads every wheel and builds what has no
wheel, which for [all] means compiling llama-cpp-python (about 12 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "src" / "tamis" / "data" / "demo_instructions.jsonl"


def _run(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t0


def measure(extra: str, *, no_cache: bool, keep: bool) -> dict:
    where = Path(tempfile.mkdtemp(prefix=f"tamis-install-{extra}-"))
    venv = where / "venv"
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    if no_cache:
        pip.append("--no-cache-dir")
    result: dict = {"extra": extra, "no_cache": no_cache}
    try:
        result["venv_s"] = round(_run([sys.executable, "-m", "venv", str(venv)]), 1)
        # build in a copy so no build/ or *.egg-info lands in the checkout others work in
        src = where / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".venv", ".git", "tamis-workspace", "__pycache__", "*.egg-info", "build", "node_modules"))
        t = 0.0
        if extra == "all":
            t += _run(pip + ["torch==2.13.0"])
        target = str(src) if extra == "core" else f"{src}[{extra}]"
        t += _run(pip + [target])
        result["install_s"] = round(t, 1)
        freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
        result["packages"] = len(freeze.splitlines())
        result["has_torch"] = any(line.lower().startswith("torch==") for line in freeze.splitlines())
        if extra == "core":
            tamis = str(venv / "bin" / "tamis")
            out = where / "demo.parquet"
            result["smoke_s"] = round(
                _run([tamis, "inspect", str(DEMO)], stdout=subprocess.DEVNULL)
                + _run([tamis, "convert", str(DEMO), str(out)], stdout=subprocess.DEVNULL)
                + _run([tamis, "signals"], stdout=subprocess.DEVNULL), 1)
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)
        else:
            result["kept"] = str(where)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["core", "all"], action="append", help="measure only this install")
    ap.add_argument("--no-cache", action="store_true", help="pip --no-cache-dir: download and build everything")
    ap.add_argument("--keep", action="store_true", help="keep the venvs (printed)")
    args = ap.parse_args()
    results = [measure(extra, no_cache=args.no_cache, keep=args.keep) for extra in (args.only or ["core", "all"])]
    for r in results:
        print(f"{r['extra']:>5}: {r['install_s']:7.1f} s, {r['packages']} packages, torch: {r['has_torch']}"
              + (" (pip cache off)" if r["no_cache"] else ""), file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
