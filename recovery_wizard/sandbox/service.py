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
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.app import build_app
from recovery_wizard.sandbox.engine import Engine, Project
from recovery_wizard.sandbox.faults import Fault, parse_fault
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.scenarios import Scenario, build_scenario
from recovery_wizard.sandbox.storage import Storage
from recovery_wizard.sandbox.tls import SandboxTls

if TYPE_CHECKING:
    from recovery_wizard.sandbox.backups import BackupsFolder

log = logging.getLogger("recovery_wizard.sandbox")

# The spec's maximum for history_retention_seconds (Neon's Scale plan: 30 days).
MAX_HISTORY_SECONDS = 30 * 24 * 3600


def shrink_window(scenario: Scenario, history_seconds: int, now: datetime) -> Scenario:
    """``scenario`` with a restore window of ``history_seconds``, its story saying so when the incident is
    outside it (the case the window knob exists for: restore from a snapshot or a backup file)."""
    description = scenario.description
    if scenario.incident_at < now - timedelta(seconds=history_seconds):
        description += (
            f" The project's restore window is only {_seconds_text(history_seconds)}, so the moment before the "
            "incident is outside it: bring the users back from a snapshot or a backup file."
        )
    return replace(scenario, history_retention_seconds=history_seconds, description=description)


def _seconds_text(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} seconds"


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
        history_seconds: int | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        if history_seconds is not None and not 0 <= history_seconds <= MAX_HISTORY_SECONDS:
            raise ValueError(
                f"history_seconds must be between 0 and {MAX_HISTORY_SECONDS} (Neon's 30 days), "
                f"not {history_seconds}"
            )
        self.pg_dsn = pg_dsn
        self.api_key = Secret(api_key or "napi_sandbox_" + secrets.token_hex(16))
        self.scenario_name = scenario
        self.latency_ms = latency_ms
        self.faults = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        self.operation_seconds = operation_seconds
        self.seed = seed
        # The project's restore window (history_retention_seconds); None keeps the scenario's own.
        self.history_seconds = history_seconds
        # Told each phase of start() (the demo shows them under its story while the sandbox starts).
        self.on_progress = on_progress
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
            self._progress("Starting PostgreSQL…")
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
            self._progress(f"Building the {self.scenario_name} incident (its databases and history)…")
            scenario = build_scenario(self.scenario_name, datetime.now(UTC))
            if self.history_seconds is not None:
                scenario = shrink_window(scenario, self.history_seconds, datetime.now(UTC))
            self.project = await self.engine.create_project(scenario)
            self.scenario_built_in = time.perf_counter() - built
            self.app = build_app(self.engine, self.api_key, faults=self.faults, latency_ms=self.latency_ms)
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.perf_counter() - began
        log.info("sandbox ready in %.2f s (scenario %.2f s)", self.started_in, self.scenario_built_in)

    def _progress(self, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(text)

    async def write_backups(self, app_dir: Path, **options: Any) -> BackupsFolder:
        """The scenario's backups folder in ``app_dir`` (see ``backups.write_backups``); on request only,
        so it never slows a start."""
        from recovery_wizard.sandbox.backups import write_backups

        assert self.engine is not None and self.project is not None, "the sandbox is not started"
        return await write_backups(app_dir, self.engine, self.project, **options)

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
        # An idle connection is kept 75 s (uvicorn's default is 5 s, the same as httpx's keep-alive expiry): at
        # 5 s both, a request sent on a connection idle for about 5 s could meet the server closing it, and a
        # POST whose answer is lost that way is an unknown outcome to the client (a loaded machine hit it).
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=75
        )
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
