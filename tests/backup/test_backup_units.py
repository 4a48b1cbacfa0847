"""The pure parts of backups: --keep, proofs, schedules, the list and the offer before a moment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery_wizard.neon.models import BackupScheduleItem, Snapshot
from recovery_wizard.recovery.backup import atomic, listing, proofs, retention, schedule
from recovery_wizard.recovery.backup.backupdir import (
    check_dir,
    file_name,
    free_name,
    latest_backup,
    local_backups,
)
from recovery_wizard.recovery.backup.errors import BackupDirError
from recovery_wizard.recovery.backup.manifest import (
    FORMAT,
    Manifest,
    manifest_path,
    sha256_file,
    write_manifest,
)
from recovery_wizard.recovery.outcome import UsageError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make_backup(directory: Path, branch: str, at: datetime, data: bytes = b"dump") -> Path:
    path = directory / file_name(branch, at)
    path.write_bytes(data)
    write_manifest(
        path,
        Manifest(
            file=path.name,
            taken_at=at.isoformat(),
            sha256=sha256_file(path),
            size=len(data),
            database="neondb",
            server_version="17.2",
            pg_dump_version="pg_dump (PostgreSQL) 18.1",
            project={"id": "p", "name": "p"},
            branch={"id": f"br-{branch}", "name": branch},
            tables={"public.User": 3},
        ),
    )
    return path


@pytest.mark.parametrize(
    ("text", "keep"),
    [
        ("7", retention.Keep(count=7)),
        ("24h", retention.Keep(age=timedelta(hours=24))),
        ("7d", retention.Keep(age=timedelta(days=7))),
        ("2w", retention.Keep(age=timedelta(weeks=2))),
        ("90m", retention.Keep(age=timedelta(minutes=90))),
    ],
)
def test_parse_keep(text: str, keep: retention.Keep) -> None:
    assert retention.parse_keep(text) == keep
    assert retention.parse_keep(keep.option) == keep


@pytest.mark.parametrize("text", ["0", "-1", "24x", "h", "0h", "forever"])
def test_parse_keep_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        retention.parse_keep(text)


def test_retention_is_per_branch_and_keeps_each_newest(tmp_path: Path) -> None:
    old_main = make_backup(tmp_path, "main", NOW - timedelta(days=3))
    new_main = make_backup(tmp_path, "main", NOW - timedelta(hours=1))
    lone_dev = make_backup(tmp_path, "dev", NOW - timedelta(days=30))
    removed = retention.apply_retention(tmp_path, retention.parse_keep("1d"), NOW)
    assert removed == [old_main]
    assert new_main.exists() and lone_dev.exists() and not manifest_path(old_main).exists()


def test_a_manifest_whose_file_is_gone_is_cleaned_up(tmp_path: Path) -> None:
    gone = make_backup(tmp_path, "main", NOW - timedelta(hours=2))
    make_backup(tmp_path, "main", NOW - timedelta(hours=1))
    gone.unlink()
    retention.apply_retention(tmp_path, retention.parse_keep("5"), NOW)
    assert not manifest_path(gone).exists()


def test_names_sort_by_time_and_never_collide(tmp_path: Path) -> None:
    assert file_name("feature/x y", NOW) == "feature-x-y-20261201T120000Z.dump"
    first = make_backup(tmp_path, "main", NOW)
    second = free_name(tmp_path, "main", NOW)
    assert second != first and second.name == "main-20261201T120000Z-2.dump"


def test_local_backups_ignore_foreign_manifests(tmp_path: Path) -> None:
    ours = make_backup(tmp_path, "main", NOW)
    (tmp_path / "x.dump").write_bytes(b"x")
    (tmp_path / "x.dump.manifest.json").write_text(json.dumps({"format": "other/1", "file": "x.dump"}))
    (tmp_path / "y.dump.manifest.json").write_text("{broken")
    assert [b.path for b in local_backups(tmp_path)] == [ours]
    raw = json.loads(manifest_path(ours).read_text())
    assert raw["format"] == FORMAT and "password" not in json.dumps(raw)


def test_check_dir_refuses_symlink_and_file(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(BackupDirError, match="symlink"):
        check_dir(tmp_path / "link", create=True)
    (tmp_path / "f").write_text("")
    with pytest.raises(BackupDirError, match="not a directory"):
        check_dir(tmp_path / "f", create=True)
    made = check_dir(tmp_path / "new" / "backups", create=True)
    assert made.is_dir() and oct(made.stat().st_mode & 0o777) == "0o700"


def test_stale_partials_of_dead_processes_only(tmp_path: Path) -> None:
    mine = tmp_path / f".a.dump{atomic.PARTIAL_MARK}{os.getpid()}"
    dead = tmp_path / f".b.dump{atomic.PARTIAL_MARK}999999999"
    mine.write_bytes(b"")
    dead.write_bytes(b"")
    assert atomic.stale_partials(tmp_path) == [dead]


def test_proofs_latest_wins_and_sha_must_match(tmp_path: Path) -> None:
    proofs.record_proof(tmp_path, file="a.dump", sha256="aa", run_id="r1", ok=True, at=NOW)
    proofs.record_proof(tmp_path, file="a.dump", sha256="aa", run_id="r2", ok=False, at=NOW + timedelta(1))
    proofs.record_proof(tmp_path, snapshot_id="snap-1", run_id="r3", ok=True, at=NOW)
    (tmp_path / proofs.PROOFS).open("a").write("{half a line\n")
    found = proofs.last_proofs(tmp_path)
    assert found["file:a.dump"].run_id == "r2" and not found["file:a.dump"].ok
    assert found["snapshot:snap-1"].ok
    assert proofs.proof_of_file(found, "a.dump", "aa") is not None
    assert proofs.proof_of_file(found, "a.dump", "bb") is None  # the file changed since it was proven
    assert oct((tmp_path / proofs.PROOFS).stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="file or snapshot_id"):
        proofs.record_proof(tmp_path, run_id="r", ok=True)


def test_list_and_backups_before(tmp_path: Path) -> None:
    f = make_backup(tmp_path, "main", NOW - timedelta(hours=5))
    snaps = [
        Snapshot(
            id="snap-a", name="daily", created_at="2026-12-01T02:00:05Z", timestamp="2026-12-01T02:00:00Z"
        ),
        Snapshot(id="snap-b", name="new", created_at="2026-12-01T11:00:00Z"),
    ]
    entries = listing.all_backups(tmp_path, snaps)
    assert [e.ref for e in entries] == ["snap-b", str(f), "snap-a"]
    before = listing.backups_before(NOW - timedelta(hours=4), entries)
    assert [e.source for e in before] == [f"file:{f}", "snapshot:snap-a"]
    assert listing.backups_before(NOW - timedelta(days=9), entries) == []
    text = listing.render(entries, NOW)
    assert "never" in text and "5h00m" in text


def test_schedule_items_and_lines() -> None:
    items = schedule.schedule_items(
        [schedule.FrequencyChoice("daily", "7d"), schedule.FrequencyChoice("monthly", "forever")],
        hour=4,
        weekday=7,
        monthday=15,
    )
    assert items == [
        BackupScheduleItem(frequency="daily", hour=4, retention_seconds=604800),
        BackupScheduleItem(frequency="monthly", hour=4, day=15),
    ]
    assert schedule.describe_items(items) == [
        "daily at 04:00 UTC, kept 1w",
        "monthly on day 15 at 04:00 UTC, kept until deleted",
    ]
    with pytest.raises(UsageError, match="at least 1h"):
        schedule.schedule_items([schedule.FrequencyChoice("daily", "30m")], hour=1, weekday=1, monthday=1)
    with pytest.raises(UsageError, match="not a count"):
        schedule.schedule_items([schedule.FrequencyChoice("daily", "7")], hour=1, weekday=1, monthday=1)
    command = schedule.file_command("main", retention.parse_keep("24h"), None)
    cron = schedule.cron_line(Path("/srv/my app"), command, "hourly")
    assert cron == (
        "17 * * * * cd '/srv/my app' && recovery-wizard backup --to file --keep 1d --yes --branch main "
        ">> .recovery-wizard/backup-cron.log 2>&1"
    )
    job = schedule.github_actions_job(command, "daily")
    assert 'cron: "17 3 * * *"' in job and "${{ secrets.NEON_API_KEY }}" in job


def test_latest_backup_skips_missing_files_and_filters_by_branch(tmp_path: Path) -> None:
    assert latest_backup(tmp_path / "none") is None
    dev = make_backup(tmp_path, "dev", NOW - timedelta(hours=3))
    main_old = make_backup(tmp_path, "main", NOW - timedelta(hours=2))
    main_new = make_backup(tmp_path, "main", NOW - timedelta(hours=1))
    main_new.unlink()  # its manifest outlived it
    found = latest_backup(tmp_path)
    assert found is not None and found.path == main_old
    found = latest_backup(tmp_path, branch="br-dev")
    assert found is not None and found.path == dev
    assert latest_backup(tmp_path, branch="nope") is None
