"""find-moment, peek and timeline against the sandbox's homecheff incident."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.errors import NeonError
from recovery_wizard.neon.models import Branch
from recovery_wizard.neon.retry import RetryPolicy
from recovery_wizard.recovery.findmoment import EDGE_MARGIN, Probe, find_moment, probe_budget
from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.peek import (
    LENS_BRANCH,
    LENS_TIME_TRAVEL,
    Lens,
    PeekError,
    peek,
    time_travel_url,
)
from recovery_wizard.recovery.timeline import build_timeline, render_timeline
from recovery_wizard.recovery.timepoint import RestoreWindow
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.sandbox.service import Sandbox
from tests.recovery.conftest import World
from tests.sandbox.conftest import FAST_RETRY, FAST_WAIT

CANARY = 'SELECT count(*) >= 10 FROM "User"'


@pytest.fixture
async def served(sandbox: Sandbox) -> AsyncIterator[tuple[Sandbox, NeonClient, Branch]]:
    url = await sandbox.serve()
    async with httpx.AsyncClient() as http:
        client = NeonClient(http, sandbox.api_key, base_url=url, retry=FAST_RETRY, wait=FAST_WAIT)
        main = next(b for b in await client.branches(sandbox.project_id) if b.default)
        yield sandbox, client, main


def incident(sandbox: Sandbox) -> datetime:
    assert sandbox.project is not None and sandbox.project.scenario is not None
    return sandbox.project.scenario.incident_at


async def test_find_moment_lands_on_the_incident_within_the_budget(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
    now = datetime.now(UTC)
    good = now - timedelta(days=7) + EDGE_MARGIN
    seen: list[Probe] = []
    found = await find_moment(lens, CANARY, good=good, bad=now, on_probe=seen.append)
    assert found.last_good < incident(sandbox) <= found.first_bad
    assert found.first_bad - found.last_good <= timedelta(seconds=1)
    assert len(found.probes) <= math.ceil(math.log2((now - good).total_seconds())) + 2
    assert len(found.probes) <= found.budget
    assert seen == found.probes
    assert all(p.lens == LENS_TIME_TRAVEL for p in found.probes)
    # The canary really holds at last_good and fails at first_bad.
    assert (await peek(lens, found.last_good, CANARY)).first_value() is True
    assert (await peek(lens, found.first_bad, CANARY)).first_value() is False


async def test_peek_before_and_after_sees_different_data(served: tuple[Sandbox, NeonClient, Branch]) -> None:
    sandbox, client, main = served
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
    at = incident(sandbox)
    before = await peek(lens, at - timedelta(seconds=1), 'SELECT count(*) FROM "User"')
    after = await peek(lens, at + timedelta(seconds=1), 'SELECT count(*) FROM "User"')
    assert before.first_value() >= 14
    assert after.first_value() == 2
    assert before.columns == ["count"]


async def test_peek_cannot_write(served: tuple[Sandbox, NeonClient, Branch]) -> None:
    sandbox, client, main = served
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
    with pytest.raises(PeekError, match="read-only"):
        await peek(lens, incident(sandbox) - timedelta(seconds=1), 'DELETE FROM "User"')


@pytest.mark.parametrize(
    "canary",
    [
        'DELETE FROM "User"',
        'SELECT 1; DROP TABLE "User"',
        'WITH d AS (DELETE FROM "User" RETURNING 1) SELECT count(*) FROM d',
    ],
)
async def test_a_canary_that_writes_is_refused(
    served: tuple[Sandbox, NeonClient, Branch], canary: str
) -> None:
    sandbox, client, main = served
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
    now = datetime.now(UTC)
    with pytest.raises(UsageError, match="read-only"):
        await find_moment(lens, canary, good=now - timedelta(hours=1), bad=now)


async def test_a_canary_wrong_at_either_end_is_refused(served: tuple[Sandbox, NeonClient, Branch]) -> None:
    sandbox, client, main = served
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
    at = incident(sandbox)
    with pytest.raises(UsageError, match="already false at the good end"):
        await find_moment(lens, CANARY, good=at + timedelta(minutes=1), bad=at + timedelta(minutes=5))
    with pytest.raises(UsageError, match="still holds at the bad end"):
        await find_moment(lens, CANARY, good=at - timedelta(hours=2), bad=at - timedelta(minutes=1))


async def branch_names(client: NeonClient, project_id: str) -> set[str]:
    return {b.name for b in await client.branches(project_id)}


async def test_short_lived_branches_are_cleaned_up_after_success_and_failure(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    before = await branch_names(client, sandbox.project_id)
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    at = incident(sandbox)
    result = await peek(lens, at - timedelta(seconds=1), 'SELECT count(*) FROM "User"')
    assert result.lens == LENS_BRANCH
    assert result.first_value() >= 14
    with pytest.raises(PeekError, match="failed"):
        await peek(lens, at - timedelta(seconds=1), 'SELECT no_such_column FROM "User"')
    assert len(lens.created) == 2
    assert await branch_names(client, sandbox.project_id) == before


async def test_short_lived_branch_is_cleaned_up_on_interrupt(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    before = await branch_names(client, sandbox.project_id)
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    task = asyncio.create_task(peek(lens, incident(sandbox) - timedelta(seconds=1), "SELECT pg_sleep(10)"))
    while not lens.created:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # inside the query now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # No pause here: the cancellation is passed on only once the deletion has finished.
    assert await branch_names(client, sandbox.project_id) == before


@pytest.mark.parametrize("fault", ["drop", "malformed", "500"])
async def test_a_peek_branch_whose_create_answer_was_lost_is_found_and_deleted(
    served: tuple[Sandbox, NeonClient, Branch], fault: str
) -> None:
    sandbox, client, main = served
    before = await branch_names(client, sandbox.project_id)
    # Neon made the branch, but its answer never arrived (or was unreadable): the peek does not know its id.
    sandbox.app.faults.append(parse_fault(f"POST /projects/*/branches={fault}:when=after"))
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    with pytest.raises(NeonError):
        await peek(lens, incident(sandbox) - timedelta(seconds=1), CANARY)
    assert not lens.created
    assert await branch_names(client, sandbox.project_id) == before


async def test_find_moment_through_short_lived_branches_cleans_up(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    before = await branch_names(client, sandbox.project_id)
    # No retries: the three opening probes run at once, and their branch creations must take turns rather
    # than lean on the 423 retry (which a slow machine can outlast).
    client.transport.retry = RetryPolicy(max_attempts=1)
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    at = incident(sandbox)
    found = await find_moment(lens, CANARY, good=at - timedelta(seconds=20), bad=at + timedelta(seconds=20))
    assert found.last_good < at <= found.first_bad
    assert all(p.lens == LENS_BRANCH for p in found.probes)
    assert await branch_names(client, sandbox.project_id) == before


async def test_a_failed_opening_probe_stops_the_others_and_leaves_no_branch(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    before = await branch_names(client, sandbox.project_id)
    # The third branch creation is refused (before Neon acts on it) and not retried.
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches#3=500:when=before"))
    client.transport.retry = RetryPolicy(max_attempts=1)
    lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    at = incident(sandbox)
    with pytest.raises(NeonError):
        await find_moment(lens, CANARY, good=at - timedelta(seconds=20), bad=at + timedelta(seconds=20))
    # find_moment answered only after the other probes' branches were deleted again.
    assert len(lens.created) == 2
    assert await branch_names(client, sandbox.project_id) == before


def test_probe_budget_and_time_travel_url() -> None:
    now = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert probe_budget(now - timedelta(days=7), now, timedelta(seconds=1)) == 22  # ceil(log2(604800)) + 2
    url = time_travel_url(
        "postgresql://neondb_owner:pw@ep-odd-lake-123.us-east-2.aws.neon.tech/neondb?sslmode=require",
        "ep-odd-lake-123",
        "br-cool-frost-456",
        datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC),
    ).reveal()
    assert url.startswith("postgresql://neondb_owner:pw@br-cool-frost-456.us-east-2.aws.neon.tech/neondb?")
    assert "sslmode=require" in url
    assert "options=neon_timestamp%3A2026-11-21T01%3A29%3A59Z" in url


async def test_timeline_shows_the_window_the_incident_and_operations(
    served: tuple[Sandbox, NeonClient, Branch],
) -> None:
    sandbox, client, main = served
    project = await client.project(sandbox.project_id)
    created = await client.create_branch(sandbox.project_id, parent_id=main.id, name="timeline-probe")
    await client.wait_for_operations(sandbox.project_id, created.operations)
    window = RestoreWindow.from_retention(project.history_retention_seconds, datetime.now(UTC))
    events = await build_timeline(client, project, window, incident=incident(sandbox))
    kinds = {e.kind for e in events}
    assert {"window-start", "now", "incident", "operation", "branch-created"} <= kinds
    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)
    assert "timeline-probe" in render_timeline(events, UTC)


async def test_find_moment_cli(world: World) -> None:
    result = await world.cli("find-moment", "--check", CANARY, "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    at = incident(world.sandbox)
    last_good = datetime.fromisoformat(out["last_good"].replace("Z", "+00:00"))
    first_bad = datetime.fromisoformat(out["first_bad"].replace("Z", "+00:00"))
    assert last_good < at <= first_bad
    assert out["probe_count"] <= out["probe_budget"] == 22
    refused = await world.cli("find-moment", "--check", 'DELETE FROM "User"')
    assert refused.code == 2
    peeked = await world.cli(
        "peek", "--at", "40 minutes ago", "--sql", 'SELECT count(*) FROM "User"', "--json"
    )
    assert peeked.code == 0, peeked.stderr
    assert peeked.json()["rows"][0][0] >= 14
    shown = await world.cli("timeline", "--incident", "31 minutes ago")
    assert shown.code == 0, shown.stderr
    assert "oldest restorable moment" in shown.stdout


async def test_the_record_says_how_the_moment_was_found(world: World) -> None:
    from pathlib import Path

    found = await world.cli("find-moment", "--check", CANARY, "--json")
    assert found.code == 0, found.stderr
    last_good = found.json()["last_good"]
    restored = await world.cli("restore", "--yes", "--json", "--no-prisma", "--at", last_good)
    assert restored.code == 0, restored.stderr
    out = restored.json()
    assert out["moment_search"]["canary"] == CANARY
    report = Path(out["report"]).read_text()
    assert "## How the moment was found" in report
    assert report.count("| holds |") + report.count("| fails |") == found.json()["probe_count"]
    assert "## The project around the restore point" in report
    assert any("create_timeline" in e["summary"] for e in out["timeline"])
