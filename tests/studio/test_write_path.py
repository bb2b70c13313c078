"""How a web save reaches the database: its checks run in a read transaction and only the insert takes the
write lock, where the base version and the user's limits are checked again.

No timings decide these tests: they check who holds the lock and what ends up in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tamis.studio import annotation, work
from tamis.studio.db import Assignment, Database, Item, Project, User, Version

from studio_support import seed


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
    v1 = work.save_version(reader, project, item, a, work.Edit(1 - 1, {1: "draft"}, {}, False), user=users["ann"],
                           write=database.write)
    assert v1.number == 1
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
    assert big.value.status == 413
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
