"""Helpers for benchmarks that run against the sandbox: a request log, the Nagle fix, an app directory."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from recovery_wizard.neon import NeonClient
from recovery_wizard.sandbox.service import Sandbox


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    start: float  # perf_counter seconds, server side (request received, before injected latency)
    end: float


class RequestLog:
    """ASGI wrapper recording every API request the sandbox serves: the critical path is read from it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.entries: list[Logged] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.entries.append(Logged(scope["method"], scope["path"], began, time.perf_counter()))


def rounds(entries: list[Logged]) -> int:
    """How many sequential round trips the requests took: overlapping requests count as one round."""
    count, busy_until = 0, float("-inf")
    for entry in sorted(entries, key=lambda e: e.start):
        if entry.start >= busy_until:
            count += 1
            busy_until = entry.end
        else:
            busy_until = max(busy_until, entry.end)
    return count


def set_nodelay(sandbox: Sandbox, on: bool) -> None:
    """Set TCP_NODELAY on the sandbox's listening socket (accepted sockets inherit it on Linux).

    Why: ``Sandbox.serve()`` binds its own socket, and every request over it then waits ~40 ms for Nagle's
    algorithm to meet the client's delayed ACK (measured: 48 ms per request vs 1.5 ms when uvicorn binds the
    port itself). That is a sandbox artefact, not the tool's cost, so the benchmarks switch it off and report
    the artefact separately. The real fix belongs in recovery_wizard/sandbox/service.py (see performance.md).
    """
    server = sandbox._uvicorn
    assert server is not None, "serve() the sandbox first"
    for listener in server.servers:
        for sock in listener.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)


async def main_branch_uris(sandbox: Sandbox, url: str) -> tuple[str, str, str]:
    """The damaged main branch's id, pooled and direct URIs, as an app's .env holds them."""
    async with httpx.AsyncClient() as http:
        client = NeonClient(http, sandbox.api_key, base_url=url)
        main = next(b for b in await client.branches(sandbox.project_id) if b.default)
        params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
        pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
        direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
    return main.id, pooled.reveal(), direct.reveal()


def make_app_dir(directory: Path, pooled: str, direct: str) -> Path:
    """The tests' Next.js + Prisma app directory (stand-in Prisma CLI), with a .env pointing at main."""
    from tests.recovery.conftest import write_app

    directory.mkdir(parents=True)
    write_app(directory, pooled, direct)
    return directory
