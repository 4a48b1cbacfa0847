"""Finding backups: the usual folders, by content, newest first, against the incident; links and junk skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from recovery_wizard.recovery.files.find import find_backups
from tests.files.conftest import Dumper


def _json_backup(path: Path, at: str) -> None:
    path.write_text(
        json.dumps(
            {"success": True, "timestamp": at, "stats": {"users": 1}, "data": {"users": [{"id": "a"}]}}
        )
    )


def test_newest_first_and_after_incident_marked(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "backups").mkdir(parents=True)
    _json_backup(app / "backups" / "a", "2026-11-30T20:00:00Z")
    _json_backup(app / "backups" / "b", "2026-11-30T23:00:00Z")
    _json_backup(app / "backups" / "c", "2026-11-30T21:00:00Z")
    incident = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    result = find_backups([app], incident=incident)
    assert [f.info.path.name for f in result.found] == ["b", "c", "a"]
    assert [f.after_incident for f in result.found] == [True, False, False]
    assert result.found[1].before_incident_seconds == 3600


def test_skips_node_modules_git_and_links_out(tmp_path: Path, dump: Dumper) -> None:
    app = tmp_path / "app"
    outside = tmp_path / "outside"
    for folder in (app / "node_modules" / "pkg", app / ".git", app / "prisma", outside):
        folder.mkdir(parents=True)
    _json_backup(app / "node_modules" / "pkg" / "x.json", "2026-11-30T20:00:00Z")
    _json_backup(app / ".git" / "y.json", "2026-11-30T20:00:00Z")
    _json_backup(outside / "secret.json", "2026-11-30T20:00:00Z")
    (app / "prisma" / "escape.json").symlink_to(outside / "secret.json")
    (app / "linkdir").symlink_to(outside, target_is_directory=True)
    dump("c", "inside.dump").rename(app / "prisma" / "dev.db.bak")
    (app / "alias.bak").symlink_to(app / "prisma" / "dev.db.bak")  # a link inside: fine, listed once
    result = find_backups([app])
    assert [f.info.path.resolve().name for f in result.found] == ["dev.db.bak"]
    assert any("escape.json" in s and "outside the searched directories" in s for s in result.skipped)


def test_depth_is_bounded(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    _json_backup(deep / "x.json", "2026-11-30T20:00:00Z")
    assert find_backups([tmp_path], depth=4).found == []
    assert len(find_backups([tmp_path], depth=6).found) == 1


def test_cli_json_and_text(tmp_path: Path, dump: Dumper) -> None:
    app = tmp_path / "app"
    home = tmp_path / "home"
    (app / "backups").mkdir(parents=True)
    (home / "Downloads").mkdir(parents=True)
    dump("p", "db.sql", "--verbose").rename(home / "Downloads" / "export")
    _json_backup(app / "backups" / "hourly", "2026-11-30T21:00:00Z")
    env = {**os.environ, "HOME": str(home), "TZ": "UTC"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "recovery_wizard",
            "backups",
            "find",
            "--json",
            "--before",
            "2026-11-30T22:00:00Z",
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    kinds = {Path(b["path"]).name: b for b in payload["backups"]}
    assert kinds["export"]["kind"] == "sql" and kinds["export"]["likely_damaged"] is True
    assert kinds["hourly"]["kind"] == "json" and kinds["hourly"]["before_incident_seconds"] == 3600
    text = subprocess.run(
        [sys.executable, "-m", "recovery_wizard", "backups", "find", "--before", "2026-11-30T22:00:00Z"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (
        "AFTER the incident: likely holds the damage" in text.stdout
        and "1 hour before the incident" in text.stdout
    )
    bad = subprocess.run(
        [sys.executable, "-m", "recovery_wizard", "backups", "find", "--before", "last blue moon"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr


def test_fifty_thousand_files_are_all_seen(tmp_path: Path) -> None:
    # How fast is measured in bench/backups_find.py (goal 2 s), not here: a loaded CI machine's time proves
    # nothing about the code.
    from bench.backups_find import make_tree

    make_tree(tmp_path, 50_000)
    result = find_backups([tmp_path], depth=8)
    assert result.files_seen >= 50_000 and len(result.found) == 5


def test_a_file_given_is_examined(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    _json_backup(path, "2026-11-30T20:00:00Z")
    result = find_backups([path, tmp_path])
    assert [f.info.path.name for f in result.found] == ["one.json"]  # once, though also under tmp_path
