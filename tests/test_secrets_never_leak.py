"""The planted API key never appears in output, log records, exception text or tracebacks (with locals)."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest
import respx

from recovery_wizard.neon import NeonClient, NeonError, RetryPolicy
from tests.conftest import API_KEY, PROJECT, FakeTime, make_client, neon_error, reply

BRANCHES = f"/projects/{PROJECT}/branches"


def all_text(error: BaseException) -> str:
    plain = "".join(traceback.format_exception(error))
    with_locals = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    return "\n".join([str(error), repr(error), getattr(error, "hint", ""), plain, with_locals])


async def test_the_key_never_leaks(
    neon_api: respx.MockRouter,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(httpx.AsyncClient(), fake_time, retry=RetryPolicy(max_attempts=3))
    neon_api.get("/auth").mock(side_effect=[neon_error(401, "bad key"), reply("auth")])
    neon_api.get(f"/projects/{PROJECT}").mock(side_effect=httpx.ReadTimeout("timed out"))
    neon_api.post(BRANCHES).mock(
        side_effect=[neon_error(423, "locked"), neon_error(500, "internal"), httpx.ReadTimeout("t")]
    )
    neon_api.get(f"{BRANCHES}/br-x/roles/r/reveal_password").mock(return_value=reply("reveal_password"))

    texts: list[str] = [repr(client), repr(client.transport), str(vars(client.transport))]
    for call in (
        client.auth_details,
        lambda: client.project(PROJECT),
        lambda: client.create_branch(PROJECT, parent_id="br-x"),
        lambda: client.create_branch(PROJECT, parent_id="br-x"),
    ):
        with pytest.raises(NeonError) as info:
            await call()
        texts.append(all_text(info.value))
    assert (await client.auth_details()).auth_method
    password = await client.reveal_password(PROJECT, "br-x", "r")
    texts.append(f"{password} {password!r}")
    for call_record in neon_api.calls:
        texts.append(repr(call_record.request) + repr(call_record.request.headers))

    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    everything = "\n".join(texts)
    assert "napi_pl4nted" not in everything
    assert API_KEY[10:30] not in everything
    assert "npg_Fixture5ecret" not in everything
    # The key did go out, where it must: in the Authorization header of each request.
    assert all(c.request.headers["Authorization"] == f"Bearer {API_KEY}" for c in neon_api.calls)


def test_a_client_built_with_the_key_does_not_show_it() -> None:
    client = NeonClient(httpx.AsyncClient(), API_KEY)
    assert API_KEY not in repr(client) + repr(client.transport) + repr(vars(client.transport))
