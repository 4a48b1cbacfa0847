"""What the merge needs to know about a database's tables, read from the system catalogs in one pass.

Keys, unique indexes, foreign keys, check constraints, identity/serial sequences and generated columns:
all of it comes from ``pg_catalog`` (not ``information_schema``, which hides objects the role does not own
and cannot tell a unique index from a unique constraint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

# Our own ledger lives here (see apply.py); it is never diffed or merged.
LEDGER_SCHEMA: Final = "recovery_wizard"
_SYSTEM_SCHEMAS: Final = ("pg_catalog", "information_schema", "pg_toast", LEDGER_SCHEMA)

TableName = tuple[str, str]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): usable in a cast
    not_null: bool
    has_default: bool
    identity: str  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    generated: bool  # GENERATED ALWAYS AS (…) STORED: never written
    hashable: bool = False  # the type (or a domain's base type) has a default hash operator class


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    parent: TableName
    parent_columns: tuple[str, ...]
    deferrable: bool


@dataclass
class Table:
    schema: str
    name: str
    columns: dict[str, Column]  # in attnum order
    key: tuple[str, ...]  # the primary key, else a unique not-null key; () when neither
    key_kind: str  # "primary key" | "unique key" | ""
    uniques: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (index name, columns)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, boolean expression)
    sequences: dict[str, str] = field(default_factory=dict)  # column -> sequence (serial or identity)

    @property
    def ident(self) -> TableName:
        return (self.schema, self.name)

    @property
    def label(self) -> str:
        return label(self.ident)


def label(name: TableName) -> str:
    return f"{name[0]}.{name[1]}"


_TABLES_SQL: Final = """
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL (%(system)s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast%%'
ORDER BY n.nspname, c.relname
"""

_COLUMNS_SQL: Final = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       a.attidentity::text, a.attgenerated::text <> '',
       pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname),
       EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
               WHERE am.amname = 'hash' AND oc.opcdefault
                 AND oc.opcintype = coalesce(nullif(ty.typbasetype, 0), a.atttypid))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type ty ON ty.oid = a.atttypid
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# Unique indexes without expressions or predicates (those cannot be checked by column equality).
_INDEXES_SQL: Final = """
SELECT i.indrelid, ic.relname, i.indisprimary,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[]
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%(oids)s) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indisvalid AND NOT (0 = ANY(i.indkey))
ORDER BY i.indrelid, NOT i.indisprimary, ic.relname
"""

_CONSTRAINTS_SQL: Final = """
SELECT con.conrelid, con.conname, con.contype::text, con.condeferrable,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[],
       pn.nspname, pc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[],
       pg_get_constraintdef(con.oid)
FROM pg_constraint con
LEFT JOIN pg_class pc ON pc.oid = con.confrelid LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.conrelid = ANY(%(oids)s) AND con.contype IN ('f', 'c')
ORDER BY con.conrelid, con.conname
"""


def _check_expression(definition: str) -> str:
    # pg_get_constraintdef gives "CHECK ((expr))" possibly followed by " NOT VALID" / " NO INHERIT".
    body = definition.strip()
    for suffix in (" NOT VALID", " NO INHERIT"):
        if body.endswith(suffix):
            body = body[: -len(suffix)]
    return body[len("CHECK ") :] if body.startswith("CHECK ") else body


async def read_catalog(conn: psycopg.AsyncConnection[Any]) -> dict[TableName, Table]:
    """Every user table of the connected database, with what the merge needs to know about it."""
    cur = conn.cursor()
    await cur.execute(_TABLES_SQL, {"system": list(_SYSTEM_SCHEMAS)})
    by_oid: dict[int, Table] = {
        oid: Table(schema, name, {}, (), "") for oid, schema, name in await cur.fetchall()
    }
    if not by_oid:
        return {}
    oids = list(by_oid)
    await cur.execute(_COLUMNS_SQL, {"oids": oids})
    for (
        oid,
        name,
        type_,
        not_null,
        has_default,
        identity,
        generated,
        sequence,
        hashable,
    ) in await cur.fetchall():
        table = by_oid[oid]
        table.columns[name] = Column(name, type_, not_null, has_default, identity, generated, hashable)
        if sequence:
            table.sequences[name] = sequence
    await cur.execute(_INDEXES_SQL, {"oids": oids})
    for oid, index, primary, columns in await cur.fetchall():
        table = by_oid[oid]
        cols = tuple(columns)
        table.uniques.append((index, cols))
        if primary and not table.key:
            table.key, table.key_kind = cols, "primary key"
    for table in by_oid.values():
        if not table.key:
            for _, cols in table.uniques:
                if all(table.columns[c].not_null for c in cols):
                    table.key, table.key_kind = cols, "unique key"
                    break
    await cur.execute(_CONSTRAINTS_SQL, {"oids": oids})
    for oid, name, kind, deferrable, columns, pschema, pname, pcolumns, definition in await cur.fetchall():
        table = by_oid[oid]
        if kind == "f":
            table.foreign_keys.append(
                ForeignKey(name, tuple(columns), (pschema, pname), tuple(pcolumns), bool(deferrable))
            )
        else:
            table.checks.append((name, _check_expression(definition)))
    return {t.ident: t for t in by_oid.values()}
