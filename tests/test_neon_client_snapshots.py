"""The client's backup block: taking, renaming and deleting snapshots and the backup schedule; the requests
it sends (checked against Neon's spec at teardown) and how Neon's refusals read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import respx

from recovery_wizard.neon import (
    ChildBranchSnapshotError,
    LockedError,
    NeonClient,
    NeonHTTPError,
    SnapshotQuotaError,
)
from recovery_wizard.neon.models import BackupScheduleItem
from tests.conftest import PROJECT, fixture, neon_error, reply
from tests.test_neon_client import body_of, query_of

BR = "br-wispy-meadow-a1b2c3d4"
SNAP = "snap-late-dew-55667788"


def _snapshot(**changes: Any) -> dict[str, Any]:
    snap: dict[str, Any] = fixture("snapshots")["snapshots"][0]
    snap.update(changes)
    return snap


def _root_branch(neon_api: respx.MockRouter, *, parent: str | None = None) -> respx.Route:
    body = fixture("branch")
    body["branch"]["id"] = BR
    body["branch"].pop("parent_id", None)
    if parent:
        body["branch"]["parent_id"] = parent
    return neon_api.get(f"/projects/{PROJECT}/branches/{BR}").mock(return_value=reply(body))


async def test_create_snapshot_sends_name_expiry_and_moment(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    _root_branch(neon_api)
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        return_value=reply(
            {"snapshot": _snapshot(manual=True), "operations": [fixture("operation")["operation"]]}
        )
    )
    created = await client.create_snapshot(
        PROJECT,
        BR,
        name="before release",
        expires_at=datetime(2026, 12, 8, 0, 0, 0, 500, tzinfo=UTC),
        timestamp=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
    )
    assert query_of(route) == {
        "name": "before release",
        "expires_at": "2026-12-08T00:00:00Z",
        "timestamp": "2026-11-21T01:00:00Z",
    }
    assert route.calls[-1].request.content == b""
    assert created.snapshot.id == SNAP and len(created.operations) == 1


async def test_create_snapshot_at_an_lsn(client: NeonClient, neon_api: respx.MockRouter) -> None:
    _root_branch(neon_api)
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        return_value=reply({"snapshot": _snapshot(), "operations": []})
    )
    await client.create_snapshot(PROJECT, BR, lsn="0/1F00000")
    assert query_of(route) == {"lsn": "0/1F00000"}
    with pytest.raises(ValueError, match="not both"):
        await client.create_snapshot(PROJECT, BR, lsn="0/1", timestamp=datetime.now(UTC))


async def test_create_snapshot_of_a_child_branch_is_refused_before_sending(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    _root_branch(neon_api, parent="br-parent-00000000")
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot")
    with pytest.raises(ChildBranchSnapshotError, match="root branches only") as caught:
        await client.create_snapshot(PROJECT, BR)
    assert not route.called
    assert "backup --to file" in caught.value.hint


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (422, "snapshots limit exceeded for the project", SnapshotQuotaError),
        (409, "maximum number of snapshots reached", SnapshotQuotaError),
        (400, "snapshots can be taken of root branches only", ChildBranchSnapshotError),
    ],
)
async def test_create_snapshot_refusals_read_clearly(
    client: NeonClient, neon_api: respx.MockRouter, status: int, message: str, error: type[Exception]
) -> None:
    _root_branch(neon_api)
    neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        return_value=neon_error(status, message, request_id="req-9")
    )
    with pytest.raises(error) as caught:
        await client.create_snapshot(PROJECT, BR)
    assert message in str(caught.value) and "req-9" in str(caught.value)
    assert caught.value.hint  # type: ignore[attr-defined]


async def test_create_snapshot_other_refusals_pass_through(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    _root_branch(neon_api)
    neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        return_value=neon_error(400, "timestamp is outside the restore window")
    )
    with pytest.raises(NeonHTTPError) as caught:
        await client.create_snapshot(PROJECT, BR, timestamp=datetime(2020, 1, 1, tzinfo=UTC))
    assert type(caught.value) is NeonHTTPError


async def test_create_snapshot_waits_out_a_423(client: NeonClient, neon_api: respx.MockRouter) -> None:
    _root_branch(neon_api)
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        side_effect=[
            neon_error(423, "project already has running operations"),
            reply({"snapshot": _snapshot(), "operations": []}),
        ]
    )
    created = await client.create_snapshot(PROJECT, BR)
    assert created.snapshot.id == SNAP and route.call_count == 2


async def test_update_snapshot_renames(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.patch(f"/projects/{PROJECT}/snapshots/{SNAP}").mock(
        return_value=reply({"snapshot": _snapshot(name="kept: before release")})
    )
    snap = await client.update_snapshot(PROJECT, SNAP, name="kept: before release")
    assert body_of(route) == {"snapshot": {"name": "kept: before release"}}
    assert snap.name == "kept: before release"


async def test_delete_snapshot_returns_operations(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.delete(f"/projects/{PROJECT}/snapshots/{SNAP}").mock(
        return_value=reply({"operations": [fixture("operation")["operation"]]}, 202)
    )
    ops = await client.delete_snapshot(PROJECT, SNAP)
    assert len(ops) == 1


async def test_backup_schedule_round_trip(client: NeonClient, neon_api: respx.MockRouter) -> None:
    schedule = {"schedule": [{"frequency": "daily", "hour": 3, "retention_seconds": 604800}]}
    get = neon_api.get(f"/projects/{PROJECT}/branches/{BR}/backup_schedule").mock(
        return_value=reply(schedule)
    )
    put = neon_api.put(f"/projects/{PROJECT}/branches/{BR}/backup_schedule").mock(return_value=reply({}))
    items = await client.backup_schedule(PROJECT, BR)
    assert items == [BackupScheduleItem(frequency="daily", hour=3, retention_seconds=604800)]
    await client.set_backup_schedule(
        PROJECT,
        BR,
        [BackupScheduleItem(frequency="weekly", hour=2, day=7), BackupScheduleItem(frequency="hourly")],
    )
    assert body_of(put) == {
        "schedule": [{"frequency": "weekly", "hour": 2, "day": 7}, {"frequency": "hourly"}]
    }
    assert get.called


async def test_set_backup_schedule_on_a_child_reads_clearly(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    neon_api.put(f"/projects/{PROJECT}/branches/{BR}/backup_schedule").mock(
        return_value=neon_error(400, "backup schedules can be set on root branches only")
    )
    with pytest.raises(ChildBranchSnapshotError):
        await client.set_backup_schedule(PROJECT, BR, [])


async def test_locked_error_is_still_a_locked_error_after_retries(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    neon_api.put(f"/projects/{PROJECT}/branches/{BR}/backup_schedule").mock(
        return_value=neon_error(423, "project already has running operations")
    )
    with pytest.raises(LockedError):
        await client.set_backup_schedule(PROJECT, BR, [])
