"""Conflicts found before anything is written: what the live schema and data would refuse.

One function, :func:`find_conflicts`, judges candidate rows (past rows to re-insert or to revert) against
the live branch over a connection that may be read-only: it is run once for the plan the user reviews, and
again inside the apply's transaction, where a different answer means the live branch changed under the merge.

- **not-null**: a column the live table requires (gained ``NOT NULL`` since, or a live-only column without a
  default) that the past row leaves empty.
- **unique**: a live row (with another key) already holds the row's value on a unique index: the same email
  signed up again.
- **foreign-key**: a reference to a parent row that is neither in live nor being re-inserted.
- **check**: a check constraint of the live table that the row fails (evaluated by a SELECT on the row's
  values; a check that cannot be evaluated that way is left to the database at apply, where it would roll
  the whole merge back, and the plan says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.merge.catalog import Table, TableName, label
from recovery_wizard.recovery.merge.sqltext import qi, qt, transpose, unnest_text

if TYPE_CHECKING:
    import psycopg

    from recovery_wizard.recovery.merge.diff import Key

Row = tuple[str | None, ...]  # a past row's values in PostgreSQL's text form, in ``columns`` order


@dataclass(frozen=True)
class Conflict:
    table: TableName
    key: Key
    kind: str  # "not-null" | "unique" | "foreign-key" | "check"
    constraint: str  # the index, constraint or column at stake
    detail: str  # one sentence; values masked where the column looks secret

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": label(self.table),
            "key": list(self.key),
            "kind": self.kind,
            "constraint": self.constraint,
            "detail": self.detail,
        }


@dataclass
class Candidates:
    """The rows of one table the merge means to write, and how (insert or update by key)."""

    table: Table  # the live table
    key: tuple[str, ...]
    columns: tuple[str, ...]  # written columns
    rows: dict[Key, Row]
    update: bool = False  # True: revert existing rows (the key is in live)
    unevaluated_checks: tuple[str, ...] = ()

    def values(self, key: Key, column: str) -> str | None:
        return self.rows[key][self.columns.index(column)]


async def _ords(
    conn: psycopg.AsyncConnection[Any], c: Candidates, keys: Sequence[Key], where: str
) -> list[int]:
    """Ordinals (1-based into ``keys``) of candidate rows matching ``where`` (over alias ``r``)."""
    types = [c.table.columns[col].type for col in c.columns]
    rows = [c.rows[k] for k in keys]
    query = f"SELECT r.ord FROM {unnest_text(c.columns, types)} WHERE {where}"
    cur = await conn.execute(query, transpose(rows, len(c.columns)))
    return [int(r[0]) for r in await cur.fetchall()]


async def find_conflicts(
    conn: psycopg.AsyncConnection[Any], candidates: dict[TableName, Candidates], secret: Any
) -> list[Conflict]:
    """Every conflict of every candidate row, as the live branch behind ``conn`` stands now.

    ``secret(column) -> bool`` says which values to mask in the details. Parent rows left out for a
    conflict of their own make their children's references conflict too (repeated until nothing changes).
    """
    found: dict[tuple[TableName, Key], Conflict] = {}

    def add(c: Candidates, key: Key, kind: str, constraint: str, detail: str) -> None:
        found.setdefault((c.table.ident, key), Conflict(c.table.ident, key, kind, constraint, detail))

    def show(c: Candidates, key: Key, columns: Sequence[str]) -> str:
        return ", ".join(f"{col}={'****' if secret(col) else c.values(key, col)!r}" for col in columns)

    for c in candidates.values():
        keys = list(c.rows)
        if not keys:
            continue
        live = c.table
        for col in live.columns.values():
            needed = col.not_null and not col.generated
            if not needed:
                continue
            if col.name not in c.columns:
                if not (col.has_default or col.identity) and not c.update:
                    for key in keys:
                        add(
                            c,
                            key,
                            "not-null",
                            col.name,
                            f"the live table requires {col.name}, which the past row does not have",
                        )
                continue
            for key in keys:
                if c.values(key, col.name) is None:
                    add(
                        c,
                        key,
                        "not-null",
                        col.name,
                        f"{col.name} is empty in the past row but required in live",
                    )
        key_match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in c.key)
        for index, columns in live.uniques:
            if set(columns) == set(c.key) or not set(columns) <= set(c.columns):
                continue
            match = " AND ".join(f"l.{qi(col)} = r.{qi(col)}" for col in columns)
            where = f"EXISTS (SELECT 1 FROM {qt(live.ident)} l WHERE {match} AND NOT ({key_match}))"
            for ord_ in await _ords(conn, c, keys, where):
                key = keys[ord_ - 1]
                add(c, key, "unique", index, f"a live row already holds {show(c, key, columns)} ({index})")
        unevaluated: list[str] = []
        for name, expression in live.checks:
            try:
                async with conn.transaction():
                    ords = await _ords(conn, c, keys, f"({expression}) IS FALSE")
            except Exception:  # a check over live-only columns or a function we cannot call here
                unevaluated.append(name)
                continue
            for ord_ in ords:
                add(
                    c,
                    keys[ord_ - 1],
                    "check",
                    name,
                    f"the row fails the live table's check {name}: {expression}",
                )
        c.unevaluated_checks = tuple(unevaluated)

    # Foreign keys, to a fixpoint: a parent left out takes its children with it.
    while True:
        before = len(found)
        for c in candidates.values():
            keys = [k for k in c.rows if (c.table.ident, k) not in found]
            if not keys:
                continue
            for fk in c.table.foreign_keys:
                if not set(fk.columns) <= set(c.columns):
                    continue
                parent_match = " AND ".join(
                    f"p.{qi(pc)} = r.{qi(cc)}" for cc, pc in zip(fk.columns, fk.parent_columns, strict=True)
                )
                not_null = " AND ".join(f"r.{qi(cc)} IS NOT NULL" for cc in fk.columns)
                where = f"{not_null} AND NOT EXISTS (SELECT 1 FROM {qt(fk.parent)} p WHERE {parent_match})"
                missing = [keys[o - 1] for o in await _ords(conn, c, keys, where)]
                if not missing:
                    continue
                parent = candidates.get(fk.parent)
                coming: set[tuple[str | None, ...]] = set()
                if parent is not None and not parent.update and set(fk.parent_columns) <= set(parent.columns):
                    for pkey in parent.rows:
                        if (fk.parent, pkey) not in found:
                            coming.add(tuple(parent.values(pkey, pc) for pc in fk.parent_columns))
                for key in missing:
                    ref = tuple(c.values(key, cc) for cc in fk.columns)
                    if ref not in coming:
                        add(
                            c,
                            key,
                            "foreign-key",
                            fk.name,
                            f"{show(c, key, fk.columns)} points to a {label(fk.parent)} row that is not in live "
                            "and is not being brought back",
                        )
        if len(found) == before:
            break
    return list(found.values())


async def fetch_past_rows(
    conn: psycopg.AsyncConnection[Any],
    table: TableName,
    key: tuple[str, ...],
    key_types: Sequence[str],
    columns: Sequence[str],
    keys: Sequence[Key],
    batch: int = 5000,
) -> dict[Key, Row]:
    """The past rows for ``keys``, as text, fetched by key in batches (an index lookup each)."""
    out: dict[Key, Row] = {}
    select = ", ".join(f"t.{qi(col)}::text" for col in columns)
    keycols = ", ".join(f"t.{qi(k)}::text" for k in key)
    match = " AND ".join(f"t.{qi(k)} = r.{qi(k)}" for k in key)
    for start in range(0, len(keys), batch):
        part = keys[start : start + batch]
        query = f"SELECT {keycols}, {select} FROM {qt(table)} t JOIN {unnest_text(key, key_types)} ON {match}"
        cur = await conn.execute(query, transpose(part, len(key)))
        for row in await cur.fetchall():
            out[tuple(row[: len(key)])] = tuple(row[len(key) :])
    return out
