"""Kill the server (SIGKILL) in the middle of a stream of saves; after a restart every acknowledged save is there."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import select

from studio_support import claim, login, seed
from tamis.studio.db import Database, Version

pytestmark = pytest.mark.slow


def test_acknowledged_saves_survive_sigkill(db_url, tmp_path, server_factory):
    seeded = seed(db_url, tmp_path)
    server = server_factory(db_url)
    acked: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    ready = threading.Barrier(4)  # the three annotators and the test: all logged in before the saves start

    def annotate(name: str) -> None:
        client, csrf = login(server.url, name)
        aid, _ = claim(client, csrf, seeded.projects["A"])
        ready.wait(180)
        base, k = 0, 0
        while not stop.is_set():
            text = f"{name} edit {k}"
            try:
                r = client.post(f"/p/{seeded.projects['A']}/a/{aid}/save", headers={"accept": "application/json"},
                                data={"csrf": csrf, "base": str(base), "turn_1": text, "action": "save"})
            except httpx.HTTPError:
                return  # the server died mid-request: that save was never acknowledged
            if r.status_code == 200:
                base = r.json()["version"]
                with lock:
                    acked.append((aid, base, text))
            k += 1

    threads = [threading.Thread(target=annotate, args=(n,)) for n in ("ann", "bob", "cat")]
    for t in threads:
        t.start()
    ready.wait(180)  # logins are slow on a loaded machine (argon2 runs at a low priority)
    deadline = time.time() + 30
    while len(acked) < 60 and time.time() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL, while saves are in flight
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 60, "too few saves before the kill to mean anything"

    restarted = server_factory(db_url)
    database = Database(db_url)
    with database.read() as s:
        stored = {(v.assignment_id, v.number): v.messages[1]["content"] for v in s.scalars(select(Version))}
    database.dispose()
    missing = [a for a in acked if stored.get((a[0], a[1])) != a[2]]
    assert not missing, f"{len(missing)} acknowledged saves lost, e.g. {missing[:3]}"
    # and the restarted server carries on from the newest version
    client, csrf = login(restarted.url, "ann")
    aid, page = claim(client, csrf, seeded.projects["A"])
    latest = max(n for (a, n) in stored if a == aid)
    assert f'name="base" value="{latest}"' in page
