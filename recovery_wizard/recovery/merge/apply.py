"""Apply a reviewed merge plan to the live branch: all of it in ONE transaction, or none of it.

Order inside the transaction (``SERIALIZABLE``):

1. The **ledger**: ``recovery_wizard.merge_ledger`` (created if missing, in the same transaction) gets the
   run's row first. It commits with the data or not at all, so a resumed run asks the ledger whether the
   merge committed (:func:`read_ledger`) and never applies twice; two runs at once serialise on its key,
   and the second finds the first's row. (A table rather than a comment: a comment holds one value and
   would be overwritten by the next merge.)
2. The **re-check**: the plan's conflicts are judged again on the live branch as it stands now. A planned
   row whose key reappeared, or that now conflicts, means someone wrote to live since the review: refused
   (rolled back), since that is not the plan the user approved.
3. ``SET CONSTRAINTS ALL DEFERRED``; rows inserted table by table in foreign-key order, each table in one
   ``INSERT … SELECT FROM unnest(…)`` (so a self-reference within the table is satisfied at the statement's
   end). A foreign key that points "forward" in that order (a cycle) is deferred when it is deferrable,
   else its columns are inserted as NULL and set by an UPDATE once every table is in.
4. Reverts (opted-in changed rows): one ``UPDATE … FROM unnest(…)`` per table.
5. Sequences (serial and identity) moved past the highest value now in their column, so the app's next
   insert does not collide with a re-inserted id. (``setval`` is not transactional: a rollback leaves the
   sequence higher, which costs some ids and breaks nothing.)
6. COMMIT. A serialization failure (someone wrote what we read) is retried once from the start; a second
   one refuses. Either way nothing is half-applied: PostgreSQL rolls the transaction back, also when the
   process is killed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.recovery.merge.catalog import LEDGER_SCHEMA, ForeignKey, label
from recovery_wizard.recovery.merge.conflicts import Candidates, find_conflicts
from recovery_wizard.recovery.merge.errors import MergeChangedError, MergeError, MergeRefusedError
from recovery_wizard.recovery.merge.plan import MergePlan, TablePlan, looks_secret
from recovery_wizard.recovery.merge.sqltext import qi, qt, transpose, unnest_text

if TYPE_CHECKING:
    import psycopg

LEDGER: Final = f"{qi(LEDGER_SCHEMA)}.merge_ledger"
_LEDGER_DDL: Final = (
    f"CREATE SCHEMA IF NOT EXISTS {qi(LEDGER_SCHEMA)}",
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (run_id text PRIMARY KEY, "
    "committed_at timestamptz NOT NULL DEFAULT now(), summary jsonb NOT NULL)",
)
ATTEMPTS: Final = 2


@dataclass
class MergeResult:
    run_id: str
    inserted: dict[str, int] = field(default_factory=dict)  # table label -> rows
    reverted: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)  # sequence -> value it was moved to
    attempts: int = 0
    already_applied: bool = False  # the ledger says an earlier attempt of this run committed

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "inserted": self.inserted,
            "reverted": self.reverted,
            "sequences": self.sequences,
            "attempts": self.attempts,
            "already_applied": self.already_applied,
        }


async def read_ledger(conn: psycopg.AsyncConnection[Any], run_id: str) -> MergeResult | None:
    """The committed merge of ``run_id``, or None when it never committed (safe to apply)."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{LEDGER_SCHEMA}.merge_ledger",))
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await conn.execute(f"SELECT summary FROM {LEDGER} WHERE run_id = %s", (run_id,))
    found = await cur.fetchone()
    if found is None:
        return None
    summary = found[0] if isinstance(found[0], dict) else json.loads(found[0])
    return MergeResult(
        run_id,
        inserted=dict(summary.get("inserted", {})),
        reverted=dict(summary.get("reverted", {})),
        sequences=dict(summary.get("sequences", {})),
        attempts=int(summary.get("attempts", 1)),
        already_applied=True,
    )


async def preflight(conn: psycopg.AsyncConnection[Any], plan: MergePlan) -> None:
    """Refuse, naming the table, what the connected role may not do; and cycles a second pass cannot break."""
    problems: list[str] = []
    for t in plan.tables:
        needs = (["INSERT"] if t.insert else []) + (["UPDATE"] if t.revert or _nulled(plan, t) else [])
        for right in needs:
            cur = await conn.execute("SELECT has_table_privilege(%s, %s)", (qt(t.table), right))
            row = await cur.fetchone()
            if not row or not row[0]:
                problems.append(f"{right} on {t.label}")
        if t.insert:
            for seq in plan.diff.live[t.table].sequences.values():
                cur = await conn.execute("SELECT has_sequence_privilege(%s, 'UPDATE')", (seq,))
                row = await cur.fetchone()
                if not row or not row[0]:
                    problems.append(f"UPDATE on the sequence {seq} (of {t.label})")
        for fk in _nulled(plan, t):
            for col in fk.columns:
                if plan.diff.live[t.table].columns[col].not_null:
                    raise MergeRefusedError(
                        f"{t.label} and {label(fk.parent)} reference each other through {fk.name}, which "
                        f"is not deferrable, and {col} cannot be NULL: the rows cannot be inserted in any order.",
                        hint=f"Make {fk.name} DEFERRABLE on the live branch, or leave {t.label} out with --tables.",
                    )
    cur = await conn.execute(
        "SELECT CASE WHEN to_regnamespace(%s) IS NULL THEN has_database_privilege(current_database(), 'CREATE') "
        "ELSE has_schema_privilege(%s, 'CREATE') END",
        (LEDGER_SCHEMA, LEDGER_SCHEMA),
    )
    row = await cur.fetchone()
    if plan.inserts + plan.reverts and (not row or not row[0]):
        problems.append(f"CREATE in the database (for the merge's ledger schema {LEDGER_SCHEMA})")
    if problems:
        raise MergeRefusedError(
            "The live branch's role may not write what the merge needs: missing " + "; ".join(problems) + ".",
            hint="Connect with the branch's owner role (Neon's default role owns the tables), or GRANT the "
            "rights named above; nothing was written.",
        )


def _nulled(plan: MergePlan, t: TablePlan) -> list[ForeignKey]:
    """Foreign keys of ``t`` pointing forward in the plan's order and not deferrable: a second pass sets them."""
    position = {p.table: i for i, p in enumerate(plan.tables)}
    mine = position[t.table]
    return [
        fk
        for fk in plan.diff.live[t.table].foreign_keys
        if not fk.deferrable
        and fk.parent in position
        and position[fk.parent] > mine
        and plan.tables[position[fk.parent]].insert
        and set(fk.columns) <= set(t.columns)
    ]


def _types(plan: MergePlan, t: TablePlan) -> list[str]:
    live = plan.diff.live[t.table]
    return [live.columns[c].type for c in t.columns]


async def _recheck(conn: psycopg.AsyncConnection[Any], plan: MergePlan) -> None:
    for t in plan.tables:
        if not t.insert:
            continue
        keys = list(t.insert)
        key_types = [plan.diff.live[t.table].columns[k].type for k in t.diff.key]
        match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in t.diff.key)
        cur = await conn.execute(
            f"SELECT count(*) FROM {qt(t.table)} l JOIN {unnest_text(t.diff.key, key_types)} ON {match}",
            transpose(keys, len(t.diff.key)),
        )
        row = await cur.fetchone()
        if row and row[0]:
            raise MergeChangedError(
                f"{row[0]} row(s) the plan re-inserts into {t.label} reappeared in the live branch since the plan "
                "was made: someone is writing to it.",
                hint="Nothing was written. Make a new plan (re-run the merge) and review it again.",
            )
    inserts = {
        t.table: Candidates(plan.diff.live[t.table], t.diff.key, t.columns, dict(t.insert))
        for t in plan.tables
        if t.insert
    }
    reverts = {
        t.table: Candidates(plan.diff.live[t.table], t.diff.key, t.columns, dict(t.revert), update=True)
        for t in plan.tables
        if t.revert
    }
    found = await find_conflicts(conn, inserts, looks_secret) + await find_conflicts(
        conn, reverts, looks_secret
    )
    if found:
        first = found[0]
        raise MergeChangedError(
            f"{len(found)} planned row(s) now conflict with the live branch (first: {label(first.table)}, "
            f"{first.kind} {first.constraint}): it was written to since the plan was made.",
            hint="Nothing was written. Make a new plan (re-run the merge) and review it again.",
        )


async def _write(conn: psycopg.AsyncConnection[Any], plan: MergePlan, result: MergeResult) -> None:
    await conn.execute("SET CONSTRAINTS ALL DEFERRED")
    second_pass: list[tuple[TablePlan, ForeignKey]] = []
    for t in plan.tables:
        if not t.insert:
            continue
        live = plan.diff.live[t.table]
        nulled = _nulled(plan, t)
        second_pass += [(t, fk) for fk in nulled]
        null_cols = {c for fk in nulled for c in fk.columns}
        exprs = ", ".join("NULL" if c in null_cols else f"r.{qi(c)}" for c in t.columns)
        overriding = (
            " OVERRIDING SYSTEM VALUE" if any(live.columns[c].identity == "a" for c in t.columns) else ""
        )
        cur = await conn.execute(
            f"INSERT INTO {qt(t.table)} ({', '.join(qi(c) for c in t.columns)}){overriding} "
            f"SELECT {exprs} FROM {unnest_text(t.columns, _types(plan, t))} ORDER BY r.ord",
            transpose(list(t.insert.values()), len(t.columns)),
        )
        result.inserted[t.label] = cur.rowcount
    for t, fk in second_pass:
        sets = ", ".join(f"{qi(c)} = r.{qi(c)}" for c in fk.columns)
        match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in t.diff.key)
        await conn.execute(
            f"UPDATE {qt(t.table)} l SET {sets} FROM {unnest_text(t.columns, _types(plan, t))} WHERE {match}",
            transpose(list(t.insert.values()), len(t.columns)),
        )
    for t in plan.tables:
        if not t.revert:
            continue
        writable = [c for c in t.columns if c not in t.diff.key]
        sets = ", ".join(f"{qi(c)} = r.{qi(c)}" for c in writable)
        match = " AND ".join(f"l.{qi(k)} = r.{qi(k)}" for k in t.diff.key)
        cur = await conn.execute(
            f"UPDATE {qt(t.table)} l SET {sets} FROM {unnest_text(t.columns, _types(plan, t))} WHERE {match}",
            transpose(list(t.revert.values()), len(t.columns)),
        )
        result.reverted[t.label] = cur.rowcount
    for t in plan.tables:
        if not t.insert:
            continue
        for column, sequence in plan.diff.live[t.table].sequences.items():
            cur = await conn.execute(
                f"SELECT setval(%s::regclass, m) FROM (SELECT max({qi(column)})::int8 AS m FROM {qt(t.table)}) x, "
                f"{sequence} s WHERE x.m IS NOT NULL AND x.m >= s.last_value",
                (sequence,),
            )
            row = await cur.fetchone()
            if row:
                result.sequences[sequence] = int(row[0])


async def apply_plan(
    conn: psycopg.AsyncConnection[Any],
    plan: MergePlan,
    run_id: str,
    *,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> MergeResult:
    """Write ``plan`` to the live branch behind ``conn`` (autocommit mode) in one transaction; idempotent per run.

    ``before_commit`` runs inside the transaction just before COMMIT (tests use it to kill or race).
    """
    import psycopg.errors

    done = await read_ledger(conn, run_id)
    if done is not None:
        return done
    await preflight(conn, plan)
    for attempt in range(1, ATTEMPTS + 1):
        result = MergeResult(run_id, attempts=attempt)
        try:
            await conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            for ddl in _LEDGER_DDL:
                await conn.execute(ddl)
            # First, so a second run at once waits here and then finds this run's row.
            await conn.execute(f"INSERT INTO {LEDGER} (run_id, summary) VALUES (%s, '{{}}')", (run_id,))
            await _recheck(conn, plan)
            await _write(conn, plan, result)
            summary = {k: v for k, v in result.to_dict().items() if k != "already_applied"}
            await conn.execute(
                f"UPDATE {LEDGER} SET summary = %s::jsonb WHERE run_id = %s", (json.dumps(summary), run_id)
            )
            if before_commit is not None:
                await before_commit()
            await conn.execute("COMMIT")
            return result
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
            await conn.execute("ROLLBACK")
            if attempt == ATTEMPTS:
                raise MergeChangedError(
                    f"The live branch was written to during the merge, twice in a row ({type(exc).__name__}); "
                    "the merge was rolled back and nothing was written.",
                    hint="Pause the app's writes (or try at a quieter moment), then run the merge again.",
                ) from None
        except psycopg.errors.UniqueViolation as exc:
            await conn.execute("ROLLBACK")
            done = await read_ledger(conn, run_id)
            if done is not None:
                return done
            raise MergeError(
                f"The live branch refused a row: {exc.diag.message_primary} ({exc.diag.constraint_name}); the "
                "merge was rolled back and nothing was written.",
                hint="Make a new plan: the live branch changed since this one was made.",
            ) from None
        except psycopg.Error as exc:
            if conn.info.transaction_status != 0:  # not idle: roll back what this attempt did
                await conn.execute("ROLLBACK")
            raise MergeError(
                f"The merge was rolled back and nothing was written: {exc.diag.message_primary or exc}.",
                hint="Read the message above: it names the table or constraint; fix it or leave that table out "
                "with --tables, then run the merge again.",
            ) from None
        except BaseException:
            if not conn.closed and conn.info.transaction_status != 0:
                await conn.execute("ROLLBACK")
            raise
    raise AssertionError("unreachable")
