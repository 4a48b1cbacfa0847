"""Which data the damaged branch holds that a restore to an earlier moment loses.

Rows created or updated after the restore point are writes the restored branch will not have (a customer
who signed up again after the incident, an order placed since). Apps built with Prisma, Rails, Django and
the like stamp rows with ``createdAt``/``updatedAt`` (or ``created_at``/``updated_at``); counting rows whose
newest stamp is after the moment gives the incident record a concrete list to re-enter or reconcile.
Deletions and tables without such columns cannot be seen this way; the record says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recovery_wizard.redact import Secret, mask_url, redact

STAMP_COLUMNS = ("createdAt", "updatedAt", "created_at", "updated_at", "inserted_at", "modified_at")


@dataclass(frozen=True)
class LostRows:
    schema: str
    table: str
    columns: tuple[str, ...]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "table": self.table, "columns": list(self.columns), "rows": self.rows}


async def lost_writes(url: Secret, since: datetime, *, statement_timeout_ms: int = 30_000) -> list[LostRows]:
    """Per table with timestamp columns: rows on the damaged side stamped after ``since``."""
    # Imported here: the wizard's first screen must not wait for psycopg (start-up time).
    import psycopg
    from psycopg import sql

    try:
        conn = await psycopg.AsyncConnection.connect(url.reveal(), autocommit=True, connect_timeout=30)
    except psycopg.OperationalError as exc:
        raise psycopg.OperationalError(
            redact(f"could not connect to {mask_url(url.reveal())}: {exc}")
        ) from None
    async with conn:
        await conn.execute("SET default_transaction_read_only = on")
        await conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(statement_timeout_ms)))
        cur = await conn.execute(
            """
            SELECT c.table_schema, c.table_name, array_agg(c.column_name::text ORDER BY c.column_name)
              FROM information_schema.columns c
              JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE t.table_type = 'BASE TABLE'
               AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
               AND c.column_name = ANY(%s)
               AND c.data_type IN ('timestamp without time zone', 'timestamp with time zone', 'date')
             GROUP BY 1, 2 ORDER BY 1, 2
            """,
            (list(STAMP_COLUMNS),),
        )
        tables = [(str(s), str(t), tuple(str(c) for c in cols)) for s, t, cols in await cur.fetchall()]
        if not tables:
            return []
        # With the session in UTC, ::timestamptz reads naive timestamps (Prisma's TIMESTAMP(3)) as UTC, and
        # makes mixed column types comparable in one GREATEST.
        await conn.execute("SET TIME ZONE 'UTC'")
        counts = [
            sql.SQL("(SELECT count(*) FROM {}.{} WHERE GREATEST({}) > {})").format(
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.SQL(", ").join(sql.SQL("{}::timestamptz").format(sql.Identifier(c)) for c in columns),
                sql.Literal(since),
            )
            for schema, table, columns in tables
        ]
        row_cur = await conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(counts))
        row = await row_cur.fetchone()
    assert row is not None
    return [
        LostRows(schema, table, columns, int(count))
        for (schema, table, columns), count in zip(tables, row, strict=True)
        if int(count)
    ]


def recommend_strategy(lost: Sequence[LostRows | Mapping[str, Any]]) -> str | None:
    """``"merge-back"`` when the damaged branch took writes after the moment, else None (restore whole).

    A whole-branch restore (new branch or in place) loses those writes; a merge brings back only the rows
    lost and keeps them. ``lost`` is what :func:`lost_writes` found (or its ``to_dict()`` form, as the
    journal and the ``--json`` result hold it). The wizard's "What do you want to do with it?" screen and
    the CLI's warning call this.
    """
    rows = sum(r.rows if isinstance(r, LostRows) else int(r.get("rows", 0)) for r in lost)
    return "merge-back" if rows > 0 else None
