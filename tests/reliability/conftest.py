"""Reliability fixtures: one homecheff sandbox shared by a module's cases, fault helpers, and case counting.

Starting a sandbox takes ~2.5 s; the fault matrix and the crash matrix have dozens of cases each, so a
module's cases share ONE sandbox served on a real socket from a background thread (its own event loop). Each
case gets its own app directory and its own restore-branch name, and compares the project's branches before
and after, so cases stay independent. One per module, not one per run: the scenario's incident is ~30
minutes before the sandbox started and the cases restore to "35 minutes ago", which would pass the incident
once the sandbox had lived about 4½ minutes (a slow or busy machine, a worker of a parallel run). So in these
cases "N minutes ago" means N minutes before the sandbox started: ``Shared.cli`` (and ``Shared.as_of_start``
for other ways in) say that moment in seconds counted from now. The per-test ``world`` fixture of tests/recovery is re-exported for the few
tests that want a pristine sandbox of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.recovery.journal import list_runs
from recovery_wizard.sandbox.faults import Fault, parse_fault
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from tests.recovery.conftest import CliResult, write_app
from tests.recovery.conftest import sandbox as sandbox
from tests.recovery.conftest import world as world
from tests.reliability.cases import count as count
from tests.sandbox.conftest import FAST_RETRY, FAST_WAIT

T = TypeVar("T")

_MINUTES_AGO = re.compile(r"(\d+) minutes ago")

# --- faults -----------------------------------------------------------------------------------------------


class SegmentFault(Fault):
    """A fault whose ``*`` matches ONE path segment.

    The sandbox's glob lets ``*`` match ``/`` too, so ``/projects/*/branches/*`` would also hit
    ``…/branches/br-x/databases`` during planning; the matrix needs to aim at exactly one endpoint.
    """

    def matches(self, method: str, path: str, query: str = "") -> bool:
        pattern = "[^/]+".join(re.escape(part) for part in self.path.split("*"))
        return (
            (self.method == "*" or self.method == method)
            and re.fullmatch(pattern, path) is not None
            and self.query_matches(query)
        )


def segment_fault(spec: str) -> Fault:
    parsed = parse_fault(spec)
    return SegmentFault(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(Fault)})


# --- the shared sandbox -----------------------------------------------------------------------------------


@dataclass
class Shared:
    """A served sandbox living in its own thread; tests talk to it over the socket like the CLI does."""

    sandbox: Sandbox
    loop: asyncio.AbstractEventLoop
    url: str
    pooled: str
    direct: str
    main_id: str
    started: datetime  # just before the sandbox built its scenario (the incident ~30 minutes before it)
    secrets: list[str] = field(default_factory=list)

    @property
    def project_id(self) -> str:
        return self.sandbox.project_id

    @property
    def api_key(self) -> str:
        return self.sandbox.api_key.reveal()

    def as_of_start(self, text: str) -> str:
        """ "N minutes ago" as N minutes before the sandbox started, said in seconds from now (other text
        as is): the moment stays put however long a slow machine keeps the module's sandbox."""
        match = _MINUTES_AGO.fullmatch(text)
        if match is None:
            return text
        age = (datetime.now(UTC) - self.started).total_seconds()
        return f"{int(match[1]) * 60 + math.ceil(age)} seconds ago"

    def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the sandbox's loop (its state is only touched from there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def set_faults(self, *faults: Fault | str) -> None:
        parsed = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]

        async def swap() -> None:
            self.sandbox.app.faults[:] = parsed

        self.on_loop(swap())

    def clear_faults(self) -> None:
        self.set_faults()

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "RECOVERY_WIZARD_CRASH"))}
        base.update(
            NEON_API_URL=self.url,
            NEON_API_KEY=self.api_key,
            NEON_PROJECT_ID=self.project_id,
            TZ="Europe/Amsterdam",
            NO_COLOR="1",
        )
        base.update(extra)
        return base

    def make_app(self, root: Path) -> Path:
        """An app directory (Prisma stand-in, .env pointing at the damaged main branch)."""
        app = root / "homecheff"
        app.mkdir(parents=True)
        write_app(app, self.pooled, self.direct)
        return app

    async def cli(
        self, app: Path, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> CliResult:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recovery_wizard",
            *(self.as_of_start(arg) for arg in args),
            cwd=app,
            env=self.env(**(extra_env or {})),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(), err.decode())

    async def with_client(self, body: Callable[[NeonClient], Awaitable[T]]) -> T:
        """A fault-free look at the project from the test's loop (clear faults first)."""
        async with httpx.AsyncClient(timeout=30) as http:
            client = NeonClient(http, self.api_key, base_url=self.url, retry=FAST_RETRY, wait=FAST_WAIT)
            return await body(client)

    async def branch_names(self) -> set[str]:
        async def names(client: NeonClient) -> set[str]:
            return {b.name for b in await client.branches(self.project_id)}

        return await self.with_client(names)

    def leaked(self, *texts: str) -> list[str]:
        return [s for s in self.secrets if any(s in t for t in texts)]


def run_texts(app: Path) -> str:
    """Everything runs wrote that must never hold a secret: journals, reports, logs.

    Env and schema backups are copies of the user's own files (which hold the password by design), and the
    Prisma stand-in's log is the test double's own record, so neither is scanned.
    """
    texts = []
    for run in list_runs(app):
        for path in run.rglob("*"):
            if path.is_file() and path.suffix in (".jsonl", ".md", ".log", ".json", ".txt"):
                texts.append(path.read_text(errors="replace"))
    for path in app.rglob("*.log"):
        if path.name != ".prisma-standin.log" and "node_modules" not in path.parts:
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def shared(pg_server: PgServer) -> Iterator[Shared]:
    ready: Future[Shared] = Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        try:
            started = datetime.now(UTC)
            async with Sandbox(
                pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=5
            ) as sandbox:
                url = await sandbox.serve()
                async with httpx.AsyncClient() as http:
                    client = NeonClient(http, sandbox.api_key, base_url=url, retry=FAST_RETRY, wait=FAST_WAIT)
                    main = next(b for b in await client.branches(sandbox.project_id) if b.default)
                    params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
                    pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
                    direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
                    password = await client.reveal_password(sandbox.project_id, main.id, "neondb_owner")
                stop.append(asyncio.Event())
                ready.set_result(
                    Shared(
                        sandbox,
                        asyncio.get_running_loop(),
                        url,
                        pooled.reveal(),
                        direct.reveal(),
                        main.id,
                        started,
                        secrets=[sandbox.api_key.reveal(), password.reveal()],
                    )
                )
                await stop[0].wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="shared-sandbox", daemon=True)
    thread.start()
    world = ready.result(120)
    try:
        yield world
    finally:
        world.loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
