"""How saves reach SQLite: writers of one process queue on a write gate (not on SQLite's polling busy handler),
the gate is given back however a transaction ends, and a web save holds it only for the insert (its checks
run in a read transaction, and the base version and limits are checked again under the lock).

No timings decide these tests: they check who holds the lock and what ends up in the database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tamis.studio import annotation, work
from tamis.studio.db import Assignment, Database, Item, Project, Setting, User, Version

from studio_support import seed


def _gate(database: Database):
    return database.engine.tamis_write_gate


def test_the_gate_is_held_from_begin_to_the_end_of_the_transaction(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 's.db'}")
    gate = _gate(database)
    with database.read() as s:  # readers never take it
        s.get(Setting, "x")
        assert not gate.locked()
    with database.write() as s:
        assert not gate.locked()  # nothing begun yet
        s.add(Setting(key="a", value="1"))
        s.flush()
        assert gate.locked()
        s.commit()
        assert not gate.locked()
    with database.write() as s:  # closed without committing: rolled back, given back
        s.get(Setting, "a")
        assert gate.locked()
    assert not gate.locked()
    with database.write() as s:  # a failed insert, rolled back
        s.add(Setting(key="a", value="again"))
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
        assert not gate.locked()
    assert not gate.locked()
    with database.write() as s:  # an exception inside the block
        with pytest.raises(RuntimeError):
            s.get(Setting, "a")
            raise RuntimeError("boom")
    assert not gate.locked()
    database.dispose()


def test_writers_wait_on_the_gate_and_all_commit(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 's.db'}")
    gate = _gate(database)
    holder = database.write()
    holder.add(Setting(key="held", value="1"))
    holder.flush()  # this transaction holds the gate
    started, done = threading.Barrier(9), []

    def writer(k: int) -> None:
        started.wait()
        with database.write() as s:
            s.add(Setting(key=f"k{k}", value=str(k)))
            s.commit()
        done.append(k)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    started.wait()
    for t in threads:
        t.join(0.2)
    assert done == []  # all queued behind the open transaction
    holder.commit()
    holder.close()
    for t in threads:
        t.join(30)
    assert sorted(done) == list(range(8)) and gate.waits >= 1 and not gate.locked()
    with database.read() as s:
        assert len(list(s.scalars(select(Setting)))) >= 9
    database.dispose()


def _saving(url: str, tmp_path):
    seeded = seed(url, tmp_path, overlap=1, n=3)
    database = Database(url)
    reader = database.read()
    users = {u.username: u for u in reader.scalars(select(User))}
    project = reader.get(Project, seeded.projects["A"])
    with database.write() as w:
        aid = work.next_assignment(w, w.get(Project, project.id), w.get(User, users["ann"].id)).id
    reader.commit()  # a new snapshot, with the claim
    assignment = reader.get(Assignment, aid)
    return database, reader, users, project, reader.get(Item, assignment.item_id), assignment


def test_a_save_checks_in_a_read_transaction_and_inserts_in_a_short_write(tmp_path):
    database, reader, users, project, item, a = _saving(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    gate = _gate(database)
    v1 = work.save_version(reader, project, item, a, work.Edit(1 - 1, {1: "draft"}, {}, False), user=users["ann"],
                           write=database.write)
    assert v1.number == 1 and not gate.locked()
    assert not reader.dirty and not reader.new  # the reading session never writes
    v2 = work.save_version(reader, project, item, a, work.Edit(1, {1: "final"}, {"naturalness": "4",
                                                                                "correctness": "5"}, True),
                           user=users["ann"], write=database.write)
    assert v2.number == 2 and a.status == "submitted" and not reader.dirty
    with database.read() as s:
        assert s.get(Assignment, a.id).status == "submitted"
        assert [v.messages[1]["content"] for v in s.scalars(select(Version).where(Version.assignment_id == a.id)
                                                            .order_by(Version.number))] == ["draft", "final"]
    reader.close()
    database.dispose()


def test_a_save_that_lost_a_race_after_its_checks_is_a_conflict(tmp_path):
    """The read transaction saw version 0; another save committed before ours took the lock: 409, not a
    second version 1."""
    database, reader, users, project, item, a = _saving(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    assert work.latest_version(reader, a.id) is None  # the reader's snapshot starts here: no version yet
    with database.write() as other:
        work.save_version(other, other.get(Project, project.id), other.get(Item, item.id),
                          other.get(Assignment, a.id), work.Edit(0, {1: "other tab"}, {}, False))
    with pytest.raises(work.Conflict) as lost:
        work.save_version(reader, project, item, a, work.Edit(0, {1: "mine"}, {}, False), user=users["ann"],
                          write=database.write)
    assert lost.value.latest is not None and lost.value.latest.number == 1
    assert not _gate(database).locked()
    with database.read() as s:
        assert [v.messages[1]["content"] for v in s.scalars(select(Version))] == ["other tab"]
    reader.close()
    database.dispose()


def test_limits_are_checked_under_the_lock(tmp_path, monkeypatch):
    database, reader, users, project, item, a = _saving(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    monkeypatch.setattr(annotation, "SAVES_PER_MINUTE", 2)
    for k in range(2):
        work.save_version(reader, project, item, a, work.Edit(k, {1: f"d{k}"}, {}, False), user=users["ann"],
                          write=database.write)
    with pytest.raises(work.TooMuch, match="saves in a minute"):
        work.save_version(reader, project, item, a, work.Edit(2, {1: "too many"}, {}, False), user=users["ann"],
                          write=database.write)
    with pytest.raises(work.TooMuch) as big:
        work.save_version(reader, project, item, a, work.Edit(2, {1: "x" * (work.SAVE_MAX_CHARS + 1)}, {}, False),
                          user=users["ann"], write=database.write)
    assert big.value.status == 413 and not _gate(database).locked()
    reader.close()
    database.dispose()


def test_the_split_save_works_on_postgresql_too(db_url, tmp_path):
    database, reader, users, project, item, a = _saving(db_url, tmp_path)
    v = work.save_version(reader, project, item, a, work.Edit(0, {1: "pg"}, {}, False), user=users["ann"],
                          write=database.write)
    assert v.number == 1
    with pytest.raises(work.Conflict):
        work.save_version(reader, project, item, a, work.Edit(0, {1: "stale"}, {}, False), user=users["ann"],
                          write=database.write)
    reader.close()
    database.dispose()
