"""`recovery-wizard demo`: the whole runbook against a local incident, no account, no setup.

Starts the sandbox in this process (embedded PostgreSQL unless RECOVERY_WIZARD_PG_DSN names one), writes a
throwaway copy of a small Next.js + Prisma app whose .env points at the damaged production branch, and
opens the wizard there in learning mode. Everything runs in one event loop: the sandbox's API and endpoint
proxies keep serving while the wizard talks to them over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

from recovery_wizard.neon import NeonClient
from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.tui.app import Mode, WizardConfig, make_app, print_closing_summary, run_until_closed

SCHEMA = """// HomeCheff: home-cooked meals, ordered online.
generator client {
  provider = "prisma-client-js"
}

datasource db {
  provider  = "postgresql"
  url       = env("DATABASE_URL")
  directUrl = env("DIRECT_URL")
}

model User {
  id        String   @id
  email     String   @unique
  name      String?
  role      Role     @default(USER)
  createdAt DateTime @default(now())
  updatedAt DateTime @updatedAt
}

enum Role {
  USER
  ADMIN
}
"""

PACKAGE_JSON = """{
  "name": "homecheff",
  "private": true,
  "scripts": {"dev": "next dev", "build": "prisma generate && next build"},
  "dependencies": {"@prisma/client": "^6.19.0", "next": "^15.5.0", "react": "^19.1.0"},
  "devDependencies": {"prisma": "^6.19.0"}
}
"""


async def write_demo_app(directory: Path, client: NeonClient, project_id: str) -> None:
    main = next(b for b in await client.branches(project_id) if b.default)
    params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
    pooled = await client.connection_uri(project_id, pooled=True, **params)
    direct = await client.connection_uri(project_id, pooled=False, **params)
    (directory / "prisma").mkdir(parents=True)
    (directory / "prisma" / "schema.prisma").write_text(SCHEMA)
    (directory / "package.json").write_text(PACKAGE_JSON)
    env = directory / ".env"
    env.write_text(
        "# HomeCheff production database (Neon). Pooled for the app, direct for Prisma's CLI.\n"
        f'DATABASE_URL="{pooled.reveal()}&pgbouncer=true&connect_timeout=15"\n'
        f'DIRECT_URL="{direct.reveal()}"\n'
        "NEXTAUTH_URL=http://localhost:3000\n"
    )
    env.chmod(0o600)


async def run_demo(*, pg_dsn: str | None, scenario: str, keep_app: bool) -> int:
    print("Starting the sandbox (a local Neon with a real PostgreSQL)…", file=sys.stderr, flush=True)
    app_dir = Path(tempfile.mkdtemp(prefix="homecheff-demo-"))
    code, ran = 0, False
    try:
        async with Sandbox(pg_dsn=pg_dsn, scenario=scenario, operation_seconds=1.0) as sandbox:
            url = await sandbox.serve()
            assert sandbox.project is not None and sandbox.project.scenario is not None
            async with httpx.AsyncClient() as http:
                client = NeonClient(http, sandbox.api_key, base_url=url)
                await write_demo_app(app_dir, client, sandbox.project_id)
            story = sandbox.project.scenario.description
            intro = (
                f"Demo: {story}\n\nThis is a local sandbox (no Neon account). The app directory is "
                f"{app_dir}; its .env points at the damaged branch. Press Enter to begin."
            )
            config = WizardConfig(
                workdir=app_dir,
                mode=Mode.DEMO,
                api_key=sandbox.api_key.reveal(),
                api_url=url,
                project_id=sandbox.project_id,
                intro=intro,
                checks=[sandbox.project.scenario.canary],
            )
            app = make_app(config)
            # SIGTERM and SIGHUP (the terminal closed) end the wizard like Ctrl+Q; the sandbox's databases are
            # then dropped as this block exits and the app directory removed below.
            code = await run_until_closed(app)
            ran = app.runner is not None
            print_closing_summary(app)
    finally:
        if keep_app:
            _say(f"The demo app and its incident record are in {app_dir}.")
        else:
            shutil.rmtree(app_dir, ignore_errors=True)
            if ran:  # its incident record went with the directory
                _say(f"The demo app directory {app_dir} is removed (--keep-app keeps it and its record).")
    return code


def _say(text: str) -> None:
    with contextlib.suppress(OSError):  # no terminal any more (SIGHUP)
        print(text, file=sys.stderr, flush=True)


def demo(*, pg_dsn: str | None, scenario: str, keep_app: bool) -> int:
    return asyncio.run(run_demo(pg_dsn=pg_dsn, scenario=scenario, keep_app=keep_app))
