"""Snapshots in the sandbox, end to end over real PostgreSQL, every request and answer checked against the spec.

Create, list, rename, restore un-finalized and query it, finalize (the branch id change, the renamed old
branch, the moved compute), delete; the backup schedule firing on the sandbox clock and expiring by
retention; each refusal, with nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.models import Operation
from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.sandbox.snapshots import ScheduleItem
from tests.sandbox.conftest import SpecChecker, in_process_http, neon_client

DB, ROLE = "neondb", "neondb_owner"
USERS = 'SELECT count(*) FROM "User"'


class Api:
    """Raw calls to the sandbox (the project's client has no snapshot calls), checked by the spec hook."""

    def __init__(self, sandbox: Sandbox, http: httpx.AsyncClient) -> None:
        self.http = http
        self.base = f"{sandbox.api_url}/projects/{sandbox.project_id}"
        self.headers = {"Authorization": f"Bearer {sandbox.api_key.reveal()}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        response = await self.http.request(
            method, self.base + path, params=params, json=body, headers=self.headers
        )
        assert response.status_code == status, response.text
        data: dict[str, Any] = response.json()
        return data

    async def refused(self, method: str, path: str, status: int, words: str, **kwargs: Any) -> None:
        data = await self.call(method, path, status=status, **kwargs)
        assert words in data["message"], data
        assert data["request_id"]


class Clock:
    """The sandbox clock moved ahead on demand (the engine reads ``engine.clock`` for every decision)."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return (datetime.now(UTC) if self.frozen is None else self.frozen) + self.offset

    def freeze(self) -> None:
        """Stop at the present: from now on the clock moves only by ``forward``, so what a test reads does
        not depend on how fast the machine answers."""
        self.frozen = datetime.now(UTC)

    def to_ten_past(self) -> None:
        """Move to ten past the next whole hour, so that no due moment falls inside a test's first steps."""
        now = datetime.now(UTC)
        self.offset = now.replace(minute=10, second=0, microsecond=0) + timedelta(hours=1) - now

    def forward(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
async def env(sandbox: Sandbox) -> AsyncIterator[tuple[Api, NeonClient, SpecChecker, Clock]]:
    assert sandbox.engine is not None
    clock = Clock()
    sandbox.engine.clock = clock
    checker = SpecChecker()
    async with in_process_http(sandbox, checker) as http:
        yield Api(sandbox, http), neon_client(sandbox, http), checker, clock


async def wait(client: NeonClient, project_id: str, operations: list[dict[str, Any]]) -> None:
    await client.wait_for_operations(project_id, [msgspec.convert(op, Operation) for op in operations])


async def query(uri: str, sql: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        cur = await conn.execute(sql.encode())
        return await cur.fetchall() if cur.description else []


async def users_on(client: NeonClient, project_id: str, branch_id: str) -> int:
    uri = await client.connection_uri(project_id, branch_id=branch_id, database_name=DB, role_name=ROLE)
    return int(str((await query(uri.reveal(), USERS))[0][0]))


async def branches_by_name(api: Api) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in (await api.call("GET", "/branches"))["branches"]}


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the scenario ----------------------------------------------------------------------------------


async def test_homecheff_has_a_manual_snapshot_the_day_before_and_a_daily_schedule(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, checker, _ = env
    assert sandbox.project is not None and sandbox.project.scenario is not None
    incident = sandbox.project.scenario.incident_at
    main = (await branches_by_name(api))["main"]
    snapshots = (await api.call("GET", "/snapshots"))["snapshots"]
    (manual,) = [s for s in snapshots if s["manual"]]
    assert manual["name"] == "before release"
    assert manual["source_branch_id"] == main["id"]
    taken = datetime.fromisoformat(manual["timestamp"].replace("Z", "+00:00"))
    assert timedelta(hours=1) < incident - taken < timedelta(days=2)
    assert "expires_at" not in manual
    # The nightly backups of the last week, each at 02:00 UTC and kept 7 days.
    scheduled = [s for s in snapshots if not s["manual"]]
    assert 6 <= len(scheduled) <= 8
    now = datetime.now(UTC)
    for snap in scheduled:
        at = datetime.fromisoformat(snap["timestamp"].replace("Z", "+00:00"))
        assert (at.hour, at.minute, at.second) == (2, 0, 0)
        assert now - timedelta(days=7) < at <= now
        assert snap["expires_at"] == ts(at + timedelta(days=7)).replace(".000000", "")
    schedule = await api.call("GET", f"/branches/{main['id']}/backup_schedule")
    assert schedule == {"schedule": [{"frequency": "daily", "hour": 2, "retention_seconds": 604800}]}
    # Restoring the manual snapshot brings back the users the incident deleted (all but the last few
    # sign-ups of the incident's day: how many depends on the time of day the sandbox starts).
    restored = await api.call("POST", f"/snapshots/{manual['id']}/restore", body={"name": "check"})
    await wait(client, sandbox.project_id, restored["operations"])
    assert 10 < await users_on(client, sandbox.project_id, restored["branch"]["id"]) <= 18
    assert checker.checked >= 4 or not checker.enabled


# --- the lifecycle ---------------------------------------------------------------------------------


async def test_snapshot_lifecycle_end_to_end(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, checker, _ = env
    pid = sandbox.project_id
    assert sandbox.project is not None and sandbox.project.scenario is not None
    before_incident = sandbox.project.scenario.incident_at - timedelta(minutes=1)
    main = (await branches_by_name(api))["main"]
    (endpoint,) = await client.endpoints(pid, main["id"])
    main_uri = (
        await client.connection_uri(pid, branch_id=main["id"], database_name=DB, role_name=ROLE)
    ).reveal()
    assert int(str((await query(main_uri, USERS))[0][0])) == 3  # 2 admins + the re-signup

    # Create: a snapshot of main as it was a minute before the incident.
    expires = datetime.now(UTC) + timedelta(days=3)
    created = await api.call(
        "POST",
        f"/branches/{main['id']}/snapshot",
        params={"name": "pre-incident", "timestamp": ts(before_incident), "expires_at": ts(expires)},
    )
    snap = created["snapshot"]
    assert snap["name"] == "pre-incident" and snap["manual"] is True
    assert snap["source_branch_id"] == main["id"] and snap["lsn"]
    assert snap["timestamp"].startswith(ts(before_incident)[:19])
    assert [op["status"] for op in created["operations"]] == ["scheduling"]
    await wait(client, pid, created["operations"])

    # List and rename.
    listed = {s["id"]: s for s in (await api.call("GET", "/snapshots"))["snapshots"]}
    assert listed[snap["id"]] == snap
    renamed = await api.call(
        "PATCH", f"/snapshots/{snap['id']}", body={"snapshot": {"name": "pre-incident-1"}}
    )
    assert renamed["snapshot"]["name"] == "pre-incident-1"

    # Restore un-finalized: a new root branch beside main, with a read-only compute to look at the data.
    restored = await api.call(
        "POST",
        f"/snapshots/{snap['id']}/restore",
        body={"name": "main-from-snapshot", "finalize_restore": False},
    )
    branch = restored["branch"]
    assert branch["name"] == "main-from-snapshot"
    assert branch["restore_status"] == "restored" and branch["restored_from"] == snap["id"]
    assert "parent_id" not in branch and branch["default"] is False
    assert {"name": "restore", "reason": "unfinished snapshot restore: finalize it first"} in branch[
        "restricted_actions"
    ]
    (preview,) = restored["endpoints"]
    assert preview["type"] == "read_only" and preview["branch_id"] == branch["id"]
    await wait(client, pid, restored["operations"])

    # Query it through its endpoint: the 18 users of before the incident; the preview cannot write.
    assert await users_on(client, pid, branch["id"]) == 18
    preview_uri = (
        await client.connection_uri(pid, branch_id=branch["id"], database_name=DB, role_name=ROLE)
    ).reveal()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await query(preview_uri, 'DELETE FROM "Review"')
    assert int(str((await query(main_uri, USERS))[0][0])) == 3  # main untouched so far

    # Finalize: the restored branch takes main's place, its name, default flag and compute.
    finalized = await api.call("POST", f"/branches/{branch['id']}/finalize_restore")
    await wait(client, pid, finalized["operations"])
    assert {op["action"] for op in finalized["operations"]} == {"suspend_compute", "start_compute"}
    names = await branches_by_name(api)
    new_main, old_main = names["main"], names["main (old)"]
    assert new_main["id"] == branch["id"] != main["id"]  # the live branch's id CHANGED
    assert new_main["default"] is True and old_main["default"] is False
    assert new_main["restore_status"] == "finalized" and new_main["restored_as"] == main["id"]
    assert "restricted_actions" not in new_main
    assert old_main["id"] == main["id"]
    # The same compute (same host, same connection string) now serves the restored data.
    moved = {e.id: e for e in await client.endpoints(pid, new_main["id"])}
    assert moved[endpoint.id].host == endpoint.host
    assert await client.endpoints(pid, old_main["id"]) == []
    assert int(str((await query(main_uri, USERS))[0][0])) == 18
    # The backup schedule went with main's role; the old branch keeps the damaged data.
    assert (await api.call("GET", f"/branches/{new_main['id']}/backup_schedule"))["schedule"]
    assert (await api.call("GET", f"/branches/{old_main['id']}/backup_schedule")) == {"schedule": []}
    look = await client.create_endpoint(pid, old_main["id"])
    await client.wait_for_operations(pid, look.operations)
    assert await users_on(client, pid, old_main["id"]) == 3

    # A second finalize is refused; so is restoring into the old branch's place by default? No: allowed.
    await api.refused("POST", f"/branches/{branch['id']}/finalize_restore", 400, "already finalized")

    # Delete: the snapshot (202, then 404), and the old branch (a replaced root branch can go).
    deleted = await api.call("DELETE", f"/snapshots/{snap['id']}", status=202)
    await wait(client, pid, deleted["operations"])
    assert snap["id"] not in {s["id"] for s in (await api.call("GET", "/snapshots"))["snapshots"]}
    await api.refused("DELETE", f"/snapshots/{snap['id']}", 404, "not found")
    # The scenario's child branches stayed with the old branch (their parent id): it goes once they do.
    await api.refused("DELETE", f"/branches/{old_main['id']}", 400, "child branches")
    for child in (await branches_by_name(api)).values():
        if child.get("parent_id") == old_main["id"]:
            await wait(client, pid, (await api.call("DELETE", f"/branches/{child['id']}"))["operations"])
    gone = await api.call("DELETE", f"/branches/{old_main['id']}")
    await wait(client, pid, gone["operations"])
    assert "main (old)" not in await branches_by_name(api)
    assert checker.checked >= 20 or not checker.enabled


async def test_restore_with_finalize_true_swaps_at_once(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, _, _ = env
    pid = sandbox.project_id
    main = (await branches_by_name(api))["main"]
    (endpoint,) = await client.endpoints(pid, main["id"])
    manual = next(s for s in (await api.call("GET", "/snapshots"))["snapshots"] if s["manual"])
    restored = await api.call("POST", f"/snapshots/{manual['id']}/restore", body={"finalize_restore": True})
    await wait(client, pid, restored["operations"])
    branch = restored["branch"]
    assert branch["restore_status"] == "finalized" and branch["restored_as"] == main["id"]
    assert branch["name"] == "main" and branch["default"] is True
    assert [e["id"] for e in restored["endpoints"]] == [endpoint.id]
    names = await branches_by_name(api)
    assert names["main"]["id"] == branch["id"] and names["main (old)"]["id"] == main["id"]
    assert 10 < await users_on(client, pid, branch["id"]) <= 18
    # finalize with a name for the old branch, on a second restore of the same snapshot into the new main.
    again = await api.call(
        "POST", f"/snapshots/{manual['id']}/restore", body={"target_branch_id": branch["id"], "name": "again"}
    )
    await wait(client, pid, again["operations"])
    await api.refused(
        "POST",
        f"/branches/{again['branch']['id']}/finalize_restore",
        409,
        "already exists",
        body={"name": "main (old)"},
    )
    done = await api.call(
        "POST", f"/branches/{again['branch']['id']}/finalize_restore", body={"name": "main-2"}
    )
    await wait(client, pid, done["operations"])
    names = await branches_by_name(api)
    assert names["main"]["id"] == again["branch"]["id"] and names["main-2"]["id"] == branch["id"]


# --- the backup schedule ---------------------------------------------------------------------------


async def test_schedule_fires_on_the_clock_and_expires_by_retention(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, _, clock = env
    pid = sandbox.project_id
    clock.to_ten_past()
    main = (await branches_by_name(api))["main"]
    path = f"/branches/{main['id']}/backup_schedule"
    item = {"frequency": "hourly", "retention_seconds": 7200}
    assert await api.call("PUT", path, body={"schedule": [item]}) == {}
    assert await api.call("GET", path) == {"schedule": [item]}
    uri = (await client.connection_uri(pid, branch_id=main["id"], database_name=DB, role_name=ROLE)).reveal()
    await query(uri, "CREATE TABLE marker (label text)")
    await query(uri, "INSERT INTO marker VALUES ('before the first hour')")
    set_at = clock()

    def hourly(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted((s for s in snapshots if "hourly" in s["name"]), key=lambda s: str(s["timestamp"]))

    assert hourly((await api.call("GET", "/snapshots"))["snapshots"]) == []
    clock.forward(timedelta(hours=1, minutes=1))
    await query(uri, "INSERT INTO marker VALUES ('after the first hour')")
    clock.forward(timedelta(hours=1, minutes=1))
    fired = hourly((await api.call("GET", "/snapshots"))["snapshots"])
    first_due = set_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert [s["timestamp"] for s in fired] == [
        ts(first_due).replace(".000000", ""),
        ts(first_due + timedelta(hours=1)).replace(".000000", ""),
    ]
    assert all(s["manual"] is False and s["source_branch_id"] == main["id"] for s in fired)
    assert fired[0]["expires_at"] == ts(first_due + timedelta(hours=2)).replace(".000000", "")
    # Each holds the data as of its due moment.
    first = await api.call("POST", f"/snapshots/{fired[0]['id']}/restore", body={"name": "first-hour"})
    await wait(client, pid, first["operations"])
    first_uri = (
        await client.connection_uri(pid, branch_id=first["branch"]["id"], database_name=DB, role_name=ROLE)
    ).reveal()
    assert await query(first_uri, "SELECT label FROM marker") == [("before the first hour",)]
    # Its operation is in the project's operations, at the moment it ran.
    ops = (await api.call("GET", "/operations", params={"limit": "1000"}))["operations"]
    assert any(op["action"] == "create_timeline" and op["created_at"] == fired[0]["timestamp"] for op in ops)
    # Three hours on, the first two are past their 2-hour retention and gone; newer ones took their place.
    clock.forward(timedelta(hours=3, minutes=1))
    later = hourly((await api.call("GET", "/snapshots"))["snapshots"])
    assert {s["id"] for s in later}.isdisjoint({s["id"] for s in fired})
    assert len(later) == 2
    # The scenario's manual snapshot has no expiry: still there. An empty schedule stops it all.
    assert any(s["manual"] for s in (await api.call("GET", "/snapshots"))["snapshots"])
    assert await api.call("PUT", path, body={"schedule": []}) == {}
    clock.forward(timedelta(hours=3))
    assert len(hourly((await api.call("GET", "/snapshots"))["snapshots"])) == 0


async def test_a_due_scheduled_snapshot_keeps_the_data_of_its_moment_across_an_in_place_restore(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    """Nobody asked the snapshot API between the due moment and an in-place restore that rewrote the
    branch's history: the scheduled snapshot still holds the data as it was when it was due."""
    api, client, _, clock = env
    clock.to_ten_past()
    pid = sandbox.project_id
    main = (await branches_by_name(api))["main"]
    await api.call(
        "PUT", f"/branches/{main['id']}/backup_schedule", body={"schedule": [{"frequency": "hourly"}]}
    )
    uri = (await client.connection_uri(pid, branch_id=main["id"], database_name=DB, role_name=ROLE)).reveal()
    before_marker = clock()
    await query(uri, "CREATE TABLE marker (label text)")
    await query(uri, "INSERT INTO marker VALUES ('written before the hour')")
    clock.forward(timedelta(hours=1))
    restore = await client.restore_branch(
        pid,
        main["id"],
        source_branch_id=main["id"],
        source_timestamp=before_marker - timedelta(seconds=1),
        preserve_under_name="main-before-restore",
    )
    await client.wait_for_operations(pid, restore.operations)
    with pytest.raises(psycopg.errors.UndefinedTable):
        await query(uri, "SELECT label FROM marker")
    hourly = [s for s in (await api.call("GET", "/snapshots"))["snapshots"] if "hourly" in s["name"]]
    assert len(hourly) == 1, hourly
    (due,) = hourly
    restored = await api.call("POST", f"/snapshots/{due['id']}/restore", body={"name": "as-it-was"})
    await wait(client, pid, restored["operations"])
    as_it_was = (
        await client.connection_uri(pid, branch_id=restored["branch"]["id"], database_name=DB, role_name=ROLE)
    ).reveal()
    assert await query(as_it_was, "SELECT label FROM marker") == [("written before the hour",)]


async def test_a_manual_snapshot_expires_at_its_time(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, _, clock = env
    main = (await branches_by_name(api))["main"]
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = await api.call(
        "POST", f"/branches/{main['id']}/snapshot", params={"name": "short", "expires_at": ts(expires)}
    )
    await wait(client, sandbox.project_id, created["operations"])
    assert "short" in {s["name"] for s in (await api.call("GET", "/snapshots"))["snapshots"]}
    clock.forward(timedelta(hours=1, seconds=1))
    assert "short" not in {s["name"] for s in (await api.call("GET", "/snapshots"))["snapshots"]}


# --- refusals --------------------------------------------------------------------------------------


async def test_snapshot_refusals_change_nothing(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, client, _, _ = env
    pid = sandbox.project_id
    names = await branches_by_name(api)
    main, child = names["main"], names["preview/checkout-redesign"]
    manual = next(s for s in (await api.call("GET", "/snapshots"))["snapshots"] if s["manual"])
    pending = await api.call("POST", f"/snapshots/{manual['id']}/restore", body={"name": "pending-restore"})
    await wait(client, pid, pending["operations"])
    restored_id = pending["branch"]["id"]

    async def state() -> tuple[Any, ...]:
        return (
            await api.call("GET", "/snapshots"),
            sorted((b["id"], b["name"], b["default"]) for b in (await branches_by_name(api)).values()),
            await api.call("GET", f"/branches/{main['id']}/backup_schedule"),
        )

    before = await state()
    now = datetime.now(UTC)
    snap = f"/branches/{main['id']}/snapshot"
    await api.refused("POST", f"/branches/{child['id']}/snapshot", 400, "root branches only")
    await api.refused("POST", f"/branches/{restored_id}/snapshot", 400, "finalize or delete it first")
    await api.refused(
        "POST",
        snap,
        400,
        "mutually exclusive",
        params={"timestamp": ts(now - timedelta(hours=1)), "lsn": "0/1"},
    )
    await api.refused(
        "POST", snap, 400, "outside the history retention", params={"timestamp": ts(now - timedelta(days=8))}
    )
    await api.refused("POST", snap, 400, "in the future", params={"timestamp": ts(now + timedelta(hours=1))})
    await api.refused(
        "POST", snap, 400, "must be in the future", params={"expires_at": ts(now - timedelta(hours=1))}
    )
    await api.refused("POST", "/branches/br-no-such-branch-1/snapshot", 404, "not found")
    await api.refused("POST", f"/branches/{main['id']}/finalize_restore", 400, "not restored from a snapshot")
    await api.refused(
        "POST", f"/branches/{child['id']}/finalize_restore", 400, "not restored from a snapshot"
    )
    await api.refused("POST", "/snapshots/snap-no-such-1/restore", 404, "not found")
    await api.refused(
        "POST", f"/snapshots/{manual['id']}/restore", 409, "already exists", body={"name": "main"}
    )
    await api.refused(
        "POST",
        f"/snapshots/{manual['id']}/restore",
        400,
        "root branches only",
        body={"target_branch_id": child["id"]},
    )
    await api.refused(
        "POST", f"/snapshots/{manual['id']}/restore", 404, "not found", body={"target_branch_id": "br-gone-1"}
    )
    await api.refused(
        "PATCH", "/snapshots/snap-no-such-1", 404, "not found", body={"snapshot": {"name": "x"}}
    )
    await api.refused("PATCH", f"/snapshots/{manual['id']}", 400, "nothing to update", body={"snapshot": {}})
    await api.refused("DELETE", "/snapshots/snap-no-such-1", 404, "not found")
    await api.refused(
        "PUT",
        f"/branches/{child['id']}/backup_schedule",
        400,
        "root branches only",
        body={"schedule": [{"frequency": "daily"}]},
    )
    await api.refused(
        "PUT",
        f"/branches/{main['id']}/backup_schedule",
        400,
        "frequency must be one of",
        body={"schedule": [{"frequency": "fortnightly"}]},
    )
    # The in-place restore of an unfinished snapshot restore is refused too (Neon's pre-flight rule).
    await api.refused(
        "POST",
        f"/branches/{restored_id}/restore",
        400,
        "unfinished snapshot restore",
        body={"source_branch_id": main["id"]},
    )
    assert await state() == before
    # An unfinished restore that is not wanted is deleted like any branch, with its preview compute.
    discarded = await api.call("DELETE", f"/branches/{restored_id}")
    await wait(client, pid, discarded["operations"])
    assert "pending-restore" not in await branches_by_name(api)
    assert [e.id for e in await client.endpoints(pid, main["id"])] != []


async def test_schedule_input_outside_the_spec_is_refused(sandbox: Sandbox) -> None:
    # No spec checker: these requests break the spec's own bounds on purpose.
    async with in_process_http(sandbox) as http:
        api = Api(sandbox, http)
        main = (await branches_by_name(api))["main"]
        path = f"/branches/{main['id']}/backup_schedule"
        for item, words in (
            ({"frequency": "daily", "retention_seconds": 60}, "at least 3600"),
            ({"frequency": "daily", "hour": 24}, "between 0 and 23"),
            ({"frequency": "weekly", "day": 8}, "between 1 and 7"),
        ):
            await api.refused("PUT", path, 400, words, body={"schedule": [item]})
        await api.refused("PUT", path, 400, "schedule is required", body={})
        assert (await api.call("GET", path))["schedule"] == [
            {"frequency": "daily", "hour": 2, "retention_seconds": 604800}
        ]


async def test_a_snapshot_call_while_an_operation_runs_is_locked(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    api, _, _, clock = env
    assert sandbox.engine is not None
    sandbox.engine.operation_seconds = 5
    clock.freeze()  # the first snapshot's operation runs until the test is done, however slow the machine
    main = (await branches_by_name(api))["main"]
    await api.call("POST", f"/branches/{main['id']}/snapshot", params={"name": "one"})
    await api.refused(
        "POST", f"/branches/{main['id']}/snapshot", 423, "conflicting operations", params={"name": "two"}
    )
    manual = next(
        s for s in (await api.call("GET", "/snapshots"))["snapshots"] if s["name"] == "before release"
    )
    await api.refused("POST", f"/snapshots/{manual['id']}/restore", 423, "conflicting operations")
    names = {s["name"] for s in (await api.call("GET", "/snapshots"))["snapshots"]}
    assert "one" in names and "two" not in names


# --- Neon's own CLI, unchanged, against the sandbox ------------------------------------------------

NEONCTL_VERSION = "2.47"
OFFLINE_MARKERS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network")


@pytest.fixture(scope="session")
def neonctl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``neonctl`` from npm, installed into a temporary directory (never into the repository)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("node and npm are needed to install Neon's CLI (neonctl) from npm")
    where = tmp_path_factory.mktemp("neonctl")
    done = subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", f"neonctl@{NEONCTL_VERSION}"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        if any(marker in done.stderr for marker in OFFLINE_MARKERS):
            pytest.skip(f"the npm registry is out of reach: {done.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"npm install neonctl failed: {done.stderr.strip()[-2000:]}")
    return where / "node_modules" / ".bin" / "neonctl"


class Cli:
    """Runs ``neonctl`` against the sandbox's socket; the key goes by environment, never on a command line."""

    def __init__(self, binary: Path, sandbox: Sandbox, home: Path) -> None:
        self.binary = binary
        self.project_id = sandbox.project_id
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "NEON_API_HOST": sandbox.api_url,
            "NEON_API_KEY": sandbox.api_key.reveal(),
        }

    async def run(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            *args,
            "--project-id",
            self.project_id,
            "--no-analytics",
            "--no-color",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        code = proc.returncode if proc.returncode is not None else -1
        if ok:
            assert code == 0, (args, err.decode())
        return code, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        _, out, _ = await self.run(*args, "-o", "json")
        return json.loads(out)


async def test_neonctl_snapshots_commands_against_the_sandbox(
    neonctl: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.serve()
    cli = Cli(neonctl, sandbox, tmp_path)
    listed = await cli.json("snapshots", "list")
    assert "before release" in {s["name"] for s in listed}
    created = await cli.json("snapshots", "create", "--branch", "main", "--name", "cli-snap")
    assert created["name"] == "cli-snap" and created["manual"] is True
    expiry = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    updated = await cli.json(
        "snapshots", "update", "cli-snap", "--name", "cli-snap-2", "--expires-at", expiry
    )
    assert (updated["name"], updated["expires_at"]) == ("cli-snap-2", expiry)
    cleared = await cli.json("snapshots", "update", "cli-snap-2", "--clear-expiration")
    assert "expires_at" not in cleared

    restored = await cli.json("snapshots", "restore", "before release", "--name", "preview-restore")
    branch = restored["restored_branch"]
    assert branch["restore_status"] == "restored" and branch["name"] == "preview-restore"
    async with in_process_http(sandbox, SpecChecker()) as http:
        client = neon_client(sandbox, http)
        await client.wait_for_operations(
            sandbox.project_id, [msgspec.convert(op, Operation) for op in restored["operations"]]
        )
    # The CLI's connection string, with the sandbox's plain TCP in place of TLS where it has none.
    _, uri, _ = await cli.run("connection-string", "preview-restore")
    plain = uri.strip().replace("sslmode=require", "sslmode=disable").replace("&channel_binding=require", "")
    assert 10 < int(str((await query(plain, USERS))[0][0])) <= 18

    await cli.run("snapshots", "finalize", "preview-restore")
    names = {b["name"]: b for b in await cli.json("branches", "list")}
    assert names["main"]["id"] == branch["id"] and "main (old)" in names

    schedule = [{"frequency": "weekly", "day": 1, "hour": 3, "retention_seconds": 1209600}]
    await cli.run("snapshots", "schedule", "set", "--branch", "main", "--schedule", json.dumps(schedule))
    assert await cli.json("snapshots", "schedule", "get", "--branch", "main") == schedule

    await cli.run("snapshots", "delete", "cli-snap-2")
    assert "cli-snap-2" not in {s["name"] for s in await cli.json("snapshots", "list")}

    code, _, err = await cli.run("snapshots", "create", "--branch", "preview/checkout-redesign", ok=False)
    assert code != 0 and "root branches only" in err
    code, _, err = await cli.run("snapshots", "finalize", "dev/sari-allergens", ok=False)
    assert code != 0 and "not restored from a snapshot" in err


async def test_snapshot_operations_go_scheduling_running_finished(
    env: tuple[Api, NeonClient, SpecChecker, Clock], sandbox: Sandbox
) -> None:
    """Each status is read at a moment the test sets on the sandbox clock: on the wall clock a loaded machine
    can take longer than the scheduling fifth (200 ms) to answer the snapshot call, and skip "scheduling"."""
    api, _, _, clock = env
    assert sandbox.engine is not None
    sandbox.engine.operation_seconds = 1.0
    clock.freeze()
    main = (await branches_by_name(api))["main"]
    created = await api.call("POST", f"/branches/{main['id']}/snapshot", params={"name": "watched"})
    (op,) = created["operations"]
    seen = [op["status"]]
    for step in (0.1, 0.15, 0.5, 0.3):  # 0.1, 0.25, 0.75, 1.05 s after the call
        clock.forward(timedelta(seconds=step))
        status = (await api.call("GET", f"/operations/{op['id']}"))["operation"]["status"]
        if status != seen[-1]:
            seen.append(status)
    assert seen == ["scheduling", "running", "finished"]


# --- when a schedule item is due (no database needed) ----------------------------------------------


@pytest.mark.parametrize(
    ("item", "moment", "due"),
    [
        (ScheduleItem("hourly"), datetime(2026, 3, 4, 17, tzinfo=UTC), True),
        (ScheduleItem("daily", hour=2), datetime(2026, 3, 4, 2, tzinfo=UTC), True),
        (ScheduleItem("daily", hour=2), datetime(2026, 3, 4, 3, tzinfo=UTC), False),
        (ScheduleItem("daily"), datetime(2026, 3, 4, 0, tzinfo=UTC), True),
        (ScheduleItem("weekly", day=3, hour=5), datetime(2026, 3, 4, 5, tzinfo=UTC), True),  # a Wednesday
        (ScheduleItem("weekly", day=1, hour=5), datetime(2026, 3, 4, 5, tzinfo=UTC), False),
        (ScheduleItem("monthly", day=4, hour=1), datetime(2026, 3, 4, 1, tzinfo=UTC), True),
        (ScheduleItem("monthly", day=31), datetime(2026, 2, 28, 0, tzinfo=UTC), True),  # the month's last day
        (ScheduleItem("monthly", day=31), datetime(2026, 3, 30, 0, tzinfo=UTC), False),
        (ScheduleItem("yearly", month=3, day=4, hour=6), datetime(2026, 3, 4, 6, tzinfo=UTC), True),
        (ScheduleItem("yearly", month=3, day=4, hour=6), datetime(2026, 4, 4, 6, tzinfo=UTC), False),
    ],
)
def test_schedule_item_due_moments(item: ScheduleItem, moment: datetime, due: bool) -> None:
    assert item.due(moment) is due
