"""Backup-file fixtures: scratch databases on the real test server and dumps made by its pg_dump."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from recovery_wizard.pgtools import PgTools, find_tools
from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer

SAMPLE_SQL = """
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
CREATE TABLE "User" (id text PRIMARY KEY, email text UNIQUE NOT NULL, role "Role" NOT NULL DEFAULT 'USER');
CREATE TABLE "Order" (id serial PRIMARY KEY, "buyerId" text NOT NULL REFERENCES "User"(id), note text);
INSERT INTO "User" SELECT 'u' || g, 'u' || g || '@example.test', CASE WHEN g = 1 THEN 'ADMIN' ELSE 'USER' END::"Role"
FROM generate_series(1, 300) g;
INSERT INTO "Order" ("buyerId", note) SELECT 'u' || (g % 300 + 1), E'tab\\there; and \\\\! not a command' FROM generate_series(1, 120) g;
"""


class Scratch:
    """Creates databases on the test server and drops them at the end."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.names: list[str] = []

    def create(self, sql: str = "") -> str:
        name = f"rwfiles_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.server.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        if sql:
            with psycopg.connect(self.server.dsn(name), autocommit=True) as conn:
                conn.execute(sql.encode())
        return name

    def url(self, name: str) -> Secret:
        return Secret(self.server.dsn(name))

    def query(self, name: str, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.server.dsn(name)) as conn:
            return conn.execute(sql.encode()).fetchall()

    def drop_all(self) -> None:
        with psycopg.connect(self.server.dsn("postgres"), autocommit=True) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def scratch(pg_server: PgServer) -> Iterator[Scratch]:
    # One for the session, dropped at its end: DROP DATABASE forces a checkpoint, which on a busy shared
    # server costs seconds each; dropped together, the later ones find little left to write.
    made = Scratch(pg_server)
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="session")
def sample_tools(pg_server: PgServer) -> PgTools:
    return find_tools(pg_server.major)


Dumper = Callable[..., Path]


@pytest.fixture(scope="session")
def sample_db(scratch: Scratch) -> str:
    """The sample database every dump is made from (tests never write to it)."""
    return scratch.create(SAMPLE_SQL)


@pytest.fixture
def dump(scratch: Scratch, sample_db: str, sample_tools: PgTools, tmp_path: Path) -> Dumper:
    """``dump(fmt, name=…)``: a pg_dump of the sample database in ``fmt`` (c, d, t, p)."""
    source = sample_db

    def make(fmt: str, name: str | None = None, *extra: str) -> Path:
        out = tmp_path / (name or f"sample.{fmt}")
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(scratch.server.dsn(source))
        password = params.pop("password", None)
        env = {"PGPASSWORD": str(password)} if password else {}
        import os

        subprocess.run(
            [
                str(sample_tools.pg_dump),
                f"-F{fmt}",
                "-f",
                str(out),
                *extra,
                f"--dbname={make_conninfo(**{k: str(v) for k, v in params.items()})}",
            ],
            check=True,
            env={**os.environ, **env},
        )
        return out

    return make
