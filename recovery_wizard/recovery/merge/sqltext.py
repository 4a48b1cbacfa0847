"""SQL text shared by the merge modules: identifiers, row expressions, and how many bytes a result moved.

Identifiers are quoted by PostgreSQL's one rule (double quotes, doubled inside) rather than with
``psycopg.sql`` objects: the merge builds many statements from catalog names, and plain strings keep them
readable and loggable. Values never go into SQL text: they travel as parameters (text arrays cast to the
column's type, which round-trips every PostgreSQL type the way COPY's text format does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from psycopg.pq.abc import PGresult

    from recovery_wizard.recovery.merge.catalog import TableName


# Values travel as text between the two sides (keys compared, past rows cast back on live), and a value's
# text depends on session settings: the same timestamptz prints differently under two TimeZones. Every
# merge connection speaks the same dialect, whatever each branch's defaults are.
SESSION_SETTINGS: Final = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
)


def session_sql(local: bool = False) -> list[str]:
    scope = "SET LOCAL" if local else "SET"
    return [f"{scope} {name} = '{value}'" for name, value in SESSION_SETTINGS]


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qt(table: TableName) -> str:
    return f"{qi(table[0])}.{qi(table[1])}"


def row_text(columns: Iterable[str], alias: str = "t") -> str:
    """The row's text over ``columns`` (same text on both sides when the types agree)."""
    return "ROW(" + ", ".join(f"{alias}.{qi(c)}" for c in columns) + ")::text"


def unnest_text(columns: Sequence[str], types: Sequence[str], alias: str = "r") -> str:
    """``(SELECT c1::type1 AS c1, … FROM unnest(%s::text[], …) AS u(c1, …)) alias``: rows sent as text arrays."""
    inner = ", ".join(f"u.{qi(c)}::{t} AS {qi(c)}" for c, t in zip(columns, types, strict=True))
    arrays = ", ".join("%s::text[]" for _ in columns)
    names = ", ".join(qi(c) for c in columns)
    return f"(SELECT {inner}, u.ord FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ord)) {alias}"


def transpose(rows: Sequence[Sequence[str | None]], width: int) -> list[list[str | None]]:
    """Row tuples to one list per column: how ``unnest_text`` takes them."""
    return [[row[i] for row in rows] for i in range(width)]


def wire_bytes(result: PGresult | None) -> int:
    """About what a result cost on the wire: every value's bytes, its length word, and each row's header."""
    if result is None:
        return 0
    rows, fields = result.ntuples, result.nfields
    total = rows * (7 + 4 * fields)
    for r in range(rows):
        for c in range(fields):
            value = result.get_value(r, c)
            total += len(value) if value is not None else 0
    return total
