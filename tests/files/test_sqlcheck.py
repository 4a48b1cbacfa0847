"""Plain SQL is loaded into the new branch only: what acts outside it is refused before anything runs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from recovery_wizard.recovery.files.sqlcheck import SqlRefusedError, check_sql_file, check_text


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("\\connect other\nSELECT 1;\n", "switches to another database"),
        ("SELECT 1;\n  \\c postgres\n", "switches to another database"),
        ("\\! rm -rf ~\n", "runs a shell command"),
        ("\\o /tmp/out\nSELECT 1;\n", "writes query output to a file"),
        ("\\copy t from program 'curl x'\n", "reads or writes files"),
        ("\\i other.sql\n", "runs another file's SQL"),
        ("COPY t FROM PROGRAM 'curl http://x';\n", "COPY … PROGRAM"),
        ("COPY t TO '/etc/cron.d/x';\n", "file on the database server"),
        ("DROP DATABASE neondb;\n", "drops a database"),
        ("CREATE DATABASE other;\n", "creates another database"),
        ("ALTER SYSTEM SET fsync = off;\n", "ALTER SYSTEM"),
        ("ALTER ROLE app PASSWORD 'x';\n", "changes a role"),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity;\n", "pg_terminate_backend"),
        ("SELECT pg_catalog.pg_read_file('/etc/passwd');\n", "pg_read_file"),
        ("SELECT 1 \\gexec\nSELECT 2;\n", "psql command"),
    ],
)
def test_refused(sql: str, why: str) -> None:
    with pytest.raises(SqlRefusedError, match="line") as caught:
        check_text("CREATE TABLE t (a int);\n" + sql)
    assert why in str(caught.value)
    assert caught.value.hint


def test_what_pg_dump_writes_is_allowed_and_copy_rows_counted() -> None:
    sql = (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
        "SET statement_timeout = 0;\nSET transaction_timeout = 0;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$\nSELECT 'a;\n\\! not run';\n$$;\n"
        "INSERT INTO t VALUES ('multi;\nline');\n"
        "COPY public.t (a) FROM stdin;\n1\n\\! data, not a command\n\\connect neither\n\\.\n"
        "SELECT pg_catalog.setval('public.t_id_seq', 3, true);\n"
        "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc123\n"
    )
    result = check_text(sql)
    assert result.tables == {"public.t": 3}
    assert result.sets_transaction_timeout and result.from_pg_dump and result.complete


def test_truncated_inside_copy_data() -> None:
    with pytest.raises(SqlRefusedError, match=r"ends inside the data of public.t"):
        check_text("COPY public.t (a) FROM stdin;\n1\n2\n")


def test_pg_dump_without_its_closing_line_is_truncated() -> None:
    with pytest.raises(SqlRefusedError, match="closing line"):
        check_text("--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (a int);\n")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.sql.gz"
    whole = gzip.compress(b"CREATE TABLE t (a int);\n" * 5000)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SqlRefusedError, match="could not be read to the end"):
        check_sql_file(path, "gzip")
