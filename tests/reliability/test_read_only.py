"""Part 5: verification, peek and canary connections cannot write, however the SQL tries.

The static guard (``is_read_only_sql``) is tested in test_hostile_input; here the SQL gets past it (a
function that deletes, a COMMIT to escape the transaction, a session setting) and runs against a real
PostgreSQL (the session's ``pg_server``): the write must fail and the rows must still be there.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from recovery_wizard.recovery import peek, verify
from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer
from tests.reliability.conftest import Shared, count

ROWS = 5
# Each one ends up writing if the connection lets it: directly, through a function, or after trying to
# leave the read-only transaction first.
SNEAKY_WRITES = [
    "SELECT rw_delete_all()",
    "SELECT nextval('rw_seq') > 0",
    "WITH d AS (DELETE FROM victim RETURNING 1) SELECT true",
    "DELETE FROM victim",
    "COMMIT",
    "DELETE FROM victim",  # right after the COMMIT above
    "SET default_transaction_read_only = off",
    "DELETE FROM victim",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "ROLLBACK",
    "BEGIN READ WRITE",
    "DELETE FROM victim",
    "SET TRANSACTION READ WRITE",
    "SELECT rw_delete_all()",
    "DO $$ BEGIN DELETE FROM victim; END $$",
    "CALL rw_commit_and_delete()",
    "RESET ALL",
    "DISCARD ALL",
    "DELETE FROM victim",
    "CREATE TABLE rw_new AS SELECT 1",
    "SELECT true FROM victim FOR UPDATE",
]


@pytest.fixture
async def victim(pg_server: PgServer) -> AsyncIterator[Secret]:
    """A throwaway database with a table, a sequence and functions that write; its URL."""
    admin = pg_server.admin_dsn.reveal()
    name = f"rw_readonly_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin) if "://" in admin else None
    url = (
        urlunsplit(parts._replace(path=f"/{name}"))
        if parts is not None
        else psycopg.conninfo.make_conninfo(admin, dbname=name)
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE victim (id int PRIMARY KEY)")
        await conn.execute(f"INSERT INTO victim SELECT generate_series(1, {ROWS})")
        await conn.execute("CREATE SEQUENCE rw_seq")
        await conn.execute(
            "CREATE FUNCTION rw_delete_all() RETURNS boolean LANGUAGE sql AS "
            "$$ DELETE FROM victim; SELECT true $$"
        )
        await conn.execute(
            "CREATE PROCEDURE rw_commit_and_delete() LANGUAGE plpgsql AS "
            "$$ BEGIN COMMIT; DELETE FROM victim; END $$"
        )
    try:
        yield Secret(url)
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def state(url: Secret) -> tuple[int, int, bool]:
    """Rows left, the sequence's position, and whether a table was created."""
    async with await psycopg.AsyncConnection.connect(url.reveal()) as conn:
        rows = await (await conn.execute("SELECT count(*) FROM victim")).fetchone()
        seq = await (
            await conn.execute("SELECT last_value + (CASE WHEN is_called THEN 1 ELSE 0 END) FROM rw_seq")
        ).fetchone()
        made = await (await conn.execute("SELECT to_regclass('rw_new') IS NOT NULL")).fetchone()
    assert rows is not None and seq is not None and made is not None
    return int(rows[0]), int(seq[0]), bool(made[0])


async def test_verify_checks_cannot_write(victim: Secret) -> None:
    before = await state(victim)
    # judge=False: the SQL judge would refuse most of these before they run; this is the layer beneath it.
    measured = await verify.measure(victim, SNEAKY_WRITES, connect_timeout=10, judge=False)
    count("read_only:verify checks that try to write", len(SNEAKY_WRITES))
    assert await state(victim) == before == (ROWS, 1, False)
    assert measured.tables[("public", "victim")].rows == ROWS
    for sql in ("SELECT rw_delete_all()", "DELETE FROM victim", "CALL rw_commit_and_delete()"):
        outcome = measured.checks[sql]
        assert not outcome.passed
        assert outcome.error, sql  # reported as the check's error, not swallowed


@pytest.mark.parametrize("sql", list(dict.fromkeys(SNEAKY_WRITES)))
async def test_peek_query_cannot_write(victim: Secret, sql: str) -> None:
    count("read_only:peek queries that try to write")
    before = await state(victim)
    with contextlib.suppress(peek.PeekError):  # refused is the clear outcome; either way, no write
        await peek.query(victim, sql, lens="test", connect_timeout=10)
    assert await state(victim) == before == (ROWS, 1, False)


async def test_peek_cli_leaves_the_data_alone(shared: Shared, tmp_path: Path) -> None:
    """Through the sandbox's endpoint: a write in peek is refused, main's rows stay."""
    app = shared.make_app(tmp_path)

    async def users() -> int:
        async with await psycopg.AsyncConnection.connect(shared.direct) as conn:
            row = await (await conn.execute('SELECT count(*) FROM "User"')).fetchone()
        assert row is not None
        return int(row[0])

    before = await users()
    for sql in ('DELETE FROM "User"', 'WITH d AS (DELETE FROM "User" RETURNING 1) SELECT true FROM d'):
        result = await shared.cli(app, "peek", "--yes", "--at", "35 minutes ago", "--sql", sql)
        count("read_only:peek CLI writes")
        assert result.code == 2, result.stderr
        assert "read-only" in result.stderr
    assert await users() == before
