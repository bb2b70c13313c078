"""The studio's database operations on SQLite and PostgreSQL: claiming, versions, conflicts, review, export."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tamis.curate.decisions import Decision, apply_decisions, read_decisions, write_decisions
from tamis.io import DataError, read_dataset
from tamis.studio import annotation, work
from tamis.studio.db import Assignment, Database, Item, Project, User, Version
from tamis.studio.export import export_project, ordinal_alpha

from studio_support import seed, write_dialogues


def _ctx(url: str):
    database = Database(url)
    s = database.write()
    users = {u.username: u for u in s.scalars(select(User))}
    return database, s, users


def _edit(base: int, text: str, submit: bool = False, ratings: dict | None = None) -> work.Edit:
    return work.Edit(base=base, turns={1: text}, ratings=ratings or {}, submit=submit)


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
    assert out == tmp_path / "out" / "studio-A"
    paired = [json.loads(line) for line in (out / "paired.jsonl").read_text().splitlines()]
    assert [p["accepted_state"] for p in paired] == ["reviewed", "agreed", "flagged; waiting for a reviewer"]
    assert paired[0]["accepted"]["source"] == "bob"
    assert paired[0]["accepted"]["messages"][1]["content"] == "other fix"
    first = paired[0]["edits"][0]
    assert first["hter"] > 0 and first["char_edit_distance"] > 0 and 0 <= first["time_spent_s"] < 60
    assert paired[0]["original"] == paired[2]["original"] or paired[0]["original"][1]["content"] != "other fix"
    decisions = {d.id: d for d in read_decisions(out / "decisions.jsonl")}
    assert decisions["d0"].action in ("correct", "edit") and decisions["d2"].action in ("reject", "drop")
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
        for name in ("../../../../tmp/x", "x" * 5000, "a\x00b", "evil\u202egnp.exe", "", "a/b", ".hidden"):
            with pytest.raises(work.Invalid, match="project name"):
                work.create_project(s, name, data)
        for overlap in (0, 10_000_000):
            with pytest.raises(work.Invalid, match="overlap"):
                work.create_project(s, "big", data, overlap=overlap)
        assert s.scalar(select(func.count()).select_from(Project)) == 1  # nothing half-created
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


# -- issue 15: the review loop, suggestions, limits, admin operations -------------------------------------

def _submit(s, project, assignment, text, ratings=None):
    item = s.get(Item, assignment.item_id)
    base = (work.latest_version(s, assignment.id).number if work.latest_version(s, assignment.id) else 0)
    return work.save_version(s, project, item, assignment,
                             _edit(base, text, True, ratings or {"naturalness": "4", "correctness": "6"}))


def test_skipped_items_come_back_and_end_with_full_overlap(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=2)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    # only ann and bob annotate: remove cat so the effective overlap is 2 with two people
    work.remove_member(s, project, users["cat"], "annotator")
    first = work.next_assignment(s, project, users["ann"])
    work.close_assignment(s, first, "skipped")
    second = work.next_assignment(s, project, users["ann"])
    assert second.item_id != first.item_id
    _submit(s, project, second, "ann's edit")
    for _ in range(2):
        _submit(s, project, work.next_assignment(s, project, users["bob"]), "bob's edit")
    back = work.next_assignment(s, project, users["ann"])
    assert back is not None and back.id == first.id and back.status == "open" and back.slot is not None
    _submit(s, project, back, "ann came back")
    assert work.next_assignment(s, project, users["ann"]) is None
    per_item = dict(s.execute(select(Assignment.item_id, func.count()).where(Assignment.status == "submitted",
                                                                              Assignment.project_id == project.id)
                              .group_by(Assignment.item_id)).all())
    assert sorted(per_item.values()) == [2, 2]  # overlap 2 reached on both items
    s.close()
    database.dispose()


def test_a_skipped_item_filled_by_others_does_not_come_back(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seeded = seed(url, tmp_path, overlap=1, n=1)
    database, s, users = _ctx(url)
    project = s.get(Project, seeded.projects["A"])
    work.close_assignment(s, work.next_assignment(s, project, users["ann"]), "skipped")
    _submit(s, project, work.next_assignment(s, project, users["bob"]), "bob did it")
    assert work.next_assignment(s, project, users["ann"]) is None
    s.close()
    database.dispose()


def test_flagged_items_go_to_review_and_are_never_accepted_automatically(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=1)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    work.close_assignment(s, work.next_assignment(s, project, users["ann"]), "flagged", "offensive content")
    _submit(s, project, work.next_assignment(s, project, users["bob"]), "bob edited it")
    item = s.scalar(select(Item).where(Item.project_id == project.id))
    assert work.review_reasons(s, project, item) == ["flagged by ann: offensive content"]
    s.close()
    out = export_project(database, "A", tmp_path / "out").out_dir
    paired = json.loads((out / "paired.jsonl").read_text().splitlines()[0])
    assert paired["accepted"] is None and paired["accepted_state"] == "flagged; waiting for a reviewer"
    assert (out / "accepted.jsonl").read_text() == ""
    decision = read_decisions(out / "decisions.jsonl")[0]
    assert decision.action == "review" and "offensive content" in decision.reason
    # the reviewer decides: rejecting keeps it out, accepting bob's edit lets it in
    s = database.write()
    item = s.scalar(select(Item).where(Item.project_id == project.id))
    work.review(s, project, item, users["rev"], 0, "reject", note="really offensive")
    s.close()
    out = export_project(database, "A", tmp_path / "out").out_dir
    assert read_decisions(out / "decisions.jsonl")[0].action in ("reject", "drop")
    database.dispose()


def test_reviewer_merges_a_new_immutable_version(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=1)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    _submit(s, project, work.next_assignment(s, project, users["ann"]), "Boil it for five minutes.")
    _submit(s, project, work.next_assignment(s, project, users["bob"]), "Boil the egg 5 min.")
    item = s.scalar(select(Item).where(Item.project_id == project.id))
    with pytest.raises(work.Invalid, match="turn 0 cannot be edited"):
        work.review(s, project, item, users["rev"], 0, "merge", turns={0: "rewritten question"})
    first = work.review(s, project, item, users["rev"], 0, "merge", turns={1: "Boil the egg for five minutes."},
                        note="took ann's wording, bob's subject")
    second = work.review(s, project, item, users["rev"], 1, "merge", turns={1: "Boil the egg for 5 minutes."})
    assert (first.number, second.number) == (1, 2)
    s.refresh(first)
    assert first.messages[1]["content"] == "Boil the egg for five minutes."  # earlier merges are kept as they were
    assert item.original[1]["content"].startswith("Put the egg in water")
    work.add_comment(s, item, users["rev"], "Why 5 and not five?")
    work.add_comment(s, item, users["ann"], "Digits read better here.")
    assert [(c.body, name) for c, name in work.comments(s, item)][1] == ("Digits read better here.", "ann")
    assert work.can_discuss(s, project, item, users["ann"]) and not work.can_discuss(s, project, item, users["cat"])
    s.close()
    out = export_project(database, "A", tmp_path / "out").out_dir
    paired = json.loads((out / "paired.jsonl").read_text().splitlines()[0])
    assert paired["accepted"]["source"] == "reviewer merge"
    assert paired["accepted"]["messages"][1]["content"] == "Boil the egg for 5 minutes."
    database.dispose()


def test_model_suggestions_record_accepted_edited_replaced(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    database = Database(url)
    data = write_dialogues(tmp_path / "d.jsonl", 3)
    corrected = {f"d{i}": [{"role": "user", "content": f"Question {i}: how do I boil an egg? "},
                           {"role": "assistant", "content": f"Boil the egg in water for {i + 5} minutes; then cool it."}]
                 for i in range(3)}
    write_decisions([Decision(f"d{i}", "edit", "auto-correct", corrected=corrected[f"d{i}"], step="auto_correct")
                     for i in range(3)], tmp_path / "dec.jsonl")
    with database.write() as s:
        for name in ("ann", "rev"):
            work.add_user(s, name, "correct-horse-9")
        project, n, _ = work.create_project(s, "ac", data, decisions=tmp_path / "dec.jsonl", actions=("edit",),
                                            overlap=1, members={"annotator": ["ann"], "reviewer": ["rev"]})
        ann = work.find_user(s, "ann")
        texts = [None, "Boil the egg in water for 6 minutes, then cool it.",
                 "Crack it into a pan and fry it; a boiled egg takes too long to be worth it today."]
        for k in range(3):
            a = work.next_assignment(s, project, ann)
            item = s.get(Item, a.item_id)
            assert item.suggestion == corrected[item.example_id] and item.suggestion_source == "auto_correct"
            turn = texts[k] if texts[k] is not None else item.suggestion[1]["content"]
            v = work.save_version(s, project, item, a, work.Edit(0, {1: turn}, {c["name"]: "3" for c in project.criteria},
                                                                 True))
            assert v.suggestion_outcome == ["accepted", "edited", "replaced"][k]
    out = export_project(database, "ac", tmp_path / "out").out_dir
    summary = json.loads((out / "suggestions.json").read_text())
    assert summary["all"]["n_edits"] == 3
    assert summary["all"]["accepted_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["all"]["replaced"] == 1 and summary["auto_correct"]["edited"] == 1
    assert summary["all"]["hter_mean"] > 0
    rows = [json.loads(line) for line in (out / "paired.jsonl").read_text().splitlines()]
    assert rows[0]["edits"][0]["suggestion_hter"] == 0.0 and rows[2]["edits"][0]["suggestion_hter"] >= 0.6
    assert "Model suggestions" in (out / "report.html").read_text()
    database.dispose()


def test_generated_examples_are_suggestions_too(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps({"id": "g1", "messages": [{"role": "user", "content": "Hi"},
                                                         {"role": "assistant", "content": "Hello there, friend."}],
                                "meta": {"synthetic": True}}) + "\n")
    database = Database(f"sqlite:///{tmp_path / 's.db'}")
    with database.write() as s:
        work.add_user(s, "ann", "correct-horse-9")
        project, _, _ = work.create_project(s, "gen", path, overlap=1, members={"annotator": ["ann"]})
        item = s.scalar(select(Item))
        assert work.has_suggestion(item) and item.suggestion_source == "generated"
        a = work.next_assignment(s, project, work.find_user(s, "ann"))
        v = work.save_version(s, project, item, a, work.Edit(0, {1: "Hello there, my friend."}, {}, False))
        assert v.suggestion_outcome == "edited"
    database.dispose()


def test_server_measured_time_ignores_forged_and_caps():
    from datetime import datetime

    from tamis.studio import security

    secret = b"k" * 32
    claimed = datetime(2024, 1, 1, 12, 0, 0)
    a = Assignment(id=7, created_at=claimed)
    t0 = claimed.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
    token = security.opened_token(secret, 7, now=t0 + 10)
    assert security.opened_at(secret, 7, token) == pytest.approx(t0 + 10)
    assert work.time_on_item(a, None, security.opened_at(secret, 7, token), now=t0 + 40) == pytest.approx(30)
    for forged in ("-1e308", token.replace(".", ".1", 1), security.opened_token(b"x" * 32, 7), token[:-1] + "0",
                   security.opened_token(secret, 8, now=t0)):
        assert security.opened_at(secret, 7, forged) is None
    assert work.time_on_item(a, None, None, now=t0 + 40) == pytest.approx(40)  # from the claim
    assert work.time_on_item(a, None, None, now=t0 + 86400) == work.TIME_CAP_S
    later = Version(created_at=datetime(2024, 1, 1, 12, 0, 35))
    assert work.time_on_item(a, later, t0 + 10, now=t0 + 40) == pytest.approx(5)  # since the previous save


def test_save_size_and_rate_limits_per_user(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seeded = seed(url, tmp_path, overlap=1, n=2)
    database, s, users = _ctx(url)
    project = s.get(Project, seeded.projects["A"])
    a = work.next_assignment(s, project, users["ann"])
    item = s.get(Item, a.item_id)
    with pytest.raises(work.TooMuch) as big:
        work.save_version(s, project, item, a, _edit(0, "x" * (work.SAVE_MAX_CHARS + 1)), user=users["ann"])
    assert big.value.status == 413
    monkeypatch.setattr(annotation, "SAVES_PER_MINUTE", 3)
    for k in range(3):
        work.save_version(s, project, item, a, _edit(k, f"draft {k}"), user=users["ann"])
    with pytest.raises(work.TooMuch, match="saves in a minute") as fast:
        work.save_version(s, project, item, a, _edit(3, "one too many"), user=users["ann"])
    assert fast.value.status == 429
    b = work.next_assignment(s, project, users["bob"])  # another user is not affected
    work.save_version(s, project, s.get(Item, b.item_id), b, _edit(0, "bob"), user=users["bob"])
    monkeypatch.setattr(annotation, "SAVES_PER_MINUTE", 1000)
    monkeypatch.setattr(annotation, "SAVE_CHARS_PER_HOUR", 50)
    with pytest.raises(work.TooMuch, match="characters saved in an hour"):
        work.save_version(s, project, item, a, _edit(3, "y" * 40), user=users["ann"])
    s.close()
    database.dispose()


def test_accounts_are_case_insensitive_and_passwords_checked(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 's.db'}")
    with database.write() as s:
        ann = work.add_user(s, "ann", "correct-horse-9")
        with pytest.raises(work.Invalid, match="exists already"):
            work.add_user(s, "ANN", "another-horse-9")
        assert work.find_user(s, "AnN").id == ann.id
        for weak in ("12345678", "1234567890", "password123!", "Password2024", "qwertyuiop", "aaaaaaaaaaaa",
                     "bob-secret-99", "abcdefghijk", "iloveyou1234"):
            with pytest.raises(work.Invalid, match="password"):
                work.add_user(s, "bob", weak)
        work.add_user(s, "bob", "purple-otter-laughs")
        with pytest.raises(work.Invalid, match="password"):
            work.reset_password(s, ann, "12345678")
        work.reset_password(s, ann, "new-horse-staple")
        from tamis.studio import security
        assert security.check_password(ann, "new-horse-staple") and not security.check_password(ann, "correct-horse-9")
    database.dispose()


def test_create_project_is_all_or_nothing_and_overlap_is_bounded(db_url, tmp_path):
    data = write_dialogues(tmp_path / "d.jsonl", 3)
    database = Database(db_url)
    with database.write() as s:
        work.add_user(s, "ann", "correct-horse-9")
        with pytest.raises(work.Invalid, match="no user 'nobody'"):
            work.create_project(s, "p", data, members={"annotator": ["ann", "nobody"]})
        assert s.scalar(select(func.count()).select_from(Project)) == 0
        assert s.scalar(select(func.count()).select_from(Item)) == 0
        project, _, _ = work.create_project(s, "p", data, overlap=3, members={"annotator": ["ANN"]})
        assert work.effective_overlap(s, project) == 1  # one annotator so far
        project.overlap = 10_000_000  # a database from before the bound: claims must stay fast
        s.commit()
        import time as _time
        t0 = _time.perf_counter()
        a = work.next_assignment(s, project, work.find_user(s, "ann"))
        assert a.slot == 0 and _time.perf_counter() - t0 < 0.5
    database.dispose()


def test_admin_operations_delete_remove_deactivate(db_url, tmp_path):
    seeded = seed(db_url, tmp_path, overlap=2, n=2)
    database, s, users = _ctx(db_url)
    project = s.get(Project, seeded.projects["A"])
    a = work.next_assignment(s, project, users["ann"])
    _submit(s, project, a, "ann's edit")
    work.add_comment(s, s.get(Item, a.item_id), users["ann"], "note")
    open_claim = work.next_assignment(s, project, users["cat"])
    work.remove_member(s, project, users["cat"], "annotator")
    s.refresh(open_claim)
    assert open_claim.slot is None  # an untouched claim of a removed member frees its slot
    assert work.effective_overlap(s, project) == 2
    progress = {m.username: m for m in work.team_progress(s, project)}
    assert progress["ann"].counts == {"submitted": 1} and "cat" not in progress and progress["rev"].roles == ["reviewer"]
    work.set_active(s, users["bob"], False)
    assert not users["bob"].active
    work.delete_project(s, project)
    assert s.get(Project, seeded.projects["A"]) is None
    assert s.scalar(select(func.count()).select_from(Item).where(Item.project_id == seeded.projects["A"])) == 0
    assert s.scalar(select(func.count()).select_from(Version)) == 0
    assert s.get(Project, seeded.projects["B"]) is not None
    s.close()
    database.dispose()


def test_item_list_filters_and_neighbours(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seeded = seed(url, tmp_path, overlap=1, n=4)
    database, s, users = _ctx(url)
    project = s.get(Project, seeded.projects["A"])
    a1 = work.next_assignment(s, project, users["ann"])
    _submit(s, project, a1, "done")
    a2 = work.next_assignment(s, project, users["ann"])
    work.close_assignment(s, a2, "skipped")
    a3 = work.next_assignment(s, project, users["ann"])
    work.save_version(s, project, s.get(Item, a3.item_id), a3, _edit(0, "draft"))
    listed = work.my_items(s, project, users["ann"])
    assert [r.state for r in listed] == ["submitted", "skipped", "draft"]
    assert [r.item.example_id for r in work.my_items(s, project, users["ann"], state="skipped")] == ["d1"]
    assert [r.item.example_id for r in work.my_items(s, project, users["ann"], query="FOR 7 MINUTES")] == ["d2"]
    assert work.neighbours(s, project, users["ann"], a2) == (a1.id, a3.id)
    assert work.neighbours(s, project, users["ann"], a1) == (None, a2.id)
    s.close()
    database.dispose()


def test_old_databases_gain_the_new_columns(db_url, tmp_path):
    from sqlalchemy import inspect, text

    seed(db_url, tmp_path, n=1)
    database = Database(db_url)
    with database.engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS uq_users_username_lower"))
        conn.execute(text("ALTER TABLE users DROP COLUMN active"))
        conn.execute(text("ALTER TABLE versions DROP COLUMN suggestion_outcome"))
    database.dispose()
    database = Database(db_url)  # what a newer studio does when it opens an older database
    columns = {c["name"] for c in inspect(database.engine).get_columns("users")}
    assert "active" in columns
    with database.write() as s:
        assert work.find_user(s, "ann").active is True
        with pytest.raises(work.Invalid):
            work.add_user(s, "ANN", "another-horse-9")
    database.dispose()


def test_the_sqlite_file_is_private(tmp_path):
    import os
    import stat

    path = tmp_path / "studio.db"
    database = Database(f"sqlite:///{path}")
    with database.write() as s:
        work.add_user(s, "ann", "correct-horse-9")
    for p in (path, tmp_path / "studio.db-wal"):
        if p.exists():
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    os.chmod(path, 0o644)  # an older studio left it world readable: opening it fixes that
    database.dispose()
    Database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_scale_descriptions_and_slugs():
    criteria = work.parse_criteria("naturalness,correctness:1-7")
    described = work.parse_scale_descriptions("naturalness: as a native speaker would say it\n"
                                              "naturalness 1: clearly machine-written\ncorrectness 7: all facts right",
                                              criteria)
    assert described[0]["description"].startswith("as a native") and described[0]["points"] == {"1": "clearly machine-written"}
    assert work.parse_scale_descriptions(work.describe_scales(described), criteria) == described
    for bad in ("fluency 1: x", "naturalness 9: out of range", "just text"):
        with pytest.raises(work.Invalid):
            work.parse_scale_descriptions(bad, criteria)
    assert work.slugify("Dialogues (round 2)") == "Dialogues-round-2"
    assert work.slugify("..") == "project" and work.slugify("Ünïcode café") == "Unicode-cafe"
    assert "/" not in work.slugify("a/../../b") and work.slugify("a/../../b") not in (".", "..")
