"""Loading every kind of file into an existing database with the real pg_restore/psql, in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recovery_wizard.pgtools import PgTools, embedded_bin_dir, installed
from recovery_wizard.recovery.files import detect
from recovery_wizard.recovery.files.detect import BackupFileError
from recovery_wizard.recovery.files.load import LoadError, LoadProgress, _Target, load
from recovery_wizard.recovery.files.sqlcheck import SqlRefusedError
from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer
from tests.files.conftest import Dumper, Scratch


def _counts(scratch: Scratch, db: str) -> tuple[object, object]:
    return (
        scratch.query(db, 'SELECT count(*) FROM "User"')[0][0],
        scratch.query(db, 'SELECT count(*) FROM "Order"')[0][0],
    )


def _compress(path: Path, how: str) -> Path:
    if how == "gzip":
        out = path.with_name(path.name + ".gz")
        out.write_bytes(gzip.compress(path.read_bytes()))
        return out
    out = path.with_name(path.name + ".zst")
    subprocess.run(["zstd", "-q", str(path), "-o", str(out)], check=True)
    return out


@pytest.mark.parametrize(
    ("fmt", "compression", "method"),
    [
        ("c", None, "pg_restore"),
        ("d", None, "pg_restore"),
        ("t", None, "pg_restore"),
        ("p", None, "psql"),
        ("p", "gzip", "psql"),
        pytest.param(
            "p", "zstd", "psql", marks=pytest.mark.skipif(not shutil.which("zstd"), reason="no zstd")
        ),
    ],
)
async def test_each_format_loads(
    dump: Dumper, scratch: Scratch, fmt: str, compression: str | None, method: str
) -> None:
    path = dump(fmt)
    if compression:
        path = _compress(path, compression)
    target = scratch.create()
    seen: list[LoadProgress] = []
    result = await load(path, detect.detect(path), scratch.url(target), on_progress=seen.append)
    assert _counts(scratch, target) == (300, 120)
    assert result.method == method and result.single_transaction
    assert seen and seen[-1].tables_done == seen[-1].tables_total == 2
    if fmt == "p":
        assert result.tables == {"public.User": 300, "public.Order": 120}


async def test_archive_from_a_newer_pg_dump_than_the_server(
    pg_server: PgServer, scratch: Scratch, tmp_path: Path
) -> None:
    """pg_dump 18's archive into an older server: pg_restore 18 writes, psql -1 runs, without the SET the
    older server rejects."""
    embedded = PgTools(embedded_bin_dir(), 18)
    source = scratch.create(
        "CREATE TABLE \"User\" (id text PRIMARY KEY); INSERT INTO \"User\" VALUES ('a'), ('b');"
    )
    path = tmp_path / "new.dump"
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(pg_server.dsn(source))
    params.pop("password", None)
    await asyncio.to_thread(
        subprocess.run,
        [
            str(embedded.pg_dump),
            "-Fc",
            "-f",
            str(path),
            f"--dbname={make_conninfo(**{k: str(v) for k, v in params.items()})}",
        ],
        check=True,
    )
    target = scratch.create()
    result = await load(path, detect.detect(path), scratch.url(target))
    assert scratch.query(target, 'SELECT count(*) FROM "User"')[0][0] == 2
    assert result.method == ("pg_restore | psql" if pg_server.major < 17 else "pg_restore")


async def test_failed_pg_restore_names_the_object_and_commits_nothing(dump: Dumper, scratch: Scratch) -> None:
    path = dump("c")
    # The target's own "Order" has a marker row, and a view on "User" makes dropping "User" fail part-way.
    target = scratch.create(
        'CREATE TABLE "User" (id text PRIMARY KEY); CREATE VIEW keep AS SELECT id FROM "User";'
        'CREATE TABLE "Order" (id int); INSERT INTO "Order" VALUES (42);'
    )
    with pytest.raises(LoadError) as caught:
        await load(path, detect.detect(path), scratch.url(target))
    error = caught.value
    assert "User" in str(error) and error.failing_object and "User" in error.failing_object
    assert "Nothing was committed" in error.hint and "damaged branch was not touched" in error.hint
    assert scratch.query(target, 'SELECT id FROM "Order"') == [(42,)]


async def test_failed_sql_commits_nothing(scratch: Scratch, tmp_path: Path) -> None:
    path = tmp_path / "fix.sql"
    path.write_text(
        "CREATE TABLE made (a int);\nINSERT INTO made VALUES (1);\nINSERT INTO missing VALUES (1);\n"
    )
    target = scratch.create()
    with pytest.raises(LoadError, match=r'relation "missing" does not exist'):
        await load(path, detect.detect(path), scratch.url(target))
    assert scratch.query(target, "SELECT to_regclass('made') IS NULL") == [(True,)]


async def test_refused_sql_runs_nothing(scratch: Scratch, tmp_path: Path) -> None:
    path = tmp_path / "evil.sql"
    path.write_text(
        "CREATE TABLE made (a int);\nINSERT INTO made VALUES (1);\n\\connect postgres\nDROP TABLE important;\n"
    )
    target = scratch.create()
    with pytest.raises(SqlRefusedError, match=r"\\connect switches to another database"):
        await load(path, detect.detect(path), scratch.url(target))
    assert scratch.query(target, "SELECT to_regclass('made') IS NULL") == [(True,)]


def _write_big(path: Path) -> None:
    with open(path, "w") as out:
        out.write("CREATE TABLE big (a int, b text);\nCOPY big (a, b) FROM stdin;\n")
        row = "x" * 100
        for i in range(300_000):
            out.write(f"{i}\t{row}\n")
        out.write("\\.\n")


async def test_cancelled_load_commits_nothing(scratch: Scratch, tmp_path: Path) -> None:
    """Killed mid-stream: psql is killed, not sent end-of-input (which would COMMIT what it had)."""
    path = tmp_path / "big.sql"
    await asyncio.to_thread(_write_big, path)
    target = scratch.create()
    started = asyncio.Event()

    def progress(p: LoadProgress) -> None:
        if p.bytes_read > 0:
            started.set()

    task = asyncio.create_task(load(path, detect.detect(path), scratch.url(target), on_progress=progress))
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(started.wait())], timeout=60, return_when=asyncio.FIRST_COMPLETED
    )
    assert task not in done, "the load finished before it could be cancelled"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scratch.query(target, "SELECT to_regclass('big') IS NULL") == [(True,)]


async def test_sql_progress_reports_the_check_then_the_load(scratch: Scratch, tmp_path: Path) -> None:
    from recovery_wizard.recovery.files.load import CHECKING

    path = tmp_path / "big.sql"
    await asyncio.to_thread(_write_big, path)
    seen: list[LoadProgress] = []
    await load(path, detect.detect(path), scratch.url(scratch.create()), on_progress=seen.append)
    phases = [p.current == CHECKING for p in seen]
    assert (
        phases[0] and not phases[-1] and phases.index(False) == phases.count(True)
    )  # check first, then load
    assert seen[-1].bytes_read == seen[-1].bytes_total == path.stat().st_size


def test_password_goes_by_environment_not_arguments() -> None:
    target = _Target.of(Secret("postgresql://app:s3cret-pass@db.example.test:5432/neondb?sslmode=require"))
    assert "s3cret-pass" not in target.conninfo
    assert "sslmode=require" in target.conninfo and "db.example.test" in target.conninfo
    assert target.env["PGPASSWORD"] == "s3cret-pass"


def _command_lines() -> list[str]:
    """The command lines of this process's descendants (other runs on the machine start psql too)."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                lines[int(pid)] = cmdline.replace(b"\0", b" ").decode(errors="replace")

    def ours(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
        return False

    return [line for pid, line in lines.items() if ours(pid)]


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
async def test_password_is_never_in_the_process_list(scratch: Scratch, tmp_path: Path) -> None:
    path = tmp_path / "big.sql"
    await asyncio.to_thread(_write_big, path)
    target = scratch.create()
    password = "Pw-not-in-argv-7f3a"
    url = Secret(scratch.server.dsn(target) + f" password={password}")  # the test server trusts; still sent
    seen: list[str] = []

    def progress(p: LoadProgress) -> None:
        if p.bytes_read > 0 and not seen:
            seen.extend(line for line in _command_lines() if "psql" in line)

    await load(path, detect.detect(path), url, on_progress=progress)
    assert seen and any(target in line for line in seen), "psql was not caught running"
    assert not any(password in line for line in seen)


async def test_jobs_is_parallel_and_says_it_is_not_one_transaction(
    dump: Dumper, scratch: Scratch, sample_tools: PgTools
) -> None:
    path = dump("d")
    target = scratch.create()
    result = await load(path, detect.detect(path), scratch.url(target), jobs=2, tools=sample_tools)
    assert _counts(scratch, target) == (300, 120)
    assert not result.single_transaction and "not in one transaction" in result.notes[0]


async def test_counts_are_checked_against_the_file(dump: Dumper, scratch: Scratch) -> None:
    from recovery_wizard.recovery.files.counts import check_counts

    path = dump("p", "counted.sql")
    target = scratch.create()
    info = detect.detect(path)
    result = await load(path, info, scratch.url(target))
    checks = await check_counts(info, result, scratch.url(target))
    assert [(c.table, c.expected, c.actual, c.ok) for c in checks] == [
        ("public.Order", 120, 120, True),
        ("public.User", 300, 300, True),
    ]
    scratch.query(target, 'DELETE FROM "Order" WHERE id = 1 RETURNING id')
    checks = await check_counts(info, result, scratch.url(target))
    assert [c.ok for c in checks] == [False, True] and checks[0].actual == 119


async def test_zstd_inside_an_archive_needs_a_pg_restore_built_with_it(
    pg_server: PgServer, scratch: Scratch, tmp_path: Path
) -> None:
    """The embedded PostgreSQL 18 clients lack zstd: refused before loading, naming the cure."""
    from recovery_wizard.recovery.files.load import _built_with

    embedded = PgTools(embedded_bin_dir(), 18)
    if any(m >= 18 and _built_with(PgTools(d, m), "zstd") for m, d in installed().items()):
        pytest.skip("a pg_restore 18+ built with zstd is installed here")
    source = scratch.create('CREATE TABLE "User" (id text PRIMARY KEY); INSERT INTO "User" VALUES (\'a\');')
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(pg_server.dsn(source))
    params.pop("password", None)
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items()})
    path = tmp_path / "z.dump"
    await asyncio.to_thread(
        subprocess.run, [str(embedded.pg_dump), "-Fc", "-f", str(path), f"--dbname={conninfo}"], check=True
    )
    data = bytearray(path.read_bytes())
    assert data[11] == 1  # archive 1.16: the compression algorithm byte (gzip); claim zstd instead
    data[11] = 3
    path.write_bytes(bytes(data))
    info = detect.detect(path)
    assert info.archive_compression == "zstd"
    target = scratch.create()
    with pytest.raises(BackupFileError, match=r"no pg_restore here .* was built with zstd") as caught:
        await load(path, info, scratch.url(target))
    assert "-Z gzip" in caught.value.hint
