"""After the merge: every row the plan re-inserted is in live, and every row added since is still there.

Checked by key on the live branch, read-only, in one snapshot; reverted rows are checked to hold their
past values. The outcome lists per table what came back and what is missing, for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.merge.diff import Key
from recovery_wizard.recovery.merge.plan import MergePlan
from recovery_wizard.recovery.merge.sqltext import qi, qt, transpose, unnest_text

if TYPE_CHECKING:
    import psycopg

    from recovery_wizard.recovery.merge.catalog import TableName


@dataclass
class TableCheck:
    table: str
    reinserted: int
    reinserted_missing: list[Key] = field(default_factory=list)
    added_kept: int = 0
    added_missing: list[Key] = field(default_factory=list)
    reverted: int = 0
    revert_expected: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.reinserted_missing and not self.added_missing and self.reverted == self.revert_expected
        )


@dataclass
class MergeCheck:
    tables: list[TableCheck]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tables": [
                {
                    "table": t.table,
                    "reinserted": t.reinserted,
                    "reinserted_missing": len(t.reinserted_missing),
                    "added_kept": t.added_kept,
                    "added_missing": len(t.added_missing),
                    "reverted": t.reverted,
                    "revert_expected": t.revert_expected,
                    "missing_sample": [list(k) for k in (t.reinserted_missing + t.added_missing)[:5]],
                }
                for t in self.tables
            ],
        }


async def _present(
    conn: psycopg.AsyncConnection[Any],
    table: TableName,
    key: tuple[str, ...],
    types: Sequence[str],
    keys: list[Key],
) -> set[Key]:
    if not keys:
        return set()
    cols = ", ".join(f"l.{qi(k)}::text" for k in key)
    match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in key)
    cur = await conn.execute(
        f"SELECT {cols} FROM {qt(table)} l JOIN {unnest_text(key, types)} ON {match}",
        transpose(keys, len(key)),
    )
    return {tuple(r) for r in await cur.fetchall()}


async def verify_after(conn: psycopg.AsyncConnection[Any], plan: MergePlan) -> MergeCheck:
    """Check the live branch behind ``conn`` (autocommit mode) against what ``plan`` promised."""
    checks: list[TableCheck] = []
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        for t in plan.tables:
            live = plan.diff.live[t.table]
            types = [live.columns[k].type for k in t.diff.key]
            wanted = list(t.insert)
            present = await _present(conn, t.table, t.diff.key, types, wanted)
            added = list(t.diff.added)
            kept = await _present(conn, t.table, t.diff.key, types, added)
            reverted = 0
            if t.revert:
                # A reverted row holds its past value in every written column (NULLs compared as equal).
                same = " AND ".join(f"l.{qi(c)} IS NOT DISTINCT FROM r.{qi(c)}" for c in t.columns)
                match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in t.diff.key)
                col_types = [live.columns[c].type for c in t.columns]
                cur = await conn.execute(
                    f"SELECT count(*) FROM {qt(t.table)} l JOIN {unnest_text(t.columns, col_types)} ON {match} "
                    f"WHERE {same}",
                    transpose(list(t.revert.values()), len(t.columns)),
                )
                row = await cur.fetchone()
                reverted = int(row[0]) if row else 0
            checks.append(
                TableCheck(
                    t.label,
                    reinserted=len(present),
                    reinserted_missing=[k for k in wanted if k not in present],
                    added_kept=len(kept),
                    added_missing=[k for k in added if k not in kept],
                    reverted=reverted,
                    revert_expected=len(t.revert),
                )
            )
    finally:
        await conn.execute("ROLLBACK")
    return MergeCheck(checks)
