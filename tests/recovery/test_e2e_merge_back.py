"""`restore --strategy merge-back` as a subprocess against the homecheff sandbox (issue 14's "done when").

From Neon history just before the incident, the lost users come back into the live `main` AND every write
made since stays: the admins, the customer who signed up again (her email collides with her old account:
a conflict in the plan and the record, not an error), her session, the admin's edit and test order. All of
it is checked from outside the tool, with psycopg on main's own URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from recovery_wizard.neon.models import EndpointType
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.sandbox.scenarios.homecheff import RESIGNUP
from tests.recovery.conftest import World
from tests.recovery.test_e2e_snapshot import BEFORE_RELEASE, direct_url

BEFORE_INCIDENT = (
    "31 minutes ago"  # the incident was 30 min 17 s ago; the traffic before it ends 3 min earlier
)
MERGE = ("restore", "--yes", "--json", "--strategy", "merge-back")


async def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(sql, params or None)
        return list(await cur.fetchall())


async def ledger(url: str) -> list[str]:
    """The merge ledger's run ids on the branch behind ``url`` ([] when the ledger was never made)."""
    [(exists,)] = await rows(url, "SELECT to_regclass('recovery_wizard.merge_ledger') IS NOT NULL")
    if not exists:
        return []
    return [str(r[0]) for r in await rows(url, "SELECT run_id FROM recovery_wizard.merge_ledger ORDER BY 1")]


async def post_incident_writes(url: str) -> dict[str, Any]:
    """What was written after the incident, as the app sees it on ``url``."""
    [(admins,)] = await rows(url, """SELECT count(*) FROM "User" WHERE role = 'ADMIN'""")
    again = await rows(url, 'SELECT id, email FROM "User" WHERE name = %s', RESIGNUP)
    sessions = await rows(
        url, 'SELECT count(*) FROM "Session" WHERE "userId" = ANY(%s)', [r[0] for r in again]
    )
    [(edited,)] = await rows(
        url, """SELECT count(*) FROM "Listing" WHERE description LIKE '%%sambal ijo%%'"""
    )
    [(test_orders,)] = await rows(
        url, """SELECT count(*) FROM "Order" WHERE note = 'Test order for the new checkout'"""
    )
    return {
        "admins": admins,
        "resignup": again,
        "sessions": sessions[0][0],
        "edited": edited,
        "test_orders": test_orders,
    }


async def test_merge_back_brings_the_users_back_and_keeps_every_write_since(world: World) -> None:
    main_url = await direct_url(world, world.main.id)
    before = await post_incident_writes(main_url)
    assert before["admins"] == 2 and len(before["resignup"]) == 1 and before["edited"] == 1
    assert before["test_orders"] == 1 and before["sessions"] == 1
    damaged_users = await world.users(main_url)
    env_before = (world.app / ".env").read_bytes()

    result = await world.cli(*MERGE, "--at", BEFORE_INCIDENT)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["strategy"] == "merge-back"
    merge = out["merge"]
    past_url = await direct_url(world, merge["past"]["id"])
    past_users = await world.users(past_url)
    assert past_users > damaged_users + 10

    # Checked from outside: every user of the past is back but the one whose email was taken again...
    users_now = await world.users(main_url)
    assert users_now == past_users + 1 - 1  # + the re-signup, - her old account (left out: a conflict)
    past_emails = {r[0] for r in await rows(past_url, 'SELECT email FROM "User"')}
    live_emails = {r[0] for r in await rows(main_url, 'SELECT email FROM "User"')}
    assert past_emails <= live_emails
    # ...and every write made since is still there: admins, re-signup with her session, edit, test order.
    assert await post_incident_writes(main_url) == before
    [old_lotte] = await rows(past_url, 'SELECT id FROM "User" WHERE name = %s', RESIGNUP)
    assert old_lotte[0] != before["resignup"][0][0]
    assert await rows(main_url, 'SELECT count(*) FROM "User" WHERE id = %s', old_lotte[0]) == [(0,)]

    # The collision is a conflict in the plan and the record, not an error.
    [user_plan] = [t for t in merge["plan"]["tables"] if t["table"] == "public.User"]
    [clash] = [c for c in user_plan["conflicts"] if c["kind"] == "unique"]
    assert clash["constraint"] == "User_email_key"
    assert merge["result"]["inserted"]["public.User"] == users_now - damaged_users
    assert merge["check"]["ok"] is True
    report = Path(out["report"]).read_text()
    assert "## Merge back" in report and "User_email_key" in report
    assert merge["checkpoint"]["name"] in report and "neonctl branches restore" in report

    # The app's .env is not touched; the checkpoint exists, marked as this run's, expiring.
    assert (world.app / ".env").read_bytes() == env_before
    assert out["env_files"] == [] and out["prisma"] is None
    checkpoint, annotation = await world.client.branch_annotated(
        world.sandbox.project_id, merge["checkpoint"]["id"]
    )
    assert annotation.get("recovery-wizard-run") == out["run_id"]
    assert checkpoint.parent_id == world.main.id and checkpoint.expires_at is not None
    # The checkpoint holds main as it was just before the merge: the damaged data (it has no compute:
    # give it one to look).
    made = await world.client.create_endpoint(
        world.sandbox.project_id, checkpoint.id, type=EndpointType.READ_ONLY
    )
    await world.client.wait_for_operations(world.sandbox.project_id, made.operations)
    assert await world.users(await direct_url(world, checkpoint.id)) == damaged_users
    assert await ledger(main_url) == [out["run_id"]]
    assert not world.leaked(result.stdout, result.stderr, report)

    # A second merge finds nothing left to bring back and writes nothing.
    again = await world.cli(*MERGE, "--at", BEFORE_INCIDENT)
    assert again.code == 0, again.stderr
    second = again.json()
    assert second["merge"]["result"].get("nothing") is True
    assert await world.users(main_url) == users_now
    assert await ledger(main_url) == [out["run_id"]]


async def test_dry_run_shows_the_plan_and_writes_nothing(world: World) -> None:
    main_url = await direct_url(world, world.main.id)
    names = await world.branch_names()
    users = await world.users(main_url)

    result = await world.cli(*MERGE, "--dry-run", "--at", BEFORE_INCIDENT)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "dry-run"
    plan = out["merge"]["plan"]
    assert plan["inserts"] > 10 and plan["conflicts"] >= 1
    assert "Merge back:" in result.stderr and "User_email_key" in result.stderr
    # Nothing left behind: no branch (the past was deleted again, no checkpoint), no ledger, no rows.
    assert await world.branch_names() == names
    assert await ledger(main_url) == []
    assert await world.users(main_url) == users
    assert "checkpoint" not in out["merge"]
    # A dry run is never offered for resume.
    runs = list((world.app / ".recovery-wizard" / "runs").iterdir())
    assert [Journal.open(r).command for r in runs] == ["merge-dry-run"]
    follow = await world.cli("restore", "--yes", "--resume")
    assert follow.code == 2 and "no unfinished" in follow.stderr.lower()


@pytest.mark.parametrize(
    ("env", "when"),
    [
        ("RECOVERY_WIZARD_CRASH_AT", "begin:checkpoint"),
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:checkpoint"),
        ("RECOVERY_WIZARD_CRASH_AT", "begin:merge"),
        ("RECOVERY_WIZARD_CRASH_AT", "commit:merge"),  # inside the transaction, every row written
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:merge"),
    ],
)
async def test_a_kill_at_each_side_effect_resumes_to_one_whole_merge(
    world: World, env: str, when: str
) -> None:
    main_url = await direct_url(world, world.main.id)
    before = await post_incident_writes(main_url)
    killed = await world.cli(*MERGE, "--at", BEFORE_INCIDENT, extra_env={env: when})
    assert killed.code == -9, killed.stderr
    users_then = await world.users(main_url)
    committed = when == "done:merge"
    # Killed before the commit: nothing of the merge is in main; after it: all of it (never a part).
    merged_rows = users_then - 2 - 1
    assert (merged_rows > 10) if committed else (merged_rows == 0), users_then

    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    out = resumed.json()
    assert out["status"] == "done"
    past_users = await world.users(await direct_url(world, out["merge"]["past"]["id"]))
    assert await world.users(main_url) == past_users
    assert await post_incident_writes(main_url) == before
    assert await ledger(main_url) == [out["run_id"]]  # applied once
    checkpoints = [n for n in await world.branch_names() if "-before-merge-" in n]
    assert checkpoints == [out["merge"]["checkpoint"]["name"]]
    assert out["merge"]["check"]["ok"] is True


async def test_merge_back_from_a_snapshot(world: World) -> None:
    """Any source that makes a branch can be merged from: here the snapshot taken the evening before."""
    main_url = await direct_url(world, world.main.id)
    before = await post_incident_writes(main_url)
    damaged = await world.users(main_url)
    result = await world.cli(*MERGE, "--from", BEFORE_RELEASE)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["kind"] == "snapshot" and out["status"] == "done"
    assert await world.users(main_url) > damaged + 10
    assert await post_incident_writes(main_url) == before
    assert sum(out["merge"]["result"]["inserted"].values()) > 10


async def test_merge_options_without_merge_back_are_refused(world: World) -> None:
    result = await world.cli("restore", "--yes", "--at", BEFORE_INCIDENT, "--tables", "User")
    assert result.code == 2 and "--strategy merge-back" in result.stderr
    bad = await world.cli(*MERGE, "--at", BEFORE_INCIDENT, "--rule", "User=overwrite", "--dry-run")
    assert bad.code == 2 and "keep-live" in bad.stderr


async def test_a_whole_restore_that_would_lose_writes_recommends_merge_back(world: World) -> None:
    result = await world.cli("restore", "--yes", "--json", "--dry-run", "--at", BEFORE_INCIDENT)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["recommended_strategy"] == "merge-back"
    assert {r["table"] for r in out["lost_writes"]} >= {"User", "Order"}
    assert "--strategy merge-back" in result.stderr
    # Before any write happened since the moment, there is nothing a merge would keep.
    early = await world.cli("restore", "--yes", "--json", "--dry-run", "--at", "1 minute ago")
    assert early.code == 0, early.stderr
    assert early.json()["recommended_strategy"] is None
