"""Real browser (Debian's Chromium via Playwright) through the admin, annotator and reviewer flows."""

from __future__ import annotations

import json
import re

import pytest

from studio_support import PASSWORD, XSS, seed

pytestmark = pytest.mark.slow


@pytest.fixture()
def studio(tmp_path, server_factory):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    seeded = seed(url, tmp_path, overlap=2, n=3)
    return server_factory(url), seeded


def _login(browser, base: str, username: str, password: str = PASSWORD):
    context = browser.new_context(base_url=base)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login")
    page.wait_for_url(re.compile(r"/$"))
    return context, page, dialogs


def test_admin_creates_account_and_project_and_adds_member(browser, studio, tmp_path):
    server, _ = studio
    data = tmp_path / "upload.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say hi {i} {XSS}", "output": f"Hi {i}!"}) + "\n"
                            for i in range(4)))
    context, page, dialogs = _login(browser, server.url, "admin")
    page.click("text=admin")
    page.fill("#new-username", "dora")
    page.fill("#new-password", "tulip-pass-123")
    page.click("#create-user")
    assert page.locator("text=user dora created").is_visible()
    page.fill("#project-name", "greetings")
    page.set_input_files("#project-data", str(data))
    page.fill("#project-criteria", "fluency:1-3, adequacy")
    page.fill("#project-overlap", "1")
    page.click("#create-project")
    page.wait_for_url(re.compile(r"/admin/p/\d+$"))
    assert "4 items" in page.text_content("#summary") and "fluency (1-3)" in page.text_content("#summary")
    page.select_option("#member-user", "dora")
    page.select_option("#member-role", "annotator")
    page.click("#add-member")
    assert page.locator("td", has_text="dora").count() == 1
    context.close()
    # dora can log in and sees the escaped instruction as text
    context, page, dialogs = _login(browser, server.url, "dora", "tulip-pass-123")
    page.click("text=greetings")
    page.click("#start")
    assert '<script>alert("xss")</script>' in page.text_content(".turn.user")
    assert dialogs == []  # nothing in the data ran
    context.close()


def test_annotator_edits_with_diff_rates_by_keyboard_and_submits(browser, studio):
    server, seeded = studio
    context, page, dialogs = _login(browser, server.url, "ann")
    page.goto(f"/p/{seeded.projects['A']}")
    assert "0 done" in page.text_content("#progress")
    page.click("#start")
    page.wait_for_url(re.compile(r"/a/\d+$"))
    assert page.locator("pre.original").first.text_content().startswith("Put the egg in water")
    box = page.locator("textarea").first
    box.fill("Put the egg in boiling water for 5 minutes. It is ready.")
    assert page.locator("#diff-1 ins").count() > 0 and page.locator("#diff-1 del").count() > 0  # live diff
    page.keyboard.press("Control+s")  # save a draft
    page.wait_for_url(re.compile(r"saved=1"))
    assert page.locator("#saved").is_visible()
    assert box.input_value().startswith("Put the egg in boiling water")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("4")  # naturalness
    page.keyboard.press("6")  # correctness (1-7)
    assert page.locator("input[name=rating_naturalness][value='4']").is_checked()
    assert page.locator("input[name=rating_correctness][value='6']").is_checked()
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.querySelector('#progress').textContent.includes('1 / 3 done')")
    page.keyboard.press("Alt+k")  # skip the next one
    page.wait_for_function("() => document.querySelector('#progress').textContent.includes('item 3')")
    assert dialogs == []
    context.close()


def test_two_tabs_cannot_overwrite_each_other(browser, studio):
    server, seeded = studio
    context, page, _ = _login(browser, server.url, "bob")
    page.goto(f"/p/{seeded.projects['A']}")
    page.click("#start")
    page.wait_for_url(re.compile(r"/a/\d+$"))
    other = context.new_page()
    other.goto(page.url)
    page.locator("textarea").first.fill("saved in tab one")
    page.click("#save")
    page.wait_for_url(re.compile(r"saved=1"))
    other.locator("textarea").first.fill("typed in tab two")
    with other.expect_response(lambda r: r.url.endswith("/save")) as info:
        other.click("#save")
    assert info.value.status == 409
    assert "saved elsewhere" in other.text_content("#message")
    assert "saved in tab one" in other.text_content("#conflict")
    assert other.locator("textarea").first.input_value() == "typed in tab two"  # nothing typed is lost
    other.click("#save")  # a deliberate second save, now based on the newer version
    other.wait_for_url(re.compile(r"saved=2"))
    context.close()


def test_reviewer_accepts_one_version_of_a_disagreement(browser, studio):
    server, seeded = studio
    for name, text in (("ann", "Boil it for five minutes."), ("bob", "Boil the egg 5 min.")):
        context, page, _ = _login(browser, server.url, name)
        page.goto(f"/p/{seeded.projects['A']}")
        page.click("#start")
        page.locator("textarea").first.fill(text)
        page.check("input[name=rating_naturalness][value='2']" if name == "ann" else
                   "input[name=rating_naturalness][value='5']")
        page.check("input[name=rating_correctness][value='4']")
        page.click("#submit")
        page.wait_for_url(re.compile(r"/a/\d+$"))
        context.close()
    context, page, dialogs = _login(browser, server.url, "rev")
    page.click("ul.projects a")
    page.click("#review-link")
    row = page.locator("tr", has_text="d0")
    assert "different edits" in row.text_content() and "naturalness 2-5" in row.text_content()
    row.locator("a").click()
    assert page.locator("ins", has_text="five").count() >= 1
    page.check("#choice-bob")
    page.click("#accept")
    page.wait_for_url(re.compile(r"/review$"))
    assert "reviewed" in page.locator("tr", has_text="d0").text_content()
    assert dialogs == []
    context.close()


# -- issue 15: the review loop and the annotators' and admins' tools ------------------------------------------

def _start(page, project_id: int) -> None:
    page.goto(f"/p/{project_id}")
    page.click("#start")
    page.wait_for_url(re.compile(r"/a/\d+$"))


def _rate_and_submit(page, text: str | None = None) -> None:
    if text is not None:
        page.locator("textarea[name^=turn_]").first.fill(text)
    page.check("input[name=rating_naturalness][value='4']")
    page.check("input[name=rating_correctness][value='5']")
    page.click("#submit")


def test_flag_goes_to_the_reviewer_who_merges_and_comments(browser, studio, tmp_path):
    server, seeded = studio
    pid = seeded.projects["A"]
    context, page, dialogs = _login(browser, server.url, "ann")
    _start(page, pid)
    page.fill("#flag-note", "offensive content")
    page.click("#flag")
    page.wait_for_url(re.compile(r"/a/\d+$"))
    context.close()
    context, page, _ = _login(browser, server.url, "bob")
    _start(page, pid)
    _rate_and_submit(page, "Boil it for 5 minutes. It is ready.")
    page.wait_for_url(re.compile(r"/a/\d+$"))
    context.close()
    context, page, dialogs = _login(browser, server.url, "rev")
    page.goto(f"/p/{pid}/review")
    row = page.locator("tr", has_text="d0")
    assert "flagged by ann: offensive content" in row.text_content()
    row.locator("a").click()
    assert "offensive content" in page.text_content("#flag-1")
    merge = page.locator("#merge-turn-1")
    merge.fill("Boil the egg for five minutes; then it is ready.")
    assert page.locator("#merge-diff-1 ins", has_text="five").count() == 1  # live diff against the original
    page.fill("#merge-note", "bob's edit, reworded")
    page.click("#merge")
    page.wait_for_url(re.compile(r"/review$"))
    assert "reviewed" in page.locator("tr", has_text="d0").text_content()
    page.locator("tr", has_text="d0").locator("a").click()
    assert "merged version" in page.text_content("#current-review")
    assert page.locator("#merged ins", has_text="five").count() == 1
    page.fill("#comment-body", "Flag was fair; I removed the rude part.")
    page.click("#comment-send")
    page.wait_for_url(re.compile(r"#thread$"))
    assert "Flag was fair" in page.text_content("#thread")
    assert dialogs == []
    context.close()
    # ann (who flagged) reads the thread on her item
    context, page, _ = _login(browser, server.url, "ann")
    page.goto(f"/p/{pid}/items")
    page.locator("tr.item-row[data-state=flagged] a").click()
    assert "offensive content" in page.text_content("#flagged")
    assert "Flag was fair" in page.text_content("#thread")
    context.close()
    from tamis.studio.db import Database
    from tamis.studio.export import export_project

    database = Database(server.db_url)
    out = export_project(database, "A", tmp_path / "export").out_dir
    database.dispose()
    first = json.loads((out / "paired.jsonl").read_text().splitlines()[0])
    assert first["accepted"]["source"] == "reviewer merge"
    assert first["accepted"]["messages"][1]["content"] == "Boil the egg for five minutes; then it is ready."


def test_a_skipped_item_comes_back(browser, studio):
    server, seeded = studio
    context, page, _ = _login(browser, server.url, "ann")
    _start(page, seeded.projects["A"])
    assert "item 1" in page.text_content("#progress")
    page.click("#skip")
    page.wait_for_function("() => document.querySelector('#progress').textContent.includes('item 2')")
    _rate_and_submit(page)
    page.wait_for_function("() => document.querySelector('#progress').textContent.includes('item 3')")
    _rate_and_submit(page)
    page.wait_for_function("() => document.querySelector('#progress').textContent.includes('item 1')")
    assert page.locator("#skipped").count() == 0  # open again, editable
    _rate_and_submit(page, "Boil it.")
    page.wait_for_url(re.compile(r"done=1"))
    assert "3 done, 0 skipped" in page.text_content("#progress")
    context.close()


def _long_dialogue_project(server, tmp_path) -> int:
    from tamis.studio import work
    from tamis.studio.db import Database

    turns = []
    for k in range(6):
        turns += [{"role": "user", "content": f"User turn {k}: tell me more about tides."},
                  {"role": "assistant", "content": f"Assistant turn {k}: the moon pulls the oceans."}]
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"id": "long1", "messages": turns}) + "\n"
                    + json.dumps({"id": "short1", "messages": turns[:2]}) + "\n")
    database = Database(server.db_url)
    with database.write() as s:
        project, _, _ = work.create_project(
            s, "long dialogues", path, criteria="naturalness,correctness:1-7", overlap=1,
            members={"annotator": ["ann"]}, guidelines="# How to edit\n\nFix **facts** first. <script>alert(1)</script>",
            scale_descriptions="naturalness: how a native speaker would say it\nnaturalness 1: clearly machine-written\n"
                               "naturalness 5: indistinguishable from a person")
        pid = project.id
    database.dispose()
    return pid


def test_guidelines_scales_item_list_and_long_dialogues(browser, studio, tmp_path):
    server, _ = studio
    pid = _long_dialogue_project(server, tmp_path)
    context, page, dialogs = _login(browser, server.url, "ann")
    page.set_viewport_size({"width": 1280, "height": 800})
    _start(page, pid)
    # guidelines rendered from markdown, raw HTML shown as text
    assert page.locator("#guidelines h1", has_text="How to edit").count() == 1
    assert page.locator("#guidelines strong", has_text="facts").count() == 1
    assert "<script>alert(1)</script>" in page.text_content("#guidelines")
    # scale descriptions: on hover (title) and in the expandable legend
    assert page.get_attribute("input[name=rating_naturalness][value='1'] >> xpath=..", "title") == "clearly machine-written"
    page.locator(".criterion[data-criterion=naturalness] details.scale summary").click()
    assert page.locator("dd[data-point='naturalness-5']").is_visible()
    # a 12-turn dialogue: unchanged turns are folded and the ratings are on screen without scrolling
    assert page.locator("details.folded").count() == 12
    box = page.locator("#ratings").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800
    page.locator("#fold-11 summary").click()
    page.locator("#turn-11").fill("Assistant turn 5: the moon and the sun pull the oceans.")
    page.keyboard.press("Control+s")
    page.wait_for_url(re.compile(r"saved=1"))
    assert page.locator("details.folded").count() == 11  # the changed turn stays open
    assert page.locator("#turnbox-11").is_visible()
    page.locator("#ratings").locator("input[name=rating_naturalness][value='3']").check()
    page.locator("#ratings").locator("input[name=rating_correctness][value='6']").check()
    page.click("#submit")
    page.wait_for_url(re.compile(r"/a/\d+$"))  # the short one
    # the item list: states, search, filter, and previous/next on the item pages
    page.click("#item-list")
    assert [r.get_attribute("data-state") for r in page.locator("tr.item-row").all()] == ["submitted", "open"]
    page.fill("#search", "LONG1")
    page.click("#filter")
    assert page.locator("tr.item-row").count() == 1
    page.fill("#search", "")
    page.select_option("#state", "open")
    page.click("#filter")
    assert page.locator("tr.item-row").count() == 1 and "short1" in page.text_content("#items")
    page.locator("tr.item-row a").click()
    page.click("#prev")
    assert "long1" in page.title() and page.locator("#next").count() == 1
    assert dialogs == []
    context.close()


def test_model_suggestion_is_shown_and_its_acceptance_recorded(browser, studio, tmp_path):
    from tamis.curate.decisions import Decision, write_decisions
    from tamis.studio import work
    from tamis.studio.db import Database

    server, _ = studio
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "messages": [
        {"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": "Five."}]}) + "\n"
        for i in range(2)))
    write_decisions([Decision(f"q{i}", "edit", "auto-correct", step="auto_correct", corrected=[
        {"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": f"{i + i}."}])
        for i in range(2)], tmp_path / "dec.jsonl")
    database = Database(server.db_url)
    with database.write() as s:
        project, _, _ = work.create_project(s, "sums", data, decisions=tmp_path / "dec.jsonl", actions=("edit",),
                                            overlap=1, criteria="correctness", members={"annotator": ["ann"]})
        pid = project.id
    database.dispose()
    context, page, _ = _login(browser, server.url, "ann")
    _start(page, pid)
    assert "model suggestion" in page.text_content("#suggestion-note")
    assert page.text_content("#suggestion-1") == "0."
    assert page.locator("#turn-1").input_value() == "0."  # editing starts from the suggestion
    page.check("input[name=rating_correctness][value='5']")
    page.click("#submit")  # accepted as it is
    page.wait_for_url(re.compile(r"/a/\d+$"))
    page.locator("#turn-1").fill("2 + 2 = 4, so the answer is four.")
    page.check("input[name=rating_correctness][value='5']")
    page.click("#submit")  # replaced
    page.wait_for_url(re.compile(r"done=1"))
    context.close()
    context, page, _ = _login(browser, server.url, "admin")
    page.goto(f"/admin/p/{pid}")
    with page.expect_download() as info:
        page.click("#export")
    import zipfile

    with zipfile.ZipFile(info.value.path()) as zf:
        summary = json.loads(zf.read("studio-sums/suggestions.json"))
        assert {"studio-sums/paired.jsonl", "studio-sums/report.html"} <= set(zf.namelist())
    assert summary["all"]["accepted"] == 1 and summary["all"]["replaced"] == 1
    assert summary["all"]["accepted_rate"] == 0.5
    context.close()


def test_admin_team_progress_members_accounts_and_deletion(browser, studio):
    server, seeded = studio
    pid = seeded.projects["A"]
    context, page, _ = _login(browser, server.url, "ann")
    _start(page, pid)
    _rate_and_submit(page, "Boil it.")
    page.wait_for_url(re.compile(r"/a/\d+$"))
    context.close()
    context, page, dialogs = _login(browser, server.url, "admin")
    page.goto("/admin")
    project_b = page.locator("#projects a", has_text=re.compile(r"^B$"))
    assert project_b.count() == 1
    page.click(f"#projects a[href='/admin/p/{pid}']")
    assert page.locator("tr.member[data-user=ann] td.submitted").text_content() == "1"
    assert "min" in page.locator("tr.member[data-user=ann]").text_content()
    page.locator("tr.member[data-user=cat] button.remove-member").click()
    page.wait_for_url(re.compile(r"ok=cat"))
    assert page.locator("tr.member[data-user=cat]").count() == 0
    page.goto("/admin")
    row = page.locator("tr.user-row[data-user=bob]")
    row.locator("input.reset-password").fill("12345678")
    row.locator("button.reset").click()
    assert "password" in page.text_content("#message")
    row = page.locator("tr.user-row[data-user=bob]")
    row.locator("input.reset-password").fill("brand-new-otter-7")
    row.locator("button.reset").click()
    page.wait_for_url(re.compile(r"ok="))
    page.locator("tr.user-row[data-user=cat] button.toggle-active").click()
    page.wait_for_url(re.compile(r"ok=cat"))
    assert "deactivated" in page.locator("tr.user-row[data-user=cat]").text_content()
    page.goto(f"/admin/p/{seeded.projects['B']}")
    page.fill("#delete-confirm", "wrong name")
    page.click("#delete-project")
    assert "Type the project's name" in page.text_content("#message")
    page.fill("#delete-confirm", "B")
    page.click("#delete-project")
    page.wait_for_url(re.compile(r"ok=project"))
    assert project_b.count() == 0
    assert dialogs == []
    context.close()
    context, page, _ = _login(browser, server.url, "bob", "brand-new-otter-7")
    context.close()
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", "CAT")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    assert "deactivated" in page.text_content("p.error")
    context.close()
