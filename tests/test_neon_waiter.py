"""The operation waiter: success, failure, deadline, progress."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from recovery_wizard.neon import (
    NeonClient,
    OperationFailedError,
    OperationTimeoutError,
    WaitPolicy,
    WaitProgress,
)
from recovery_wizard.neon.models import Operation
from tests.conftest import PROJECT, FakeTime, fixture, make_client, off_contract, reply

OPS = f"/projects/{PROJECT}/operations"


def started_ops() -> list[Operation]:
    """The two operations a fresh branch comes with (create_timeline running, start_compute scheduling)."""
    import msgspec

    from recovery_wizard.neon.models import CreatedBranch

    return msgspec.convert(fixture("created_branch"), CreatedBranch).operations


def op_reply(op: Operation, status: str, **extra: Any) -> httpx.Response:
    body = {
        "operation": {**fixture("operation")["operation"], "id": op.id, "action": op.action, "status": status}
    }
    body["operation"].update(extra)
    return reply(body)


async def test_waits_until_every_operation_finishes(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    timeline, compute = started_ops()
    t_route = neon_api.get(f"{OPS}/{timeline.id}").mock(
        side_effect=[op_reply(timeline, "running"), op_reply(timeline, "finished")]
    )
    c_route = neon_api.get(f"{OPS}/{compute.id}").mock(
        side_effect=[
            op_reply(compute, "running"),
            op_reply(compute, "running"),
            op_reply(compute, "finished"),
        ]
    )
    seen: list[WaitProgress] = []
    final = await client.wait_for_operations(PROJECT, [timeline, compute], on_progress=seen.append)
    assert [op.status for op in final] == ["finished", "finished"]
    # A finished operation is not polled again.
    assert t_route.call_count == 2 and c_route.call_count == 3
    assert [p.finished for p in seen] == [0, 0, 1, 2]
    assert seen[-1].done and seen[-1].total == 2
    # Intervals start short and grow by the policy's factor.
    assert fake_time.sleeps == pytest.approx([0.25, 0.325, 0.4225])  # 0.25 s growing ×1.3
    assert seen[-1].elapsed == pytest.approx(sum(fake_time.sleeps))


async def test_skipped_counts_as_done_and_nothing_to_wait_for_returns_at_once(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    (timeline, _) = started_ops()
    neon_api.get(f"{OPS}/{timeline.id}").mock(return_value=op_reply(timeline, "skipped"))
    assert [op.status for op in await client.wait_for_operations(PROJECT, [timeline])] == ["skipped"]
    assert await client.wait_for_operations(PROJECT, []) == []


@pytest.mark.parametrize("status", ["failed", "error", "cancelled"])
async def test_a_failed_operation_raises_with_its_error(
    client: NeonClient, neon_api: respx.MockRouter, status: str
) -> None:
    timeline, _ = started_ops()
    neon_api.get(f"{OPS}/{timeline.id}").mock(
        side_effect=[
            op_reply(timeline, "running"),
            op_reply(timeline, status, error="timeline creation failed: disk quota"),
        ]
    )
    with pytest.raises(
        OperationFailedError, match=f"ended {status}: timeline creation failed: disk quota"
    ) as info:
        await client.wait_for_operations(PROJECT, [timeline])
    assert info.value.operation.id == timeline.id


async def test_an_operation_already_failed_raises_without_polling(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    timeline, _ = started_ops()
    route = neon_api.get(f"{OPS}/{timeline.id}")
    failed = Operation(
        id=timeline.id, project_id=PROJECT, action="create_timeline", status="error", error="boom"
    )
    with pytest.raises(OperationFailedError, match="boom"):
        await client.wait_for_operations(PROJECT, [failed])
    assert route.call_count == 0


async def test_deadline_raises_naming_what_is_still_running(
    neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    client = make_client(
        httpx.AsyncClient(),
        fake_time,
        wait=WaitPolicy(first_interval=1, max_interval=4, growth=2, deadline=20),
    )
    timeline, _ = started_ops()
    neon_api.get(f"{OPS}/{timeline.id}").mock(return_value=op_reply(timeline, "running"))
    with pytest.raises(OperationTimeoutError, match=r"still running after 20 s: create_timeline") as info:
        await client.wait_for_operations(PROJECT, [timeline])
    assert [op.id for op in info.value.pending] == [timeline.id]
    # 1, 2, 4, 4, 4, 4 then the last sleep is cut to what remains of the deadline.
    assert fake_time.sleeps == [1, 2, 4, 4, 4, 4, 1]
    assert fake_time.now == 20


async def test_unknown_status_keeps_waiting(client: NeonClient, neon_api: respx.MockRouter) -> None:
    timeline, _ = started_ops()
    neon_api.get(f"{OPS}/{timeline.id}").mock(
        side_effect=[off_contract(op_reply(timeline, "rebalancing")), op_reply(timeline, "finished")]
    )
    assert (await client.wait_for_operations(PROJECT, [timeline]))[0].done
