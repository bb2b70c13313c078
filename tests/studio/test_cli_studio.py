"""`tamis studio add-user / create-project / add-member / export` on the workspace's SQLite database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from studio_support import write_dialogues
from tamis.cli import app
from tamis.studio import work
from tamis.studio.db import Database, Item, Project, User


def test_studio_cli_round_trip(tmp_path, monkeypatch):
    runner = CliRunner()
    ws = str(tmp_path / "ws")
    monkeypatch.setenv("TAMIS_STUDIO_PASSWORD", "s3cret-pass!")
    r = runner.invoke(app, ["studio", "add-user", "ann", "-w", ws])
    assert r.exit_code == 0 and "s3cret" not in r.output
    r = runner.invoke(app, ["studio", "add-user", "x", "-w", ws], env={"TAMIS_STUDIO_PASSWORD": "short"})
    assert r.exit_code == 2 and "at least 10" in r.output
    data = write_dialogues(tmp_path / "d.jsonl", 3)
    r = runner.invoke(app, ["studio", "create-project", "p", str(data), "-a", "ann", "--overlap", "1", "-w", ws])
    assert r.exit_code == 0 and "3 items" in r.output, r.output
    r = runner.invoke(app, ["studio", "create-project", "q", str(data), "-a", "ann", "-a", "nobody", "-w", ws])
    assert r.exit_code == 2 and "no user 'nobody'" in r.output
    r = runner.invoke(app, ["studio", "create-project", "../../../../tmp/x", str(data), "-w", ws])
    assert r.exit_code == 2 and "project name" in r.output
    database = Database(f"sqlite:///{tmp_path / 'ws' / 'studio' / 'studio.db'}")
    with database.write() as s:
        assert s.query(Project).filter_by(name="q").count() == 0  # all or nothing: no half-created project
        project = s.query(Project).filter_by(name="p").one()
        ann = s.query(User).filter_by(username="ann").one()
        a = work.next_assignment(s, project, ann)
        work.save_version(s, project, s.get(Item, a.item_id), a,
                          work.Edit(0, {1: "Boil it."}, {c["name"]: "3" for c in project.criteria}, True))
        # a name from before names were validated must not steer the export out of its folder
        legacy = Project(name="../../../../escape", criteria=project.criteria, overlap=1, edit_roles=["assistant"])
        s.add(legacy)
        s.commit()
    database.dispose()
    r = runner.invoke(app, ["studio", "export", "p", "-w", ws, "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    paired = [json.loads(line) for line in (tmp_path / "out" / "studio-p" / "paired.jsonl").read_text().splitlines()]
    assert paired[0]["edits"][0]["messages"][1]["content"] == "Boil it." and paired[0]["edits"][0]["hter"] > 0
    assert [p["accepted_state"] for p in paired] == ["agreed", "no submitted edit", "no submitted edit"]
    manifest = json.loads((tmp_path / "out" / "studio-p" / "manifest.json").read_text())
    assert manifest["command"] == "studio export"
    r = runner.invoke(app, ["studio", "export", "missing", "-w", ws])
    assert r.exit_code == 2 and "no studio project named 'missing'" in r.output
    r = runner.invoke(app, ["studio", "export", "../../../../escape", "-w", ws, "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["studio-escape", "studio-p"]
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape").exists()
    # admin commands: list, remove a member, reset a password, deactivate, delete
    r = runner.invoke(app, ["studio", "projects", "-w", ws])
    assert r.exit_code == 0 and re.search(r"^p\s+3 items", r.output, re.M), r.output
    r = runner.invoke(app, ["studio", "remove-member", "p", "ANN", "-w", ws])
    assert r.exit_code == 0 and "no longer annotator" in r.output
    r = runner.invoke(app, ["studio", "reset-password", "ann", "-w", ws], env={"TAMIS_STUDIO_PASSWORD": "12345678"})
    assert r.exit_code == 2 and "password" in r.output
    r = runner.invoke(app, ["studio", "reset-password", "ann", "-w", ws], env={"TAMIS_STUDIO_PASSWORD": "new-otter-pass-1"})
    assert r.exit_code == 0
    r = runner.invoke(app, ["studio", "deactivate", "ann", "-w", ws])
    assert r.exit_code == 0 and "deactivated" in r.output
    r = runner.invoke(app, ["studio", "delete-project", "p", "--yes", "-w", ws])
    assert r.exit_code == 0
    with database.read() as s:
        assert s.query(Project).filter_by(name="p").count() == 0
        assert s.query(User).filter_by(username="ann").one().active is False
    database.dispose()
