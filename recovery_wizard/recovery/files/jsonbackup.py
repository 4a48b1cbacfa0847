"""JSON backups of the cron-API kind: recognised, mapped onto the database's tables, loaded in ONE transaction.

The file: ``{"success": true, "timestamp": "<ISO>", "stats": {"users": 120, …}, "data": {"users": [{…}], …}}``.
Keys of ``data`` are the ORM's model names in plural camelCase (``users`` for ``User``, ``userMemberships``);
rows are the model's fields in camelCase, with ISO date strings and nested relations (a ``users`` row may
carry its ``profile``). Mapping, in order of trust:

1. the Prisma schema when there is one: ``@@map``/``@map`` name the table and columns, relation fields say
   which nested objects are rows of another table and which foreign key ties them to their parent;
2. else the database's own names, compared case-insensitively without underscores after singularizing
   (``userMemberships`` → ``UserMembership`` or ``user_membership(s)``), and its foreign keys for nesting.

Values are converted by the column's type (read from pg_catalog with ``format_type``, which names the exact
type to cast to: timestamps, numerics, JSON, enums, arrays); tables are loaded parents first by their
foreign keys; per table, ``replace`` (TRUNCATE, then insert) or ``upsert`` (insert … ON CONFLICT on the
primary key). Every field that maps to no column and every table the file lacks is reported; a table whose
rows are fewer than ``stats`` says (the cron kept the last 500 transactions) is reported as partial. A row
that violates a constraint rolls everything back, naming the table and key.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from recovery_wizard.recovery.files.detect import FROM_JSON, FROM_MTIME, BackupInfo
from recovery_wizard.recovery.files.load import LoadError, LoadProgress, LoadResult
from recovery_wizard.recovery.files.prismamodels import PrismaModel, read_models
from recovery_wizard.redact import Secret, redact

MAX_JSON_BYTES: Final = 1024 * 1024 * 1024
_HEAD_KEYS: Final = ("success", "timestamp", "stats")
_SKIP_IN_STRING: Final = re.compile(r'["\\]')
_SKIP_OUTSIDE: Final = re.compile(r'["{}\[\]]')
_SCALAR_END: Final = re.compile(r"[,}\]]")
_IGNORED_TABLES: Final = frozenset({"_prisma_migrations"})


class JsonBackupError(LoadError):
    """A JSON backup that cannot be mapped or loaded; nothing was written."""


# --- recognising (bounded: the keys before "data", or "data" skipped without keeping it) -----------------


class _Head:
    chunk = 64 * 1024

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.raw.read(self.chunk)
        if not chunk:
            self.eof = True
            self.buf = self.buf[self.pos :] + self.decoder.decode(b"", final=True)
            self.pos = 0
            return False
        self.buf = self.buf[self.pos :] + self.decoder.decode(chunk)
        self.pos = 0
        return True

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1

    def value(self, limit: int = 16 * 1024 * 1024) -> Any:
        decoder = json.JSONDecoder()
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError:
                if self.eof or len(self.buf) - self.pos > limit:
                    raise
            if not self.fill() and self.eof and len(self.buf) - self.pos > limit:
                raise ValueError("value too large")

    def skip(self) -> None:
        """Step over one value without keeping it (a multi-GB ``data`` costs time, never memory)."""
        depth = 0
        in_string = False
        if self.peek() not in ('"', "{", "["):
            # a number, true, false or null: it ends at the next ',', '}' or ']'
            while (end := _SCALAR_END.search(self.buf, self.pos)) is None:
                if not self.fill():
                    self.pos = len(self.buf)
                    return
            self.pos = end.start()
            return
        while True:
            if self.pos >= len(self.buf) and not self.fill():
                raise ValueError("the file ends inside a value")
            if in_string:
                found = _SKIP_IN_STRING.search(self.buf, self.pos)
                if found is None:
                    self.pos = len(self.buf)
                    continue
                if found.group() == "\\":
                    at = found.start()
                    if found.end() >= len(self.buf):  # the escaped character is in the next chunk
                        ahead = at - self.pos
                        if not self.fill():
                            raise ValueError("the file ends inside a string")
                        at = self.pos + ahead  # fill() re-based the buffer at the old position
                    self.pos = at + 2
                    continue
                in_string = False
                self.pos = found.end()
                if depth == 0:
                    return
                continue
            found = _SKIP_OUTSIDE.search(self.buf, self.pos)
            if found is None:
                self.pos = len(self.buf)
                continue
            char = found.group()
            self.pos = found.end()
            if char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return


def read_head(raw: IO[bytes]) -> dict[str, Any] | None:
    """``success``/``timestamp``/``stats`` and whether ``data`` is an object; None if not that kind of file."""
    head = _Head(raw)
    found: dict[str, Any] = {}
    try:
        head.expect("{")
        if head.peek() == "}":
            return None
        while True:
            key = head.value()
            if not isinstance(key, str):
                return None
            head.expect(":")
            if key == "data":
                found["data_is_object"] = head.peek() == "{"
                if all(k in found for k in _HEAD_KEYS):
                    break
                head.skip()
            elif key in _HEAD_KEYS:
                found[key] = head.value()
            else:
                head.skip()
            nxt = head.peek()
            if nxt == "}":
                break
            head.expect(",")
    except (ValueError, json.JSONDecodeError):
        if "data_is_object" not in found:
            return None
    if not found.get("data_is_object") or not ("timestamp" in found or "stats" in found):
        return None
    return found


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _stat_counts(stats: Any) -> tuple[dict[str, int | None], list[str]]:
    """Rows per table from ``stats`` (a number, or ``{"count"|"exported": n, "total": m}``), and the
    tables whose file holds fewer rows than the table had."""
    tables: dict[str, int | None] = {}
    partial: list[str] = []
    if not isinstance(stats, dict):
        return tables, partial
    for name, value in stats.items():
        if isinstance(value, int) and not isinstance(value, bool):
            tables[str(name)] = value
        elif isinstance(value, dict):
            count = next(
                (value[k] for k in ("count", "exported", "rows", "saved") if isinstance(value.get(k), int)),
                None,
            )
            total = next(
                (value[k] for k in ("total", "of", "tableTotal") if isinstance(value.get(k), int)), None
            )
            tables[str(name)] = count
            if count is not None and total is not None and total > count:
                partial.append(f"{name}: {count} of {total} rows")
    return tables, partial


def examine_json(path: Path) -> BackupInfo | None:
    try:
        with open(path, "rb") as raw:
            head = read_head(raw)
    except OSError:
        return None
    if head is None:
        return None
    info = BackupInfo(path, "json", path.stat().st_size, None, FROM_MTIME)
    moment = _timestamp(head.get("timestamp"))
    if moment is not None:
        info.taken_at, info.taken_at_source = moment, FROM_JSON
    else:
        info.taken_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    info.tables, info.partial = _stat_counts(head.get("stats"))
    if head.get("success") is False:
        info.problem = 'the backup job reported failure ("success": false)'
        info.hint = "Use an earlier JSON backup, or a pg_dump file."
    if info.size > MAX_JSON_BYTES:
        info.problem = f"it is {info.size // (1024 * 1024)} MiB; JSON backups are read whole, up to 1 GiB"
        info.hint = "Split it per table, or restore from a pg_dump file."
    return info


# --- the database's shape -------------------------------------------------------------------------------


@dataclass
class _Column:
    name: str
    type: str  # format_type(): the exact type to cast to
    category: str  # pg_type.typcategory: D date/time, A array, U user (json is U too), …
    base: str  # the type's name (timestamp, timestamptz, json, jsonb, …)


@dataclass
class _Table:
    schema: str
    name: str
    columns: dict[str, _Column] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    # (my columns, parent table key, parent columns)
    foreign_keys: list[tuple[list[str], tuple[str, str], list[str]]] = field(default_factory=list)
    # (index name, columns) of every plain unique index besides the primary key (Prisma's @unique is an index)
    unique_keys: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def sql(self) -> str:
        return f"{_ident(self.schema)}.{_ident(self.name)}"

    @property
    def shown(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_COLUMNS_SQL: Final = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory,
       CASE WHEN t.typcategory = 'A' THEN et.typname ELSE t.typname END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname, c.relname, a.attnum
"""
_CONSTRAINTS_SQL: Final = """
SELECT n.nspname, c.relname, k.contype,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i)::text[],
       pn.nspname, pc.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)::text[]
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class pc ON pc.oid = k.confrelid LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE k.contype IN ('p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


_UNIQUE_SQL: Final = """
SELECT n.nspname, c.relname, ic.relname,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY u(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n ORDER BY u.o)::text[]
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indisunique AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


async def _read_tables(conn: Any) -> dict[tuple[str, str], _Table]:
    tables: dict[tuple[str, str], _Table] = {}
    cur = await conn.execute(_COLUMNS_SQL)
    for schema, name, column, type_, category, base in await cur.fetchall():
        table = tables.setdefault((schema, name), _Table(schema, name))
        table.columns[column] = _Column(column, type_, category, base)
    cur = await conn.execute(_CONSTRAINTS_SQL)
    for schema, name, kind, columns, pschema, pname, pcolumns in await cur.fetchall():
        found = tables.get((schema, name))
        if found is None:
            continue
        table = found
        if kind == "p":
            table.primary_key = list(columns)
        else:
            table.foreign_keys.append((list(columns), (pschema, pname), list(pcolumns)))
    cur = await conn.execute(_UNIQUE_SQL)
    for schema, name, index, columns in await cur.fetchall():
        found = tables.get((schema, name))
        if found is not None:
            found.unique_keys.append((index, list(columns)))
    return tables


# --- names -----------------------------------------------------------------------------------------------


def singular(word: str) -> str:
    """English singular of a (camelCase) plural's last word: users→user, categories→category,
    addresses→address, statuses→status. Hand-written: the dozen rules an ORM's plural names need, where an
    inflection library would be a dependency for one function."""
    lower = word.lower()
    for plural, single in (
        ("ies", "y"),
        ("sses", "ss"),
        ("xes", "x"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("uses", "us"),
    ):
        if lower.endswith(plural) and len(word) > len(plural) + 1:
            return word[: -len(plural)] + single
    if lower.endswith("s") and not lower.endswith("ss") and len(word) > 2:
        return word[:-1]
    return word


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class _Mapper:
    """Data keys → tables, fields → columns or nested relations."""

    def __init__(self, tables: dict[tuple[str, str], _Table], models: dict[str, PrismaModel] | None) -> None:
        self.tables = tables
        self.models = models or {}
        self.by_norm: dict[str, _Table] = {}
        for table in sorted(tables.values(), key=lambda t: t.schema != "public"):
            for variant in (_norm(table.name), _norm(singular(table.name))):
                self.by_norm.setdefault(variant, table)

    def model_for_key(self, key: str) -> PrismaModel | None:
        wanted = {_norm(key), _norm(singular(key))}
        for model in self.models.values():
            if _norm(model.name) in wanted or _norm(model.table) in wanted:
                return model
        return None

    def table_for_model(self, model: PrismaModel) -> _Table | None:
        schemas = [model.schema] if model.schema else ["public", *sorted({s for s, _ in self.tables})]
        for schema in schemas:
            if (schema, model.table) in self.tables:
                return self.tables[(schema, model.table)]
        return None

    def table_for_key(self, key: str) -> tuple[_Table | None, PrismaModel | None]:
        model = self.model_for_key(key)
        if model is not None:
            return self.table_for_model(model), model
        return self.by_norm.get(_norm(singular(key))) or self.by_norm.get(_norm(key)), None

    def model_of_table(self, table: _Table) -> PrismaModel | None:
        for model in self.models.values():
            if model.table == table.name and (model.schema or "public") == table.schema:
                return model
        return None

    @staticmethod
    def column_for(table: _Table, model: PrismaModel | None, name: str) -> str | None:
        if model is not None and name in model.fields and not model.fields[name].is_relation:
            mapped = model.fields[name].column
            return mapped if mapped in table.columns else None
        if name in table.columns:
            return name
        lowered = {c.lower(): c for c in table.columns}
        return lowered.get(name.lower()) or lowered.get(_snake(name))


# --- converting --------------------------------------------------------------------------------------------


def _convert(column: _Column, value: Any) -> Any:
    if value is None:
        return None
    if column.base in ("json", "jsonb") and column.category != "A":
        return json.dumps(value)
    if column.category == "A":
        if not isinstance(value, list):
            raise ValueError(
                f"expected a list for the array column {column.name}, got {type(value).__name__}"
            )
        element = _Column(column.name, column.type, "", column.base)
        return [_convert(element, v) for v in value]
    if column.base == "timestamp" and isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # A timestamp WITHOUT time zone holds UTC wall-clock time (Prisma's DateTime): an offset in the JSON
        # is applied, not dropped (PostgreSQL's own cast would drop it).
        return (moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment).isoformat(sep=" ")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- loading ------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    nested: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    unmapped: set[str] = field(default_factory=set)
    file_counts: dict[str, int] = field(default_factory=dict)


def _flatten(
    mapper: _Mapper,
    table: _Table,
    model: PrismaModel | None,
    row: dict[str, Any],
    plan: _Plan,
    *,
    top: bool,
    depth: int = 0,
) -> None:
    out: dict[str, Any] = {}
    children: list[tuple[_Table, PrismaModel | None, dict[str, Any], str | None]] = []
    for name, value in row.items():
        relation = model.fields.get(name) if model is not None else None
        if relation is not None and relation.is_relation:
            child_model = mapper.models.get(relation.type)
            child_table = mapper.table_for_model(child_model) if child_model else None
            if child_table is None or value is None:
                if value is not None:
                    plan.unmapped.add(f"{table.shown}.{name}")
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    children.append((child_table, child_model, item, name))
            continue
        column = mapper.column_for(table, model, name)
        if column is not None:
            out[column] = value
            continue
        nested_table = None
        if model is None and (
            isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict))
        ):
            nested_table = mapper.by_norm.get(_norm(singular(name)))
        if nested_table is None and value is None and mapper.by_norm.get(_norm(singular(name))) is not None:
            continue  # an empty relation ("profile": null)
        if nested_table is not None:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    children.append((nested_table, None, item, None))
            continue
        plan.unmapped.add(f"{table.shown}.{name}")
    (plan.rows if top else plan.nested).setdefault(table.key, []).append(out)
    if depth > 8:
        return
    for child_table, child_model, item, _field in children:
        item = dict(item)
        # The child's foreign key to this row, when the nested object leaves it out (it usually does).
        for columns, parent, parent_columns in child_table.foreign_keys:
            if parent == table.key and all(pc in out for pc in parent_columns):
                for column, parent_column in zip(columns, parent_columns, strict=False):
                    field_name = _field_for_column(child_model, column)
                    if field_name not in item and column not in item:
                        item[field_name] = out[parent_column]
        _flatten(mapper, child_table, child_model, item, plan, top=False, depth=depth + 1)


def _field_for_column(model: PrismaModel | None, column: str) -> str:
    if model is not None:
        for f in model.fields.values():
            if f.column == column and not f.is_relation:
                return f.name
    return column


def _order(tables: list[_Table]) -> tuple[list[_Table], bool]:
    """Parents before children by foreign keys among ``tables``; True when a cycle had to be broken."""
    keys = {t.key: t for t in tables}
    parents = {t.key: {p for _, p, _ in t.foreign_keys if p in keys and p != t.key} for t in tables}
    ordered: list[_Table] = []
    placed: set[tuple[str, str]] = set()
    cycle = False
    while len(ordered) < len(tables):
        ready = [k for k in keys if k not in placed and parents[k] <= placed]
        if not ready:
            cycle = True
            ready = [next(k for k in keys if k not in placed)]
        for key in sorted(ready):
            ordered.append(keys[key])
            placed.add(key)
    return ordered, cycle


def _dedupe(table: _Table, rows: list[dict[str, Any]], nested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not table.primary_key:
        return rows + nested
    seen: set[tuple[Any, ...]] = set()
    out: list[dict[str, Any]] = []
    for row in rows + nested:
        key = tuple(json.dumps(row.get(c), sort_keys=True, default=str) for c in table.primary_key)
        if None in (row.get(c) for c in table.primary_key) or key not in seen:
            seen.add(key)
            out.append(row)
    return out


async def load_json(
    path: Path,
    target_direct_url: Secret,
    *,
    mode: str = "auto",
    prisma_schema: Path | None = None,
    on_progress: Callable[[LoadProgress], None] = lambda _: None,
) -> LoadResult:
    """Load a JSON backup into the database at ``target_direct_url`` in one transaction.

    ``mode``: ``auto`` (the default) makes the file win: a table the file holds completely ends up holding
    exactly the file's rows, a partial one (fewer rows than ``stats`` says, or only nested under another
    table's rows) is upserted, and a branch row that collides with a file row on another unique key (same
    email, new id) is deleted and said in the notes; ``replace`` empties each table the file holds, then
    inserts; ``upsert`` inserts or updates by primary key and keeps rows the file lacks. Refuses (nothing written) a file with a table that maps to no
    table, and rolls back on the first row that violates a constraint.
    """
    import psycopg

    if mode not in MODES:
        raise JsonBackupError(f"Unknown JSON load mode {mode!r}.", hint="Use auto, replace or upsert.")
    started = time.monotonic()
    size = (await asyncio.to_thread(path.stat)).st_size
    if size > MAX_JSON_BYTES:
        raise JsonBackupError(
            f"{path} is larger than 1 GiB; JSON backups are read whole.", hint="Use a pg_dump file."
        )
    try:
        document = await asyncio.to_thread(_read_document, path)
    except (OSError, ValueError) as exc:
        raise JsonBackupError(
            f"{path} is not valid JSON ({exc}); it may be truncated.", hint="Use an earlier JSON backup."
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise JsonBackupError(f'{path} has no "data" object: it is not a JSON backup of the cron kind.')
    if document.get("success") is False:
        raise JsonBackupError(
            f'{path} says the backup job failed ("success": false).', hint="Use an earlier JSON backup."
        )
    models = read_models(prisma_schema) if prisma_schema is not None else None
    stats, partial = _stat_counts(document.get("stats"))
    data: dict[str, Any] = document["data"]
    partial_keys = _partial_keys(document.get("stats"), data)

    try:
        # autocommit: conn.transaction() below is then the one real transaction (not a savepoint in an
        # implicit one that closing the connection would roll back).
        conn = await psycopg.AsyncConnection.connect(
            target_direct_url.reveal(), connect_timeout=15, autocommit=True
        )
    except psycopg.Error as exc:
        raise JsonBackupError(
            f"Could not connect to the new branch at {target_direct_url}: {redact(str(exc)).strip()}"
        ) from None
    try:
        tables = await _read_tables(conn)
        mapper = _Mapper(tables, models)
        plan = _Plan()
        unknown: list[str] = []
        for key, rows in data.items():
            table, model = mapper.table_for_key(key)
            if table is None:
                unknown.append(key)
                continue
            if not isinstance(rows, list):
                raise JsonBackupError(f'In {path.name}, data["{key}"] is not a list of rows.')
            plan.file_counts[table.shown] = len(rows)
            plan.rows.setdefault(table.key, [])
            for row in rows:
                if isinstance(row, dict):
                    _flatten(mapper, table, model, row, plan, top=True)
            stated = stats.get(key)
            if stated is not None and len(rows) < stated:
                partial.append(f"{key}: {len(rows)} rows in the file, stats says {stated}")
            elif stated is not None and len(rows) > stated:
                partial.append(f"{key}: {len(rows)} rows in the file, more than stats says ({stated})")
        if unknown:
            known = ", ".join(sorted(t.shown for t in tables.values() if t.name not in _IGNORED_TABLES))
            raise JsonBackupError(
                f"{path.name} holds {', '.join(repr(k) for k in unknown)}, which match no table in the new "
                f"branch (it has: {known or 'no tables'}). Nothing was loaded.",
                hint="Give the app's Prisma schema (--prisma-schema) so model names map through @@map, or "
                "check that the branch is the app's database.",
            )
        loaded_keys = set(plan.rows) | set(plan.nested)
        targets, cycle = _order([tables[k] for k in loaded_keys])
        result_tables: dict[str, int | None] = {}
        total = len(targets)
        # auto: only tables that are top-level keys of "data" and not partial are complete. A table met only
        # nested under another's rows (users[].sessions) holds just the children of the rows the file has,
        # never the children of rows it lacks, so it is partial unless the file lists it as its own key.
        complete = {
            table.key
            for key in data
            if key not in partial_keys and (table := mapper.table_for_key(key)[0]) is not None
        }
        changes: list[str] = []
        loaded: dict[tuple[str, str], list[dict[str, Any]]] = {}
        async with conn.transaction():
            if mode == "replace" and targets:
                await _truncate(conn, targets, tables)
            if mode == "auto":
                # A complete table without a primary key cannot be matched row by row: emptied first.
                for table in reversed(targets):
                    if table.key in complete and not table.primary_key:
                        await _delete_rows(conn, table, f"DELETE FROM {table.sql}", [])
            for done, table in enumerate(targets, 1):
                rows = _dedupe(table, plan.rows.get(table.key, []), plan.nested.get(table.key, []))
                on_progress(LoadProgress(done - 1, total, 0, size, table.shown))
                if mode == "auto":
                    changes += await _clear_collisions(conn, table, rows)
                await _insert(conn, table, rows, upsert=mode in ("upsert", "auto"))
                result_tables[table.shown] = len(rows)
                loaded[table.key] = rows
            if mode == "auto":
                # Complete tables: rows the file lacks go, children first. Upsert first and delete after
                # (rather than delete, then insert) so a kept row of a partial table that points at a row
                # the file brings back never sees it missing; only rows the file really lacks can block.
                for table in reversed(targets):
                    if table.key in complete and table.primary_key:
                        gone = await _delete_missing(conn, table, loaded[table.key])
                        if gone:
                            changes.append(
                                f"removed {gone} {table.shown} row(s) the file does not hold "
                                "(it holds that table completely)"
                            )
        on_progress(LoadProgress(total, total, size, size, None))
    except psycopg.errors.IntegrityError as exc:
        raise _constraint_error(path, exc) from None
    except psycopg.errors.DataError as exc:
        diag = exc.diag
        raise JsonBackupError(
            f"A value in {path.name} does not fit its column{_in_table(diag.table_name)}: "
            f"{redact(diag.message_primary or str(exc))}. Nothing was loaded.",
            hint="Check the value in the file, or map the field to the right column in the Prisma schema.",
        ) from None
    finally:
        await conn.close()
    missing = sorted(
        t.shown
        for t in tables.values()
        if t.key not in loaded_keys
        and t.name not in _IGNORED_TABLES
        and t.schema in {k[0] for k in loaded_keys}
    )
    notes = [f"loaded with {mode}"]
    if mode == "auto":
        kept = sorted(tables[k].shown for k in loaded_keys if k not in complete)
        if kept:
            notes.append(f"partial tables upserted (their other rows kept): {', '.join(kept)}")
    notes += changes
    if cycle:
        notes.append("the tables' foreign keys form a cycle; they were loaded in name order within it")
    return LoadResult(
        path,
        "json",
        "json",
        None,
        time.monotonic() - started,
        size,
        tables=result_tables,
        unmapped_fields=sorted(plan.unmapped),
        missing_tables=missing,
        partial=partial,
        notes=notes,
    )


MODES: Final = ("auto", "replace", "upsert")


def _partial_keys(stats: Any, data: dict[str, Any]) -> set[str]:
    """Keys of ``data`` whose rows are fewer than the table had (``stats`` says so, either way it is said)."""
    counts, _ = _stat_counts(stats)
    partial = {str(name) for name in counts if _stat_counts({name: stats[name]})[1]}
    for key, rows in data.items():
        stated = counts.get(key)
        if stated is not None and isinstance(rows, list) and len(rows) < stated:
            partial.add(key)
    return partial


def _mask_key(values: tuple[Any, ...]) -> str:
    """A row's key as shown in notes: enough to find it, not the whole value (keys can be emails)."""
    shown = []
    for value in values:
        text = str(value)
        shown.append(text if len(text) <= 6 else text[:4] + "…")
    return ", ".join(shown)


async def _delete_rows(conn: Any, table: _Table, sql: str, params: list[Any]) -> int:
    """Run a DELETE on ``table``; a foreign key from a row the file does not replace names itself."""
    import psycopg

    try:
        cur = await conn.execute(sql, params or None)
    except psycopg.errors.ForeignKeyViolation as exc:
        diag = exc.diag
        raise JsonBackupError(
            f"Making {table.shown} hold the file's rows needs to delete rows that "
            f"{diag.table_name or 'another table'} still references ({diag.constraint_name}): "
            f"{redact(diag.message_detail or diag.message_primary or str(exc))} Nothing was loaded.",
            hint=f"Delete or repoint those {diag.table_name or 'referencing'} rows on the new branch's source "
            "first, or use a backup that holds that table too.",
        ) from None
    return int(cur.rowcount or 0)


async def _clear_collisions(conn: Any, table: _Table, rows: list[dict[str, Any]]) -> list[str]:
    """Delete branch rows that hold a file row's value of another unique key under another primary key.

    The branch is the NEW copy made to hold the file's data, so the file's row wins (a customer who signed up
    again after the incident: her backed-up row comes back, the new one with the same email goes)."""
    if not table.primary_key or not rows:
        return []
    notes: list[str] = []
    pk = table.primary_key
    for _index, columns in table.unique_keys:
        if set(columns) == set(pk):
            continue
        usable = [r for r in rows if all(r.get(c) is not None for c in columns + pk)]
        if not usable:
            continue
        match = " AND ".join(f"{_ident(c)} = %s::{table.columns[c].type}" for c in columns)
        other = ", ".join(f"%s::{table.columns[c].type}" for c in pk)
        mine = ", ".join(_ident(c) for c in pk)
        sql = (
            f"DELETE FROM {table.sql} WHERE {match} AND ROW({mine}) IS DISTINCT FROM ROW({other}) "
            f"RETURNING {mine}"
        )
        for row in usable:
            params = [_convert(table.columns[c], row[c]) for c in columns + pk]
            # one statement per file row: a file holds thousands of rows, not millions (read whole, ≤1 GiB)
            gone = await _returning(conn, table, sql, params)
            named = " and ".join(columns)
            notes += [
                f"replaced {table.shown} row {_mask_key(key)} that held the same {named}" for key in gone
            ]
    return notes


async def _returning(conn: Any, table: _Table, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        cur = await conn.execute(sql, params)
    except psycopg.errors.ForeignKeyViolation as exc:
        diag = exc.diag
        raise JsonBackupError(
            f"A {table.shown} row of the branch collides with one of the file on a unique key, and cannot be "
            f"replaced: {diag.table_name or 'another table'} still references it ({diag.constraint_name}). "
            "Nothing was loaded.",
            hint="Decide which row to keep and delete the other one (and its rows in "
            f"{diag.table_name or 'that table'}) before loading, or add them to the file.",
        ) from None
    return [tuple(r) for r in await cur.fetchall()]


async def _delete_missing(conn: Any, table: _Table, rows: list[dict[str, Any]]) -> int:
    pk = table.primary_key
    keys = [r for r in rows if all(r.get(c) is not None for c in pk)]
    arrays = [[_convert(table.columns[c], r[c]) for r in keys] for c in pk]
    unnest = ", ".join(f"%s::text[]::{table.columns[c].type}[]" for c in pk)
    mine = ", ".join(_ident(c) for c in pk)
    sql = f"DELETE FROM {table.sql} WHERE ({mine}) NOT IN (SELECT * FROM unnest({unnest}))"
    return await _delete_rows(conn, table, sql, arrays)


def _read_document(path: Path) -> Any:
    with open(path, "rb") as stream:
        return json.load(stream)


def _in_table(name: str | None) -> str:
    return f" in table {name}" if name else ""


def _constraint_error(path: Path, exc: Any) -> JsonBackupError:
    diag = exc.diag
    detail = diag.message_detail or ""
    return JsonBackupError(
        f"A row of {path.name}{_in_table(diag.table_name)} violates {diag.constraint_name or 'a constraint'}: "
        f"{redact(diag.message_primary or str(exc))}. {redact(detail)} Nothing was loaded (one transaction).".replace(
            "  ", " "
        ),
        hint="Fix or remove that row in a copy of the file and restore from the copy; the new branch is "
        "deletable and the damaged branch was not touched.",
    )


async def _truncate(conn: Any, targets: list[_Table], tables: dict[tuple[str, str], _Table]) -> None:
    keys = {t.key for t in targets}
    blockers = sorted(
        f"{t.shown} (references {tables[p].shown})"
        for t in tables.values()
        if t.key not in keys
        for _, p, _ in t.foreign_keys
        if p in keys
    )
    if blockers:
        raise JsonBackupError(
            "Replacing the file's tables would also empty tables it does not hold: "
            + ", ".join(blockers)
            + ". Nothing was loaded.",
            hint="Restore without replacing (the file source loads in auto mode: tables the file holds whole are "
            "replaced row by row, partial ones upserted by primary key).",
        )
    await conn.execute("TRUNCATE " + ", ".join(t.sql for t in targets))


async def _insert(conn: Any, table: _Table, rows: list[dict[str, Any]], *, upsert: bool) -> None:
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for row in rows:
        columns = tuple(row)
        try:
            values = [_convert(table.columns[c], row[c]) for c in columns]
        except (ValueError, TypeError) as exc:
            key = ", ".join(f"{c}={row.get(c)!r}" for c in table.primary_key) or "a row"
            raise JsonBackupError(
                f"In table {table.shown}, {key}: {exc}. Nothing was loaded.",
                hint="Check the value in the file.",
            ) from None
        groups.setdefault(columns, []).append(values)
    for columns, values in groups.items():
        if not columns:
            continue
        names = ", ".join(_ident(c) for c in columns)
        placeholders = ", ".join(f"%s::{table.columns[c].type}" for c in columns)
        sql = f"INSERT INTO {table.sql} ({names}) VALUES ({placeholders})"
        if upsert and table.primary_key and set(table.primary_key) <= set(columns):
            others = [c for c in columns if c not in table.primary_key]
            conflict = ", ".join(_ident(c) for c in table.primary_key)
            if others:
                sets = ", ".join(f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in others)
                sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
            else:
                sql += f" ON CONFLICT ({conflict}) DO NOTHING"
        async with conn.cursor() as cur:
            await cur.executemany(sql, values)
