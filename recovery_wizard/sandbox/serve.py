"""``recovery-wizard sandbox serve``: run a sandbox on a real socket until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from recovery_wizard.redact import redact
from recovery_wizard.sandbox.service import Sandbox


async def serve(
    *,
    host: str,
    port: int,
    api_key: str | None,
    scenario: str,
    latency_ms: float,
    faults: Sequence[str],
    pg_dsn: str | None,
    operation_seconds: float,
    history_seconds: int | None = None,
    backups_into: Path | None = None,
) -> None:
    sandbox = Sandbox(
        pg_dsn=pg_dsn,
        api_key=api_key,
        scenario=scenario,
        latency_ms=latency_ms,
        faults=faults,
        operation_seconds=operation_seconds,
        history_seconds=history_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await sandbox.start()
        url = await sandbox.serve(host, port)
        written = None
        if backups_into is not None:
            # Before the four lines: a script that read them finds the folder complete.
            written = await sandbox.write_backups(backups_into)
        # Exactly these four lines first, flushed: scripts read them (eval, or `grep NEON_`).
        sys.stdout.write(
            f"NEON_API_URL={url}\nNEON_API_KEY={sandbox.api_key.reveal()}\nNEON_PROJECT_ID={sandbox.project_id}\n"
            f"NEON_SANDBOX_CA={sandbox.ca_path}\n"
        )
        sys.stdout.flush()
        assert sandbox.project is not None and sandbox.project.scenario is not None
        print(
            f"sandbox: project {sandbox.project.name} ({sandbox.project_id}), scenario "
            f"{scenario!r}, ready in {sandbox.started_in:.2f} s; Ctrl-C stops it and drops its databases.\n"
            f"sandbox: endpoints speak TLS (sslmode=require works as is); to check the server, add "
            f"sslmode=verify-full&sslrootcert={sandbox.ca_path}",
            file=sys.stderr,
            flush=True,
        )
        project = sandbox.project
        assert project.scenario is not None
        window = project.history_retention_seconds
        if window < (datetime.now(UTC) - project.scenario.incident_at).total_seconds():
            print(
                f"sandbox: the restore window is {window} s, so the incident is outside it: restore from a "
                "snapshot or a backup file.",
                file=sys.stderr,
                flush=True,
            )
        if written is not None:
            print(
                f"sandbox: wrote {len(written.files)} backups into {written.app_dir} in {written.seconds:.2f} s "
                "(backups/, backups/cron/, Downloads/).",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await sandbox.stop()
        print("sandbox: stopped; its databases were dropped.", file=sys.stderr, flush=True)


def run(**options: object) -> int:
    from recovery_wizard.errors import RecoveryError

    try:
        asyncio.run(serve(**options))  # type: ignore[arg-type]
    except RecoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0
