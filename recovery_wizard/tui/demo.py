"""`recovery-wizard demo`: the whole runbook against a local incident, no account, no setup.

Shows the story at once and starts the sandbox behind it, in a worker (embedded PostgreSQL unless
RECOVERY_WIZARD_PG_DSN names one), its progress under the story and Begin enabled when it is up; writes a
throwaway copy of a small Next.js + Prisma app whose .env points at the damaged production branch, and
opens the wizard there in learning mode. Everything runs in one event loop: the sandbox's API and endpoint
proxies keep serving while the wizard talks to them over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.tui.app import (
    Mode,
    WizardConfig,
    freeze_startup_objects,
    make_app,
    print_closing_summary,
    run_until_closed,
)

if TYPE_CHECKING:
    from recovery_wizard.neon import NeonClient

log = logging.getLogger(__name__)

# The story while the sandbox starts (the scenario's own text, with its counts, replaces it when it is up).
STORY_WHILE_STARTING = {
    "homecheff": "HomeCheff, a small Next.js + Prisma marketplace for home-cooked meals, lost most of its "
    "users about 30 minutes ago: a migration meant for a developer's local database ran against production "
    "and kept only the 2 admin accounts.",
}

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


async def _start_sandbox(
    stack: contextlib.AsyncExitStack,
    app_dir: Path,
    config: WizardConfig,
    progress: Callable[[str], None],
    *,
    pg_dsn: str | None,
    scenario: str,
    history_seconds: int | None,
) -> None:
    """The sandbox, served, and the demo app's files; then ``config`` says where the API is. Runs in a worker
    behind the first screen; the sandbox is stopped (its databases dropped) when ``stack`` closes."""
    progress("Starting the sandbox (a local Neon with a real PostgreSQL)…")
    # Imported in a thread (about a second of psycopg, uvicorn, cryptography, httpx): the loop keeps
    # drawing the story and answering Quit meanwhile.
    await asyncio.to_thread(_import_sandbox)
    import httpx

    from recovery_wizard.neon import NeonClient
    from recovery_wizard.sandbox.service import Sandbox

    sandbox = await stack.enter_async_context(
        Sandbox(
            pg_dsn=pg_dsn,
            scenario=scenario,
            operation_seconds=1.0,
            history_seconds=history_seconds,
            on_progress=progress,
        )
    )
    progress("Serving the local Neon API…")
    url = await sandbox.serve()
    assert sandbox.project is not None and sandbox.project.scenario is not None
    progress("Writing the demo app and its .env…")
    async with httpx.AsyncClient() as http:
        client = NeonClient(http, sandbox.api_key, base_url=url)
        await write_demo_app(app_dir, client, sandbox.project_id)
    config.intro = intro_text(sandbox.project.scenario.description, app_dir)
    config.api_key = sandbox.api_key.reveal()
    config.api_url = url
    config.project_id = sandbox.project_id
    config.checks = [sandbox.project.scenario.canary]
    # The backups folder ("Where from? → a backup file") is written after Begin is enabled: pg_dump of each
    # hourly state takes seconds the story screen need not wait for. Cancelled if the demo closes first.
    task = asyncio.get_running_loop().create_task(_write_backups(sandbox, app_dir))
    stack.push_async_callback(_cancel, task)


def _import_sandbox() -> None:
    import httpx  # noqa: F401
    import uvicorn  # noqa: F401

    import recovery_wizard.neon.client
    import recovery_wizard.sandbox.service  # noqa: F401


async def _write_backups(sandbox: Any, app_dir: Path) -> None:
    try:
        await sandbox.write_backups(app_dir)
    except Exception:  # the demo goes on without them: history and snapshots still work
        log.warning("could not write the demo's backups folder", exc_info=True)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def intro_text(story: str, app_dir: Path) -> str:
    return (
        f"Demo: {story}\n\nThis is a local sandbox (no Neon account). The app directory is "
        f"{app_dir}; its .env points at the damaged branch. Press Enter to begin."
    )


async def run_demo(
    *, pg_dsn: str | None, scenario: str, keep_app: bool, history_seconds: int | None = None
) -> int:
    app_dir = Path(tempfile.mkdtemp(prefix="homecheff-demo-"))
    code, ran = 0, False
    try:
        async with contextlib.AsyncExitStack() as stack:

            async def starting(config: WizardConfig, progress: Callable[[str], None]) -> None:
                await _start_sandbox(
                    stack,
                    app_dir,
                    config,
                    progress,
                    pg_dsn=pg_dsn,
                    scenario=scenario,
                    history_seconds=history_seconds,
                )

            # The story is on screen at once; the sandbox starts behind it and Begin is enabled when it is up.
            config = WizardConfig(
                workdir=app_dir,
                mode=Mode.DEMO,
                intro=intro_text(
                    STORY_WHILE_STARTING.get(scenario, "a local incident to recover from."), app_dir
                ),
                starting=starting,
            )
            freeze_startup_objects()
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


def demo(*, pg_dsn: str | None, scenario: str, keep_app: bool, history_seconds: int | None = None) -> int:
    return asyncio.run(
        run_demo(pg_dsn=pg_dsn, scenario=scenario, keep_app=keep_app, history_seconds=history_seconds)
    )
