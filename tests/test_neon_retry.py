"""Retries: what is resent, how long we wait, and what is never resent."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from recovery_wizard.neon import (
    LockedError,
    NeonClient,
    OutcomeUnknownError,
    RateLimitedError,
    RetryNotice,
    RetryPolicy,
    ServerError,
    TransportError,
)
from recovery_wizard.neon.retry import parse_retry_after
from tests.conftest import PROJECT, FakeTime, make_client, neon_error, reply

BR = "br-wispy-meadow-a1b2c3d4"
BRANCHES = f"/projects/{PROJECT}/branches"


async def create(client: NeonClient) -> str:
    created = await client.create_branch(PROJECT, parent_id=BR, name="main-restore")
    return created.branch.id


@pytest.mark.parametrize("status", [423, 429, 503])
async def test_post_is_retried_when_neon_did_not_accept_it(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime, status: int
) -> None:
    route = neon_api.post(BRANCHES).mock(
        side_effect=[neon_error(status, "busy"), neon_error(status, "busy"), reply("created_branch", 201)]
    )
    assert await create(client) == "br-cool-frost-e5f6a7b8"
    assert route.call_count == 3
    # Full jitter: each wait is within [0, base·2^(n-1)].
    policy = RetryPolicy()
    assert len(fake_time.sleeps) == 2
    for n, slept in enumerate(fake_time.sleeps, start=1):
        assert 0 <= slept <= policy.base_delay * 2 ** (n - 1)
    # The same logical request keeps its request id across attempts.
    ids = {call.request.headers["X-Request-ID"] for call in route.calls}
    assert len(ids) == 1


async def test_retry_after_seconds_is_honoured(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    neon_api.post(BRANCHES).mock(
        side_effect=[neon_error(429, "slow down", **{"Retry-After": "7"}), reply("created_branch", 201)]
    )
    await create(client)
    assert fake_time.sleeps == [7.0]


async def test_retry_after_http_date_is_honoured(
    client: NeonClient, neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    when = format_datetime(fake_time.wall() + timedelta(seconds=12), usegmt=True)
    neon_api.get(f"/projects/{PROJECT}").mock(
        side_effect=[neon_error(503, "maintenance", **{"Retry-After": when}), reply("project")]
    )
    await client.project(PROJECT)
    assert fake_time.sleeps == [12.0]


async def test_retry_after_is_capped(neon_api: respx.MockRouter, fake_time: FakeTime) -> None:
    client = make_client(httpx.AsyncClient(), fake_time, retry=RetryPolicy(retry_after_cap=30))
    neon_api.get(f"/projects/{PROJECT}").mock(
        side_effect=[neon_error(429, "slow down", **{"Retry-After": "3600"}), reply("project")]
    )
    await client.project(PROJECT)
    assert fake_time.sleeps == [30.0]


async def test_gives_up_at_the_deadline_with_the_last_error(
    neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(max_attempts=100, deadline=60, retry_after_cap=60)
    client = make_client(httpx.AsyncClient(), fake_time, retry=policy)
    route = neon_api.post(BRANCHES).mock(return_value=neon_error(423, "locked", **{"Retry-After": "10"}))
    with pytest.raises(LockedError) as info:
        await create(client)
    # Waits of 10 s fit 6 times in 60 s; the 7th attempt's wait would pass the deadline.
    assert fake_time.sleeps == [10.0] * 6
    assert route.call_count == 7
    assert info.value.attempts == 7


async def test_gives_up_after_max_attempts(neon_api: respx.MockRouter, fake_time: FakeTime) -> None:
    client = make_client(httpx.AsyncClient(), fake_time, retry=RetryPolicy(max_attempts=3))
    route = neon_api.get(f"/projects/{PROJECT}").mock(return_value=neon_error(429, "rate limited"))
    with pytest.raises(RateLimitedError):
        await client.project(PROJECT)
    assert route.call_count == 3 and len(fake_time.sleeps) == 2


async def test_backoff_grows_exponentially_to_the_cap(
    neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(max_attempts=9, base_delay=1, max_delay=8, deadline=10_000)
    client = make_client(httpx.AsyncClient(), fake_time, retry=policy)
    neon_api.get(f"/projects/{PROJECT}").mock(return_value=neon_error(503, "unavailable"))
    with pytest.raises(ServerError):
        await client.project(PROJECT)
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert len(fake_time.sleeps) == len(ceilings)
    assert all(0 <= s <= c for s, c in zip(fake_time.sleeps, ceilings, strict=True))


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_get_is_retried_after_a_server_error(
    client: NeonClient, neon_api: respx.MockRouter, status: int
) -> None:
    route = neon_api.get(f"/projects/{PROJECT}").mock(
        side_effect=[neon_error(status, "oops"), reply("project")]
    )
    assert (await client.project(PROJECT)).id == PROJECT
    assert route.call_count == 2


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("dropped"), httpx.ConnectError("dns")]
)
async def test_get_is_retried_after_a_transport_error(
    client: NeonClient, neon_api: respx.MockRouter, exc: Exception
) -> None:
    route = neon_api.get(f"/projects/{PROJECT}").mock(side_effect=[exc, reply("project")])
    await client.project(PROJECT)
    assert route.call_count == 2


async def test_get_transport_errors_give_up_as_transport_error(
    neon_api: respx.MockRouter, fake_time: FakeTime
) -> None:
    client = make_client(httpx.AsyncClient(), fake_time, retry=RetryPolicy(max_attempts=4))
    route = neon_api.get(f"/projects/{PROJECT}").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError) as info:
        await client.project(PROJECT)
    assert route.call_count == 4 and info.value.attempts == 4


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_is_never_resent_after_a_server_error(
    client: NeonClient, neon_api: respx.MockRouter, status: int
) -> None:
    route = neon_api.post(BRANCHES).mock(
        side_effect=[neon_error(status, "internal error"), reply("created_branch", 201)]
    )
    with pytest.raises(OutcomeUnknownError, match="unknown") as info:
        await create(client)
    assert route.call_count == 1
    assert info.value.status == status
    assert "list branches by name" in info.value.hint


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
    ],
)
async def test_post_is_never_resent_after_a_timeout_or_drop(
    client: NeonClient, neon_api: respx.MockRouter, exc: Exception
) -> None:
    route = neon_api.post(BRANCHES).mock(side_effect=[exc, reply("created_branch", 201)])
    with pytest.raises(OutcomeUnknownError) as info:
        await create(client)
    assert route.call_count == 1
    assert info.value.status is None


async def test_patch_and_delete_are_never_resent_after_a_server_error(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    patch = neon_api.patch(f"{BRANCHES}/br-x").mock(return_value=neon_error(500, "oops"))
    delete = neon_api.delete(f"{BRANCHES}/br-x").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(OutcomeUnknownError):
        await client.update_branch(PROJECT, "br-x", name="x")
    with pytest.raises(OutcomeUnknownError):
        await client.delete_branch(PROJECT, "br-x")
    assert patch.call_count == delete.call_count == 1


async def test_post_is_resent_when_the_connection_never_opened(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    # DNS failure / refused / connect timeout: no byte reached Neon, so it cannot have acted.
    route = neon_api.post(BRANCHES).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), reply("created_branch", 201)]
    )
    await create(client)
    assert route.call_count == 3


async def test_client_errors_are_not_retried(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.post(BRANCHES).mock(return_value=neon_error(400, "parent_timestamp is out of range"))
    with pytest.raises(Exception, match="out of range"):
        await create(client)
    assert route.call_count == 1


async def test_on_retry_tells_the_ui(neon_api: respx.MockRouter, fake_time: FakeTime) -> None:
    notices: list[RetryNotice] = []
    client = make_client(httpx.AsyncClient(), fake_time, on_retry=notices.append)
    neon_api.post(BRANCHES).mock(
        side_effect=[neon_error(423, "locked", **{"Retry-After": "2"}), reply("created_branch", 201)]
    )
    await create(client)
    assert notices == [RetryNotice("POST", BRANCHES, 1, 2.0, "HTTP 423")]
    assert client.requests_sent == 2


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 11, 21, 2, 0, 0).astimezone()
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=False), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30)), now) == 0.0
    for bad in (None, "", "soon", "-3", "Mon, 99 Foo 2026"):
        assert parse_retry_after(bad, now) is None


@given(attempt=st.integers(min_value=1, max_value=60), seed=st.integers(min_value=0, max_value=2**32))
def test_full_jitter_stays_within_its_ceiling(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=20)
    delay = policy.backoff(attempt, random.Random(seed))
    assert 0 <= delay <= min(20, 0.5 * 2 ** (attempt - 1))
