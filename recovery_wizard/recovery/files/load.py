"""Bring a backup file's data into an EXISTING database (the new branch), in one transaction.

- pg_dump archives (custom, directory, tar): ``pg_restore --single-transaction --clean --if-exists --no-owner
  --no-acl`` straight into the database. ``--jobs N`` is an explicit option only: it is incompatible with
  ``--single-transaction``, so a failure half-way leaves the branch half-loaded (it is still a new branch, to
  be deleted; the damaged one is never touched).
- When the only pg_restore new enough to read the archive is 17+ and the server is older, pg_restore's
  session setup (``SET transaction_timeout``) is refused by the server; then pg_restore writes the script and
  ``psql -1`` runs it, with that one header line left out (the same fix the sandbox applies to its dumps).
- SQL (plain, gzip, zstd): checked first in full (``sqlcheck``: nothing that acts outside the branch), then
  streamed to ``psql -X -1 -v ON_ERROR_STOP=1`` on its stdin.
- JSON backups: ``jsonbackup.load_json`` (psycopg, one transaction).

The password reaches pg_restore/psql through ``PGPASSWORD`` in their environment, never their arguments.
When anything fails, psql is killed before its stdin is closed: closing it would make ``psql -1`` COMMIT
what it had so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from recovery_wizard.errors import RecoveryError
from recovery_wizard.pgtools import PgTools, find_tools
from recovery_wizard.recovery.files import streams
from recovery_wizard.recovery.files.detect import BackupInfo, _major
from recovery_wizard.redact import Secret, redact
from recovery_wizard.tlsrelay import usable_conninfo

_CHUNK: Final = 256 * 1024
_HEADER_BYTES: Final = 64 * 1024
_REPORT_EVERY: Final = 1024 * 1024
# LoadProgress.current while a SQL file is read through once before anything runs.
CHECKING: Final = "checking the SQL before loading"
_TIMEOUT_LINE: Final = re.compile(rb"^SET transaction_timeout = 0;\r?\n", re.MULTILINE)
_PROCESSING: Final = re.compile(r'processing data for table "(?P<name>[^"]+)"')
_TOC_ENTRY: Final = re.compile(r"from TOC entry \d+; \d+ \d+ (?P<what>.+)$")
_PSQL_ERROR: Final = re.compile(r"^psql:(?P<src>[^:]*):(?P<line>\d+): (?P<message>(?:ERROR|FATAL).*)$")
_DATA_COMMENT: Final = re.compile(
    rb"^-- Data for Name: ([^;]+); Type: TABLE DATA; Schema: ([^;]+);", re.MULTILINE
)


class LoadError(RecoveryError):
    """Loading failed; nothing was committed (unless ``--jobs`` was chosen). ``failing_object`` names what
    pg_restore/psql was loading; ``output`` is the tool's last lines, secrets masked."""

    def __init__(
        self, message: str, *, hint: str = "", failing_object: str | None = None, output: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.failing_object = failing_object
        self.output = redact(output)


@dataclass(frozen=True)
class LoadProgress:
    tables_done: int
    tables_total: int
    bytes_read: int
    bytes_total: int
    current: str | None = None


ProgressCallback = Callable[[LoadProgress], None]


@dataclass
class LoadResult:
    path: Path
    kind: str
    method: str  # "pg_restore", "pg_restore | psql", "psql", "json"
    tool_major: int | None
    seconds: float
    bytes_read: int
    tables: dict[str, int | None] = field(default_factory=dict)  # rows loaded where known
    single_transaction: bool = True
    unmapped_fields: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "method": self.method,
            "tool_major": self.tool_major,
            "seconds": round(self.seconds, 3),
            "bytes_read": self.bytes_read,
            "tables": self.tables,
            "single_transaction": self.single_transaction,
            "unmapped_fields": self.unmapped_fields,
            "missing_tables": self.missing_tables,
            "partial": self.partial,
            "notes": self.notes,
        }


def _nothing(_: LoadProgress) -> None:
    pass


async def load(
    path: Path,
    info: BackupInfo,
    target_direct_url: Secret,
    *,
    on_progress: ProgressCallback = _nothing,
    jobs: int | None = None,
    json_mode: str = "auto",
    prisma_schema: Path | None = None,
    server_major: int | None = None,
    tools: PgTools | None = None,
) -> LoadResult:
    """Load ``path`` (as :func:`detect.detect` described it in ``info``) into the database at
    ``target_direct_url`` (a direct, not pooled, URL of the NEW branch). Raises :class:`LoadError`,
    ``BackupFileError``/``SqlRefusedError`` (refused before loading) or ``JsonBackupError``."""
    if info.problem:
        from recovery_wizard.recovery.files.detect import BackupFileError

        raise BackupFileError(f"{path} cannot be loaded: {info.problem}.", hint=info.hint)
    if info.kind == "json":
        from recovery_wizard.recovery.files.jsonbackup import load_json

        return await load_json(
            path, target_direct_url, mode=json_mode, prisma_schema=prisma_schema, on_progress=on_progress
        )
    if server_major is None:
        server_major = await server_major_of(target_direct_url)
    if tools is None:
        tools = await asyncio.to_thread(
            tools_for, max(server_major, _major(info.dump_version) or 0), info.archive_compression
        )
    # Programs built without TLS reach the server through a local relay that speaks it (tlsrelay.py).
    first = _Target.of(target_direct_url)
    async with usable_conninfo(first.conninfo, tools) as reach:
        target = _Target(reach, first.env)
        if info.kind == "sql":
            return await _load_sql(path, info, target, tools, server_major, on_progress)
        if jobs and jobs > 1:
            if tools.major >= 17 and server_major < 17:
                raise LoadError(
                    f"--jobs needs pg_restore to connect to the server itself, and the pg_restore here "
                    f"({tools.major}) is newer than PostgreSQL {server_major} allows for that.",
                    hint="Leave out --jobs (the load then runs in one transaction), or install PostgreSQL "
                    f"{server_major}'s client programs.",
                )
            return await _pg_restore_direct(path, info, target, tools, on_progress, jobs=jobs)
        if tools.major >= 17 and server_major < 17:
            return await _pg_restore_piped(path, info, target, tools, server_major, on_progress)
        return await _pg_restore_direct(path, info, target, tools, on_progress, jobs=None)


def _built_with(tools: PgTools, algorithm: str) -> bool | None:
    """Whether the tools were built with lz4/zstd (``pg_config --configure``); None when it cannot tell."""
    import subprocess

    pg_config = tools.bin_dir / "pg_config"
    if not pg_config.exists():
        return None
    try:
        out = subprocess.run(
            [str(pg_config), "--configure"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return f"--with-{algorithm}" in out


def tools_for(major: int, archive_compression: str | None) -> PgTools:
    """:func:`find_tools`, but able to read the archive's compression: the embedded PostgreSQL 18 clients
    are built without lz4 and zstd, so such an archive needs another installed pg_restore."""
    from recovery_wizard.pgtools import installed

    tools = find_tools(major)
    if archive_compression not in ("lz4", "zstd") or _built_with(tools, archive_compression) is not False:
        return tools
    for found_major, directory in sorted(installed().items()):
        other = PgTools(directory, found_major)
        if found_major >= major and _built_with(other, archive_compression):
            return other
    from recovery_wizard.recovery.files.detect import BackupFileError

    raise BackupFileError(
        f"The archive is compressed with {archive_compression} inside, and no pg_restore here "
        f"(PostgreSQL {major} or newer) was built with {archive_compression}.",
        hint=f"Install PostgreSQL's client programs from your system's packages (they include "
        f"{archive_compression}), or make the dump again with -Z gzip.",
    )


async def server_major_of(url: Secret) -> int:
    import psycopg

    try:
        async with await psycopg.AsyncConnection.connect(url.reveal(), connect_timeout=15) as conn:
            cur = await conn.execute("SELECT current_setting('server_version_num')::int / 10000")
            row = await cur.fetchone()
    except psycopg.Error as exc:
        raise LoadError(
            f"Could not connect to the new branch at {url}: {redact(str(exc)).strip()}",
            hint="Check that the branch's compute is running and the URL is its direct (not pooled) one.",
        ) from None
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class _Target:
    conninfo: str  # without the password: safe in argv
    env: dict[str, str]

    @classmethod
    def of(cls, url: Secret) -> _Target:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(url.reveal())
        password = params.pop("password", None)
        # The caller's PG* variables could send the tools elsewhere (PGSERVICE, PGOPTIONS, a stale
        # PGPASSWORD); the URL says where. Certificates configured for TLS are kept.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k.startswith("PGSSL")}
        env["PGAPPNAME"] = "recovery-wizard load"
        if password:
            env["PGPASSWORD"] = str(password)
        return cls(make_conninfo(**{k: str(v) for k, v in params.items()}), env)


class _Tail:
    """The last lines a tool wrote (for the error), secrets masked when shown."""

    def __init__(self, size: int = 40) -> None:
        self.lines: deque[str] = deque(maxlen=size)
        self.failing_object: str | None = None
        self.error: str | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)
        if (entry := _TOC_ENTRY.search(line)) is not None:
            self.failing_object = entry.group("what").strip()
        if self.error is None and ("error:" in line or _PSQL_ERROR.match(line) or line.startswith("ERROR:")):
            self.error = line.strip()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def _spawn(
    *args: str | Path, env: dict[str, str], stdin: int | None = None, stdout: int | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *[str(a) for a in args],
        stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=stdout if stdout is not None else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
        limit=1024 * 1024,
    )


async def _kill(proc: asyncio.subprocess.Process | None) -> None:
    """SIGKILL, not SIGTERM: the server rolls the transaction back when the connection drops, and nothing
    the tool could still do on a polite stop (psql's COMMIT at end of input) is wanted."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await proc.wait()


async def _read_stderr(
    proc: asyncio.subprocess.Process, tail: _Tail, on_line: Callable[[str], None] | None = None
) -> None:
    assert proc.stderr is not None
    while raw := await proc.stderr.readline():
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.add(line)
        if on_line:
            on_line(line)


def _file_position(pid: int, path: Path) -> int | None:
    """How far a child has read ``path`` (Linux's /proc/<pid>/fdinfo), for progress; None elsewhere."""
    target = str(path.resolve())
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        for line in info:
                            if line.startswith("pos:"):
                                return int(line.split()[1])
    except OSError:
        return None
    return None


def _failure(what: str, path: Path, tail: _Tail, *, hint: str) -> LoadError:
    detail = tail.error or (tail.lines[-1] if tail.lines else "no output")
    where = f" while loading {tail.failing_object}" if tail.failing_object else ""
    return LoadError(
        f"{what} failed{where} from {path.name}: {redact(detail)}",
        hint=hint,
        failing_object=tail.failing_object,
        output=tail.text,
    )


_ROLLED_BACK = (
    "Nothing was committed: the new branch holds what it held before the load (delete it, or fix the "
    "cause and load again). The damaged branch was not touched."
)


async def _pg_restore_direct(
    path: Path,
    info: BackupInfo,
    target: _Target,
    tools: PgTools,
    on_progress: ProgressCallback,
    *,
    jobs: int | None,
) -> LoadResult:
    started = time.monotonic()
    total = len(info.tables)
    done = 0
    size = info.size
    args: list[str | Path] = [
        tools.pg_restore,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-acl",
        "--verbose",
    ]
    args += ["--exit-on-error", f"--jobs={jobs}"] if jobs else ["--single-transaction"]
    args += [f"--dbname={target.conninfo}", path]
    tail = _Tail()
    proc = await _spawn(*args, env=target.env)
    position = 0

    def on_line(line: str) -> None:
        nonlocal done
        if (found := _PROCESSING.search(line)) is not None:
            done += 1
            on_progress(LoadProgress(done, total, position, size, found.group("name")))

    async def poll() -> None:
        nonlocal position
        while True:
            await asyncio.sleep(0.5)
            got = _file_position(proc.pid, path)
            if got is not None:
                position = got
                on_progress(LoadProgress(done, total, position, size, None))

    poller = asyncio.create_task(poll())
    try:
        await _read_stderr(proc, tail, on_line)
        code = await proc.wait()
    except BaseException:
        await _kill(proc)
        raise
    finally:
        poller.cancel()
    if code != 0:
        raise _failure(
            "pg_restore",
            path,
            tail,
            hint=(
                "With --jobs the load is not one transaction: the new branch is half-loaded; delete it. "
                "The damaged branch was not touched."
                if jobs
                else _ROLLED_BACK
            ),
        )
    on_progress(LoadProgress(total, total, size, size, None))
    return LoadResult(
        path,
        info.kind,
        "pg_restore",
        tools.major,
        time.monotonic() - started,
        size,
        tables=dict(info.tables),
        single_transaction=not jobs,
        notes=[f"--jobs {jobs}: loaded in parallel, not in one transaction"] if jobs else [],
    )


def _psql_args(tools: PgTools, target: _Target) -> list[str | Path]:
    return [tools.psql, "-X", "-1", "-w", "-v", "ON_ERROR_STOP=1", "-f", "-", f"--dbname={target.conninfo}"]


class _HeaderFilter:
    """Drops ``SET transaction_timeout = 0;`` from the first 64 KiB (the session header pg_dump/pg_restore
    17+ write), for servers before 17, which reject the parameter."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.seen = 0
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.active or self.seen >= _HEADER_BYTES:
            return chunk
        data = self.pending + chunk
        self.seen += len(chunk)
        if self.seen < _HEADER_BYTES and chunk:
            cut = data.rfind(b"\n") + 1  # whole lines only, so the pattern never straddles two chunks
            self.pending = data[cut:]
            return _TIMEOUT_LINE.sub(b"", data[:cut])
        self.pending = b""
        return _TIMEOUT_LINE.sub(b"", data)

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return _TIMEOUT_LINE.sub(b"", rest) if self.active else rest


async def _pump(
    read: Callable[[int], Any],
    psql: asyncio.subprocess.Process,
    header: _HeaderFilter,
    on_bytes: Callable[[int, bytes], None],
) -> int:
    """Copy from ``read`` (sync or async) to psql's stdin; returns bytes read. Does NOT close stdin."""
    assert psql.stdin is not None
    count = 0
    while True:
        chunk = read(_CHUNK)
        if asyncio.iscoroutine(chunk):
            chunk = await chunk
        if not chunk:
            break
        count += len(chunk)
        on_bytes(count, chunk)
        out = header.feed(chunk)
        if out:
            psql.stdin.write(out)
            await psql.stdin.drain()
    rest = header.flush()
    if rest:
        psql.stdin.write(rest)
        await psql.stdin.drain()
    return count


def _broken(pump: asyncio.Task[int]) -> bool:
    """The pump ended because psql closed its stdin (it stopped on an error)."""
    return pump.done() and isinstance(pump.exception(), BrokenPipeError | ConnectionResetError)


async def _finish_psql(psql: asyncio.subprocess.Process) -> int:
    """Close stdin (psql then COMMITs) and wait for it: called only when every byte was sent."""
    assert psql.stdin is not None
    psql.stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await psql.stdin.wait_closed()
    return await psql.wait()


async def _pg_restore_piped(
    path: Path,
    info: BackupInfo,
    target: _Target,
    tools: PgTools,
    server_major: int,
    on_progress: ProgressCallback,
) -> LoadResult:
    started = time.monotonic()
    total, size = len(info.tables), info.size
    done = 0
    restore_tail, psql_tail = _Tail(), _Tail()
    restore = await _spawn(
        tools.pg_restore,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-acl",
        "--verbose",
        "--file=-",
        path,
        env=target.env,
        stdout=asyncio.subprocess.PIPE,
    )
    psql: asyncio.subprocess.Process | None = None
    try:
        psql = await _spawn(*_psql_args(tools, target), env=target.env, stdin=asyncio.subprocess.PIPE)
        current: list[str | None] = [None]

        def on_line(line: str) -> None:
            nonlocal done
            if (found := _PROCESSING.search(line)) is not None:
                done += 1
                current[0] = found.group("name")
                on_progress(LoadProgress(done, total, 0, size, current[0]))

        def on_bytes(_count: int, chunk: bytes) -> None:
            names = _DATA_COMMENT.findall(chunk)
            if names:
                name, schema = names[-1]
                psql_tail.failing_object = (
                    f"TABLE DATA {schema.decode(errors='replace')}.{name.decode(errors='replace')}"
                )

        assert restore.stdout is not None
        readers = [
            asyncio.create_task(_read_stderr(restore, restore_tail, on_line)),
            asyncio.create_task(_read_stderr(psql, psql_tail)),
        ]
        pump = asyncio.create_task(_pump(restore.stdout.read, psql, _HeaderFilter(True), on_bytes))
        psql_done = asyncio.create_task(psql.wait())
        await asyncio.wait([pump, psql_done], return_when=asyncio.FIRST_COMPLETED)
        if psql_done.done() or _broken(pump):  # psql stopped before the script ended: an error
            await psql_done
            await _kill(restore)
            pump.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            raise _failure("Loading (psql)", path, psql_tail, hint=_ROLLED_BACK)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await pump
        restore_code = await restore.wait()
        if restore_code != 0:
            await _kill(psql)
            await asyncio.gather(*readers, return_exceptions=True)
            raise _failure("pg_restore", path, restore_tail, hint=_ROLLED_BACK)
        code = await _finish_psql(psql)
        await asyncio.gather(*readers, return_exceptions=True)
        if code != 0:
            raise _failure("Loading (psql)", path, psql_tail, hint=_ROLLED_BACK)
    except BaseException:
        await _kill(psql)
        await _kill(restore)
        raise
    on_progress(LoadProgress(total, total, size, size, None))
    return LoadResult(
        path,
        info.kind,
        "pg_restore | psql",
        tools.major,
        time.monotonic() - started,
        size,
        tables=dict(info.tables),
        notes=[
            f"pg_restore {tools.major} wrote the script and psql ran it in one transaction: PostgreSQL "
            f"{server_major} rejects pg_restore {tools.major}'s session setting transaction_timeout"
        ],
    )


async def _load_sql(
    path: Path,
    info: BackupInfo,
    target: _Target,
    tools: PgTools,
    server_major: int,
    on_progress: ProgressCallback,
) -> LoadResult:
    from recovery_wizard.recovery.files.sqlcheck import check_sql_file

    started = time.monotonic()
    size = info.size
    # The whole file is checked before one statement runs (the check is a read; the load is the write).
    loop = asyncio.get_running_loop()

    def checking(count: int) -> None:  # called from the checking thread: hand it to the loop
        loop.call_soon_threadsafe(on_progress, LoadProgress(0, 0, count, size, CHECKING))

    checked = await asyncio.to_thread(check_sql_file, path, info.compression, on_bytes=checking)
    total = len(checked.tables)
    done = 0
    tail = _Tail()
    psql = await _spawn(
        *_psql_args(tools, target),
        env=target.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    raw_read = [0]

    async def count_copies() -> None:
        nonlocal done
        assert psql.stdout is not None
        while line := await psql.stdout.readline():
            if line.startswith(b"COPY "):
                done += 1
                on_progress(LoadProgress(done, total, raw_read[0], size, None))

    def on_bytes(count: int, _chunk: bytes) -> None:
        if count // _REPORT_EVERY != raw_read[0] // _REPORT_EVERY:
            on_progress(LoadProgress(done, total, count, size, None))
        raw_read[0] = count

    try:
        readers = [asyncio.create_task(_read_stderr(psql, tail)), asyncio.create_task(count_copies())]
        with streams.open_decompressed(path, info.compression) as stream:
            pump = asyncio.create_task(
                _pump(
                    lambda n: asyncio.to_thread(stream.read, n),
                    psql,
                    _HeaderFilter(server_major < 17),
                    on_bytes,
                )
            )
            psql_done = asyncio.create_task(psql.wait())
            await asyncio.wait([pump, psql_done], return_when=asyncio.FIRST_COMPLETED)
            if psql_done.done() or _broken(pump):
                await psql_done
                pump.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                raise _failure("Loading (psql)", path, tail, hint=_ROLLED_BACK)
            try:
                await pump
            except (OSError, EOFError) as exc:
                await _kill(psql)
                raise LoadError(
                    f"Reading {path.name} failed part-way ({exc}); nothing was committed.",
                    hint="The file is damaged or truncated: use a whole copy or an older backup.",
                ) from None
        code = await _finish_psql(psql)
        await asyncio.gather(*readers, return_exceptions=True)
    except BaseException:
        await _kill(psql)
        raise
    if code != 0:
        raise _failure("Loading (psql)", path, tail, hint=_ROLLED_BACK)
    on_progress(LoadProgress(total, total, size, size, None))
    return LoadResult(
        path,
        "sql",
        "psql",
        tools.major,
        time.monotonic() - started,
        checked.bytes_read,
        tables={name: rows for name, rows in checked.tables.items()},
    )
