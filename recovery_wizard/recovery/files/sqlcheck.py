"""Plain SQL runs against the new branch only: statements and psql commands that act outside it are refused
before a single one is loaded.

Streamed line by line (a dump of several GB is checked in one pass, memory flat): SQL statements are judged
by PostgreSQL's own parser (``pglast``, as ``recovery/sqlguard.py`` does), so a quote, a dollar quote or a
comment is read as the server reads it; psql's backslash commands, which no SQL parser knows, are read line by
line, outside statements and outside ``COPY … FROM stdin`` data blocks (whose rows are counted per table on
the way, which is where a plain dump's row counts come from).

Refused: switching or leaving the database (``\\connect``/``\\c``), running programs or touching the client's
files (``\\!``, ``\\o``, ``\\w``, ``\\copy``, ``\\i``, ``\\gexec`` …), server files and programs
(``COPY … PROGRAM``, ``COPY … FROM/TO 'file'``, ``pg_read_file()``, ``lo_import()``), other databases and the
cluster (``CREATE/DROP/ALTER DATABASE``, ``ALTER SYSTEM``, roles, tablespaces, subscriptions), other sessions
(``pg_terminate_backend()``). Allowed psql commands: those pg_dump itself writes or that only set psql's own
variables (``\\restrict``/``\\unrestrict`` from pg_dump 17.6+, ``\\set``, ``\\unset``, ``\\encoding``,
``\\echo``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from recovery_wizard.recovery.files import streams
from recovery_wizard.recovery.files.detect import BackupFileError

_MAX_STATEMENT: Final = 64 * 1024 * 1024
_ALLOWED_META: Final = frozenset({"restrict", "unrestrict", "set", "unset", "encoding", "echo", "qecho"})
_META_WHY: Final = {
    "c": "switches to another database",
    "connect": "switches to another database",
    "!": "runs a shell command on this computer",
    "o": "writes query output to a file or a program",
    "out": "writes query output to a file or a program",
    "w": "writes to a file or a program",
    "write": "writes to a file or a program",
    "copy": "reads or writes files (or runs a program) on this computer",
    "i": "runs another file's SQL, which was not checked",
    "include": "runs another file's SQL, which was not checked",
    "ir": "runs another file's SQL, which was not checked",
    "include_relative": "runs another file's SQL, which was not checked",
    "gexec": "runs SQL built from query results, which cannot be checked beforehand",
    "g": "can send output to a file or a program",
    "setenv": "changes this computer's environment",
    "cd": "changes this computer's working directory",
    "lo_import": "reads a file on this computer",
    "lo_export": "writes a file on this computer",
}
_STATEMENT_WHY: Final = {
    "CreatedbStmt": "creates another database",
    "DropdbStmt": "drops a database",
    "AlterDatabaseStmt": "changes a database's settings",
    "AlterDatabaseSetStmt": "changes a database's settings",
    "AlterDatabaseRefreshCollStmt": "changes a database",
    "AlterSystemStmt": "changes the server's configuration (ALTER SYSTEM)",
    "CreateTableSpaceStmt": "creates a tablespace (server storage)",
    "DropTableSpaceStmt": "drops a tablespace",
    "CreateRoleStmt": "creates a role (a login shared by the branch's databases)",
    "AlterRoleStmt": "changes a role (a login shared by the branch's databases)",
    "AlterRoleSetStmt": "changes a role's settings",
    "DropRoleStmt": "drops a role",
    "CreateSubscriptionStmt": "subscribes to another server",
    "AlterSubscriptionStmt": "changes a subscription to another server",
    "DropSubscriptionStmt": "drops a subscription",
    "LoadStmt": "loads a server library",
}
_DENIED_FUNCTIONS: Final = re.compile(
    r"pg_(terminate|cancel|signal)_backend|pg_read_(binary_)?file|pg_ls_\w+|pg_stat_file|pg_file_\w+"
    r"|lo_(import|export)|dblink\w*|pg_reload_conf|pg_rotate_logfile|pg_promote|pg_switch_wal"
    r"|pg_(create|drop)_\w+_replication_slot|pg_replication_origin_\w+"
)
_META_RE: Final = re.compile(r"\s*\\([A-Za-z_]+|!)")
_INCOMPLETE: Final = ("unterminated", "at end of input")


class SqlRefusedError(BackupFileError):
    """A statement or psql command in a SQL file would act outside the new branch."""


@dataclass
class SqlCheck:
    """What the pass over the file found: statements, ``COPY`` rows per table, whether it sets
    ``transaction_timeout`` (pg_dump 17+; unknown to servers before 17)."""

    statements: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    sets_transaction_timeout: bool = False
    from_pg_dump: bool = False
    complete: bool = False  # pg_dump's closing comment was the last thing in the file
    # Schemas the file creates tables in: a schema-and-data dump needs them free of those tables first.
    table_schemas: set[str] = field(default_factory=set)


def check_sql_file(
    path: Path, compression: str | None = None, *, on_bytes: Callable[[int], None] | None = None
) -> SqlCheck:
    """Read the whole (decompressed) file once; raise :class:`SqlRefusedError` at the first thing refused."""
    with streams.open_decompressed(path, compression) as raw:
        counted = _Counting(raw, on_bytes)
        text = io.TextIOWrapper(io.BufferedReader(counted), encoding="utf-8", errors="replace", newline="")
        try:
            result = check_lines(text, where=str(path))
        except (OSError, EOFError) as exc:
            raise SqlRefusedError(
                f"{path} could not be read to the end ({exc}); it looks truncated or damaged.",
                hint="Use a whole copy of the file, or an older backup.",
            ) from None
        result.bytes_read = counted.count
        return result


class _Counting(io.RawIOBase):
    def __init__(self, inner: IO[bytes], on_bytes: Callable[[int], None] | None) -> None:
        self.inner = inner
        self.count = 0
        self.on_bytes = on_bytes
        self._next_report = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self.on_bytes and self.count >= self._next_report:
            self.on_bytes(self.count)
            self._next_report = self.count + 4 * 1024 * 1024
        return n


def check_text(sql: str) -> SqlCheck:
    """Check SQL held in memory (tests, small files)."""
    return check_lines(io.StringIO(sql), where="the SQL")


def check_lines(lines: io.TextIOBase | io.TextIOWrapper, *, where: str) -> SqlCheck:
    from pglast import parse_sql
    from pglast.parser import ParseError

    result = SqlCheck()
    buffer: list[str] = []
    buffered = 0
    start_line = 0
    copy_table: str | None = None
    number = 0
    for number, line in enumerate(lines, 1):
        if copy_table is not None:
            if line.rstrip("\r\n") == "\\.":
                copy_table = None
            else:
                result.tables[copy_table] += 1
            continue
        if not buffer:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("--"):
                if number < 8 and stripped.startswith("-- PostgreSQL database dump"):
                    result.from_pg_dump = True
                elif stripped == "-- PostgreSQL database dump complete":
                    result.complete = True
                continue
            if stripped.startswith("\\"):
                _check_meta(stripped, number, where)
                continue
            result.complete = False
            start_line = number
        buffer.append(line)
        buffered += len(line)
        if buffered > _MAX_STATEMENT:
            raise SqlRefusedError(
                f"{where}, line {start_line}: a statement runs past {_MAX_STATEMENT // 1024 // 1024} MiB "
                "without ending; the file is not SQL this tool can check.",
            )
        if not line.rstrip().endswith(";"):
            continue
        text = "".join(buffer)
        try:
            statements = parse_sql(text)
        except ParseError as exc:
            if any(marker in str(exc) for marker in _INCOMPLETE):
                continue  # a quoted string, dollar quote or comment goes on past this ';'
            _check_inline_meta(text, exc, start_line, where)
            raise SqlRefusedError(
                f"{where}, line {start_line}: the statement {_excerpt(text)} does not parse as PostgreSQL "
                f"({exc}); nothing was loaded.",
                hint="A backslash in the middle of a line is a psql command: put SQL and psql commands on "
                "lines of their own, or fix the statement.",
            ) from None
        buffer.clear()
        buffered = 0
        for raw in statements:
            result.statements += 1
            _check_statement(raw.stmt, text, start_line, where, result)
            copy_table = _copy_from_stdin(raw.stmt) or copy_table
        if copy_table is not None:
            result.tables.setdefault(copy_table, 0)
    if buffer and "".join(buffer).strip():
        text = "".join(buffer)
        try:
            for raw in parse_sql(text):
                result.statements += 1
                _check_statement(raw.stmt, text, start_line, where, result)
        except ParseError as exc:
            if any(marker in str(exc) for marker in _INCOMPLETE):
                raise SqlRefusedError(
                    f"{where}, line {start_line}: the file ends inside a statement ({exc}); it looks truncated.",
                    hint="Use a whole copy of the file, or an older backup.",
                ) from None
            raise SqlRefusedError(
                f"{where}, line {start_line}: the statement {_excerpt(text)} does not parse as PostgreSQL "
                f"({exc}); nothing was loaded.",
                hint="A backslash after SQL on the same line is a psql command: this tool runs only the psql "
                "commands pg_dump writes (\\restrict, \\set …) on lines of their own.",
            ) from None
    if copy_table is not None:
        raise SqlRefusedError(
            f"{where}: the file ends inside the data of {copy_table} (no closing \\.); it looks truncated, "
            f"after line {number}.",
            hint="Use a whole copy of the file, or an older backup.",
        )
    if result.from_pg_dump and not result.complete:
        raise SqlRefusedError(
            f"{where}: pg_dump's closing line (-- PostgreSQL database dump complete) is missing after line "
            f"{number}; the file looks truncated.",
            hint="Use a whole copy of the file, or an older backup.",
        )
    return result


def _excerpt(text: str, limit: int = 80) -> str:
    from recovery_wizard.redact import redact

    flat = " ".join(text.split())
    return repr(redact(flat if len(flat) <= limit else flat[: limit - 1] + "…"))


def _check_meta(line: str, number: int, where: str) -> None:
    match = _META_RE.match(line)
    name = match.group(1) if match else line[1:2]
    if name.lower() in _ALLOWED_META:
        return
    why = _META_WHY.get(name.lower(), "is a psql command that may act outside the new branch")
    raise SqlRefusedError(
        f"{where}, line {number}: the psql command \\{name} {why}; a backup is loaded into the new branch "
        "only, so nothing was loaded.",
        hint="Remove that line (and anything that relies on it) from a copy of the file, then give the copy.",
    )


def _check_inline_meta(text: str, exc: Exception, line: int, where: str) -> None:
    """A parse error at a backslash: a psql command after SQL on the same line (``SELECT … \\gexec``)."""
    at = re.search(r"at index (\d+)", str(exc))
    if 'near "\\"' not in str(exc) or at is None:
        return
    match = _META_RE.match(text, int(at.group(1)))
    name = match.group(1) if match else "?"
    why = _META_WHY.get(name.lower(), "may act outside the new branch")
    raise SqlRefusedError(
        f"{where}, line {line}: the psql command \\{name} after SQL on the same line {why}; a backup is "
        "loaded into the new branch only, so nothing was loaded.",
        hint="Remove that command from a copy of the file, then give the copy.",
    )


def _check_statement(node: object, text: str, line: int, where: str, result: SqlCheck) -> None:
    from pglast import ast

    name = type(node).__name__
    why = _STATEMENT_WHY.get(name)
    if isinstance(node, ast.CopyStmt):
        if node.is_program:
            why = "runs a program on the database server (COPY … PROGRAM)"
        elif node.filename:
            why = "reads or writes a file on the database server (COPY with a file name)"
    if isinstance(node, ast.CreateStmt) and node.relation is not None:
        result.table_schemas.add(node.relation.schemaname or "public")
    if isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "transaction_timeout":
        result.sets_transaction_timeout = True
    if why is None:
        why = _function_refusal(node)
    if why is not None:
        raise SqlRefusedError(
            f"{where}, line {line}: {_excerpt(text)} {why}; a backup is loaded into the new branch only, so "
            "nothing was loaded.",
            hint="Remove that statement from a copy of the file, then give the copy.",
        )


def _function_refusal(root: object) -> str | None:
    from pglast import ast

    from recovery_wizard.recovery.sqlguard import _walk

    for node in _walk(root):
        if isinstance(node, ast.FuncCall):
            parts = [str(getattr(p, "sval", "")) for p in node.funcname or ()]
            if parts and _DENIED_FUNCTIONS.fullmatch(parts[-1].casefold()):
                return f"calls {'.'.join(parts)}(), which acts outside the database's tables"
    return None


def _copy_from_stdin(node: object) -> str | None:
    from pglast import ast

    if isinstance(node, ast.CopyStmt) and node.is_from and not node.filename and not node.is_program:
        relation = node.relation
        if relation is None:
            return None
        return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else str(relation.relname)
    return None
