"""The incident record tells the truth about when the moment was found, what was skipped, and what the
project did around the restore point."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.recovery.runner import TIMELINE_MAX, events_near
from recovery_wizard.recovery.timeline import Event
from tests.recovery.conftest import World

CANARY = 'SELECT count(*) >= 10 FROM "User"'


def _timeline_rows(report: str) -> list[tuple[str, str]]:
    section = report.split("## Timeline (UTC)", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC) \| (.+) \|$", section, flags=re.M)


async def test_the_find_moment_entry_carries_the_time_of_the_search_and_skipped_prisma_is_said(
    world: World,
) -> None:
    found = await world.cli("find-moment", "--check", CANARY, "--json")
    assert found.code == 0, found.stderr
    search = Journal.open(list_runs(world.app)[-1])
    searched = next(r for r in search.records if r.kind == "run" and r.event == "end").at
    await asyncio.sleep(1.1)  # the restore starts in a later second than the search ended
    restored = await world.cli("restore", "--yes", "--json", "--no-prisma", "--at", found.json()["last_good"])
    assert restored.code == 0, restored.stderr
    report = Path(restored.json()["report"]).read_text()

    rows = _timeline_rows(report)
    search_rows = [when for when, what in rows if what.startswith("find-moment search")]
    assert search_rows == [searched.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
    assert rows[0][1].startswith("find-moment search"), "the search came before the run started"
    assert rows[1][1] == "Run started"
    assert "Skipped: Prisma (`prisma db pull`, `prisma generate`), because --no-prisma was given." in report


async def test_a_drill_record_says_prisma_and_env_were_skipped_and_why(world: World) -> None:
    drilled = await world.cli("drill", "--yes", "--json", "--at", "35 minutes ago")
    assert drilled.code == 0, drilled.stderr
    report = Path(drilled.json()["report"]).read_text()
    assert (
        "Skipped: Prisma (`prisma db pull`, `prisma generate`), because a drill does not touch the app."
        in report
    )
    around = report.split("## The project around the restore point", 1)[1].split("\n## ", 1)[0]
    # The sandbox's project did nothing near the restore point but this drill: its own operations are
    # counted, not passed off as the project's history.
    assert "No other control-plane events" in around
    assert "This run's own" in around
    assert "create_timeline" not in around


def test_the_project_around_the_restore_point_is_not_crowded_out_by_the_runs_own_operations() -> None:
    moment = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
    now = moment + timedelta(minutes=35)
    ours = [
        Event(now + timedelta(seconds=i), "operation", f"create_timeline (finished) #{i}", f"op-{i}")
        for i in range(TIMELINE_MAX + 20)
    ]
    project = [
        Event(moment - timedelta(minutes=4), "operation", "apply_config (finished) on br-main", "op-a"),
        Event(moment - timedelta(minutes=1), "branch-created", "branch dev/migrate created", "br-dev"),
        Event(moment + timedelta(minutes=2), "branch-reset", "branch main reset/restored", "br-main"),
    ]
    far = Event(moment - timedelta(hours=7), "operation", "too far", "op-far")
    near = events_near(sorted([*ours, *project, far], key=lambda e: e.at, reverse=True), moment)
    assert len(near) == TIMELINE_MAX
    assert near[:3] == project  # the project's events around the moment, oldest first, come first
    assert far not in near
