"""Verification against a real PostgreSQL: counts, estimates, checks, read-only enforcement, scale, errors."""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from recovery_wizard.recovery import verify
from recovery_wizard.recovery.verify import (
    CheckOutcome,
    Measurement,
    TableCount,
    VerifyError,
    compare,
    is_read_only_sql,
    measure,
    truthy,
)
from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer

ENOUGH_USERS = 'SELECT count(*) >= 10 FROM "User"'
BIG = 300_000

# Both sides share the app's schema; the migration that hit "damaged" recreated "User" (2 of 18 rows left),
# dropped "Session" and added "Feature". "User" is never analysed (autovacuum off): its estimate is unknown.
COMMON = """
CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL, "createdAt" timestamptz DEFAULT now())
    WITH (autovacuum_enabled = false);
CREATE TABLE "Post" (id serial PRIMARY KEY, "authorId" int NOT NULL, title text)
    WITH (autovacuum_enabled = false);
INSERT INTO "Post" ("authorId", title) SELECT g % 2 + 1, 'post ' || g FROM generate_series(1, 40) AS g;
CREATE TABLE "Event" (id bigint, kind text) WITH (autovacuum_enabled = false);
INSERT INTO "Event" SELECT g, 'view' FROM generate_series(1, 300000) AS g;
ANALYZE "Event";
CREATE TABLE _prisma_migrations (id text PRIMARY KEY, migration_name text NOT NULL);
CREATE SCHEMA audit;
CREATE TABLE audit.log (id int, note text);
INSERT INTO audit.log SELECT g, 'n' FROM generate_series(1, 5) AS g;
"""
RESTORED = """
INSERT INTO "User" (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 18) AS g;
INSERT INTO _prisma_migrations VALUES ('1', 'init'), ('2', 'posts'), ('3', 'events');
CREATE TABLE "Session" (id int, "userId" int);
INSERT INTO "Session" SELECT g, g FROM generate_series(1, 12) AS g;
"""
DAMAGED = """
INSERT INTO "User" (email) VALUES ('alex@example.com'), ('sam@example.com');
INSERT INTO _prisma_migrations VALUES ('1', 'init'), ('2', 'posts'), ('3', 'events'), ('4', 'recreate_user');
CREATE TABLE "Feature" (id int);
INSERT INTO "Feature" VALUES (1), (2), (3);
"""


@dataclass
class Databases:
    server: PgServer
    damaged: Secret
    restored: Secret
    scale: Secret
    names: dict[str, str]

    def admin(self, kind: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.server.dsn(self.names[kind]), autocommit=True)

    def user_count(self, kind: str) -> int:
        with self.admin(kind) as conn:
            row = conn.execute('SELECT count(*) FROM "User"').fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture(scope="module")
def dbs(pg_server: PgServer) -> Iterator[Databases]:
    names = {kind: f"rw_verify_{kind}_{os.getpid()}" for kind in ("damaged", "restored", "scale")}
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    scale = "".join(f"CREATE TABLE t{i:03d} AS SELECT 1 AS id;" for i in range(200))
    for kind, script in (("damaged", COMMON + DAMAGED), ("restored", COMMON + RESTORED), ("scale", scale)):
        with psycopg.connect(pg_server.dsn(names[kind]), autocommit=True) as conn:
            conn.execute(script.encode())
    try:
        yield Databases(
            pg_server,
            Secret(pg_server.dsn(names["damaged"])),
            Secret(pg_server.dsn(names["restored"])),
            Secret(pg_server.dsn(names["scale"])),
            names,
        )
    finally:
        with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- counts ---------------------------------------------------------------------------------------------


async def test_measure_counts_small_tables_exactly_and_estimates_big_ones(dbs: Databases) -> None:
    m = await measure(dbs.restored, [])
    assert set(m.tables) == {
        ("audit", "log"),
        ("public", "Event"),
        ("public", "Post"),
        ("public", "Session"),
        ("public", "User"),
        ("public", "_prisma_migrations"),
    }
    assert m.tables[("public", "User")] == TableCount("public", "User", 18, True)
    assert m.tables[("public", "Post")] == TableCount("public", "Post", 40, True)
    assert m.tables[("audit", "log")] == TableCount("audit", "log", 5, True)
    event = m.tables[("public", "Event")]
    assert not event.exact and abs(event.rows - BIG) < BIG * 0.05
    assert m.checks == {} and m.notes == ()
    assert m.server_time.tzinfo is not None and abs((datetime.now(UTC) - m.server_time).total_seconds()) < 60


async def test_a_never_analysed_table_is_counted_even_when_estimates_are_asked_for(
    dbs: Databases,
) -> None:
    m = await measure(dbs.restored, [], exact_below=0)
    # "User" has reltuples = -1 (never analysed): an estimate would be a guess, so it is counted.
    assert m.tables[("public", "User")] == TableCount("public", "User", 18, True)
    assert not m.tables[("public", "Event")].exact
    # Raising the threshold counts the big table too.
    everything = await measure(dbs.restored, [], exact_below=10**9)
    assert everything.tables[("public", "Event")] == TableCount("public", "Event", BIG, True)


async def test_compare_lines_up_both_sides(dbs: Databases) -> None:
    damaged = await measure(dbs.damaged, [ENOUGH_USERS])
    restored = await measure(dbs.restored, [ENOUGH_USERS])
    v = compare(damaged, restored, [ENOUGH_USERS])
    keys = [(t.schema, t.table) for t in v.tables]
    assert keys == sorted(keys) and len(keys) == 7
    by_name = {t.table: t for t in v.tables}
    assert by_name["User"].delta == 16
    assert by_name["User"].damaged == TableCount("public", "User", 2, True)
    assert by_name["Post"].delta == 0
    assert by_name["_prisma_migrations"].delta == -1
    assert by_name["Session"].damaged is None and by_name["Session"].delta is None
    assert by_name["Feature"].restored is None and by_name["Feature"].delta is None
    assert by_name["Event"].delta is not None and not by_name["Event"].changed  # estimates, no real change
    assert v.ok and v.failed_checks == []
    assert v.checks[0].damaged is not None and not v.checks[0].damaged.passed
    summary = v.summary()
    assert summary.startswith("7 tables compared; ")
    assert "User: 2 → 18 rows" in summary and "1 of 1 checks passed" in summary
    assert "Session: only in the restored data (12 rows)" in summary
    assert "Feature: only on the damaged branch (3 rows)" in summary
    assert "1 more changed" in summary  # _prisma_migrations: 4 → 3
    data = v.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is True and data["compared"] is True
    user = next(t for t in data["tables"] if t["table"] == "User")
    assert user == {
        "schema": "public",
        "table": "User",
        "damaged": {"rows": 2, "exact": True},
        "restored": {"rows": 18, "exact": True},
        "delta": 16,
    }
    assert data["checks"] == [
        {
            "sql": ENOUGH_USERS,
            "passed": True,
            "damaged": {"value": "f", "passed": False, "error": None},
            "restored": {"value": "t", "passed": True, "error": None},
        }
    ]


# --- checks ---------------------------------------------------------------------------------------------


async def test_checks_pass_fail_and_error_independently(dbs: Databases) -> None:
    checks = [
        "SELEC 1",  # a syntax error first: the checks after it must still run
        ENOUGH_USERS,
        'SELECT count(*) FROM "User"',
        "SELECT 0",
        "SELECT NULL",
        'SELECT id FROM "User" WHERE false',
        "SELECT 'a%b' LIKE 'a%'",
        "SHOW default_transaction_read_only",
        "SELECT 1 FROM no_such_table",
    ]
    m = await measure(dbs.restored, checks, judge=False)  # the errors the database gives
    assert list(m.checks) == checks
    syntax = m.checks["SELEC 1"]
    assert syntax.value is None and not syntax.passed and syntax.error and "syntax error" in syntax.error
    assert m.checks[ENOUGH_USERS] == CheckOutcome("t", True, None)
    assert m.checks['SELECT count(*) FROM "User"'] == CheckOutcome("18", True, None)
    assert m.checks["SELECT 0"] == CheckOutcome("0", False, None)
    assert m.checks["SELECT NULL"] == CheckOutcome(None, False, None)
    assert m.checks['SELECT id FROM "User" WHERE false'] == CheckOutcome(None, False, None)
    assert m.checks["SELECT 'a%b' LIKE 'a%'"] == CheckOutcome("t", True, None)
    assert m.checks["SHOW default_transaction_read_only"] == CheckOutcome("on", True, None)
    missing = m.checks["SELECT 1 FROM no_such_table"]
    assert missing.error and "does not exist" in missing.error

    damaged = await measure(dbs.damaged, [ENOUGH_USERS])
    assert damaged.checks[ENOUGH_USERS] == CheckOutcome("f", False, None)
    v = compare(damaged, m, checks)
    assert not v.ok
    assert [c.sql for c in v.failed_checks] == [c for c in checks if not m.checks[c].passed]
    assert f"{len(checks) - len(v.failed_checks)} of {len(checks)} checks passed" in v.summary()


@pytest.mark.parametrize(
    "attempt",
    [
        ['DELETE FROM "User"'],
        ['SELECT 1; DELETE FROM "User"'],
        ['WITH d AS (DELETE FROM "User" RETURNING 1) SELECT count(*) FROM d'],
        ['TRUNCATE "User"'],
        ["SELECT nextval('\"User_id_seq\"')"],
        ['CREATE TABLE "Sneaky" (id int)'],
        # Try to escape: leave the transaction, turn read-only off, then write.
        ["COMMIT", "SET default_transaction_read_only = off", 'DELETE FROM "User"'],
        ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "COMMIT", 'DELETE FROM "User"'],
        [f"RELEASE SAVEPOINT {verify._SAVEPOINT}", 'DELETE FROM "User"'],
    ],
)
async def test_a_check_cannot_write(dbs: Databases, attempt: list[str]) -> None:
    m = await measure(dbs.restored, attempt, judge=False)  # the transaction beneath the SQL judge
    last = m.checks[attempt[-1]]
    assert not last.passed and last.error is not None
    assert (
        "read-only transaction" in last.error
        or "cannot insert multiple commands" in last.error
        or "ended the read-only transaction" in last.error
    ), last.error
    assert dbs.user_count("restored") == 18
    with dbs.admin("restored") as conn:
        row = conn.execute("SELECT to_regclass('\"Sneaky\"') IS NULL").fetchone()
    assert row == (True,)


async def test_without_pipeline_mode_checks_are_still_single_and_isolated(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq older than 14 has no pipeline mode: prepared statements keep the one-statement guarantee.
    monkeypatch.setattr(psycopg.capabilities, "has_pipeline", lambda check=False: False)
    checks = ["SELEC 1", 'SELECT 1; DELETE FROM "User"', "COMMIT", 'DELETE FROM "User"', ENOUGH_USERS]
    m = await measure(dbs.restored, checks, judge=False)
    assert m.tables[("public", "User")] == TableCount("public", "User", 18, True)
    errors = [m.checks[c].error or "" for c in checks[:4]]
    assert "syntax error" in errors[0]
    assert "cannot insert multiple commands" in errors[1]
    assert "ended the read-only transaction" in errors[2]
    assert "read-only transaction" in errors[3]
    assert m.checks[ENOUGH_USERS] == CheckOutcome("t", True, None)
    assert dbs.user_count("restored") == 18


async def test_a_check_that_ends_the_transaction_is_reported_and_the_rest_still_run(dbs: Databases) -> None:
    m = await measure(dbs.restored, ["COMMIT", ENOUGH_USERS], judge=False)
    assert m.checks["COMMIT"].error and "ended the read-only transaction" in m.checks["COMMIT"].error
    assert m.checks[ENOUGH_USERS].passed


async def test_a_set_inside_a_check_does_not_leak_into_the_next(dbs: Databases) -> None:
    m = await measure(
        dbs.restored,
        ["SET statement_timeout = 0", "SHOW statement_timeout"],
        statement_timeout_ms=1234,
        judge=False,
    )
    assert m.checks["SHOW statement_timeout"].value == "1234ms"


async def test_the_statement_timeout_stops_a_slow_check(dbs: Databases) -> None:
    # The check would sleep ten minutes: the error names the timeout, and the bound is only a hang guard (a
    # loaded machine takes seconds to connect and count, so a tight one would time the machine, not the code).
    started = time.monotonic()
    m = await measure(
        dbs.restored, ["SELECT pg_sleep(600)", ENOUGH_USERS], statement_timeout_ms=200, judge=False
    )
    assert time.monotonic() - started < 120
    slow = m.checks["SELECT pg_sleep(600)"]
    assert not slow.passed and slow.error and "statement timeout" in slow.error
    assert m.checks[ENOUGH_USERS].passed


async def test_a_locked_table_falls_back_to_estimates_with_a_note(dbs: Databases) -> None:
    with dbs.admin("restored") as locker:
        locker.execute("BEGIN")
        locker.execute('LOCK TABLE "Post" IN ACCESS EXCLUSIVE MODE')
        m = await measure(dbs.restored, [], statement_timeout_ms=300)
        locker.execute("ROLLBACK")
    assert not m.tables[("public", "Post")].exact
    assert any("statement timeout" in note for note in m.notes)


async def test_a_failing_chunk_is_counted_table_by_table(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = verify._count_query

    def poisoned(chunk: Any) -> Any:
        from psycopg import sql

        query = real(chunk)
        # A table that vanished between listing and counting breaks the whole chunk.
        return query + sql.SQL(", (SELECT count(*) FROM vanished)") if len(chunk) > 1 else query

    monkeypatch.setattr(verify, "_count_query", poisoned)
    m = await measure(dbs.restored, [])
    assert m.tables[("public", "User")] == TableCount("public", "User", 18, True)
    assert all(t.exact for key, t in m.tables.items() if key != ("public", "Event"))


# --- scale ----------------------------------------------------------------------------------------------


class ExecuteCounter:
    """Counts statements sent through psycopg's async cursors (pipelined ones share a round trip)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = psycopg.AsyncCursor.execute

        async def counting(cursor: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(cursor, *args, **kwargs)

        monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting)


async def test_two_hundred_tables_in_a_handful_of_statements(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = ExecuteCounter(monkeypatch)
    m = await measure(dbs.scale, [])
    assert len(m.tables) == 200
    assert all(t.rows == 1 and t.exact for t in m.tables.values())
    # begin, estimates, savepoint + counts (one pipeline), rollback to savepoint, rollback: not one per table.
    assert counter.calls <= 8


async def test_counts_are_chunked(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "COUNT_CHUNK", 64)
    counter = ExecuteCounter(monkeypatch)
    m = await measure(dbs.scale, [])
    assert sorted(m.tables) == [("public", f"t{i:03d}") for i in range(200)]
    assert all(t.rows == 1 and t.exact for t in m.tables.values())
    assert counter.calls <= 4 + 3 * 4  # four chunks of three statements each


# --- connecting -----------------------------------------------------------------------------------------

PLANTED = "s3cretPassw0rd-verify"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _all_text(error: BaseException) -> str:
    plain = "".join(traceback.format_exception(error))
    with_locals = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    return "\n".join([str(error), repr(error), getattr(error, "hint", ""), plain, with_locals])


async def test_an_unreachable_server_is_retried_then_refused_without_the_password() -> None:
    url = Secret(f"postgresql://alice:{PLANTED}@127.0.0.1:{_free_port()}/neondb?sslmode=disable")
    started = time.monotonic()
    with pytest.raises(VerifyError) as info:
        await measure(url, [ENOUGH_USERS], connect_timeout=1.5)
    elapsed = time.monotonic() - started
    # Retried for the whole budget given, then given up: far sooner than the 30 s default budget, whatever
    # the machine's load (a tight upper bound would time the machine).
    assert 1.2 < elapsed < 20
    message = str(info.value)
    assert "postgresql://alice:****@127.0.0.1" in message
    assert "attempts" in message and "attempt in" not in message
    assert "starting up" in message and "cold start" in message
    assert info.value.hint
    assert PLANTED not in _all_text(info.value)


async def test_a_key_value_conninfo_password_is_masked_too() -> None:
    url = Secret(f"host=127.0.0.1 port={_free_port()} user=alice password={PLANTED} dbname=neondb")
    with pytest.raises(VerifyError) as info:
        await measure(url, [], connect_timeout=0.3)
    assert "password=****" in str(info.value)
    assert PLANTED not in _all_text(info.value)


async def test_a_missing_database_fails_at_once(dbs: Databases) -> None:
    from psycopg.conninfo import make_conninfo

    url = Secret(make_conninfo(dbs.server.dsn("postgres"), dbname="no_such_database_here"))
    with pytest.raises(VerifyError, match="does not exist") as info:
        await measure(url, [], connect_timeout=60)
    # One attempt, not retried until the budget runs out: the message counts attempts only after retrying.
    assert "attempt" not in str(info.value)


async def test_an_invalid_connection_string_is_refused() -> None:
    with pytest.raises(VerifyError, match="not valid"):
        await measure(Secret("host=x port=5432 = oops"), [], connect_timeout=1)


async def test_checks_must_be_a_list_not_one_string(dbs: Databases) -> None:
    with pytest.raises(TypeError):
        await measure(dbs.restored, ENOUGH_USERS)


# --- comparing without a database -----------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)


def test_compare_without_a_damaged_side() -> None:
    restored = Measurement(
        {("public", "User"): TableCount("public", "User", 18, True)},
        {"SELECT 1": CheckOutcome("1", True, None)},
        NOW,
    )
    v = compare(None, restored, ["SELECT 1", "SELECT 2"])
    assert not v.compared and v.tables[0].damaged is None and v.tables[0].delta is None
    assert v.checks[0].damaged is None
    assert v.checks[1].restored.error and "not run" in v.checks[1].restored.error
    assert not v.ok and [c.sql for c in v.failed_checks] == ["SELECT 2"]
    assert v.summary() == "1 table measured (nothing to compare); 1 of 2 checks passed"
    assert json.dumps(v.to_dict())


def test_no_checks_is_ok_and_said() -> None:
    same = Measurement({("public", "User"): TableCount("public", "User", 18, True)}, {}, NOW)
    v = compare(same, same, [])
    assert v.ok and v.summary() == "1 table compared; no row-count differences; no checks"


def test_estimate_noise_is_not_a_change_but_a_real_drop_is() -> None:
    def side(rows: int, exact: bool) -> Measurement:
        return Measurement({("public", "Event"): TableCount("public", "Event", rows, exact)}, {}, NOW)

    assert "no row-count differences" in compare(side(300_000, False), side(299_500, False), []).summary()
    assert (
        "Event: ~100,000 → ~300,000 rows" in compare(side(100_000, False), side(300_000, False), []).summary()
    )
    assert "Event: 299,999 → 300,000 rows" in compare(side(299_999, True), side(300_000, True), []).summary()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("t", True),
        ("true", True),
        ("TRUE", True),
        ("on", True),
        ("1", True),
        ("18", True),
        ("-2.5", True),
        ("f", False),
        ("false", False),
        ("0", False),
        ("0.000", False),
        ("NaN", False),
        ("", False),
        ("hello", False),
        (None, False),
    ],
)
def test_truthy(value: str | None, expected: bool) -> None:
    assert truthy(value) is expected


# --- the syntactic guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        'select count(*) >= 10 from "User"',
        "SELECT 1;",
        "  SELECT 1 ;  -- done",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT max(n) FROM r",
        "VALUES (1), (2)",
        'TABLE "User"',
        "SELECT ';' AS semicolon",
        "SELECT 'a; DROP TABLE x'",
        "SELECT 'it''s; fine'",
        "SELECT E'it\\'s; fine'",
        "SELECT $$; DELETE FROM t$$",
        "SELECT $tag$ ; DROP TABLE x; $tag$",
        'SELECT "delete", "update" FROM t',
        "SELECT 1 /* ; DELETE FROM t; /* nested */ still comment */",
        "SELECT 1 -- ; DELETE FROM t",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT $1",
        "SELECT 1;;",  # empty statements are nothing to PostgreSQL
    ],
)
def test_read_only_sql(sql: str) -> None:
    assert is_read_only_sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        ";",
        "-- only a comment",
        "SELECT 1; DROP TABLE x",
        'DELETE FROM "User"',
        "UPDATE t SET a = 1",
        "INSERT INTO t VALUES (1)",
        "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
        "TRUNCATE t",
        "DROP TABLE t",
        "CREATE TABLE t (id int)",
        "COMMIT",
        "CALL p()",
        "DO $$ BEGIN END $$",
        "COPY t FROM STDIN",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u",
        "WITH a AS (SELECT 1) DELETE FROM t",
        "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1",
        "explain analyse select 1",
        "EXPLAIN DELETE FROM t",
        "SELECT * INTO copy_of_t FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t FOR SHARE",
        "SELECT * FROM t FOR KEY SHARE",
        "SELECT 'unterminated",
        'SELECT "unterminated',
        "SELECT 1 /* unterminated",
        "SELECT $$ unterminated",
        "SELECT E'\\''; DELETE FROM t; --'",
        # Not SELECTs, harmless or not: a check is one SELECT.
        "SHOW server_version",
        "EXPLAIN SELECT 1",
        "EXPLAIN (FORMAT JSON) SELECT 1",
    ],
)
def test_not_read_only_sql(sql: str) -> None:
    assert not is_read_only_sql(sql)


async def test_a_check_the_judge_refuses_is_never_sent(dbs: Databases) -> None:
    """Checks re-read from a journal (resume) were never judged by a plan: measure judges them itself.

    The same check with the judge off shows what it would do: end another live session.
    """
    kill = (
        "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE application_name = 'rw-app'"
    )

    def app_session() -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(dbs.restored.reveal(), autocommit=True, application_name="rw-app")

    with app_session() as app:
        m = await measure(dbs.restored, [kill, ENOUGH_USERS])
        outcome = m.checks[kill]
        assert not outcome.passed and outcome.error and outcome.error.startswith("not run:")
        assert "pg_terminate_backend()" in outcome.error
        assert m.checks[ENOUGH_USERS].passed
        assert app.execute("SELECT 1").fetchone() == (1,)  # the app's session is alive

    with app_session() as app:
        await measure(dbs.restored, [kill], judge=False)
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")  # read-only alone did not stop it
