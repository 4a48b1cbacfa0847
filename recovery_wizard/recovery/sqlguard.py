"""Is this SQL fit to run as a check, a canary or a peek? Judged by PostgreSQL's own grammar.

Checks run in a read-only, time-limited transaction (``verify``, ``peek``), and that is the guarantee
against writes to tables. It is not a guarantee against everything: ``pg_terminate_backend()`` ends the
app's session, ``pg_advisory_lock()`` blocks it, ``set_config()`` or ``dblink()`` reach past the
transaction, all from a "read-only" SELECT. So before anything connects, the SQL is parsed with libpg_query
(``pglast``: PostgreSQL's parser itself, so a string literal, a dollar quote or a nested comment is read
exactly as the server will read it) and refused unless it is:

- exactly one SELECT statement (``VALUES`` and ``TABLE t`` are SELECTs to the grammar; a trailing ``;`` is
  fine), with no ``SELECT … INTO``, no ``FOR UPDATE/SHARE`` and no data-modifying CTE anywhere;
- calling no function on the deny-list below, wherever the call sits (target list, FROM, a subquery, a CTE).

A deny-list, not an allow-list: a check legitimately calls count, coalesce, now, date_trunc, jsonb
operators, the app's own functions; an allow-list of PostgreSQL's ~3,000 functions would refuse good checks
at 2 a.m. What the read-only transaction already stops (writing tables, DDL) is not the list's job; the list
names what a read-only transaction lets through: signalling or ending sessions, locks others wait on,
settings, waits, server files and large objects, sequences and transaction ids, notifications, replication,
statistics resets, and anything that runs SQL text or reaches another server (which this judge cannot read).
Names are compared case-folded and without their schema, so ``pg_catalog.PG_SLEEP`` counts too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from recovery_wizard.recovery.outcome import UsageError


@dataclass(frozen=True)
class Refusal:
    """Why SQL may not run as a check, and what to write instead."""

    reason: str
    instead: str


_ONLY_READ: Final = "Write one read-only SELECT (for a check or a canary: one whose first column is true while the data is healthy)"


@dataclass(frozen=True)
class _Denied:
    pattern: re.Pattern[str]
    does: str
    instead: str


def _names(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives))


# Each entry: function names (full match on the case-folded name), what calling them does, what to write
# instead. Kept in one table so that the refusal always says both.
_DENIED: Final[tuple[_Denied, ...]] = (
    _Denied(
        _names(
            r"pg_(terminate|cancel|signal)_backend",
            r"pg_log_backend_memory_contexts",
            r"pg_reload_conf",
            r"pg_rotate_logfile(_old)?",
            r"pg_promote",
            r"pg_wal_replay_(pause|resume|wait)",
            r"pg_switch_(wal|xlog)",
            r"pg_create_restore_point",
            r"pg_(start|stop)_backup|pg_backup_(start|stop)",
            r"pg_log_standby_snapshot",
            r"pg_checkpoint",
        ),
        "acts on the server or on other sessions (it can end the app's connections)",
        "To look at sessions, read pg_stat_activity, e.g. SELECT count(*) FROM pg_stat_activity",
    ),
    _Denied(
        _names(r"pg_(try_)?advisory_.*"),
        "takes an advisory lock that other sessions may wait on",
        "To see locks, read pg_locks",
    ),
    _Denied(
        _names(r"set_config", r"setseed"),
        "changes a setting",
        "To read a setting, use current_setting('name')",
    ),
    _Denied(
        _names(r"pg_sleep(_for|_until)?"),
        "waits, holding the check's snapshot open",
        "Leave the wait out: a check runs once, at the moment it is given",
    ),
    _Denied(
        _names(
            r"pg_read_(binary_)?file",
            r"pg_ls_.*",
            r"pg_stat_file",
            r"pg_file_.*",
            r"pg_current_logfile",
            r"lo_.*",
            r"lo(read|write|open|close|creat|import|export|unlink|tell|seek|truncate)(64)?",
        ),
        "reads or writes server files or large objects",
        "Query the app's tables instead",
    ),
    _Denied(
        _names(
            r"nextval",
            r"setval",
            r"txid_.*",
            r"pg_current_xact_id(_if_assigned)?",
            r"pg_notify",
            r"pg_logical_emit_message",
        ),
        "advances a sequence, takes a transaction id or notifies listeners",
        "To read a sequence, SELECT last_value FROM the_sequence",
    ),
    _Denied(
        _names(
            r"pg_(create|drop|copy)_.*replication_slot",
            r"pg_create_(physical|logical)_replication_slot",
            r"pg_replication_slot_advance",
            r"pg_logical_slot_.*",
            r"pg_replication_origin_.*",
            r"pg_sync_replication_slots",
        ),
        "creates, consumes or drops replication state",
        "To see replication, read pg_replication_slots or pg_stat_replication",
    ),
    _Denied(
        _names(
            r"pg_.*reset.*",
            r".*_reset",
            r"pg_(clear|restore|set)_(relation|attribute)_stats",
            r"pg_import_system_collations",
            r"pg_extension_config_dump",
            r"binary_upgrade_.*",
            r"pg_stat_force_next_flush",
        ),
        "resets or rewrites statistics or catalogs",
        "Read the statistics views (pg_stat_user_tables, …) instead",
    ),
    _Denied(
        _names(
            r"dblink.*",
            r"postgres_fdw_.*",
            r"http(_(get|post|put|patch|delete|head|set_curlopt|reset_curlopt))?",
            r"pg_background_.*",
            r"(query|cursor|database|schema)_to_xml(schema|_and_xmlschema)?",
            r"ts_stat",
            r"ts_rewrite",
        ),
        "runs SQL text or reaches another server, out of this judge's sight",
        "Write the query itself in the check",
    ),
)

# Schemas of extensions whose every function acts elsewhere (pg_cron schedules jobs, pg_net sends requests).
_DENIED_SCHEMAS: Final = frozenset({"cron", "net", "dblink"})

# Statement kinds a person might try, named the way they would write them.
_KINDS: Final = {
    "InsertStmt": "an INSERT",
    "UpdateStmt": "an UPDATE",
    "DeleteStmt": "a DELETE",
    "MergeStmt": "a MERGE",
    "ExplainStmt": "an EXPLAIN",
    "VariableShowStmt": "a SHOW",
    "VariableSetStmt": "a SET",
    "TransactionStmt": "a transaction command",
    "CallStmt": "a CALL",
    "DoStmt": "a DO block",
    "CopyStmt": "a COPY",
    "TruncateStmt": "a TRUNCATE",
    "CreateTableAsStmt": "a CREATE TABLE … AS",
}


def _kind(node: object) -> str:
    name = type(node).__name__
    return _KINDS.get(name, "a " + name.removesuffix("Stmt") + " statement")


def judge(sql: str) -> Refusal | None:
    """None when ``sql`` may run as a check; otherwise why not and what to write instead."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return Refusal(f"it does not parse as PostgreSQL ({exc})", "Try the query in psql first")
    if len(statements) != 1:
        return Refusal(
            "it is empty" if not statements else f"it holds {len(statements)} statements",
            _ONLY_READ,
        )
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        return Refusal(f"it is {_kind(statement)}, not a SELECT", _ONLY_READ)

    for node in _walk(statement):
        refusal = _node_refusal(node)
        if refusal is not None:
            return refusal
    return None


def _walk(root: object) -> Iterator[object]:
    """Every node under ``root`` (itself included), in no particular order.

    pglast's own ``Visitor.iterate`` descends only when told to through ``send()``; a plain stack is shorter.
    """
    from pglast import ast

    stack = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, tuple):
            stack.extend(value)
        elif isinstance(value, ast.Node):
            yield value
            stack.extend(getattr(value, member) for member in value)


def _node_refusal(node: object) -> Refusal | None:
    from pglast import ast

    if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
        return Refusal(f"it holds {_kind(node)} (a data-modifying WITH)", _ONLY_READ)
    if isinstance(node, ast.IntoClause):
        return Refusal("SELECT … INTO creates a table", "Leave out INTO. " + _ONLY_READ)
    if isinstance(node, ast.LockingClause):
        return Refusal("FOR UPDATE/SHARE locks rows the app may be writing", "Leave out the FOR clause")
    if isinstance(node, ast.FuncCall):
        return _function_refusal([str(getattr(part, "sval", "")) for part in node.funcname or ()])
    return None


def _function_refusal(qualified: list[str]) -> Refusal | None:
    parts = [p.casefold() for p in qualified]
    name = parts[-1]
    shown = ".".join(qualified) + "()"
    if len(parts) > 1 and parts[-2] in _DENIED_SCHEMAS:
        return Refusal(
            f"it calls {shown}, which acts outside the database's tables", "Query the app's tables instead"
        )
    for denied in _DENIED:
        if denied.pattern.fullmatch(name):
            return Refusal(f"it calls {shown}, which {denied.does}", f"{denied.instead}.")
    return None


def require_read_only(sql: str, *, what: str) -> None:
    """Raise a :class:`UsageError` (exit 2) naming what is wrong with ``sql`` as a ``what`` (check, canary…)."""
    refusal = judge(sql)
    if refusal is not None:
        raise UsageError(
            f"The {what} {sql!r} is refused as not read-only: {refusal.reason}.",
            hint=_sentence(refusal.instead),
        )


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."
