"""Studio load run on loopback: N simulated annotators load items and save edits for D seconds.

SQLite (WAL, fsync on every commit) is the baseline; PostgreSQL (a throwaway server started from
Debian's binaries, fsync on) runs the same load in the same process, and the ratios are printed.
Each annotator logs in once (not timed), then loops: pause (--think, mean seconds, uniform 0.5-1.5x;
0 = back-to-back to measure saturation), GET its edit page, POST a save (JSON); every
5th save submits with ratings and claims the next item. Afterwards every acknowledged save must be
in the database (count and content).

--login-flood N runs N attackers beside them for the whole measurement, posting logins with unknown
usernames back to back, each request from a new X-Forwarded-For address (the server runs with
--proxy-headers), so no per-client throttle can help: what is measured is whether argon2 and the
failed-login writes stay out of the annotators' way.

    python bench/bench_studio.py [--annotators 50] [--duration 60] [--db sqlite,postgresql] [--login-flood 6]
        [--py-spy PATH]   # also record the server's stacks (idle threads too) to ./studio-DB-floodN.pyspy.txt

Loopback only (127.0.0.1), bounded in time; the server is a real uvicorn subprocess (one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import select

from tamis.studio import work
from tamis.studio.db import Database, Version

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
BASE = re.compile(r'name="base" value="(\d+)"')
PASSWORD = "bench-password-1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(root: Path) -> tuple[str, list[str], Path]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql); use --db sqlite")
    bindir = Path(bins[-1]).parent
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_pg + [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                            "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(as_pg + [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
                            f"-p {port} -h 127.0.0.1 -k {root} -c max_connections=300", "start"],
                   check=True, capture_output=True)
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench")
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench", as_pg + [str(bindir / "pg_ctl"), "-D",
                                                                              str(root / "data"), "-m", "fast", "stop"], root


def seed(url: str, n_annotators: int, n_items: int, tmp: Path) -> int:
    data = tmp / "items.jsonl"
    data.write_text("".join(json.dumps({"id": f"i{i}", "messages": [
        {"role": "user", "content": f"Question {i}: explain how tides work."},
        {"role": "assistant", "content": "Tides are caused by the moon's gravity pulling the oceans. " * 4}]}) + "\n"
                            for i in range(n_items)))
    database = Database(url)
    with database.write() as s:
        project, _, _ = work.create_project(s, "bench", data, overlap=2, criteria="naturalness,correctness")
        for k in range(n_annotators):
            user = work.add_user(s, f"a{k}", PASSWORD)
            work.add_member(s, project, user, "annotator")
        pid = project.id
    database.dispose()
    return pid


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def annotator(base: str, name: str, pid: int, deadline_box: list[float], ready: asyncio.Event,
                    lat: dict[str, list[float]], acked: list[tuple[int, int, str]], think: float,
                    logins: asyncio.Semaphore) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        async with logins:  # a few at a time: argon2 verification is deliberately slow (not timed)
            page = await c.get("/login")
            await c.post("/login", data={"username": name, "password": PASSWORD,
                                         "csrf": CSRF.search(page.text).group(1)})
            csrf = CSRF.search((await c.get("/")).text).group(1)
            r = await c.post(f"/p/{pid}/next", data={"csrf": csrf})
        aid = int(r.headers["location"].rsplit("/", 1)[1])
        lat["ready"].append(1.0)
        await ready.wait()
        k = 0
        rng = np.random.default_rng(int(name[1:]))
        while time.perf_counter() < deadline_box[0]:
            if think:
                await asyncio.sleep(float(rng.uniform(0.5, 1.5)) * think)  # a person reads and types
            t0 = time.perf_counter()
            page = await c.get(f"/p/{pid}/a/{aid}")
            lat["load"].append(time.perf_counter() - t0)
            base_v = int(BASE.search(page.text).group(1))
            k += 1
            submit = k % 5 == 0
            text = f"{name} edit {k}: tides come from the moon."
            form = {"csrf": csrf, "base": str(base_v), "turn_1": text, "action": "submit" if submit else "save"}
            if submit:
                form |= {"rating_naturalness": "4", "rating_correctness": "3"}
            t0 = time.perf_counter()
            r = await c.post(f"/p/{pid}/a/{aid}/save", data=form, headers={"accept": "application/json"})
            lat["save"].append(time.perf_counter() - t0)
            if r.status_code == 200:
                acked.append((aid, r.json()["version"], text))
            else:
                lat.setdefault("errors", []).append(r.status_code)
            if submit:
                t0 = time.perf_counter()
                r = await c.post(f"/p/{pid}/next", data={"csrf": csrf})
                lat["next"].append(time.perf_counter() - t0)
                loc = r.headers.get("location", "")
                if "/a/" not in loc:
                    return
                aid = int(loc.rsplit("/", 1)[1])


async def flooder(base: str, k: int, deadline_box: list[float], ready: asyncio.Event,
                  statuses: list[int]) -> None:
    """Unknown usernames, back to back, a new client address each time."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        token = CSRF.search((await c.get("/login")).text).group(1)
        await ready.wait()
        n = 0
        while time.perf_counter() < deadline_box[0]:
            r = await c.post("/login", headers={"x-forwarded-for": f"10.{k}.{n // 250 % 250}.{n % 250 + 1}"},
                             data={"username": f"intruder-{k}-{n}", "password": "guess-guess-1", "csrf": token})
            statuses.append(r.status_code)
            n += 1


async def drive(base: str, pid: int, n: int, duration: float, think: float,
                flood: int = 0) -> tuple[dict[str, list[float]], list, float]:
    lat: dict[str, list[float]] = {"load": [], "save": [], "next": [], "ready": [], "flood": []}
    acked: list[tuple[int, int, str]] = []
    ready = asyncio.Event()
    box = [float("inf")]
    logins = asyncio.Semaphore(2)
    tasks = [asyncio.create_task(annotator(base, f"a{k}", pid, box, ready, lat, acked, think, logins))
             for k in range(n)]
    # wait until every annotator has logged in (argon2 verification is deliberately slow; not timed)
    while len(lat["ready"]) < n and not any(t.done() for t in tasks):
        await asyncio.sleep(0.2)
    # the load generator's own full garbage collections (over httpx, numpy, SQLAlchemy...) paused it for up to
    # 150 ms, which it counted as server latency: keep what exists now out of them
    gc.collect()
    gc.freeze()
    flood_statuses: list[int] = []
    attackers = [asyncio.create_task(flooder(base, k, box, ready, flood_statuses)) for k in range(flood)]
    start = time.perf_counter()
    box[0] = start + duration
    ready.set()
    await asyncio.gather(*tasks, *attackers)
    lat["flood"] = flood_statuses
    return lat, acked, time.perf_counter() - start


def run(kind: str, n: int, duration: float, think: float, flood: int = 0, py_spy: str = "") -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"tamis-bench-{kind}-"))
    stop_pg = None
    try:
        if kind == "sqlite":
            url = f"sqlite:///{tmp / 'studio.db'}"
        else:
            pg_root = Path(tempfile.mkdtemp(prefix="tamis-bench-pg-"))  # its own folder: owned by postgres
            url, stop_pg, _ = start_postgres(pg_root)
        pid = seed(url, n, n_items=max(200, n * 40), tmp=tmp)
        port = free_port()
        log = open(tmp / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "tamis.cli", "studio", "serve", "--db", url, "--port",
                                 str(port), "--proxy-headers"], stdout=log, stderr=subprocess.STDOUT,
                                env=os.environ | {"TAMIS_PROGRESS": "0"})
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        spy = None
        if py_spy:  # sample the server's threads (idle ones too: lock waits show) for the whole run
            out = Path(f"studio-{kind}-flood{flood}.pyspy.txt").resolve()
            spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid), "--threads", "--idle", "--rate", "100",
                                    "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
            print(f"py-spy: {out}", flush=True)
        try:
            cpu0, client0, load0 = _cpu_seconds(proc.pid), time.process_time(), os.getloadavg()[0]
            lat, acked, elapsed = asyncio.run(drive(base, pid, n, duration, think, flood))
            server_cpu, client_cpu = _cpu_seconds(proc.pid) - cpu0, time.process_time() - client0
        finally:
            if spy is not None:
                import signal

                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            proc.terminate()
            proc.wait(20)
        database = Database(url)
        with database.read() as s:
            stored = {(v.assignment_id, v.number): v.messages[1]["content"] for v in s.scalars(select(Version))}
        database.dispose()
        found = sum(1 for a, v, text in acked if stored.get((a, v)) == text)
        all_lat = np.array(lat["load"] + lat["save"] + lat["next"]) * 1000
        saves = np.array(lat["save"]) * 1000
        loads, nexts = np.array(lat["load"]) * 1000, np.array(lat["next"] or [0.0]) * 1000
        result = {"requests": len(all_lat), "rps": len(all_lat) / elapsed, "p50_ms": float(np.percentile(all_lat, 50)),
                  "load_p50_ms": float(np.percentile(loads, 50)), "load_p99_ms": float(np.percentile(loads, 99)),
                  "next_p50_ms": float(np.percentile(nexts, 50)), "next_p99_ms": float(np.percentile(nexts, 99)),
                  "server_cpu_per_s": server_cpu / elapsed, "client_cpu_per_s": client_cpu / elapsed,
                  "p99_ms": float(np.percentile(all_lat, 99)), "save_p50_ms": float(np.percentile(saves, 50)),
                  "save_p99_ms": float(np.percentile(saves, 99)), "saves_acked": len(acked), "saves_found": found,
                  "rows_in_db": len(stored), "errors": len(lat.get("errors", [])),
                  "flood_logins": len(lat["flood"]),
                  "flood_statuses": {str(k): int(v) for k, v in zip(*np.unique(lat["flood"], return_counts=True))}}
        flood_note = (f"; login flood {flood} clients: {len(lat['flood'])} logins ({len(lat['flood']) / elapsed:.0f}/s, "
                      f"statuses {result['flood_statuses']})" if flood else "")
        print(f"{kind:10s} {n} annotators {elapsed:.0f}s think {think}s{flood_note}: {result['requests']} requests, "
              f"{result['rps']:.0f} req/s, "
              f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms (saves p50 {result['save_p50_ms']:.1f}"
              f" / p99 {result['save_p99_ms']:.1f} ms; page loads {result['load_p50_ms']:.1f} / "
              f"{result['load_p99_ms']:.1f} ms; claims {result['next_p50_ms']:.1f} / {result['next_p99_ms']:.1f} ms;"
              f" server CPU {result['server_cpu_per_s']:.2f} cores, load generator {result['client_cpu_per_s']:.2f});"
              f" load avg {load0:.2f} -> {os.getloadavg()[0]:.2f}; saves acknowledged {len(acked)}, found in DB {found}"
              f" (rows {len(stored)}), errors {result['errors']}", flush=True)
        return result
    finally:
        if stop_pg:
            subprocess.run(stop_pg, capture_output=True)
            shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per database (report: 60)")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds an annotator pauses before each page load (0: back-to-back, saturation)")
    parser.add_argument("--login-flood", type=int, default=0,
                        help="attackers posting unknown-user logins back to back beside the annotators")
    parser.add_argument("--py-spy", default="", help="path to py-spy: record the server's stacks (raw format, "
                        "./studio-DB-floodN.pyspy.txt); sampling costs CPU, so do not compare its latencies")
    args = parser.parse_args()
    results = {kind: run(kind, args.annotators, args.duration, args.think, args.login_flood, args.py_spy)
               for kind in args.db.split(",")}
    if "sqlite" in results and "postgresql" in results:
        s, p = results["sqlite"], results["postgresql"]
        print(f"postgresql / sqlite: req/s x{p['rps'] / s['rps']:.2f}, p50 x{p['p50_ms'] / s['p50_ms']:.2f}, "
              f"p99 x{p['p99_ms'] / s['p99_ms']:.2f}")
    ok = all(r["saves_acked"] == r["saves_found"] for r in results.values())
    print("every acknowledged save found in the database:", ok)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
