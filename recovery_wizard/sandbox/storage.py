"""The sandbox's databases on the real server: create, copy, snapshot, drop.

Every database the sandbox makes is named ``<prefix>_<kind>_<n>`` with a per-sandbox prefix, so several
sandboxes can share one server and ``drop_all`` removes exactly ours.

Two ways to copy a database, both exact:

- ``copy``: ``CREATE DATABASE … TEMPLATE`` (14–20 ms for a small database). PostgreSQL allows it only
  while nobody is connected to the source, which holds for snapshots (no client ever connects to one) and
  for a live database before any client does (building a scenario).
- ``snapshot_live``: ``pg_dump | psql`` into a fresh database (60–80 ms), for a live database that clients
  are connected to. The state is first *pinned*: ``pin`` exports an MVCC snapshot (a millisecond or two)
  at the moment a write commits, and pg_dump later dumps exactly that state with ``--snapshot``, however
  many writes have landed since.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import redact

if TYPE_CHECKING:
    from recovery_wizard.sandbox.pgserver import PgServer

log = logging.getLogger("recovery_wizard.sandbox.storage")

# Settings a newer pg_dump writes into a dump's header that an older server refuses: (name, first major).
_NEWER_SETTINGS = (("transaction_timeout", 17),)


class StorageError(RecoveryError):
    """A database operation on the sandbox's server failed."""


class Pin:
    """An open transaction holding an exported MVCC snapshot: the state a later dump will copy."""

    def __init__(self, conn: psycopg.AsyncConnection[tuple[object, ...]], snapshot_id: str) -> None:
        self.conn = conn
        self.snapshot_id = snapshot_id

    async def release(self) -> None:
        await self.conn.close()


class Storage:
    def __init__(self, server: PgServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.server.dsn("postgres"), autocommit=True)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def new_name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}_{next(self._counter)}"

    async def _admin(
        self, query: sql.Composed | str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        if self._conn is None:
            raise StorageError("the sandbox's storage is not open")
        async with self._lock:
            cur = await self._conn.execute(query, params or None)
            return await cur.fetchall() if cur.description else []

    async def create_empty(self, name: str) -> None:
        await self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    async def copy(self, template: str, name: str) -> None:
        """An exact copy of ``template``, which nobody may be connected to."""
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                await self._admin(query)
                return
            except psycopg.errors.ObjectInUse:
                # A session that just closed takes a millisecond or two to leave the source database:
                # poll tightly, since a scenario copies after every change.
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.002)

    async def drop(self, name: str) -> None:
        # WITH (FORCE) ends sessions still connected, like Neon breaking connections on delete.
        await self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    async def terminate(self, name: str) -> None:
        """End every session connected to ``name`` (in-place restore drops connections briefly)."""
        await self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    async def current_lsn(self) -> str:
        rows = await self._admin("SELECT pg_current_wal_lsn()::text")
        return str(rows[0][0])

    async def execute(self, database: str, statements: str) -> None:
        """Run ``statements`` in one transaction on ``database`` (scenario changes)."""
        async with (
            await psycopg.AsyncConnection.connect(self.server.dsn(database)) as conn,
            conn.transaction(),
        ):
            await conn.execute(statements.encode())  # bytes: several statements in one simple query

    async def fetch(self, database: str, query: str) -> list[tuple[object, ...]]:
        async with await psycopg.AsyncConnection.connect(self.server.dsn(database), autocommit=True) as conn:
            cur = await conn.execute(query.encode())
            return await cur.fetchall() if cur.description else []

    async def drop_all(self) -> int:
        """Drop every database this sandbox made; returns how many."""
        rows = await self._admin(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (self.prefix.replace("_", r"\_") + r"\_%",),
        )
        names = [str(name) for (name,) in rows]
        # Each DROP DATABASE waits for a checkpoint; drops running side by side share checkpoints, so a few
        # connections in parallel finish many times sooner on a server that fsyncs.
        queue = list(names)

        async def worker() -> None:
            async with await psycopg.AsyncConnection.connect(
                self.server.dsn("postgres"), autocommit=True
            ) as conn:
                while queue:
                    name = queue.pop()
                    await conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )

        await asyncio.gather(*(worker() for _ in range(min(8, len(names)))))
        return len(names)

    def _tool_env(self, database: str) -> dict[str, str]:
        # libpq reads the connection from the environment: no password on a command line (ps would show it).
        backend = self.server.backend
        env = {**os.environ, "PGHOST": backend.host, "PGPORT": str(backend.port), "PGUSER": backend.user}
        env["PGDATABASE"] = database
        env.pop("PGSERVICE", None)
        if backend.password is not None:
            env["PGPASSWORD"] = backend.password.reveal()
        return env

    async def pin(self, database: str) -> Pin:
        """Hold ``database``'s committed state as of now, for ``snapshot_live`` to copy later."""
        conn = await psycopg.AsyncConnection.connect(self.server.dsn(database), autocommit=True)
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur = await conn.execute("SELECT pg_export_snapshot()")
            row = await cur.fetchone()
        except BaseException:
            await conn.close()
            raise
        assert row is not None
        return Pin(conn, str(row[0]))

    async def snapshot_live(self, live: str, name: str, pin: Pin | None = None) -> None:
        """An exact copy of ``live`` (as pinned, else as now) while clients stay connected."""
        await self.create_empty(name)
        tools = self.server.tools
        pinned = ["--snapshot", pin.snapshot_id] if pin is not None else []
        dump = await asyncio.create_subprocess_exec(
            str(tools.pg_dump),
            *pinned,
            "--no-owner",
            "--no-privileges",
            "--format=plain",
            env=self._tool_env(live),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        load = await asyncio.create_subprocess_exec(
            str(tools.psql),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            env=self._tool_env(name),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert dump.stdout is not None and load.stdin is not None
        refused = [n for n, major in _NEWER_SETTINGS if self.server.major < major]
        try:
            await _pipe_filtered(dump.stdout, load.stdin, refused)
        finally:
            load.stdin.close()
        dump_err = await dump.stderr.read() if dump.stderr else b""
        load_err = await load.stderr.read() if load.stderr else b""
        dump_rc, load_rc = await dump.wait(), await load.wait()
        if dump_rc or load_rc:
            await self.drop(name)
            detail = (dump_err or load_err).decode(errors="replace").strip()
            raise StorageError(f"Could not snapshot database {live}: {redact(detail)}")

    async def schema_sql(self, database: str) -> str:
        """The schema of ``database`` as SQL (pg_dump --schema-only), for the schema and compare endpoints."""
        proc = await asyncio.create_subprocess_exec(
            str(self.server.tools.pg_dump),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            env=self._tool_env(database),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode:
            raise StorageError(
                f"Could not read the schema of {database}: {redact(err.decode(errors='replace'))}"
            )
        return _strip_dump_noise(out.decode())


async def _pipe_filtered(src: asyncio.StreamReader, dst: asyncio.StreamWriter, refused: list[str]) -> None:
    """Copy a plain dump, dropping ``SET <refused> = …;`` from its header (before the first statement)."""
    in_header = bool(refused)
    while in_header:
        line = await src.readline()
        if not line:
            return
        text = line.decode(errors="replace")
        if any(text.startswith(f"SET {name} ") for name in refused):
            continue
        dst.write(line)
        stripped = text.strip()
        if stripped and not stripped.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\")):
            in_header = False
    while chunk := await src.read(1 << 16):
        dst.write(chunk)
        await dst.drain()
    await dst.drain()


def _strip_dump_noise(text: str) -> str:
    """Drop pg_dump's version banners, restrict keys and SET lines: they differ between runs, not schemas."""
    keep = []
    for line in text.splitlines():
        if line.startswith(("-- Dumped from", "-- Dumped by", "\\restrict", "\\unrestrict", "SET ")):
            continue
        if line.startswith("SELECT pg_catalog.set_config('search_path'"):
            continue
        keep.append(line)
    while keep and not keep[0].strip("- "):
        keep.pop(0)
    return "\n".join(keep).strip() + "\n"
