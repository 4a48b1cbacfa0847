"""Every failure maps to one error class that keeps the status, Neon's message and the request id."""

from __future__ import annotations

import httpx
import pytest
import respx

from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import (
    BadResponseError,
    ConflictError,
    ForbiddenError,
    LockedError,
    NeonClient,
    NeonError,
    NeonHTTPError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from tests.conftest import PROJECT, FakeTime, fixture, make_client, neon_error, off_contract, reply

# One attempt only: these tests are about the mapping, test_neon_retry.py about the retrying.
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture
async def once(neon_api: respx.MockRouter, fake_time: FakeTime) -> NeonClient:
    return make_client(httpx.AsyncClient(), fake_time, retry=NO_RETRY)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, NeonHTTPError),
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, ConflictError),
        (412, PreconditionFailedError),
        (423, LockedError),
        (429, RateLimitedError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
async def test_status_maps_to_its_error_class(
    once: NeonClient, neon_api: respx.MockRouter, status: int, cls: type[NeonHTTPError]
) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(
        return_value=neon_error(status, "something Neon said", request_id="3b9a3f54-aaaa")
    )
    with pytest.raises(cls) as info:
        await once.project(PROJECT)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, NeonError) and isinstance(error, RecoveryError)
    assert error.status == status
    assert error.neon_message == "something Neon said"
    assert error.request_id == "3b9a3f54-aaaa"
    assert error.request == f"GET /projects/{PROJECT}"
    assert "something Neon said" in str(error) and "3b9a3f54-aaaa" in str(error)


async def test_401_says_the_key_was_refused(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get("/auth").mock(return_value=neon_error(401, "authentication required"))
    with pytest.raises(UnauthorizedError, match=r"^The API key was refused \(HTTP 401\)") as info:
        await once.auth_details()
    assert "NEON_API_KEY" in info.value.hint


async def test_locked_keeps_neons_message(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.post(f"/projects/{PROJECT}/branches").mock(return_value=reply("error_locked", 423))
    with pytest.raises(LockedError, match="conflicting operations") as info:
        await once.create_branch(PROJECT, parent_id="br-wispy-meadow-a1b2c3d4")
    assert info.value.request_id == "3b9a3f54-8f0e-4a43-9f1e-7d2b4a5c6e71"
    assert "Another operation" in info.value.hint


async def test_request_id_falls_back_to_the_header(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(
        return_value=httpx.Response(
            404, json={"code": "", "message": "not found"}, headers={"X-Request-ID": "hdr-1"}
        )
    )
    with pytest.raises(NotFoundError) as info:
        await once.project(PROJECT)
    assert info.value.request_id == "hdr-1"


async def test_every_request_carries_a_request_id(once: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get(f"/projects/{PROJECT}").mock(return_value=reply("project"))
    await once.project(PROJECT)
    assert len(route.calls[0].request.headers["X-Request-ID"]) == 36


async def test_error_page_that_is_not_json(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(
        return_value=off_contract(
            httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>")
        )
    )
    with pytest.raises(ServerError, match="502 Bad Gateway") as info:
        await once.project(PROJECT)
    assert info.value.status == 502


async def test_malformed_json_is_a_bad_response(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(
        return_value=off_contract(
            httpx.Response(200, content=b'{"project": {"id": ', headers={"Content-Type": "application/json"})
        )
    )
    with pytest.raises(BadResponseError, match="not JSON") as info:
        await once.project(PROJECT)
    assert info.value.status == 200


async def test_json_of_the_wrong_shape_is_a_bad_response(
    once: NeonClient, neon_api: respx.MockRouter
) -> None:
    body = fixture("project")
    body["project"]["history_retention_seconds"] = "a week"
    neon_api.get(f"/projects/{PROJECT}").mock(return_value=off_contract(reply(body)))
    with pytest.raises(BadResponseError, match=r"wrong shape.*history_retention_seconds"):
        await once.project(PROJECT)


async def test_missing_envelope_is_a_bad_response(once: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches").mock(return_value=off_contract(reply({"items": []})))
    with pytest.raises(BadResponseError, match="branches"):
        await once.branches(PROJECT)


async def test_unknown_fields_and_enum_values_are_accepted(
    once: NeonClient, neon_api: respx.MockRouter
) -> None:
    body = fixture("operation")
    body["operation"].update(status="rebalancing", action="teleport_timeline", brand_new_field={"x": 1})
    body["shiny"] = True
    neon_api.get(f"/projects/{PROJECT}/operations/0b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d").mock(
        return_value=off_contract(reply(body))
    )
    op = await once.operation(PROJECT, "0b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d")
    assert (op.status, op.action) == ("rebalancing", "teleport_timeline")
    assert not op.terminal


async def test_unknown_branch_state_is_accepted(once: NeonClient, neon_api: respx.MockRouter) -> None:
    body = fixture("branch")
    body["branch"]["current_state"] = "hibernating"
    neon_api.get(f"/projects/{PROJECT}/branches/br-x").mock(return_value=reply(body))
    assert (await once.branch(PROJECT, "br-x")).current_state == "hibernating"


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "could not connect"),
        (httpx.ConnectTimeout("timed out"), "connection timed out"),
        (httpx.ReadTimeout("timed out"), "request timed out"),
        (httpx.ReadError("Connection reset by peer"), "reset"),
        (httpx.RemoteProtocolError("Server disconnected"), "dropped"),
    ],
)
async def test_transport_failures(
    once: NeonClient, neon_api: respx.MockRouter, exc: Exception, words: str
) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(side_effect=exc)
    with pytest.raises(TransportError, match=words) as info:
        await once.project(PROJECT)
    assert info.value.status is None
    assert info.value.request_id  # ours, sent as X-Request-ID: something to quote to support


def test_empty_api_key_is_refused_before_any_request(fake_time: FakeTime) -> None:
    with pytest.raises(UnauthorizedError, match="No Neon API key"):
        NeonClient(httpx.AsyncClient(), "  ")
