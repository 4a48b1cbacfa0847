"""What changed in the data since the past: per keyed table, rows deleted, changed and added since.

How it scales (a 1 M-row table with a few thousand changes moves a few megabytes, not the table):

- Every row gets two 64-bit hashes computed inside PostgreSQL: one of its key's text (which *bucket* it
  falls in) and one of the text of its common columns (its content). A bucket's fingerprint is the
  ``bit_xor`` of its rows' content hashes; keys are unique, so a deleted, added or changed row changes it.
- Level 0 splits the table into about ``rows / 32`` buckets by the low bits of the key hash; each level
  after that looks only inside the buckets that differed, with 4 more bits (16 children each), until a
  bucket holds about 4 rows. A level's answer is ONE bytea of 8-byte fingerprints in bucket order (bucket
  numbers never travel). Only at the leaves are keys fetched, with each row's content hash, and compared.
  Both sides run each level concurrently on their own connection.
- Two bucket layouts (see ``_Layout``). One integer key whose keys fill at least an eighth of their span
  (serial and identity ids): buckets are key *ranges* computed from the lowest key and a power-of-two
  width, so both sides agree on them without exchanging boundaries, a stretch of changes (a migration
  deleting old rows) lands in a few buckets, and the levels below the first read only the differing
  ranges through the key's index. Any other key (text, uuid, composite, sparse integers): buckets by the
  low bits of the key's hash, each level a sequential scan, and a cluster of changes costs as much as
  the same number scattered.
- Each side reads in one ``REPEATABLE READ READ ONLY`` transaction: one snapshot, and no write possible.

Columns on one side only are reported and left out of the content hash; a table whose key columns are not
on both sides, or with no key at all, is listed with the reason and left alone.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.recovery.merge.catalog import Table, TableName, label, read_catalog
from recovery_wizard.recovery.merge.sqltext import qi, qt, row_text, session_sql, wire_bytes

if TYPE_CHECKING:
    import psycopg

Key = tuple[str, ...]  # a row's key, each column in PostgreSQL's text form

ROWS_PER_BUCKET_AT_START: Final = 32
FANOUT_BITS: Final = 4
LEAF_ROWS: Final = 4
_KEY_SEED: Final = 7
_ROW_SEED: Final = 11


@dataclass
class TableDiff:
    table: TableName
    key: tuple[str, ...]
    key_kind: str
    columns: tuple[str, ...]  # the common columns, in the past's order
    past_only_columns: tuple[str, ...]
    live_only_columns: tuple[str, ...]
    type_changed: tuple[str, ...]  # common columns whose type differs (compared by text)
    deleted: list[Key] = field(default_factory=list)
    changed: list[Key] = field(default_factory=list)
    added: list[Key] = field(default_factory=list)
    past_rows: int = 0
    live_rows: int = 0
    levels: int = 0
    buckets_compared: int = 0
    key_types: tuple[str, ...] = ()  # the key columns' types (the same on both sides)
    layout: str = ""  # "key hash" or "key ranges": how rows were put in buckets
    key_hash: str = ""  # SQL over alias t: the key's 64-bit hash (which bucket)
    row_hash: str = ""  # SQL over alias t: the common columns' 64-bit hash (the content)

    @property
    def label(self) -> str:
        return label(self.table)

    def live_type(self, column: str) -> str:
        return self.key_types[self.key.index(column)] if column in self.key else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.label,
            "layout": self.layout,
            "key": list(self.key),
            "key_kind": self.key_kind,
            "columns": list(self.columns),
            "past_only_columns": list(self.past_only_columns),
            "live_only_columns": list(self.live_only_columns),
            "type_changed": list(self.type_changed),
            "deleted": len(self.deleted),
            "changed": len(self.changed),
            "added": len(self.added),
        }


@dataclass(frozen=True)
class SkippedTable:
    table: TableName
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"table": label(self.table), "reason": self.reason}


@dataclass
class DataDiff:
    tables: dict[TableName, TableDiff]
    skipped: list[SkippedTable]
    past: dict[TableName, Table]
    live: dict[TableName, Table]
    bytes_fetched: int = 0  # result bytes both sides sent to compute the diff

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [d.to_dict() for d in self.tables.values()],
            "skipped": [s.to_dict() for s in self.skipped],
            "bytes_fetched": self.bytes_fetched,
        }


class _Side:
    """One database's connection and the bytes its results cost."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.bytes = 0

    async def fetch(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor(binary=True)
        await cur.execute(query, params)
        self.bytes += wire_bytes(cur.pgresult)
        return await cur.fetchall()


def _hash_sql(columns: tuple[str, ...], native: set[str], seed: int) -> str:
    """A row's 64-bit hash over ``columns``, the same SQL on both sides.

    ``hash_record_extended`` (PostgreSQL 14+) hashes each value with its type's own hash function: about
    three times faster than hashing the row's text, which spends its time in output functions (timestamps
    above all). A column whose type has no hash function (json, xml, point…), or whose type differs between
    the sides, goes in as its text. (Values equal by their type's equality hash alike: 1.0 and 1.00 are the
    same numeric, and the merge takes them as unchanged.) Without it, the whole row's text is hashed.
    """
    if native:
        parts = ", ".join(f"t.{qi(c)}" if c in native else f"t.{qi(c)}::text" for c in columns)
        return f"hash_record_extended(ROW({parts}), {seed})"
    return f"hashtextextended({row_text(columns)}, {seed})"


def _compare_tables(
    past: dict[TableName, Table],
    live: dict[TableName, Table],
    only: set[TableName] | None,
    hash_records: bool = True,
) -> tuple[list[TableDiff], list[SkippedTable]]:
    diffs: list[TableDiff] = []
    skipped: list[SkippedTable] = []
    for name in sorted(set(past) | set(live)):
        if only is not None and name not in only:
            continue
        if name not in live:
            skipped.append(SkippedTable(name, "the table is gone from the live branch (dropped since)"))
            continue
        if name not in past:
            continue  # new since: everything in it was added since and is kept as is
        p, lv = past[name], live[name]
        common = tuple(c for c in p.columns if c in lv.columns)
        if not common:
            skipped.append(SkippedTable(name, "no column is common to the past and the live table"))
            continue
        key, kind = (p.key, p.key_kind) if p.key else (lv.key, lv.key_kind)
        if not key:
            skipped.append(
                SkippedTable(name, "no primary key and no unique not-null key: rows cannot be matched")
            )
            continue
        if any(c not in common for c in key):
            skipped.append(SkippedTable(name, f"its key ({', '.join(key)}) is not on both sides"))
            continue
        if any(p.columns[c].type != lv.columns[c].type for c in key):
            skipped.append(SkippedTable(name, f"the type of its key ({', '.join(key)}) changed since"))
            continue
        native = {
            c
            for c in common
            if hash_records
            and p.columns[c].hashable
            and lv.columns[c].hashable
            and p.columns[c].type == lv.columns[c].type
        }
        diffs.append(
            TableDiff(
                table=name,
                key=key,
                key_kind=kind,
                columns=common,
                past_only_columns=tuple(c for c in p.columns if c not in lv.columns),
                live_only_columns=tuple(c for c in lv.columns if c not in p.columns),
                type_changed=tuple(c for c in common if p.columns[c].type != lv.columns[c].type),
                key_types=tuple(lv.columns[c].type for c in key),
                key_hash=_hash_sql(key, native if set(key) <= native else set(), _KEY_SEED),
                row_hash=_hash_sql(common, native, _ROW_SEED),
            )
        )
    return diffs, skipped


_INTEGER_TYPES: Final = ("smallint", "integer", "bigint")


@dataclass(frozen=True)
class _Layout:
    """How rows fall into buckets at a level of ``bits`` bits: by key hash, or by integer key range.

    Hash (any key): bucket = the key hash's low ``bits`` bits; the children of bucket p are
    p + (j << parent_bits). Range (one integer key, dense enough): bucket = (key - lo) >> shift, with
    shift = width_bits - bits; the children of p are (p << f) + j. Ranges keep neighbours together, so a
    cluster of changes by key (the oldest rows deleted) costs a few buckets, and a level below the first
    reads only the differing ranges through the key's index.
    """

    diff: TableDiff
    rows: int
    lo: int | None = None  # range mode: the lowest key on either side
    span: int = 0  # range mode: highest - lowest + 1
    width_bits: int = 0  # range mode: bits to number every key in the span

    def first_bits(self) -> int:
        if self.lo is None:
            return max(0, math.ceil(math.log2(max(1.0, self.rows / ROWS_PER_BUCKET_AT_START))))
        keys_per_bucket = ROWS_PER_BUCKET_AT_START * self.span / self.rows
        return self.width_bits - min(self.width_bits, int(math.log2(max(1.0, keys_per_bucket))))

    def shift(self, bits: int) -> int:
        return max(0, self.width_bits - bits)

    def per_bucket(self, bits: int) -> float:
        if self.lo is None:
            return self.rows / (1 << bits)
        return self.rows * (1 << self.shift(bits)) / self.span

    def is_leaf(self, bits: int) -> bool:
        return self.per_bucket(bits) <= LEAF_ROWS or (self.lo is not None and self.shift(bits) == 0)

    def next_bits(self, bits: int) -> int:
        return bits + FANOUT_BITS if self.lo is None else self.width_bits - self.shift(bits + FANOUT_BITS)

    def bucket(self, bits: int) -> str:
        """The bucket of row ``t`` at a level of ``bits`` bits."""
        if self.lo is None:
            return f"({self.diff.key_hash} & {(1 << bits) - 1})"
        return f"((t.{qi(self.diff.key[0])}::int8 - {self.lo}) >> {self.shift(bits)})"

    def first_numbers(self, bits: int) -> list[int]:
        if self.lo is None:
            return list(range(1 << bits))
        return list(range(((self.span - 1) >> self.shift(bits)) + 1))

    def fan(self, parent_bits: int, bits: int) -> int:
        if self.lo is None:
            return 1 << (bits - parent_bits)
        return 1 << (self.shift(parent_bits) - self.shift(bits))

    def children(self, parents: list[int], parent_bits: int, bits: int) -> list[int]:
        n = self.fan(parent_bits, bits)
        if self.lo is None:
            return [p + (j << parent_bits) for p in parents for j in range(n)]
        f = n.bit_length() - 1
        return [(p << f) + j for p in parents for j in range(n)]

    def child_slots(self, parent_bits: int, bits: int) -> str:
        n = self.fan(parent_bits, bits)
        child = (
            f"p.b + (j::int8 << {parent_bits})" if self.lo is None else f"(p.b << {n.bit_length() - 1}) + j"
        )
        return (
            f"SELECT {child} AS b, p.ord * {n} + j AS ord "
            f"FROM unnest(%s::int8[]) WITH ORDINALITY p(b, ord), generate_series(0, {n - 1}) j"
        )

    def rows_in(self, parent_bits: int) -> str:
        """A FROM clause of the table's rows (alias t) inside the parent buckets given as the parameter."""
        table = qt(self.diff.table)
        if self.lo is None:
            # A join, not "= ANY(array)": the array may hold thousands of buckets; a hash join reads it once.
            return f"{table} t JOIN unnest(%s::int8[]) p(b) ON {self.bucket(parent_bits)} = p.b"
        key, shift = f"t0.{qi(self.diff.key[0])}", self.shift(parent_bits)
        return (
            f"unnest(%s::int8[]) p(b) CROSS JOIN LATERAL (SELECT * FROM {table} t0 WHERE "
            f"{key} >= {self.lo} + (p.b << {shift}) AND {key} < {self.lo} + ((p.b + 1) << {shift})) t"
        )


def _level_query(layout: _Layout, bits: int, parent_bits: int | None) -> str:
    """One bytea: each bucket's fingerprint (8 bytes, 0 when empty) in bucket order, children grouped by parent.

    Dense, so bucket numbers never travel: the client knows which buckets it asked for. A bucket that is
    empty on one side and holds rows whose fingerprints cancel to 0 on the other is as likely as any other
    64-bit collision.
    """
    diff = layout.diff
    if parent_bits is None:
        slots = f"SELECT b, b AS ord FROM generate_series(0, {len(layout.first_numbers(bits)) - 1}) b"
        source = f"{qt(diff.table)} t"
    else:
        slots = layout.child_slots(parent_bits, bits)
        source = layout.rows_in(parent_bits)
    scan = f"SELECT {layout.bucket(bits)} AS b, bit_xor({diff.row_hash}) AS h, count(*) AS n FROM {source} GROUP BY 1"
    return (
        f"SELECT string_agg(int8send(coalesce(x.h, 0)), ''::bytea ORDER BY slot.ord), coalesce(sum(x.n), 0) "
        f"FROM ({slots}) slot LEFT JOIN ({scan}) x ON x.b = slot.b"
    )


def _leaf_query(layout: _Layout, bits: int) -> str:
    keys = ", ".join(f"t.{qi(c)}::text" for c in layout.diff.key)
    return f"SELECT {keys}, {layout.diff.row_hash} FROM {layout.rows_in(bits)}"


async def _layout(past: _Side, live: _Side, diff: TableDiff, rows: int) -> _Layout:
    """Range buckets for one integer key whose keys fill at least an eighth of their span; else hash buckets."""
    key = diff.key[0]
    if len(diff.key) != 1 or diff.live_type(key) not in _INTEGER_TYPES:
        return _Layout(diff, rows)
    query = f"SELECT min({qi(key)})::int8, max({qi(key)})::int8 FROM {qt(diff.table)}"
    ends = [r[0] for r in await asyncio.gather(past.fetch(query), live.fetch(query))]
    lows = [int(e[0]) for e in ends if e[0] is not None]
    highs = [int(e[1]) for e in ends if e[1] is not None]
    if not lows:
        return _Layout(diff, rows)
    lo, span = min(lows), max(highs) - min(lows) + 1
    if span > 8 * rows or span >= 1 << 62:
        return _Layout(diff, rows)
    return _Layout(diff, rows, lo, span, max(0, (span - 1).bit_length()))


def _buckets(blob: bytes | None) -> list[bytes]:
    data = bytes(blob or b"")
    return [data[i : i + 8] for i in range(0, len(data), 8)]


async def _estimate(side: _Side, table: TableName) -> int:
    rows = await side.fetch(
        "SELECT c.reltuples::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        table,
    )
    return int(rows[0][0]) if rows else -1


async def _diff_table(past: _Side, live: _Side, diff: TableDiff) -> None:
    estimates = await asyncio.gather(_estimate(past, diff.table), _estimate(live, diff.table))
    rows = max(max(estimates), 1)
    if min(estimates) < 0:  # never analysed: count (the one case where a count is worth a scan)
        counts = await asyncio.gather(
            *(s.fetch(f"SELECT count(*) FROM {qt(diff.table)}") for s in (past, live))
        )
        rows = max(1, *(int(c[0][0]) for c in counts))
    layout = await _layout(past, live, diff, rows)
    diff.layout = "key ranges" if layout.lo is not None else "key hash"
    bits = layout.first_bits()
    parent_bits: int | None = None
    differing: list[int] = []
    while True:
        query = _level_query(layout, bits, parent_bits)
        params = None if parent_bits is None else (differing, differing)
        p_res, l_res = await asyncio.gather(past.fetch(query, params), live.fetch(query, params))
        p_buckets, l_buckets = _buckets(p_res[0][0]), _buckets(l_res[0][0])
        # Bucket numbers in the order the query laid them out.
        if parent_bits is None:
            numbers = layout.first_numbers(bits)
            diff.past_rows, diff.live_rows = int(p_res[0][1]), int(l_res[0][1])
        else:
            numbers = layout.children(differing, parent_bits, bits)
        diff.levels += 1
        diff.buckets_compared += len(numbers)
        differing = [b for b, x, y in zip(numbers, p_buckets, l_buckets, strict=True) if x != y]
        if not differing:
            return
        if layout.is_leaf(bits):
            break
        parent_bits, bits = bits, layout.next_bits(bits)
    width = len(diff.key)
    query = _leaf_query(layout, bits)
    p_leaf, l_leaf = await asyncio.gather(past.fetch(query, (differing,)), live.fetch(query, (differing,)))
    p_hash = {tuple(r[:width]): int(r[width]) for r in p_leaf}
    l_hash = {tuple(r[:width]): int(r[width]) for r in l_leaf}
    diff.deleted = sorted(k for k in p_hash if k not in l_hash)
    diff.added = sorted(k for k in l_hash if k not in p_hash)
    diff.changed = sorted(k for k, h in p_hash.items() if k in l_hash and l_hash[k] != h)


async def _begin_snapshot(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    # The planner cannot estimate how many buckets a hash expression makes, guesses one per row, and then
    # (a) compiles the query with JIT, which costs more than the scan itself, and (b) sorts every full-width
    # row to group them. Neither helps here: a hash aggregate of a few thousand groups is what is wanted.
    await conn.execute("SET LOCAL jit = off")
    await conn.execute("SET LOCAL enable_sort = off")
    for statement in session_sql(local=True):
        await conn.execute(statement)


async def diff_connections(
    past_conn: psycopg.AsyncConnection[Any],
    live_conn: psycopg.AsyncConnection[Any],
    *,
    tables: set[TableName] | None = None,
) -> DataDiff:
    """The diff of two databases over connections in autocommit mode (each read in one snapshot)."""
    past, live = _Side(past_conn), _Side(live_conn)
    await asyncio.gather(_begin_snapshot(past_conn), _begin_snapshot(live_conn))
    try:
        past_catalog, live_catalog = await asyncio.gather(read_catalog(past_conn), read_catalog(live_conn))
        # hash_record_extended came with PostgreSQL 14; both sides must hash alike.
        hash_records = min(past_conn.info.server_version, live_conn.info.server_version) >= 140000
        diffs, skipped = _compare_tables(past_catalog, live_catalog, tables, hash_records)
        for diff in diffs:
            await _diff_table(past, live, diff)
    finally:
        await asyncio.gather(past_conn.execute("ROLLBACK"), live_conn.execute("ROLLBACK"))
    return DataDiff(
        tables={d.table: d for d in diffs},
        skipped=skipped,
        past=past_catalog,
        live=live_catalog,
        bytes_fetched=past.bytes + live.bytes,
    )
