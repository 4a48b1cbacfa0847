"""Is the data back? Measure the restored branch (and the damaged one) and compare, without writing a byte.

:func:`measure` connects to one branch over its DIRECT Postgres URL and takes, inside one read-only
transaction: the planner's row estimate for every user table, exact counts for the tables small enough to
count, and the result of each check (canary) SQL. :func:`compare` lines two measurements up.

Design, and why:

- **Read-only by construction, not by promise.** The session sets ``default_transaction_read_only = on``
  and the work runs in ``BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY``: PostgreSQL itself refuses any
  write, DDL or ``nextval()`` with its read-only error. REPEATABLE READ also gives every count and every check
  the same snapshot, so a damaged branch that the app is still writing to is measured at one instant.
- **Each check is isolated and single.** A check runs in its own savepoint, which is always rolled back
  (also after success, so a ``SET`` inside a check cannot leak into the next one), and through the extended
  query protocol (pipeline mode, or a prepared statement where libpq lacks pipelines), which refuses a
  second statement: ``SELECT 1; COMMIT; DELETE …`` cannot end the read-only transaction and write in a new
  one. A check that is a lone ``COMMIT``/``ROLLBACK`` is reported as an error and the transaction restarted.
  :mod:`sqlguard` is the early refusal (with PostgreSQL's grammar, and of functions a read-only
  transaction still lets through: signals, locks, settings); the database is the guarantee against writes.
- **Round trips dominate, so count in bulk.** Estimates for all tables come from ``pg_class`` in one query;
  exact counts for every table estimated below ``exact_below`` (or never analysed: ``reltuples = -1``) come
  from ONE ``SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), …`` per chunk of tables. 200 tables
  take a handful of round trips, whatever the network's latency. Big tables keep the planner's estimate and
  say so (``exact=False``): an exact count of a 50-million-row table is not worth a minute at 2 a.m.
- **A cold compute is not an error yet.** A Neon compute that scaled to zero needs a few seconds to start,
  so connection failures are retried with jittered exponential backoff up to ``connect_timeout`` overall;
  failures that waiting cannot fix (a wrong password, a database that does not exist) fail at once.
- **No secret in any output.** The URL stays a :class:`Secret` and is revealed only in the call to connect;
  messages name the target via :func:`mask_url`, and every database message passes through :func:`redact`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import Secret, mask_url, redact, register_secret

if TYPE_CHECKING:
    import psycopg
    from psycopg.pq.abc import PGresult
    from psycopg.sql import Composed


class VerifyError(RecoveryError):
    """A branch could not be reached or read (a check that fails is not an error: see ``CheckOutcome``)."""


# --- results --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int  # exact when ``exact``, else the planner's estimate
    exact: bool


@dataclass(frozen=True)
class CheckOutcome:
    value: str | None  # first column of the first row, in PostgreSQL's text form (None: NULL or no row)
    passed: bool  # true-ish: t/true/on/yes, or a non-zero number
    error: str | None  # the database's error message, redacted, if the check failed to run


@dataclass(frozen=True)
class Measurement:
    """One branch, at one snapshot."""

    tables: dict[tuple[str, str], TableCount]
    checks: dict[str, CheckOutcome]  # by SQL text
    server_time: datetime  # the transaction's start on the server (UTC): when the snapshot was taken
    # What could not be measured as asked (e.g. counts left as planner estimates), for a person to read.
    notes: tuple[str, ...] = ()


# --- measuring ------------------------------------------------------------------------------------------

# Planner estimates for every user table; partitioned tables sum their leaves (their own reltuples is -1).
# LEFT JOIN from a one-row relation so that a database without tables still returns the server time.
_ESTIMATES_SQL: Final = """
SELECT now() AS server_time, t.nspname, t.relname, t.estimate, t.readable
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT n.nspname, c.relname,
           CASE WHEN c.relkind = 'p' THEN (
                    SELECT CASE WHEN bool_or(leaf.reltuples < 0) THEN -1
                                ELSE coalesce(sum(leaf.reltuples), 0) END
                    FROM pg_partition_tree(c.oid) AS tree
                    JOIN pg_class AS leaf ON leaf.oid = tree.relid
                    WHERE tree.isleaf AND leaf.relkind = 'r')
                ELSE c.reltuples END::float8 AS estimate,
           has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') AS readable
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_(toast|temp_)'
) AS t ON true
ORDER BY t.nspname, t.relname
"""

# Tables per counting statement. PostgreSQL allows 1664 target columns; 400 keeps statements modest while
# a typical app's tables still fit in one round trip.
COUNT_CHUNK: Final = 400
_SAVEPOINT: Final = "recovery_wizard_verify"

# Backoff between connection attempts: a Neon cold start is a few seconds, so start small.
_BACKOFF_BASE: Final = 0.25
_BACKOFF_CAP: Final = 4.0
# Connection failures that waiting will not fix (matched case-insensitively in libpq's message).
_PERMANENT_CONNECT_ERRORS: Final = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "is not permitted to log in",
    "endpoint is disabled",
    "invalid sslmode",
    "invalid connection option",
)


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))


def _register_password(url: Secret) -> None:
    """Make :func:`redact` scrub the bare password of a key/value conninfo too (URLs are done by Secret)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(url.reveal()).get("password")
    except Exception:  # an invalid conninfo fails properly at connect time
        return
    if password:
        register_secret(str(password))


async def _connect(
    url: Secret, connect_timeout: float, application_name: str
) -> psycopg.AsyncConnection[Any]:
    import psycopg

    _register_password(url)
    target = mask_url(url.reveal())
    started = time.monotonic()
    deadline = started + connect_timeout
    attempts = 0
    last_error = "no attempt was made"
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            # libpq's own connect_timeout (whole seconds, at least 2) bounds one attempt; asyncio's bounds
            # the overall budget when that is shorter.
            async with asyncio.timeout(max(remaining, 0.05)):
                return await psycopg.AsyncConnection.connect(
                    url.reveal(),
                    autocommit=True,
                    connect_timeout=max(2, math.ceil(remaining)),
                    application_name=application_name,
                    # No server-side prepared statements: they break behind a transaction-mode pooler,
                    # should someone pass a pooled URL after all.
                    prepare_threshold=None,
                )
        except psycopg.ProgrammingError as exc:
            raise VerifyError(
                f"The connection string for {target} is not valid: {_one_line(str(exc))}.",
                hint="Use the branch's direct connection string, as Neon's console or API shows it.",
            ) from None
        except (psycopg.OperationalError, TimeoutError) as exc:
            last_error = _one_line(str(exc)) or "the attempt timed out"
            if any(marker in last_error.lower() for marker in _PERMANENT_CONNECT_ERRORS):
                raise VerifyError(
                    f"Could not connect to {target}: {last_error}.",
                    hint="Check the user, password and database name in the connection string; waiting "
                    "will not help with this one.",
                ) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        await asyncio.sleep(min(delay, remaining))
    elapsed = time.monotonic() - started
    raise VerifyError(
        f"Could not connect to {target} after {attempts} attempt{'s' if attempts != 1 else ''} in "
        f"{elapsed:.1f} s: {last_error}. If this is a Neon branch, its compute may still be starting up "
        "(a cold start usually takes a few seconds).",
        hint="Wait a moment and try again, or allow longer with a larger connect timeout. Check that the URL "
        "is the branch's direct (not pooled) one and that its endpoint is not suspended or disabled.",
    )


class _Session:
    """The read-only transaction on one connection, and the savepoint dance around each guarded query."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], statement_timeout_ms: int) -> None:
        from psycopg import capabilities, sql

        self.conn = conn
        self.pipelines = capabilities.has_pipeline()
        # One simple-protocol round trip: session defaults first, so that even a transaction someone else
        # starts on this connection (after a check's COMMIT) is read-only and bounded.
        self._begin = sql.SQL(
            "SET default_transaction_read_only = on; SET statement_timeout = {}; "
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        ).format(sql.Literal(max(int(statement_timeout_ms), 0)))

    async def begin(self) -> None:
        await self.conn.execute(self._begin)

    async def guarded(self, query: str | Composed) -> tuple[PGresult | None, Exception | None, bool]:
        """Run one statement in a savepoint that is then rolled back.

        Returns (result, error, ended): ``ended`` is True when the statement ended our transaction (a
        ``COMMIT``, or a ``RELEASE`` of our savepoint); the transaction has been restarted by then.
        """
        import psycopg
        from psycopg.pq import TransactionStatus

        cursor = self.conn.cursor()
        error: Exception | None = None
        try:
            if self.pipelines:
                # Pipeline mode always uses the extended protocol (one statement only) and sends the
                # savepoint and the query in one round trip.
                async with self.conn.pipeline():
                    await self.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                    await cursor.execute(query)
            else:
                await self.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                # A prepared statement also goes through the extended protocol. psycopg prepares only on a
                # connection with a threshold, and ours has none (see _connect): lend it one.
                self.conn.prepare_threshold = 0
                try:
                    await cursor.execute(query, prepare=True)
                finally:
                    self.conn.prepare_threshold = None
        except psycopg.Error as exc:
            if self.conn.broken or self.conn.closed:
                raise  # the connection itself is gone: nothing to isolate
            error = exc
        result = cursor.pgresult if error is None else None

        ended = False
        status = self.conn.info.transaction_status
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                await self.conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
            except psycopg.Error:
                if self.conn.broken or self.conn.closed:
                    raise
                ended = True  # our savepoint is gone: the statement released or replaced it
                await self.conn.execute("ROLLBACK")
                await self.begin()
        elif status == TransactionStatus.IDLE:
            ended = True
            await self.begin()
        else:
            raise psycopg.OperationalError(f"the connection is in an unexpected state ({status.name})")
        return result, error, ended


def _check_outcome(
    result: PGresult | None, error: Exception | None, ended: bool, encoding: str
) -> CheckOutcome:
    if ended:
        return CheckOutcome(
            None,
            False,
            "this check ended the read-only transaction (COMMIT, ROLLBACK or RELEASE are not allowed in a "
            "check); its result was discarded",
        )
    if error is not None:
        return CheckOutcome(None, False, redact(str(error).strip()) or type(error).__name__)
    value: str | None = None
    if result is not None and result.ntuples > 0 and result.nfields > 0:
        raw = result.get_value(0, 0)
        value = None if raw is None else bytes(raw).decode(encoding, errors="replace")
    return CheckOutcome(value, truthy(value), None)


_TRUE_WORDS: Final = frozenset({"t", "true", "on", "yes", "y"})


def truthy(value: str | None) -> bool:
    """A check passes on boolean true (``t``), ``true``/``on``/``yes``, or any non-zero number."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in _TRUE_WORDS:
        return True
    try:
        number = Decimal(text)
    except InvalidOperation:
        return False
    return not number.is_nan() and number != 0


def _count_query(chunk: Sequence[tuple[str, str]]) -> Composed:
    from psycopg import sql

    return sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(
            sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(schema, table))
            for schema, table in chunk
        )
    )


def _label(key: tuple[str, str]) -> str:
    return key[1] if key[0] == "public" else f"{key[0]}.{key[1]}"


async def _exact_counts(
    session: _Session, keys: Sequence[tuple[str, str]], notes: list[str]
) -> dict[tuple[str, str], int]:
    """Exact row counts for ``keys``, a chunk per round trip; tables that cannot be counted are left out."""
    from psycopg import errors

    counts: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), COUNT_CHUNK):
        chunk = keys[start : start + COUNT_CHUNK]
        result, error, _ = await session.guarded(_count_query(chunk))
        if result is not None and error is None:
            for index, key in enumerate(chunk):
                raw = result.get_value(0, index)
                if raw is not None:
                    counts[key] = int(bytes(raw))
            continue
        if isinstance(error, errors.QueryCanceled) or len(chunk) == 1:
            # A timeout: counting them one by one would only hit it again, table after table.
            names = ", ".join(_label(k) for k in chunk[:5]) + (" …" if len(chunk) > 5 else "")
            notes.append(
                f"Could not count {len(chunk)} table(s) exactly ({names}): "
                f"{_one_line(str(error))}; planner estimates are shown instead."
            )
            continue
        # Something in the chunk is unreadable (e.g. a table dropped meanwhile): count the rest one by one.
        for key in chunk:
            counts.update(await _exact_counts(session, [key], notes))
    return counts


async def measure(
    url: Secret,
    checks: Sequence[str],
    *,
    exact_below: int = 200_000,
    statement_timeout_ms: int = 30_000,
    connect_timeout: float = 30.0,
    application_name: str = "recovery-wizard verify",
    judge: bool = True,
) -> Measurement:
    """Row counts and check results of one branch, read in one read-only, repeatable-read transaction.

    Raises :class:`VerifyError` when the branch cannot be reached or read. A failing or erroring check is
    not an error: it is reported in :attr:`Measurement.checks`. So is a check that :mod:`sqlguard` refuses:
    it is never sent (checks re-read from a journal on resume were never judged by the plan). ``judge``
    is off only to test the read-only transaction beneath the judge.
    """
    import psycopg

    from recovery_wizard.recovery.sqlguard import judge as judge_sql

    if isinstance(checks, str):
        raise TypeError("checks must be a sequence of SQL strings, not one string")
    conn = await _connect(url, connect_timeout, application_name)
    target = mask_url(url.reveal())
    notes: list[str] = []
    try:
        session = _Session(conn, statement_timeout_ms)
        await session.begin()
        cursor = await conn.execute(_ESTIMATES_SQL)
        rows = await cursor.fetchall()
        server_time: datetime = rows[0][0].astimezone(UTC)
        estimates: dict[tuple[str, str], tuple[float, bool]] = {
            (schema, table): (float(estimate if estimate is not None else -1), bool(readable))
            for _, schema, table, estimate, readable in rows
            if schema is not None
        }
        wanted = [
            key
            for key, (estimate, readable) in estimates.items()
            if readable and (estimate < 0 or estimate < exact_below)
        ]
        exact = await _exact_counts(session, wanted, notes)
        tables: dict[tuple[str, str], TableCount] = {}
        for key, (estimate, readable) in estimates.items():
            if key in exact:
                tables[key] = TableCount(key[0], key[1], exact[key], True)
                continue
            if not readable:
                notes.append(f"No SELECT privilege on {_label(key)}: only the planner's estimate is shown.")
            elif estimate < 0:
                notes.append(
                    f"{_label(key)} was never analysed and could not be counted: its size is unknown."
                )
            tables[key] = TableCount(key[0], key[1], max(round(estimate), 0), False)

        outcomes: dict[str, CheckOutcome] = {}
        for check in dict.fromkeys(checks):  # each distinct check once, in the order given
            refusal = judge_sql(check) if judge else None
            if refusal is not None:
                outcomes[check] = CheckOutcome(None, False, f"not run: {refusal.reason}. {refusal.instead}")
                continue
            result, error, ended = await session.guarded(check)
            outcomes[check] = _check_outcome(result, error, ended, conn.info.encoding)
        await conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        raise VerifyError(
            f"Could not read {target}: {_one_line(str(exc))}.",
            hint="Nothing was changed (everything ran read-only). Try again; if the compute was just "
            "restarted or the network dropped, a second attempt usually works.",
        ) from None
    finally:
        await conn.close()
    return Measurement(tables, outcomes, server_time, tuple(notes))


# --- comparing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableComparison:
    schema: str
    table: str
    damaged: TableCount | None  # None: the table is missing on that side
    restored: TableCount | None

    @property
    def delta(self) -> int | None:
        if self.damaged is None or self.restored is None:
            return None
        return self.restored.rows - self.damaged.rows

    @property
    def label(self) -> str:
        return _label((self.schema, self.table))

    @property
    def changed(self) -> bool:
        """Missing on one side, or a different count; estimate-only differences under 1 % are noise."""
        if self.damaged is None or self.restored is None:
            return True
        delta = abs(self.restored.rows - self.damaged.rows)
        if self.damaged.exact and self.restored.exact:
            return delta != 0
        return delta > 0.01 * max(self.damaged.rows, self.restored.rows)


@dataclass(frozen=True)
class CheckComparison:
    sql: str
    damaged: CheckOutcome | None
    restored: CheckOutcome


@dataclass(frozen=True)
class Verification:
    tables: list[TableComparison]  # sorted by schema, table
    checks: list[CheckComparison]
    compared: bool = True  # False when there was no damaged side to compare with
    damaged_time: datetime | None = None
    restored_time: datetime | None = None

    @property
    def ok(self) -> bool:
        """Every check passed on the restored side (no checks: True; row counts are for a person to judge)."""
        return not self.failed_checks

    @property
    def failed_checks(self) -> list[CheckComparison]:
        return [check for check in self.checks if not check.restored.passed]

    def summary(self) -> str:
        """One line: ``18 tables compared; User: 2 → 18 rows; 1 of 1 checks passed``."""
        count = len(self.tables)
        noun = "table" if count == 1 else "tables"
        parts = [
            f"{count} {noun} compared" if self.compared else f"{count} {noun} measured (nothing to compare)"
        ]
        if self.compared:
            changed = sorted(
                (t for t in self.tables if t.changed),
                key=lambda t: (t.delta is not None, -abs(t.delta or 0), t.schema, t.table),
            )
            if not changed:
                parts.append("no row-count differences")
            parts += [_change(t) for t in changed[:3]]
            if len(changed) > 3:
                parts.append(f"{len(changed) - 3} more changed")
        if self.checks:
            passed = len(self.checks) - len(self.failed_checks)
            parts.append(f"{passed} of {len(self.checks)} checks passed")
        else:
            parts.append("no checks")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json`` and the journal (SQL and messages already redacted)."""
        return {
            "ok": self.ok,
            "compared": self.compared,
            "summary": redact(self.summary()),
            "damaged_time": self.damaged_time.isoformat() if self.damaged_time else None,
            "restored_time": self.restored_time.isoformat() if self.restored_time else None,
            "tables": [
                {
                    "schema": t.schema,
                    "table": t.table,
                    "damaged": _count_dict(t.damaged),
                    "restored": _count_dict(t.restored),
                    "delta": t.delta,
                }
                for t in self.tables
            ],
            "checks": [
                {
                    "sql": redact(c.sql),
                    "passed": c.restored.passed,
                    "damaged": _outcome_dict(c.damaged),
                    "restored": _outcome_dict(c.restored),
                }
                for c in self.checks
            ],
        }


def _rows(count: TableCount | None) -> str:
    if count is None:
        return "missing"
    return f"{'' if count.exact else '~'}{count.rows:,}"


def _change(t: TableComparison) -> str:
    if t.damaged is None and t.restored is not None:
        return f"{t.label}: only in the restored data ({_rows(t.restored)} rows)"
    if t.restored is None and t.damaged is not None:
        return f"{t.label}: only on the damaged branch ({_rows(t.damaged)} rows)"
    return f"{t.label}: {_rows(t.damaged)} → {_rows(t.restored)} rows"


def _count_dict(count: TableCount | None) -> dict[str, Any] | None:
    return None if count is None else {"rows": count.rows, "exact": count.exact}


def _outcome_dict(outcome: CheckOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {
        "value": None if outcome.value is None else redact(outcome.value),
        "passed": outcome.passed,
        "error": outcome.error,
    }


_NOT_RUN: Final = CheckOutcome(None, False, "this check was not run on the restored branch")


def compare(damaged: Measurement | None, restored: Measurement, checks: Sequence[str]) -> Verification:
    """Line up the two sides: every table of either, every check in ``checks`` (once each, in order)."""
    damaged_tables = damaged.tables if damaged is not None else {}
    keys = sorted(set(damaged_tables) | set(restored.tables))
    tables = [TableComparison(s, t, damaged_tables.get((s, t)), restored.tables.get((s, t))) for s, t in keys]
    compared_checks = [
        CheckComparison(
            sql,
            damaged.checks.get(sql) if damaged is not None else None,
            restored.checks.get(sql, _NOT_RUN),
        )
        for sql in dict.fromkeys(checks)
    ]
    return Verification(
        tables,
        compared_checks,
        compared=damaged is not None,
        damaged_time=damaged.server_time if damaged is not None else None,
        restored_time=restored.server_time,
    )


# --- the static guard -----------------------------------------------------------------------------------


def is_read_only_sql(sql: str) -> bool:
    """True when ``sql`` may run as a check: one SELECT calling nothing that signals, locks or writes.

    :mod:`recovery_wizard.recovery.sqlguard` judges it with PostgreSQL's own grammar; use its
    ``require_read_only`` where the refusal should say why and what to write instead.
    """
    from recovery_wizard.recovery.sqlguard import judge

    return judge(sql) is None
