"""The merge plan the user reviews: per table, rows to re-insert and to revert, samples, conflicts.

Defaults (issue 14): re-insert the rows deleted since; do not revert rows changed since (opt in per table);
never delete a row added since. A conflict is resolved by the table's rule:

- ``skip`` (default): the conflicting past row is left out, and the record says which and why;
- ``keep-live``: the same for a re-insert, stated as "the live row wins"; for a table opted into reverts,
  a changed row keeps its live values;
- ``take-past``: the table's changed rows are reverted to their past values (it opts the table into
  reverts). A re-insert that conflicts is still left out: writing it would overwrite or delete a row
  added since, which a merge never does.

The plan holds the past rows it will write (as text, fetched by key), so the apply writes exactly what
was reviewed. ``to_dict`` (for the journal and the record) holds counts, masked samples and conflicts;
``render`` is the ``--dry-run`` text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.recovery.merge.catalog import Table, TableName, label
from recovery_wizard.recovery.merge.conflicts import (
    Candidates,
    Conflict,
    Row,
    fetch_past_rows,
    find_conflicts,
)
from recovery_wizard.recovery.merge.diff import DataDiff, Key, SkippedTable, TableDiff
from recovery_wizard.recovery.merge.errors import MergeError
from recovery_wizard.redact import MASK, redact

if TYPE_CHECKING:
    import psycopg

RULES: Final = ("skip", "keep-live", "take-past")
# Column names whose values a plan never shows: password hashes, tokens, keys and the like.
_SECRET_COLUMN: Final = re.compile(
    r"pass|pwd|hash|token|secret|key|salt|otp|credential|auth|session|cookie|signature|iban|ssn", re.I
)


def looks_secret(column: str) -> bool:
    return bool(_SECRET_COLUMN.search(column))


@dataclass
class MergeOptions:
    tables: list[str] | None = None  # "schema.table" or "table" (public); None: every keyed table
    revert_changed: list[str] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # table -> rule; "*" for every table
    samples: int = 3


@dataclass
class TablePlan:
    diff: TableDiff
    rule: str
    columns: tuple[str, ...]  # the columns written (common, not generated in live)
    insert: dict[Key, Row] = field(default_factory=dict)
    revert: dict[Key, Row] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    unevaluated_checks: tuple[str, ...] = ()
    samples: int = 3

    @property
    def table(self) -> TableName:
        return self.diff.table

    @property
    def label(self) -> str:
        return label(self.table)

    def _sample(self, rows: dict[Key, Row]) -> list[dict[str, str | None]]:
        out = []
        for row in list(rows.values())[: self.samples]:
            out.append(
                {
                    c: (
                        MASK if looks_secret(c) and v is not None else (None if v is None else redact(v)[:80])
                    )
                    for c, v in zip(self.columns, row, strict=True)
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.label,
            "rule": self.rule,
            "diff": self.diff.to_dict(),
            "insert": len(self.insert),
            "revert": len(self.revert),
            "changed_not_reverted": len(self.diff.changed) - len(self.revert),
            "added_kept": len(self.diff.added),
            "insert_samples": self._sample(self.insert),
            "revert_samples": self._sample(self.revert),
            "conflicts": [c.to_dict() for c in self.conflicts],
            "unevaluated_checks": list(self.unevaluated_checks),
        }


@dataclass
class MergePlan:
    tables: list[TablePlan]  # in foreign-key order: parents first
    skipped: list[SkippedTable]
    diff: DataDiff

    @property
    def inserts(self) -> int:
        return sum(len(t.insert) for t in self.tables)

    @property
    def reverts(self) -> int:
        return sum(len(t.revert) for t in self.tables)

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for t in self.tables for c in t.conflicts]

    def table(self, name: str | TableName) -> TablePlan:
        wanted = name if isinstance(name, tuple) else parse_table(name)
        for t in self.tables:
            if t.table == wanted:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [t.to_dict() for t in self.tables],
            "skipped": [s.to_dict() for s in self.skipped],
            "inserts": self.inserts,
            "reverts": self.reverts,
            "conflicts": len(self.conflicts),
            "diff_bytes": self.diff.bytes_fetched,
        }

    def render(self) -> str:
        """The plan as text, for ``--dry-run`` and the record."""
        lines = [
            f"Merge back: {self.inserts} row(s) to re-insert, {self.reverts} to revert, "
            f"{len(self.conflicts)} conflict(s) left out; rows added since are never deleted."
        ]
        for t in self.tables:
            d = t.diff
            lines.append(
                f"  {t.label}: {len(t.insert)} to re-insert (of {len(d.deleted)} deleted since), "
                f"{len(t.revert)} to revert (of {len(d.changed)} changed since), {len(d.added)} added since kept"
                f"; conflicts: {len(t.conflicts)} (rule: {t.rule})"
            )
            if d.past_only_columns:
                lines.append(f"    columns gone since (not brought back): {', '.join(d.past_only_columns)}")
            if d.live_only_columns:
                lines.append(
                    f"    columns new since (left to their default): {', '.join(d.live_only_columns)}"
                )
            for sample in t._sample(t.insert):
                lines.append("    + " + ", ".join(f"{k}={v!r}" for k, v in sample.items()))
            for sample in t._sample(t.revert):
                lines.append("    ~ " + ", ".join(f"{k}={v!r}" for k, v in sample.items()))
            for c in t.conflicts[: t.samples * 3]:
                lines.append(f"    ! {c.kind} ({c.constraint}), key {', '.join(c.key)}: {c.detail}")
            if len(t.conflicts) > t.samples * 3:
                lines.append(f"    ! … and {len(t.conflicts) - t.samples * 3} more conflicts")
            if t.unevaluated_checks:
                lines.append(
                    f"    checks left to the database at apply (a failure rolls the whole merge back): "
                    f"{', '.join(t.unevaluated_checks)}"
                )
        for s in self.skipped:
            lines.append(f"  {label(s.table)}: left alone: {s.reason}")
        return "\n".join(redact(line) for line in lines)


def parse_table(name: str) -> TableName:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", name)


def _resolve(names: list[str], known: dict[TableName, Any], what: str) -> set[TableName]:
    out = set()
    for name in names:
        ident = parse_table(name)
        if ident not in known:
            raise MergeError(
                f"{what} names the table {name!r}, which neither branch has.",
                hint="Give tables as schema.table (or table for public); the plan lists the ones it found.",
            )
        out.add(ident)
    return out


def fk_order(tables: list[Table]) -> list[Table]:
    """Parents before children (depth-first on foreign keys); a cycle is broken where it is entered."""
    by_name = {t.ident: t for t in tables}
    done: list[Table] = []
    state: dict[TableName, int] = {}

    def visit(t: Table) -> None:
        if state.get(t.ident):
            return
        state[t.ident] = 1
        for fk in t.foreign_keys:
            parent = by_name.get(fk.parent)
            if parent is not None and parent.ident != t.ident:
                visit(parent)
        state[t.ident] = 2
        done.append(t)

    for t in sorted(tables, key=lambda t: t.ident):
        visit(t)
    return done


async def build_plan(
    diff: DataDiff,
    past_conn: psycopg.AsyncConnection[Any],
    live_conn: psycopg.AsyncConnection[Any],
    options: MergeOptions,
) -> MergePlan:
    """The plan for ``diff``: past rows fetched by key, conflicts judged on live (both read-only)."""
    known = {**diff.past, **diff.live}
    if options.tables is not None:
        _resolve(options.tables, known, "--tables")
    revert = _resolve(options.revert_changed, known, "--revert-changed")
    rules: dict[TableName, str] = {}
    default_rule = options.rules.get("*", "skip")
    for given, rule in options.rules.items():
        if rule not in RULES:
            raise MergeError(
                f"The conflict rule {rule!r} for {given} is not one of {', '.join(RULES)}.",
                hint="Use skip (leave the past row out), keep-live or take-past.",
            )
        if given != "*":
            rules[next(iter(_resolve([given], known, "a conflict rule")))] = rule
    if default_rule not in RULES:
        raise MergeError(f"The conflict rule {default_rule!r} is not one of {', '.join(RULES)}.")
    plans: dict[TableName, TablePlan] = {}
    candidates: dict[TableName, Candidates] = {}
    await past_conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    await live_conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        for name, d in diff.tables.items():
            live = diff.live[name]
            rule = rules.get(name, default_rule)
            columns = tuple(c for c in d.columns if not live.columns[c].generated)
            plan = TablePlan(d, rule, columns, samples=options.samples)
            plans[name] = plan
            key_types = [live.columns[k].type for k in d.key]
            if d.deleted:
                plan.insert = await fetch_past_rows(past_conn, name, d.key, key_types, columns, d.deleted)
                candidates[name] = Candidates(live, d.key, columns, dict(plan.insert))
            if d.changed and (name in revert or rule == "take-past") and rule != "keep-live":
                plan.revert = await fetch_past_rows(past_conn, name, d.key, key_types, columns, d.changed)
        conflicts = await find_conflicts(live_conn, candidates, looks_secret)
        reverts = {
            name: Candidates(diff.live[name], p.diff.key, p.columns, dict(p.revert), update=True)
            for name, p in plans.items()
            if p.revert
        }
        conflicts += await find_conflicts(live_conn, reverts, looks_secret)
    finally:
        await past_conn.execute("ROLLBACK")
        await live_conn.execute("ROLLBACK")
    for c in conflicts:
        plan = plans[c.table]
        plan.conflicts.append(c)
        plan.insert.pop(c.key, None)
        plan.revert.pop(c.key, None)
    for name, cand in candidates.items():
        plans[name].unevaluated_checks = cand.unevaluated_checks
    ordered = fk_order([diff.live[name] for name in plans])
    return MergePlan([plans[t.ident] for t in ordered], list(diff.skipped), diff)
