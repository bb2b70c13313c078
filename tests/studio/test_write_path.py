"""The web app's write path: reads in read transactions, short write transactions in one writer thread
(SQLite), and SQLite's synchronous setting. Races through ``Database.write_tx`` keep the guarantees of
the one-transaction path (tests/studio/test_work.py): one winner per version, never more than overlap."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import func, select

from tamis.studio import work
from tamis.studio.db import Assignment, Database, Item, Project, User, Version, sqlite_synchronous_setting

from studio_support import seed


def _run(n: int, target) -> list[BaseException]:  # noqa: ANN001
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def body(k: int) -> None:
        try:
            barrier.wait()
            target(k)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_racing_short_saves_one_wins_and_runs_in_the_writer_thread(db_url, tmp_path):
    seeded = seed(db_url, tmp_path)
    database = Database(db_url)
    with database.write() as s:
        ann = s.scalar(select(User).where(User.username == "ann"))
        a = work.next_assignment(s, s.get(Project, seeded.projects["A"]), ann)
        aid, ann_id = a.id, ann.id
    outcomes: list[str] = []
    writer_threads: set[str] = set()

    def write_tx(fn, *args):  # noqa: ANN001, ANN202 - note which thread writes
        def noted(db, *rest):  # noqa: ANN001, ANN202
            writer_threads.add(threading.current_thread().name)
            return fn(db, *rest)
        return database.write_tx(noted, *args)

    def save(k: int) -> None:
        with database.read() as s:
            assignment = s.get(Assignment, aid)
            project, item, user = (s.get(Project, assignment.project_id), s.get(Item, assignment.item_id),
                                   s.get(User, ann_id))
            try:
                work.save_version(s, project, item, assignment,
                                  work.Edit(base=0, turns={1: f"tab {k}"}, ratings={}, submit=False),
                                  user=user, write=write_tx)
                outcomes.append("ok")
            except work.Conflict:
                outcomes.append("conflict")

    assert not _run(8, save)
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 7
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Version).where(Version.assignment_id == aid)) == 1
    if db_url.startswith("sqlite"):
        assert len(writer_threads) == 1 and writer_threads.pop().startswith("tamis-writer")
    database.dispose()


def test_short_claims_never_exceed_overlap_and_one_open_item_per_user(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=1, n=4)
    database = Database(db_url)
    got: dict[int, int] = {}

    def claim(k: int) -> None:
        name = ("ann", "bob", "cat")[k % 3]
        with database.read() as s:
            user = s.scalar(select(User).where(User.username == name))
            project = s.get(Project, seeded.projects["A"])
            a = work.next_assignment(s, project, user, write=database.write_tx)
            got[k] = a.item_id
            assert a.user_id == user.id

    # SQLite: three tabs per annotator (the one writer serialises the claims, so each annotator gets one open
    # item whatever the tabs). PostgreSQL (READ COMMITTED, claims in the request's thread, as before): one each.
    tabs = 3 if db_url.startswith("sqlite") else 1
    assert not _run(3 * tabs, claim)
    with database.read() as s:
        rows = list(s.scalars(select(Assignment).where(Assignment.project_id == seeded.projects["A"])))
    assert len(rows) == 3  # each annotator got one open item
    assert len({r.item_id for r in rows}) == 3  # overlap 1: three different items
    assert all(r.status == "open" and r.slot == 0 for r in rows)
    database.dispose()


def test_a_save_on_an_item_skipped_meanwhile_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seeded = seed(url, tmp_path)
    database = Database(url)
    with database.read() as s:
        ann = s.scalar(select(User).where(User.username == "ann"))
        project = s.get(Project, seeded.projects["A"])
        a = work.next_assignment(s, project, ann, write=database.write_tx)
        item = s.get(Item, a.item_id)
        s.commit()
        # another request skips the item after this one read it
        with database.write() as w:
            work.close_assignment(w, w.get(Assignment, a.id), "skipped")
        with pytest.raises(work.Invalid, match="skipped"):
            work.save_version(s, project, item, a, work.Edit(0, {1: "late"}, {}, False), user=ann,
                              write=database.write_tx)
    database.dispose()


def test_writer_thread_only_for_sqlite_and_exceptions_come_back(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'studio.db'}")
    assert database.write_tx(lambda db: threading.current_thread().name).startswith("tamis-writer")
    assert database.in_writer(lambda: threading.current_thread().name).startswith("tamis-writer")
    with pytest.raises(ZeroDivisionError):
        database.write_tx(lambda db: 1 / 0)
    assert database.write_tx(lambda db: 2) == 2  # the writer survives its jobs' errors
    database.dispose()
    inline = Database(f"sqlite:///{tmp_path / 'other.db'}", single_writer=False)
    assert inline.write_tx(lambda db: threading.current_thread().name) == threading.current_thread().name
    inline.dispose()


def test_sqlite_synchronous_is_normal_unless_set(tmp_path, monkeypatch):
    def pragma(database: Database) -> int:
        with database.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA synchronous").scalar()

    monkeypatch.delenv("TAMIS_STUDIO_SQLITE_SYNCHRONOUS", raising=False)
    assert sqlite_synchronous_setting() == "NORMAL"
    database = Database(f"sqlite:///{tmp_path / 'a.db'}")
    assert pragma(database) == 1  # NORMAL
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    database.dispose()
    monkeypatch.setenv("TAMIS_STUDIO_SQLITE_SYNCHRONOUS", "full")
    database = Database(f"sqlite:///{tmp_path / 'b.db'}")
    assert pragma(database) == 2  # FULL
    database.dispose()
    database = Database(f"sqlite:///{tmp_path / 'c.db'}", sqlite_synchronous="EXTRA")
    assert pragma(database) == 3
    database.dispose()
    monkeypatch.setenv("TAMIS_STUDIO_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ValueError, match="NORMAL, FULL, EXTRA"):
        sqlite_synchronous_setting()


def test_page_reads_do_not_take_the_write_lock(tmp_path):
    """A read session on SQLite begins a deferred transaction: another connection can still write."""
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seed(url, tmp_path)
    database = Database(url)
    with database.read() as s:
        s.scalar(select(func.count()).select_from(User))  # the read transaction is open
        other = sqlite3.connect(tmp_path / "studio.db", timeout=0)
        other.execute("BEGIN IMMEDIATE")  # would fail at once ("database is locked") if the read held it
        other.execute("ROLLBACK")
        other.close()
    database.dispose()


def test_page_threads_setting(monkeypatch):
    from tamis.studio.app import worker_threads

    monkeypatch.delenv("TAMIS_STUDIO_THREADS", raising=False)
    assert worker_threads() == 8 and worker_threads(dialect="postgresql") == 40
    assert worker_threads(3) == 3
    monkeypatch.setenv("TAMIS_STUDIO_THREADS", "12")
    assert worker_threads() == 12 and worker_threads(dialect="postgresql") == 12
    monkeypatch.setenv("TAMIS_STUDIO_THREADS", "0")
    with pytest.raises(ValueError, match="from 1 to 1000"):
        worker_threads()


def test_background_checkpoints_keep_them_out_of_the_writer(tmp_path, monkeypatch):
    """The web app's Database checkpoints the WAL in a thread of its own; commits only past a high mark."""
    from tamis.studio import db as studio_db

    monkeypatch.setattr(studio_db, "CHECKPOINT_EVERY_S", 0.05)
    path = tmp_path / "studio.db"
    database = Database(f"sqlite:///{path}", background_checkpoints=True)
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == studio_db.AUTOCHECKPOINT_BEHIND_PAGES
    assert database.checkpointer is not None and database.checkpointer.is_alive()
    before = path.stat().st_size
    for k in range(30):
        database.write_tx(lambda db, k=k: (db.add(User(username=f"u{k}", password_hash="x" * 200)), db.commit()))
    for _ in range(100):  # the rows reach the database file only through a checkpoint
        if path.stat().st_size > before:
            break
        threading.Event().wait(0.05)
    assert path.stat().st_size > before
    database.dispose()
    database.checkpointer.join(2)
    assert not database.checkpointer.is_alive()
    plain = Database(f"sqlite:///{tmp_path / 'cli.db'}")  # the CLI's: SQLite's own checkpoints, no thread
    with plain.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert plain.checkpointer is None
    plain.dispose()
