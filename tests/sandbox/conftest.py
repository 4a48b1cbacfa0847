"""Sandboxes for tests: in-process (ASGI) or over a socket, every answer checked against Neon's spec."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from recovery_wizard.neon import NeonClient, RetryPolicy, WaitPolicy
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from tests import contract

FAST_WAIT = WaitPolicy(first_interval=0.02, max_interval=0.1, deadline=30)
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.1, deadline=20)


class SpecChecker:
    """An httpx response hook that validates every request and answer against the spec (when present)."""

    def __init__(self) -> None:
        self.checked = 0
        self.enabled = contract.spec_path() is not None

    async def __call__(self, response: httpx.Response) -> None:
        if not self.enabled:
            return
        await response.aread()
        contract.validate_request(response.request)
        if response.status_code != 204 or response.request.method != "DELETE":
            contract.validate_response(response.request, response)
        self.checked += 1


def in_process_http(sandbox: Sandbox, checker: SpecChecker | None = None) -> httpx.AsyncClient:
    hooks: dict[str, list[Any]] = {"response": [checker]} if checker else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), event_hooks=hooks)


def neon_client(sandbox: Sandbox, http: httpx.AsyncClient, **kwargs: Any) -> NeonClient:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("wait", FAST_WAIT)
    return NeonClient(http, sandbox.api_key, base_url=sandbox.api_url, **kwargs)


@pytest.fixture
async def sandbox(pg_server: PgServer) -> AsyncIterator[Sandbox]:
    """A fresh homecheff sandbox on the session's PostgreSQL, with quick operations."""
    async with Sandbox(pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=1) as sb:
        yield sb


@pytest.fixture
async def checked(sandbox: Sandbox) -> AsyncIterator[tuple[NeonClient, SpecChecker]]:
    checker = SpecChecker()
    async with in_process_http(sandbox, checker) as http:
        yield neon_client(sandbox, http), checker


async def until_running(pg_server: PgServer, backend_pid: int, statement: str, within: float = 60) -> None:
    """Wait until the backend runs ``statement``: a cancel sent earlier finds it idle and is lost (PostgreSQL
    ignores a cancel between statements), however long a loaded machine took to send the statement."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with await psycopg.AsyncConnection.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        while True:
            cur = await admin.execute(
                "SELECT state = 'active' AND query = %s FROM pg_stat_activity WHERE pid = %s",
                (statement, backend_pid),
            )
            if await cur.fetchone() == (True,):
                return
            assert loop.time() < deadline, f"backend {backend_pid} never ran {statement!r}"
            await asyncio.sleep(0.02)
