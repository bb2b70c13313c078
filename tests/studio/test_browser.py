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
    page.fill("#new-password", "dora-pass-123")
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
    context, page, dialogs = _login(browser, server.url, "dora", "dora-pass-123")
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
