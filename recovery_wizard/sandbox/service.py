"""One running sandbox: its PostgreSQL, its databases, the scenario's project, and the API over HTTP.

Used three ways: ``recovery-wizard sandbox serve`` (a real socket until Ctrl-C), the demo (in-process),
and tests (in-process through ``httpx.ASGITransport``, or over a real socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.app import build_app
from recovery_wizard.sandbox.engine import Engine, Project
from recovery_wizard.sandbox.faults import Fault, parse_fault
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.scenarios import build_scenario
from recovery_wizard.sandbox.storage import Storage
from recovery_wizard.sandbox.tls import SandboxTls

log = logging.getLogger("recovery_wizard.sandbox")


class Sandbox:
    """A local Neon with one project playing a scenario; ``async with Sandbox(...)`` starts and stops it."""

    def __init__(
        self,
        *,
        pg_dsn: str | None = None,
        api_key: str | None = None,
        scenario: str = "homecheff",
        latency_ms: float = 0,
        faults: Sequence[str | Fault] = (),
        operation_seconds: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.pg_dsn = pg_dsn
        self.api_key = Secret(api_key or "napi_sandbox_" + secrets.token_hex(16))
        self.scenario_name = scenario
        self.latency_ms = latency_ms
        self.faults = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        self.operation_seconds = operation_seconds
        self.seed = seed
        self.server: PgServer | None = None
        # The sandbox's own files (its CA's certificate), in a private temporary directory removed on stop.
        self.state_dir: Path | None = None
        self.tls: SandboxTls | None = None
        self.storage: Storage | None = None
        self.engine: Engine | None = None
        self.project: Project | None = None
        self.app: Any = None
        self.started_in: float = 0.0
        self.scenario_built_in: float = 0.0
        self._uvicorn: Any = None
        self._serve_task: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def project_id(self) -> str:
        assert self.project is not None, "the sandbox is not started"
        return self.project.id

    @property
    def api_url(self) -> str:
        """The API's base URL over the socket (``serve`` first); in-process clients use ``http://sandbox``."""
        if self.port is None:
            return "http://sandbox/api/v2"
        return f"http://{self.host}:{self.port}/api/v2"

    @property
    def ca_path(self) -> Path:
        """The sandbox CA's certificate (PEM): ``sslrootcert`` for ``sslmode=verify-full``."""
        assert self.tls is not None and self.tls.ca_path is not None, "the sandbox is not started"
        return self.tls.ca_path

    async def start(self) -> None:
        began = time.perf_counter()
        self.state_dir = Path(tempfile.mkdtemp(prefix="rw-sandbox-"))
        try:
            self.tls = SandboxTls.create(self.state_dir)
            self.server = await PgServer.start(self.pg_dsn)
        except BaseException:
            await self.stop()
            raise
        try:
            prefix = f"rwsb_{secrets.token_hex(4)}"
            self.storage = Storage(self.server, prefix)
            await self.storage.open()
            self.engine = Engine(
                self.storage, operation_seconds=self.operation_seconds, seed=self.seed, tls=self.tls
            )
            built = time.perf_counter()
            scenario = build_scenario(self.scenario_name, datetime.now(UTC))
            self.project = await self.engine.create_project(scenario)
            self.scenario_built_in = time.perf_counter() - built
            self.app = build_app(self.engine, self.api_key, faults=self.faults, latency_ms=self.latency_ms)
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.perf_counter() - began
        log.info("sandbox ready in %.2f s (scenario %.2f s)", self.started_in, self.scenario_built_in)

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on a real socket (``port=0`` picks a free one); returns the API URL."""
        import uvicorn

        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Without it, Nagle's algorithm holds each small answer ~40 ms waiting for the client's ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self.host, self.port = host, sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._uvicorn = uvicorn.Server(config)
        # The CLI installs its own signal handling; uvicorn must not replace it.
        self._uvicorn.install_signal_handlers = lambda: None
        self._serve_task = asyncio.get_running_loop().create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._serve_task.done():
                await self._serve_task
            await asyncio.sleep(0.01)
        return self.api_url

    async def stop(self) -> None:
        """Stop serving, close every endpoint, drop every database this sandbox made, stop its server."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._serve_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._serve_task, 10)
            self._uvicorn = self._serve_task = None
        if self.engine is not None:
            await self.engine.close()
            self.engine = None
        if self.storage is not None:
            with contextlib.suppress(Exception):
                dropped = await self.storage.drop_all()
                log.info("dropped %d sandbox databases", dropped)
            await self.storage.close()
            self.storage = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None
