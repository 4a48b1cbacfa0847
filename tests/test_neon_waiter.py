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


def finished(op_id: str, action: str, ms: int) -> Operation:
    return Operation(id=op_id, project_id=PROJECT, action=action, status="finished", total_duration_ms=ms)


async def test_with_a_history_the_first_poll_waits_for_the_actions_typical_duration(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    timeline, compute = started_ops()
    # What the pre-flight's list of the project's operations showed: earlier branches took ~1.2 s and
    # their computes ~0.8 s (medians of each action).
    client.durations.record(
        [finished(f"old-{i}", timeline.action, ms) for i, ms in enumerate((1100, 1200, 5000))]
        + [finished(f"oldc-{i}", compute.action, ms) for i, ms in enumerate((800, 700, 900))]
    )
    neon_api.get(f"{OPS}/{timeline.id}").mock(return_value=op_reply(timeline, "finished"))
    neon_api.get(f"{OPS}/{compute.id}").mock(return_value=op_reply(compute, "finished"))
    final = await client.wait_for_operations(PROJECT, [timeline, compute])
    assert [op.status for op in final] == ["finished", "finished"]
    # One poll, at the soonest typical end (0.8 s), where the curve would have polled at 0.25, 0.58 and 1.0 s.
    assert fake_time.sleeps == pytest.approx([0.8])


async def test_past_its_typical_end_an_operation_is_polled_on_the_curve(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    timeline, _ = started_ops()
    client.durations.record([finished("old", timeline.action, 1000)])
    neon_api.get(f"{OPS}/{timeline.id}").mock(
        side_effect=[
            op_reply(timeline, "running"),
            op_reply(timeline, "running"),
            op_reply(timeline, "finished", total_duration_ms=1600),
        ]
    )
    await client.wait_for_operations(PROJECT, [timeline])
    assert fake_time.sleeps == pytest.approx([1.0, 0.25, 0.325])
    # What it saw is learnt: the median of 1.0 s and 1.6 s.
    assert client.durations.typical(PROJECT, timeline.action) == pytest.approx(1.3)


async def test_a_long_history_still_polls_at_the_curves_cap(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    timeline, _ = started_ops()
    client.durations.record([finished("old", timeline.action, 600_000)])  # a 10-minute restore
    neon_api.get(f"{OPS}/{timeline.id}").mock(
        side_effect=[op_reply(timeline, "running"), op_reply(timeline, "finished")]
    )
    await client.wait_for_operations(PROJECT, [timeline])
    assert fake_time.sleeps == pytest.approx([5.0, 5.0])  # WaitPolicy.max_interval, not 600 s
