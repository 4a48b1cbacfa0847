"""The scenario's backups folder: the files a careful team keeps beside Neon, as they were when taken.

Written into an app directory on request (``recovery-wizard sandbox serve --backups-into DIR``, or
``Sandbox.write_backups``), never at start, so the demo starts as fast as before. What it writes:

- ``backups/<branch>-<UTC yyyymmddThhmmssZ>.dump``: hourly ``pg_dump -Fc`` files of the last few hours, each
  with ``<file>.manifest.json`` beside it in the format ``recovery-wizard backup`` writes (sha256, size, row
  counts, LSN, versions, project and branch). All but the newest are from before the incident; the newest is
  from after it and holds the damaged data.
- ``Downloads/<project>-backup-<date>.sql``: a plain ``pg_dump`` someone downloaded the evening before.
- ``backups/cron/backup-<ISO time>.json``: the kind of JSON an app's own backup cron saves,
  ``{"success", "timestamp", "stats", "data"}``, table keys the Prisma models in plural camelCase, rows in
  camelCase with the user's sessions nested and ISO dates; ``orders`` holds only the newest rows while
  ``stats`` says how many there were. Some before the incident, the newest after it.

Each file holds the database exactly as it was at its ``taken_at`` (a scenario time, deterministic for the
scenario's ``now``, not the wall clock): the state comes from the default branch's timeline as the scenario
left it, copied into a scratch database (the same copy a branch at that moment gets) and dumped there by
``pg_dump`` through a private endpoint proxy, so the archive names the branch's database (``neondb``) as a
dump of the real branch would. Files are mode 0600, written to a temporary name, fsynced and renamed, and
their mtimes are set to when they were taken.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import Secret, redact
from recovery_wizard.sandbox.engine import Engine, Project, Snapshot
from recovery_wizard.sandbox.proxy import ClientStartup, PgProxy, Route, RouteRefused

log = logging.getLogger("recovery_wizard.sandbox.backups")

MANIFEST_FORMAT = "recovery-wizard-backup/1"
HOURLY_DUMPS = 6  # the last six hours of hourly pg_dump files
JSON_BACKUPS = 3  # the app's own hourly JSON cron: the last three
KEEP_LAST_ORDERS = 10  # the JSON cron keeps only the newest orders (as the team that kept 500 transactions)
# The JSON cron's tables: key in the file -> (table, ORDER BY). Orders come newest first, as the cron's
# `findMany({orderBy: {createdAt: "desc"}, take})` returns them.
JSON_TABLES: dict[str, tuple[str, str]] = {
    "users": ("User", '"createdAt", "id"'),
    "listings": ("Listing", '"createdAt", "id"'),
    "orders": ("Order", '"createdAt" DESC, "id" DESC'),
    "reviews": ("Review", '"createdAt", "id"'),
}
TRUNCATED = "orders"
# The nested relation: each users row carries its sessions (Prisma's `include: {sessions: true}`).
NESTED = ("users", "sessions", "Session", "userId")


class BackupsError(RecoveryError):
    """The sandbox could not write its backups folder."""


@dataclass(frozen=True)
class PlannedBackup:
    """One file of the folder: what it is, when it was taken, where it goes (relative to the app dir)."""

    kind: str  # "custom" (pg_dump -Fc), "plain" (pg_dump SQL) or "json" (the app's cron)
    taken_at: datetime
    path: Path


@dataclass(frozen=True)
class WrittenBackup:
    kind: str
    path: Path
    taken_at: datetime
    after_incident: bool  # taken after the incident: holds the damaged data
    tables: dict[str, int]  # "schema.table" -> rows in the database at taken_at (all of them, not the file's)
    manifest: Path | None = None  # pg_dump -Fc files only
    truncated: dict[str, int] = field(default_factory=dict)  # JSON: table key -> rows the file holds

    @property
    def users(self) -> int:
        return self.tables.get("public.User", 0)


@dataclass(frozen=True)
class BackupsFolder:
    app_dir: Path
    files: tuple[WrittenBackup, ...]
    seconds: float  # how long writing the folder took

    def of_kind(self, kind: str) -> list[WrittenBackup]:
        return [f for f in self.files if f.kind == kind]


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso_utc(moment: datetime) -> str:
    """``2026-12-01T14:05:01.318Z``: JavaScript's ``toISOString()``, what a JSON backup and Prisma write."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def plan_backups(project: Project, *, downloads: Path = Path("Downloads")) -> list[PlannedBackup]:
    """The folder's files and their moments, derived from the incident's time alone (deterministic).

    The hourly dump runs at the minute ten minutes after the incident, so its newest file is always the
    damaged state (taken before the customer who signs up again at about +16 minutes) and the one before it
    the healthy state an hour earlier; the JSON cron runs five minutes after the incident's minute.
    """
    scenario = project.scenario
    if scenario is None:
        raise BackupsError("This sandbox project plays no scenario, so it has no backups folder to write.")
    incident = scenario.incident_at
    branch = project.scenario_branch[1] or "main"
    plan: list[PlannedBackup] = []
    dump_minute = _minute(incident + timedelta(minutes=10))
    for hours in range(HOURLY_DUMPS):
        # pg_dump starts a second or so after cron fires.
        at = dump_minute - timedelta(hours=hours) + timedelta(seconds=1, milliseconds=318)
        plan.append(PlannedBackup("custom", at, Path("backups") / f"{branch}-{_stamp(at)}.dump"))
    json_minute = _minute(incident + timedelta(minutes=5))
    for hours in range(JSON_BACKUPS):
        at = json_minute - timedelta(hours=hours) + timedelta(milliseconds=412)
        name = "backup-" + iso_utc(at).replace(":", "-").replace(".", "-") + ".json"
        plan.append(PlannedBackup("json", at, Path("backups") / "cron" / name))
    # Someone downloaded a dump the evening before, ahead of a release.
    at = _minute(incident - timedelta(hours=20, minutes=13)) + timedelta(seconds=5, milliseconds=207)
    name = f"{scenario.project_name.removesuffix('-prod')}-backup-{at.astimezone(UTC):%Y-%m-%d}.sql"
    plan.append(PlannedBackup("plain", at, downloads / name))
    first = project.scenario_history[0].at if project.scenario_history else incident
    for item in plan:
        if item.taken_at < first:
            raise BackupsError(
                f"The backup planned at {iso_utc(item.taken_at)} is before the scenario began."
            )
    return sorted(plan, key=lambda item: item.taken_at)


async def write_backups(
    app_dir: Path,
    engine: Engine,
    project: Project,
    *,
    downloads: Path | None = None,
    parallel: int = 3,
) -> BackupsFolder:
    """Write the scenario's backups folder into ``app_dir`` (made if missing); ``downloads`` is where the
    plain SQL goes (default ``app_dir/Downloads``). Returns what was written and how long it took."""
    began = time.perf_counter()
    app_dir = Path(app_dir)
    if app_dir.exists() and not app_dir.is_dir():
        raise BackupsError(
            f"{app_dir} is not a directory, so the backups folder cannot be written into it.",
            hint="Give a directory (it is created when missing).",
        )
    _private_dir(app_dir)
    downloads = downloads if downloads is not None else app_dir / "Downloads"
    plan = plan_backups(project, downloads=downloads)
    # Every folder is checked before anything is written, so a refusal leaves no partial folder behind.
    for folder in sorted({(app_dir / item.path).parent for item in plan}):
        _check_folder(folder)
    writer = _Writer(engine, project)
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(item: PlannedBackup) -> WrittenBackup:
        async with gate:
            return await writer.write(app_dir / item.path, item)

    # A task group, not gather: one failure cancels the others (their temporary files are removed) rather
    # than leaving them writing while the caller stops the sandbox under them.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in plan]
    except BaseExceptionGroup as failed:
        # The caller gets the failure itself (a BackupsError with its message and hint), not a group.
        raise failed.exceptions[0] from None
    written = [task.result() for task in tasks]
    seconds = time.perf_counter() - began
    log.info("wrote %d backups into %s in %.2f s", len(written), app_dir, seconds)
    return BackupsFolder(app_dir, tuple(written), seconds)


class _Writer:
    def __init__(self, engine: Engine, project: Project) -> None:
        assert project.scenario is not None
        self.engine = engine
        self.project = project
        self.scenario = project.scenario
        self.storage = engine.storage
        self.history = project.scenario_history
        self._versions: tuple[str, str] | None = None

    def state_at(self, at: datetime) -> Snapshot:
        # Straight from the timeline, without the restore window's check: a backup taken then saw this.
        index = bisect.bisect_right([s.at for s in self.history], at) - 1
        if index < 0:
            raise BackupsError(f"There is no state of the database at {iso_utc(at)}.")
        return self.history[index]

    async def write(self, path: Path, item: PlannedBackup) -> WrittenBackup:
        database = self.scenario.database
        snap = self.state_at(item.taken_at)
        # The scratch copy is left to the sandbox's stop, which drops every database it made in parallel:
        # one DROP DATABASE waits for a checkpoint (6 s on a shared server that fsyncs, measured), while
        # the copy itself takes some 40 ms.
        scratch = self.storage.new_name("bk")
        await self.engine.copy_state(snap, database, scratch)
        _private_dir(path.parent)
        tables = await self._counts(scratch)
        after = item.taken_at > self.scenario.incident_at
        if item.kind == "json":
            held = await self._write_json(scratch, path, item.taken_at)
            return WrittenBackup("json", path, item.taken_at, after, tables, truncated=held)
        began = time.monotonic()
        await self._dump(scratch, path, item)
        finished = item.taken_at + timedelta(seconds=time.monotonic() - began)
        manifest = None
        if item.kind == "custom":
            manifest = await self._write_manifest(scratch, path, item.taken_at, snap, tables)
            _touch(manifest, finished)
        _touch(path, finished)
        return WrittenBackup(item.kind, path, item.taken_at, after, tables, manifest)

    # --- reading the scratch copy -----------------------------------------------------------------

    async def _connect(self, scratch: str) -> psycopg.AsyncConnection[dict[str, Any]]:
        return await psycopg.AsyncConnection.connect(
            self.storage.server.dsn(scratch), autocommit=True, row_factory=dict_row
        )

    async def _counts(self, scratch: str) -> dict[str, int]:
        async with await self._connect(scratch) as conn:
            cur = await conn.execute(
                "SELECT n.nspname AS schema, c.relname AS name FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"
            )
            counts: dict[str, int] = {}
            for row in await cur.fetchall():
                query = sql.SQL("SELECT count(*) AS n FROM {}.{}").format(
                    sql.Identifier(row["schema"]), sql.Identifier(row["name"])
                )
                found = await (await conn.execute(query)).fetchone()
                assert found is not None
                counts[f"{row['schema']}.{row['name']}"] = int(found["n"])
            return counts

    async def _server_version(self, scratch: str) -> str:
        async with await self._connect(scratch) as conn:
            row = await (await conn.execute("SELECT current_setting('server_version') AS v")).fetchone()
            assert row is not None
            return str(row["v"])

    # --- pg_dump ----------------------------------------------------------------------------------

    async def _dump(self, scratch: str, path: Path, item: PlannedBackup) -> None:
        """``pg_dump`` of the branch's database as it was at ``item.taken_at``, into ``path`` atomically."""
        role, database = self.scenario.role, self.scenario.database
        password = Secret(secrets.token_urlsafe(18))

        async def resolve(startup: ClientStartup) -> Route:
            if startup.database != database:
                raise RouteRefused("3D000", f'database "{startup.database}" does not exist')
            return Route(database=scratch, read_only=True)

        proxy = PgProxy(
            self.storage.server.backend,
            resolve,
            None,
            name="backups",
            passwords=lambda user: password if user == role else None,
        )
        port = await proxy.start()
        # The connection by environment only: no password on a command line, where ps would show it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(port),
            PGUSER=role,
            PGDATABASE=database,
            PGPASSWORD=password.reveal(),
            PGSSLMODE="disable",
            PGCONNECT_TIMEOUT="10",
        )
        tools = self.storage.server.tools
        if item.kind == "custom":
            args = ["--format=custom"]
        else:
            # A dump made to be loaded anywhere, as a downloaded one usually is.
            args = ["--format=plain", "--no-owner", "--no-privileges"]
        try:
            with _AtomicFile(path) as out:
                dumped_at = time.time()
                proc = await asyncio.create_subprocess_exec(
                    str(tools.pg_dump),
                    *args,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out.fd,
                    stderr=asyncio.subprocess.PIPE,
                )
                try:
                    _, err = await proc.communicate()
                except BaseException:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
                    raise
                if proc.returncode:
                    raise BackupsError(
                        f"pg_dump failed writing {path.name}: {redact(err.decode(errors='replace').strip())}"
                    )
                if item.kind == "custom":
                    out.edit(lambda f: set_archive_time(f, item.taken_at, dumped_at))
        finally:
            await proxy.stop()

    async def _write_manifest(
        self, scratch: str, dump: Path, taken_at: datetime, snap: Snapshot, tables: dict[str, int]
    ) -> Path:
        sha256, size = _sha256_and_size(dump)
        server_version, pg_dump_version = await self._version_pair(scratch)
        branch_id, branch_name = self.project.scenario_branch
        manifest = {
            "format": MANIFEST_FORMAT,
            "file": dump.name,
            "taken_at": iso_utc(taken_at),
            "lsn": snap.lsn,
            "server_version": server_version,
            "database": self.scenario.database,
            "sha256": sha256,
            "size": size,
            "tables": tables,
            "project": {"id": self.project.id, "name": self.project.name},
            "branch": {"id": branch_id, "name": branch_name},
            "pg_dump_version": pg_dump_version,
        }
        path = dump.with_name(dump.name + ".manifest.json")
        with _AtomicFile(path) as out:
            out.write((json.dumps(manifest, indent=2) + "\n").encode())
        return path

    async def _version_pair(self, scratch: str) -> tuple[str, str]:
        if self._versions is None:
            tools = self.storage.server.tools
            proc = await asyncio.create_subprocess_exec(
                str(tools.pg_dump), "--version", stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            # "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" -> "15.20"
            match = re.search(r"\)\s*(\d+(?:\.\d+)*)", out.decode(errors="replace"))
            self._versions = (await self._server_version(scratch), match.group(1) if match else "")
        return self._versions

    # --- the app's JSON cron ----------------------------------------------------------------------

    async def _write_json(self, scratch: str, path: Path, taken_at: datetime) -> dict[str, int]:
        data: dict[str, list[dict[str, Any]]] = {}
        stats: dict[str, int] = {}
        async with await self._connect(scratch) as conn:
            for key, (table, order) in JSON_TABLES.items():
                name = sql.Identifier(table)
                count = await (
                    await conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(name))
                ).fetchone()
                assert count is not None
                stats[key] = int(count["n"])
                query = sql.SQL("SELECT * FROM {} ORDER BY " + order).format(name)
                if key == TRUNCATED:
                    query = sql.SQL("{} LIMIT {}").format(query, sql.Literal(KEEP_LAST_ORDERS))
                data[key] = [_json_row(row) for row in await (await conn.execute(query)).fetchall()]
            parent, relation, child, column = NESTED
            cur = await conn.execute(
                sql.SQL('SELECT * FROM {} ORDER BY "expires", "id"').format(sql.Identifier(child))
            )
            by_parent: dict[str, list[dict[str, Any]]] = {}
            for row in await cur.fetchall():
                by_parent.setdefault(str(row[column]), []).append(_json_row(row))
            for row in data[parent]:
                row[relation] = by_parent.get(str(row["id"]), [])
        document = {"success": True, "timestamp": iso_utc(taken_at), "stats": stats, "data": data}
        with _AtomicFile(path) as out:
            out.write((json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
        # A cron's response is written a moment after its timestamp.
        _touch(path, taken_at + timedelta(milliseconds=740))
        return {key: len(rows) for key, rows in data.items() if len(rows) < stats[key]}


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the app's JSON.stringify writes it: Prisma's TIMESTAMP(3) columns are UTC, as ISO strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = iso_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
        out[key] = value
    return out


# --- the custom archive's header ------------------------------------------------------------------
# pg_dump stamps an archive with the moment it started (local time, as struct tm fields) and has no
# option to set it; a backup from an hour ago must say an hour ago, since a reader dates a dump by its
# header (`pg_restore --list`: "Archive created at"). The fields are rewritten in place, each keeping its
# width, so nothing else in the archive moves; the layout is checked first against what pg_dump just wrote.


def _archive_int_at(head: bytes, offset: int, int_size: int) -> int:
    value = int.from_bytes(head[offset + 1 : offset + 1 + int_size], "little")
    return -value if head[offset] else value


def _archive_int(value: int, int_size: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(int_size, "little")


def set_archive_time(f: Any, moment: datetime, dumped_at: float) -> None:
    """Make the custom-format archive open in ``f`` (binary, read/write) say it was created at ``moment``.

    ``dumped_at`` is when pg_dump ran: the header must hold about that time, else its layout is not the one
    this code knows and nothing is changed.
    """
    f.seek(0)
    head = f.read(128)
    if head[:5] != b"PGDMP" or len(head) < 64:
        raise BackupsError("pg_dump did not write a custom-format archive (no PGDMP header).")
    version, int_size = (head[5], head[6]), head[8]
    # Archive 1.15 (PostgreSQL 16) made the compression field one byte; before, it was an int.
    start = 12 if version >= (1, 15) else 11 + 1 + int_size
    width = 1 + int_size
    sec, minute, hour, mday, mon, year, isdst = (
        _archive_int_at(head, start + i * width, int_size) for i in range(7)
    )
    try:
        written = time.mktime((year + 1900, mon + 1, mday, hour, minute, sec, 0, 0, isdst))
    except (OverflowError, ValueError):
        written = 0.0
    if abs(written - dumped_at) > 600:
        raise BackupsError(
            f"The archive header of pg_dump {version[0]}.{version[1]} is not laid out as expected.",
            hint="Report it: the sandbox dates its backup files by rewriting that header.",
        )
    tm = time.localtime(moment.timestamp())
    fields = (tm.tm_sec, tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon - 1, tm.tm_year - 1900, tm.tm_isdst)
    f.seek(start)
    f.write(b"".join(_archive_int(value, int_size) for value in fields))


# --- files ----------------------------------------------------------------------------------------


def _check_folder(directory: Path) -> None:
    if directory.is_symlink():
        raise BackupsError(
            f"{directory} is a symbolic link; the sandbox writes backups only into real folders.",
            hint="Remove the link, or give another directory.",
        )
    if directory.exists() and not directory.is_dir():
        raise BackupsError(
            f"{directory} is in the way: it is a file, and the backups folder needs a directory there.",
            hint="Move it away, or give another directory.",
        )


def _private_dir(directory: Path) -> None:
    _check_folder(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _sha256_and_size(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _touch(path: Path, moment: datetime) -> None:
    stamp = moment.timestamp()
    os.utime(path, (stamp, stamp))


class _AtomicFile:
    """A 0600 temporary file beside ``path``, fsynced and renamed over it on success, removed on failure.

    Hand-written (a dozen lines) because the sandbox must not import the runbook's writers (``recovery/``)
    and the file descriptor is handed to pg_dump as its stdout.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        self.fd = -1

    def __enter__(self) -> _AtomicFile:
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return self

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def edit(self, change: Callable[[Any], None]) -> None:
        with open(self.temp, "r+b") as f:
            change(f)

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if exc is None:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
        if exc is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            return
        os.replace(self.temp, self.path)
        with contextlib.suppress(OSError):  # the rename is durable once the directory is synced
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
