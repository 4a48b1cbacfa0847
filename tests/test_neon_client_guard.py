"""The client calls the guard and whereis added: project-wide endpoints, snapshot create and delete.

Every request and in-contract answer is validated against Neon's OpenAPI spec by the ``neon_api`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime

import respx

from recovery_wizard.neon import NeonClient
from tests.conftest import PROJECT, fixture, reply

BR = "br-wispy-meadow-a1b2c3d4"
SNAP = "snap-late-dew-55667788"


def _operation(action: str) -> dict[str, object]:
    op: dict[str, object] = fixture("operation")["operation"]
    op.update(action=action, branch_id=BR)
    return op


async def test_project_endpoints_lists_every_compute_of_the_project(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/endpoints").mock(return_value=reply("endpoints"))
    found = await client.project_endpoints(PROJECT)
    assert route.called and found and all(e.host for e in found)


async def test_create_snapshot_sends_name_and_whole_second_expiry_as_query(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    snapshot = fixture("snapshots")["snapshots"][0]
    root = fixture("branch")  # create_snapshot reads the branch first: a root one, as the guard's would be
    root["branch"]["id"] = BR
    root["branch"].pop("parent_id", None)
    neon_api.get(f"/projects/{PROJECT}/branches/{BR}").mock(return_value=reply(root))
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/snapshot").mock(
        return_value=reply({"snapshot": snapshot, "operations": [_operation("timeline_archive")]})
    )
    made = await client.create_snapshot(
        PROJECT, BR, name="guard-run-1", expires_at=datetime(2026, 11, 28, 0, 0, 0, 500_000, tzinfo=UTC)
    )
    params = dict(route.calls.last.request.url.params)
    assert params == {"name": "guard-run-1", "expires_at": "2026-11-28T00:00:00Z"}
    assert made.snapshot.id == SNAP and made.snapshot.lsn == "0/1F00000"
    assert [op.action for op in made.operations] == ["timeline_archive"]


async def test_delete_snapshot_returns_the_operations_to_wait_for(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    neon_api.delete(f"/projects/{PROJECT}/snapshots/{SNAP}").mock(
        return_value=reply({"operations": [_operation("timeline_archive")]}, 202)
    )
    ops = await client.delete_snapshot(PROJECT, SNAP)
    assert [op.action for op in ops] == ["timeline_archive"]
