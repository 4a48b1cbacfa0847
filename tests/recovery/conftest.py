"""End-to-end fixtures: a homecheff sandbox on a real socket and a Prisma app directory pointed at it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.models import Branch
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from tests.sandbox.conftest import FAST_RETRY, FAST_WAIT
from tests.sandbox.conftest import sandbox as sandbox  # the same fixture for the runner's in-process tests


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class World:
    """A served sandbox and an app directory whose .env points at its damaged main branch."""

    sandbox: Sandbox
    url: str
    app: Path
    env: dict[str, str]
    client: NeonClient
    main: Branch
    secrets: list[str] = field(default_factory=list)

    async def cli(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> CliResult:
        """Run `recovery-wizard ARGS` as a subprocess in the app directory (the sandbox keeps serving)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recovery_wizard",
            *args,
            cwd=self.app,
            env={**self.env, **(extra_env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(), err.decode())

    async def branch_names(self) -> list[str]:
        return sorted(b.name for b in await self.client.branches(self.sandbox.project_id))

    async def users(self, url: str) -> int:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url) as conn:
            row = await (await conn.execute('SELECT count(*) FROM "User"')).fetchone()
        assert row is not None
        return int(row[0])

    def leaked(self, *texts: str) -> list[str]:
        """Planted secrets found in any of ``texts``."""
        return [s for s in self.secrets if any(s in t for t in texts)]


def write_app(app: Path, pooled: str, direct: str) -> Path:
    """A Next.js + Prisma app directory with a stand-in Prisma CLI, and a .env pointing at main."""
    from tests.recovery.prisma_standin import make_project

    make_project(app)
    env = app / ".env"
    env.write_text(
        "# HomeCheff production (Neon)\n"
        f'DATABASE_URL="{pooled}&pgbouncer=true&connect_timeout=15"\n'
        f'DIRECT_URL="{direct}"\n'
        "NEXTAUTH_URL=https://homecheff.nl\n"
        "NEXTAUTH_SECRET='s3cr3t-next-auth'\n"
    )
    return env


@pytest.fixture
async def world(pg_server: PgServer, tmp_path: Path) -> AsyncIterator[World]:
    async with Sandbox(pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=3) as sandbox:
        url = await sandbox.serve()
        async with httpx.AsyncClient() as http:
            client = NeonClient(http, sandbox.api_key, base_url=url, retry=FAST_RETRY, wait=FAST_WAIT)
            main = next(b for b in await client.branches(sandbox.project_id) if b.default)
            params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
            pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
            direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
            app = tmp_path / "homecheff"
            app.mkdir()
            write_app(app, pooled.reveal(), direct.reveal())
            password = await client.reveal_password(sandbox.project_id, main.id, "neondb_owner")
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "RECOVERY_WIZARD_CRASH"))
            }
            env.update(
                NEON_API_URL=url,
                NEON_API_KEY=sandbox.api_key.reveal(),
                NEON_PROJECT_ID=sandbox.project_id,
                TZ="Europe/Amsterdam",
                NO_COLOR="1",
            )
            yield World(
                sandbox, url, app, env, client, main, secrets=[sandbox.api_key.reveal(), password.reveal()]
            )
