"""Taking a file backup: ``pg_dump -Fc`` of one database through the branch's DIRECT URL.

How, and why:
- The pg_dump is the one ``pgtools.find_tools`` picks for the server's major version (the embedded wheel's
  18 unless the machine has a matching one): an older pg_dump refuses a newer server.
- The password goes to pg_dump in its environment (``PGPASSWORD``), never on its command line: the process
  list is readable by every user of the machine. The URL pg_dump is given has no password in it.
- Row counts for the manifest are taken in the SAME snapshot pg_dump dumps: a repeatable-read transaction
  exports its snapshot, pg_dump imports it (``--snapshot``), and the counts run in that transaction while
  pg_dump works, so they cost almost no extra time and match the file exactly.
- pg_dump writes to a hidden temp file created 0600 in the backups directory (a dump holds every password
  hash and token in the database); it is fsynced and renamed into place only once pg_dump succeeded, and the
  manifest is written after it, atomically too. On any failure (pg_dump's, a full disk, a signal) the temp
  file is removed and older backups are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from recovery_wizard.pgtools import PgTools, find_tools
from recovery_wizard.recovery.backup.atomic import fsync_dir, open_private, temp_path
from recovery_wizard.recovery.backup.backupdir import free_name, remove_stale_partials
from recovery_wizard.recovery.backup.errors import DumpFailedError
from recovery_wizard.recovery.backup.manifest import Manifest, sha256_file, write_manifest
from recovery_wizard.redact import Secret, redact, split_url
from recovery_wizard.tlsrelay import usable_conninfo

_DISK_FULL = ("no space left", "file too large", "disk quota exceeded")

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""

FACTS_SQL = """
SELECT pg_export_snapshot(), current_setting('server_version'),
       current_setting('server_version_num')::int, current_database(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text
"""


@dataclass(frozen=True)
class TakenBackup:
    path: Path
    manifest: Manifest
    seconds: float


def split_password(uri: Secret) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): the first may be shown and put on argv."""
    head, userinfo, rest = split_url(uri.reveal())
    if userinfo is None:
        return uri.reveal(), None
    user, sep, password = userinfo.partition(":")
    return f"{head}{user}@{rest}", unquote(password) if sep else None


def pg_dump_version(tools: PgTools) -> str:
    out = subprocess.run([str(tools.pg_dump), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


async def take_file_backup(
    uri: Secret,
    directory: Path,
    *,
    project: dict[str, str],
    branch: dict[str, str],
    database: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> TakenBackup:
    """Dump the database ``uri`` names into ``directory``; return the file and its manifest.

    ``directory`` must already be checked (``backupdir.check_dir``). ``database`` is the name recorded (the
    name the user knows; a proxy may serve it under another). Raises :class:`DumpFailedError`.
    """
    import psycopg
    from psycopg import sql

    say = on_progress or (lambda _text: None)
    now = (clock or (lambda: datetime.now(UTC)))()
    started = asyncio.get_running_loop().time()
    remove_stale_partials(directory)
    dsn, password = split_password(uri)
    try:
        conn = await psycopg.AsyncConnection.connect(uri.reveal(), autocommit=True)
    except psycopg.Error as exc:
        raise DumpFailedError(
            f"Could not connect to the branch to back it up: {redact(str(exc).strip(), _extra(password))}",
            hint="Check that the branch has a running compute and the role can log in, then try again.",
        ) from None
    async with conn:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = await (await conn.execute(FACTS_SQL)).fetchone()
        assert row is not None
        snapshot, server_version, version_num, server_database, lsn = row
        database = database or str(server_database)
        tools = await asyncio.to_thread(find_tools, int(version_num) // 10000)
        dump_version = await asyncio.to_thread(pg_dump_version, tools)
        final = free_name(directory, branch.get("name") or branch.get("id") or "branch", now)
        tmp = temp_path(final)
        say(f"{dump_version}: dumping {database} into {final.name}")
        try:
            fd = open_private(tmp)
        except OSError as exc:  # a full disk, or the directory changed under us
            raise _dump_failed(f"{tmp.name}: {exc.strerror or exc}", None, password) from None
        env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "20")}
        env.pop("PGPASSWORD", None)
        if password is not None:
            env["PGPASSWORD"] = password
        proc: asyncio.subprocess.Process | None = None
        counting: asyncio.Future[dict[str, int]] | None = None
        done = False
        try:
            # A pg_dump built without TLS reaches the server through a local relay that speaks it.
            async with usable_conninfo(dsn, tools) as reach:
                proc = await asyncio.create_subprocess_exec(
                    str(tools.pg_dump),
                    "--format=custom",
                    "--no-password",
                    f"--snapshot={snapshot}",
                    f"--dbname={reach}",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=fd,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                )
                counting = asyncio.ensure_future(_count_rows(conn, sql))
                _, err = await proc.communicate()
            if proc.returncode != 0:
                raise _dump_failed(err.decode(errors="replace"), proc.returncode, password)
            tables = await counting
            try:
                os.fsync(fd)
            except OSError as exc:
                raise _dump_failed(str(exc), None, password) from None
            os.close(fd)
            fd = -1
            size = tmp.stat().st_size
            digest = await asyncio.to_thread(sha256_file, tmp)
            manifest = Manifest(
                file=final.name,
                taken_at=now.astimezone(UTC).isoformat(),
                sha256=digest,
                size=size,
                database=str(database),
                server_version=str(server_version),
                pg_dump_version=dump_version,
                project=dict(project),
                branch=dict(branch),
                lsn=None if lsn is None else str(lsn),
                tables=tables,
            )
            try:
                os.replace(tmp, final)
                fsync_dir(directory)
                write_manifest(final, manifest)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    final.unlink()
                raise _dump_failed(str(exc), None, password) from None
            done = True
        finally:
            if counting is not None and not counting.done():
                # The counts wait on the server (a lock, a big table): stop them there too, or the
                # connection stays busy and closing it waits for them.
                with contextlib.suppress(Exception):
                    await conn.cancel_safe()
                counting.cancel()
                with contextlib.suppress(BaseException):
                    await counting
            if fd >= 0:
                os.close(fd)
            if proc is not None and proc.returncode is None:  # interrupted: stop pg_dump first
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(BaseException):
                    await proc.wait()
            if not done:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        await conn.execute("COMMIT")
    seconds = asyncio.get_running_loop().time() - started
    return TakenBackup(final, manifest, seconds)


async def _count_rows(conn: Any, sql: Any) -> dict[str, int]:
    """Exact row counts of every table, in the transaction whose snapshot pg_dump dumps."""
    # One backend, no parallel workers: the counts run beside pg_dump's COPY on the same server and must
    # not take its cores (they are a check, not the backup).
    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    tables = await (await conn.execute(TABLES_SQL)).fetchall()
    counts: dict[str, int] = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        row = await (await conn.execute(query)).fetchone()
        counts[f"{schema}.{table}"] = int(row[0])
    return counts


def _extra(password: str | None) -> list[str]:
    return [password] if password else []


def _dump_failed(stderr: str, code: int | None, password: str | None) -> DumpFailedError:
    text = redact(stderr.strip(), _extra(password))
    last = text.splitlines()[-1] if text else f"exit code {code}"
    # SIGXFSZ: the file grew past the size limit the process may write (a quota, ulimit -f).
    if any(word in text.lower() for word in _DISK_FULL) or code == -signal.SIGXFSZ:
        return DumpFailedError(
            f"The disk filled up while pg_dump wrote the backup ({last}). The partial file was removed; "
            "older backups are untouched.",
            hint="Free space in the backups directory (or keep fewer: --keep), or pass another --dir.",
        )
    return DumpFailedError(
        f"pg_dump failed ({last}). The partial file was removed; older backups are untouched.",
        hint="Read pg_dump's message above; check the branch is reachable and try again.",
    )
