"""The studio's database operations on SQLite and PostgreSQL: claiming, versions, conflicts, review, export."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tamis.curate.decisions import Decision, apply_decisions, read_decisions, write_decisions
from tamis.io import DataError, read_dataset
from tamis.studio import work
from tamis.studio.db import Assignment, Database, Item, Project, User, Version
from tamis.studio.export import export_project, ordinal_alpha

from studio_support import seed, write_dialogues


def _ctx(url: str):
    database = Database(url)
    s = database.write()
    users = {u.username: u for u in s.scalars(select(User))}
    return database, s, users


def _edit(base: int, text: str, submit: bool = False, ratings: dict | None = None) -> work.Edit:
    return work.Edit(base=base, turns={1: text}, ratings=ratings or {}, submit=submit, elapsed_s=3.0)


def test_claims_respect_overlap_and_skip_frees_a_slot(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=3)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    ann = work.next_assignment(s, project, users["ann"])
    assert work.next_assignment(s, project, users["ann"]).id == ann.id  # the open item comes back
    bob = work.next_assignment(s, project, users["bob"])
    assert bob.item_id == ann.item_id
    cat = work.next_assignment(s, project, users["cat"])
    assert cat.item_id != ann.item_id  # item 1 already has its two annotators
    work.close_assignment(s, bob, "skipped")
    work.save_version(s, project, s.get(Item, cat.item_id), cat, _edit(0, "x", True, {"naturalness": "3",
                                                                                      "correctness": "7"}))
    cat2 = work.next_assignment(s, project, users["cat"])
    assert cat2.item_id == ann.item_id  # bob's skip freed the slot
    counts = dict(s.execute(select(Assignment.item_id, func.count()).where(Assignment.slot.is_not(None))
                            .group_by(Assignment.item_id)).all())
    assert max(counts.values()) <= 2
    with pytest.raises(work.Invalid):
        work.close_assignment(s, bob, "flagged")
    s.close()
    database.dispose()


def test_concurrent_claims_never_exceed_overlap(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=1, n=4)
    database = Database(db_url)
    got: list[int] = []
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        try:
            with database.write() as s:
                user = s.scalar(select(User).where(User.username == name))
                project = s.get(Project, seeded.projects["A"])
                a = work.next_assignment(s, project, user)
                got.append(a.item_id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in ("ann", "bob", "cat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 3 and len(set(got)) == 3  # overlap 1: three different items
    database.dispose()


def test_versions_are_immutable_and_stale_saves_conflict(db_url, tmp_path):
    seeded = seed(db_url, tmp_path)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    a = work.next_assignment(s, project, users["ann"])
    item = s.get(Item, a.item_id)
    original = json.loads(json.dumps(item.original))
    v1 = work.save_version(s, project, item, a, _edit(0, "first"))
    v2 = work.save_version(s, project, item, a, _edit(1, "second"))
    assert (v1.number, v2.number) == (1, 2)
    with pytest.raises(work.Conflict) as info:
        work.save_version(s, project, item, a, _edit(1, "stale tab"))
    assert info.value.latest.number == 2 and "version 2" in str(info.value)
    rows = list(s.scalars(select(Version).where(Version.assignment_id == a.id).order_by(Version.number)))
    assert [r.messages[1]["content"] for r in rows] == ["first", "second"]
    s.refresh(item)
    assert item.original == original  # the original is never overwritten
    with pytest.raises(work.Invalid, match="turn 0 cannot be edited"):
        work.save_version(s, project, item, a, work.Edit(2, {0: "user text"}, {}, False, 0))
    with pytest.raises(work.Invalid, match="rate naturalness"):
        work.save_version(s, project, item, a, _edit(2, "x", submit=True))
    with pytest.raises(work.Invalid, match="from 1 to 7"):
        work.save_version(s, project, item, a, _edit(2, "x", True, {"naturalness": "3", "correctness": "9"}))
    s.close()
    database.dispose()


def test_racing_saves_on_the_same_version_one_wins(db_url, tmp_path):
    seeded = seed(db_url, tmp_path)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    a = work.next_assignment(s, project, users["ann"])
    s.close()
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def save(k: int) -> None:
        with database.write() as s2:
            assignment = s2.get(Assignment, a.id)
            item = s2.get(Item, assignment.item_id)
            project2 = s2.get(Project, project.id)
            s2.commit()  # end the read; on SQLite a write session holds the lock until then
            barrier.wait()
            try:
                work.save_version(s2, project2, item, assignment, _edit(0, f"tab {k}"))
                outcomes.append("ok")
            except work.Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 5
    with database.read() as s3:
        assert s3.scalar(select(func.count()).select_from(Version).where(Version.assignment_id == a.id)) == 1
    database.dispose()


def test_review_and_export(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=3)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    good = {"naturalness": "4", "correctness": "6"}
    texts = {"ann": ["fixed one", "same", None], "bob": ["other fix", "same", None]}
    for name in ("ann", "bob"):
        for k in range(3):
            a = work.next_assignment(s, project, users[name])
            item = s.get(Item, a.item_id)
            if texts[name][k] is None:
                work.close_assignment(s, a, "flagged", "nonsense")
            else:
                work.save_version(s, project, item, a, _edit(0, texts[name][k], True, good))
    items = list(s.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.position)))
    edits = work.submitted_edits(s, items[0])
    assert work.disagreement(project, edits) == ["different edits"]
    assert work.disagreement(project, work.submitted_edits(s, items[1])) == []
    bob_version = next(v for _, u, v in edits if u.username == "bob")
    work.accept(s, items[0], users["rev"], 0, bob_version.id)
    with pytest.raises(work.Conflict):
        work.accept(s, items[0], users["rev"], 0, None)  # a second reviewer who saw no review yet
    other = work.submitted_edits(s, items[1])[0][2]
    with pytest.raises(work.Invalid):
        work.accept(s, items[0], users["rev"], 1, other.id)  # a version of another item
    s.close()

    result = export_project(database, "A", tmp_path / "out")
    out = result.out_dir
    paired = [json.loads(line) for line in (out / "paired.jsonl").read_text().splitlines()]
    assert [p["accepted_state"] for p in paired] == ["reviewed", "agreed", "no submitted edit"]
    assert paired[0]["accepted"]["source"] == "bob"
    assert paired[0]["accepted"]["messages"][1]["content"] == "other fix"
    first = paired[0]["edits"][0]
    assert first["hter"] > 0 and first["char_edit_distance"] > 0 and first["time_spent_s"] == 3.0
    assert paired[0]["original"] == paired[2]["original"] or paired[0]["original"][1]["content"] != "other fix"
    decisions = {d.id: d for d in read_decisions(out / "decisions.jsonl")}
    assert decisions["d0"].action == "correct" and decisions["d2"].action == "reject"
    kept, dropped = apply_decisions(read_dataset(tmp_path / "a.jsonl").examples, decisions.values())
    assert [ex.response for ex in kept][:2] == ["other fix", "same"]
    assert [d["id"] for d in dropped] == ["d2"]
    accepted = read_dataset(out / "accepted.jsonl").examples
    assert [ex.meta["studio"]["by"] for ex in accepted] == ["reviewer", "agreement"]
    agreement = json.loads((out / "agreement.json").read_text())
    assert agreement["naturalness"]["degenerate"] is True  # every rating identical
    for name in ("effort.csv", "report.html", "effort.png", "ratings.png", "manifest.json"):
        assert (out / name).stat().st_size > 0
    assert "mean" in (out / "report.html").read_text()
    database.dispose()


def test_ordinal_alpha_cases():
    perfect = [(f"i{k}", a, k % 5 + 1) for k in range(10) for a in ("x", "y")]
    assert ordinal_alpha(perfect, (1, 5))["alpha"] == pytest.approx(1.0)
    noisy = [(f"i{k}", "x", k % 5 + 1) for k in range(10)] + [(f"i{k}", "y", 5 - k % 5) for k in range(10)]
    assert ordinal_alpha(noisy, (1, 5))["alpha"] < 0
    assert ordinal_alpha([("i1", "x", 3)], (1, 5))["alpha"] is None


def test_projects_from_decisions_and_bad_inputs(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    database = Database(url)
    data = write_dialogues(tmp_path / "d.jsonl", 5)
    write_decisions([Decision("d1", "review", "uncertain"), Decision("d3", "review", "uncertain"),
                     Decision("d2", "keep", "fine")], tmp_path / "dec.jsonl")
    with database.write() as s:
        project, n, _ = work.create_project(s, "clear", data, decisions=tmp_path / "dec.jsonl")
        assert n == 2
        items = list(s.scalars(select(Item).where(Item.project_id == project.id)))
        assert [i.example_id for i in items] == ["d1", "d3"] and items[0].meta["decision"]["reason"] == "uncertain"
        labelled = tmp_path / "l.jsonl"
        labelled.write_text('{"text": "great", "label": "pos"}\n')
        with pytest.raises(DataError, match="labelled text"):
            work.create_project(s, "lab", labelled)
        with pytest.raises(work.Invalid, match="exists already"):
            work.create_project(s, "clear", data)
        with pytest.raises(work.Invalid, match="must look like"):
            work.create_project(s, "bad", data, criteria="fluency:5-1")
    database.dispose()


def test_translation_pairs_become_items(tmp_path):
    path = Path(tmp_path / "mt.jsonl")
    path.write_text(json.dumps({"id": "t1", "source": "Hello", "target": "Hallo Welt", "source_lang": "en",
                                "target_lang": "de"}) + "\n")
    database = Database(f"sqlite:///{tmp_path / 's.db'}")
    with database.write() as s:
        project, n, _ = work.create_project(s, "mt", path)
        item = s.scalar(select(Item))
        assert n == 1 and item.original[-1] == {"role": "assistant", "content": "Hallo Welt"}
        assert "German" in item.original[0]["content"]
    database.dispose()
