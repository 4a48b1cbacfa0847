"""Snapshots of the new sources and merge-back screens: the backup files found, "Where from?" with the guard's
checkpoints and the whereis lines, the strategy recommending merge back, and the merge plan review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from textual.pilot import Pilot

from recovery_wizard.recovery.checkpoint import Checkpoint
from recovery_wizard.recovery.files.detect import FROM_JSON, FROM_MANIFEST, FROM_MTIME, BackupInfo
from recovery_wizard.recovery.files.find import FindResult, Found
from recovery_wizard.recovery.lostwrites import LostRows
from recovery_wizard.tui.screens.backup_files import BackupFileScreen
from recovery_wizard.tui.screens.choices import StrategyScreen
from recovery_wizard.tui.screens.merge_review import MergePlanScreen
from recovery_wizard.tui.screens.sources import SourceScreen
from tests.tui_snapshots.scenes import (
    BRANCHES,
    MAIN,
    MOMENT_TEXT,
    NOW,
    WORKDIR,
    SnapCompare,
    make_wizard,
    show,
    steady,
    wizard,
)

WIDE = (100, 32)
SMALL = (80, 24)
INCIDENT = NOW - timedelta(minutes=30)


def _info(name: str, kind: str, hours: float, source: str, **more: Any) -> BackupInfo:
    return BackupInfo(
        path=WORKDIR / name,
        kind=kind,
        size=int(more.pop("size", 40_000)),
        taken_at=NOW - timedelta(hours=hours),
        taken_at_source=source,
        **more,
    )


FOUND = FindResult(
    found=[
        Found(
            _info(
                "backups/main-20261121T015000Z.dump",
                "custom",
                0.25,
                FROM_MANIFEST,
                tables={"public.User": 2, "public.Listing": 41, "public.Order": 120},
            ),
            -900.0,
        ),
        Found(
            _info(
                "backups/main-20261121T005000Z.dump",
                "custom",
                1.25,
                FROM_MANIFEST,
                tables={"public.User": 18, "public.Listing": 41, "public.Order": 118},
            ),
            2700.0,
        ),
        Found(
            _info(
                "backups/cron/backup-2026-11-21T00-30-00Z.json",
                "json",
                1.6,
                FROM_JSON,
                tables={"users": 18, "orders": 10},
                partial=["orders"],
            ),
            3960.0,
        ),
        Found(
            _info(
                "Downloads/homecheff-backup-2026-11-20.sql",
                "sql",
                20,
                FROM_MTIME,
                size=2_300_000,
                tables={"public.User": None, "public.Listing": None},
            ),
            70200.0,
        ),
        Found(
            _info(
                "backups/broken.dump",
                "custom",
                30,
                FROM_MTIME,
                size=600,
                problem="the archive is truncated (it ends inside its table of contents)",
            ),
            106200.0,
        ),
    ],
    searched=[WORKDIR, WORKDIR / "backups"],
    files_seen=412,
    seconds=0.2,
    incident=INCIDENT,
)


def _checkpoint(run_id: str, command: str, minutes: int, branch: Any) -> Checkpoint:
    at = NOW - timedelta(minutes=minutes)
    return Checkpoint(
        run_id=run_id,
        kind="branch",
        name=f"guard-{run_id}",
        id=f"br-guard-{minutes}",
        lsn="0/1A2B3C4",
        at=at,
        command=command,
        project_id="proj",
        branch_id=branch.id,
        branch_name=branch.name,
        expires_at=at + timedelta(days=7),
        begun_at=at,
        exit_code=0,
        lost=("User",) if minutes == 36 else (),
        pruned=False,
    )


MERGE_PLAN: dict[str, Any] = {
    "inserts": 16,
    "reverts": 0,
    "conflicts": 1,
    "diff_bytes": 5120,
    "skipped": [
        {"table": "public._prisma_migrations", "reason": "no primary key and no unique not-null key"}
    ],
    "tables": [
        {
            "table": "public.User",
            "rule": "skip",
            "insert": 16,
            "revert": 0,
            "changed_not_reverted": 1,
            "added_kept": 3,
            "diff": {"past_only_columns": [], "live_only_columns": ["lastSeenAt"]},
            "insert_samples": [
                {
                    "id": "u_01",
                    "email": "anna@example.com",
                    "passwordHash": "••••",
                    "createdAt": "2026-10-02",
                },
                {
                    "id": "u_02",
                    "email": "bram@example.com",
                    "passwordHash": "••••",
                    "createdAt": "2026-10-03",
                },
            ],
            "revert_samples": [],
            "conflicts": [
                {
                    "table": "public.User",
                    "key": ["u_07"],
                    "kind": "unique",
                    "constraint": "User_email_key",
                    "detail": "email 'daan@example.com' belongs to a user who signed up again since",
                }
            ],
            "unevaluated_checks": [],
        },
        {
            "table": "public.Listing",
            "rule": "skip",
            "insert": 0,
            "revert": 0,
            "changed_not_reverted": 2,
            "added_kept": 0,
            "diff": {},
            "insert_samples": [],
            "revert_samples": [],
            "conflicts": [],
            "unevaluated_checks": [],
        },
    ],
}


async def backup_files_scene(pilot: Pilot[Any]) -> None:
    """The backup files found (FOUND), drawn as the app's worker would; also a small-screen scene."""
    app = wizard(pilot)
    app.source_kind = "file"
    screen = await show(pilot, "moment")
    assert isinstance(screen, BackupFileScreen)
    screen.backups_found(FOUND)
    await pilot.pause()
    steady(screen)


async def merge_plan_scene(pilot: Pilot[Any]) -> None:
    """The merge plan review (MERGE_PLAN); also a small-screen scene."""
    app = wizard(pilot)
    app.strategy = "merge-back"
    app.merge_plan = MERGE_PLAN
    await show(pilot, "strategy")
    await app.switch_screen(MergePlanScreen())
    await pilot.pause()


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_backup_files(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Newest first: one after the incident marked likely damaged, the JSON partial, the .sql on file time,
    the truncated one with its reason; the cursor on the newest usable one before the incident."""
    assert snap_compare(make_wizard(), terminal_size=size, run_before=backup_files_scene)


def test_source_with_checkpoints_and_whereis(snap_compare: SnapCompare) -> None:
    """The backup file offered; two guard checkpoints, one of another branch (not chosen); whereis on top."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = wizard(pilot)
        marks = [
            _checkpoint("20261121T013000Z-a1b2", "npx prisma migrate deploy", 36, MAIN),
            _checkpoint("20261120T220000Z-c3d4", "prisma db push", 250, BRANCHES[2]),
        ]
        app.list_checkpoints = lambda: marks  # type: ignore[method-assign]
        app.where_lines = [
            "DATABASE_URL (.env) → homecheff / main (default, protected, root), pooled",
            "DIRECT_URL (.env) → homecheff / main (default, protected, root), direct",
        ]
        screen = await show(pilot, "source")
        assert isinstance(screen, SourceScreen)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_strategy_recommends_merge_back(snap_compare: SnapCompare) -> None:
    """Writes since the moment: merge back is recommended, with the tables and rows it would keep."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = wizard(pilot)
        app.moment_text, app.moment_chosen_at = MOMENT_TEXT, NOW
        app.branch = MAIN
        at = app.source_moment()
        assert at is not None
        app.lost = [
            LostRows("public", "User", ("createdAt",), 3),
            LostRows("public", "Order", ("createdAt",), 5),
        ]
        app.lost_for = (MAIN.id, at)
        screen = await show(pilot, "strategy")
        assert isinstance(screen, StrategyScreen)
        screen.lost_loaded()  # as the app's worker does once the writes are counted
        await pilot.pause()

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_merge_plan(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Per table: re-insert, revert (opt in), kept, conflicts and rule; the User samples masked, its conflict."""
    assert snap_compare(make_wizard(), terminal_size=size, run_before=merge_plan_scene)
