"""Shared fixtures: a respx-mocked Neon API whose traffic is checked against the OpenAPI spec, fake time."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, settings

from recovery_wizard.neon import NeonClient, RetryPolicy, WaitPolicy
from recovery_wizard.sandbox.pgserver import PgServer
from tests import contract

# The reliability suite's summary, written where pytest-xdist's controller sees the reports.
pytest_plugins = ["tests.reliability.cases"]

# Hypothesis times each example (a 200 ms deadline) and the generation of its data (the too_slow health
# check): on a loaded CI machine both fail tests that are correct. Speed is measured in bench/, not asserted.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

API = "https://console.neon.tech/api/v2"
# Planted in every client test: tests/test_secrets_never_leak.py proves it never shows up in output.
API_KEY = "napi_pl4nted0key1for2tests3qwertyuiopasdfghjkl"
PROJECT = "autumn-sound-12345678"
FIXTURES = Path(__file__).parent / "fixtures"
# A response carrying this header is deliberately outside the spec (malformed JSON, unknown enum values…).
OFF_CONTRACT = "X-Test-Off-Contract"


def fixture(name: str) -> Any:
    """A recorded-shape Neon answer from tests/fixtures (a fresh copy each time)."""
    return copy.deepcopy(_load(name))


_cache: dict[str, Any] = {}


def _load(name: str) -> Any:
    if name not in _cache:
        _cache[name] = json.loads((FIXTURES / f"{name}.json").read_text())
    return _cache[name]


def reply(name_or_body: str | dict[str, Any], status: int = 200, **headers: str) -> httpx.Response:
    body = fixture(name_or_body) if isinstance(name_or_body, str) else name_or_body
    return httpx.Response(status, json=body, headers=headers)


def neon_error(
    status: int, message: str = "", request_id: str = "req-0001", **headers: str
) -> httpx.Response:
    return httpx.Response(
        status, json={"code": "", "message": message, "request_id": request_id}, headers=headers
    )


def off_contract(response: httpx.Response) -> httpx.Response:
    response.headers[OFF_CONTRACT] = "1"
    return response


class FakeTime:
    """Injected sleep and clocks: tests take no real time and can assert every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.start_wall = datetime(2026, 11, 21, 2, 0, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.start_wall + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def validate_calls(router: respx.MockRouter) -> int:
    """Check every request the client sent, and every in-contract answer it got, against the spec."""
    if contract.spec_path() is None:
        return 0
    checked = 0
    for call in router.calls:
        contract.validate_request(call.request)
        response = call.optional_response
        if response is not None and OFF_CONTRACT not in response.headers:
            response.read()
            contract.validate_response(call.request, response)
        checked += 1
    return checked


@pytest.fixture
def neon_api() -> Iterator[respx.MockRouter]:
    """A mocked Neon API; at teardown every call is validated against the OpenAPI spec."""
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router
        validate_calls(router)


def make_client(http: httpx.AsyncClient, fake_time: FakeTime, **kwargs: Any) -> NeonClient:
    kwargs.setdefault("retry", RetryPolicy())
    kwargs.setdefault("wait", WaitPolicy())
    return NeonClient(
        http,
        API_KEY,
        base_url=API,
        sleep=fake_time.sleep,
        clock=fake_time.monotonic,
        wall_clock=fake_time.wall,
        rng=random.Random(7),
        **kwargs,
    )


@pytest.fixture
async def client(neon_api: respx.MockRouter, fake_time: FakeTime) -> AsyncIterator[NeonClient]:
    async with httpx.AsyncClient() as http:
        yield make_client(http, fake_time)


TEST_PG_DSN_ENV = "RECOVERY_WIZARD_TEST_PG_DSN"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL for the whole run: ``$RECOVERY_WIZARD_TEST_PG_DSN`` if set, else an embedded one."""
    server = asyncio.run(PgServer.start(os.environ.get(TEST_PG_DSN_ENV) or None))
    try:
        yield server
    finally:
        asyncio.run(server.stop())
