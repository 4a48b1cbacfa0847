"""The homecheff backups folder (`Sandbox.write_backups`, `sandbox serve --backups-into`).

The folder is written once for the module; every file is then loaded with the bare PostgreSQL tools
(`pg_restore`, `psql`) into a scratch database of its own, and what it holds is compared with an oracle
built independently of the sandbox's timeline: the scenario's changes replayed in order into a fresh
database, counted at each file's moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from recovery_wizard.pgtools import PgTools, installed
from recovery_wizard.sandbox.backups import (
    KEEP_LAST_ORDERS,
    MANIFEST_FORMAT,
    BackupsError,
    BackupsFolder,
    iso_utc,
    set_archive_time,
)
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.scenarios import Scenario
from recovery_wizard.sandbox.service import Sandbox

JSON_KEYS = {
    "users": "public.User",
    "listings": "public.Listing",
    "orders": "public.Order",
    "reviews": "public.Review",
}


@dataclass
class Written:
    folder: BackupsFolder
    scenario: Scenario
    project: tuple[str, str]
    branch: tuple[str, str]
    oracle: dict[datetime, dict[str, int]]  # taken_at -> "schema.table" -> rows, from the replayed changes
    newest_orders: dict[datetime, list[str]]  # taken_at -> ids of the newest orders, newest first
    loaded: dict[Path, dict[str, int]]  # file -> rows after loading it with bare pg_restore / psql
    load_errors: dict[Path, str]


def tool_env(server: PgServer, database: str) -> dict[str, str]:
    backend = server.backend
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=backend.host, PGPORT=str(backend.port), PGUSER=backend.user, PGDATABASE=database)
    if backend.password is not None:
        env["PGPASSWORD"] = backend.password.reveal()
    return env


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE' AND table_schema = 'public'"
    ).fetchall()
    counts = {}
    for schema, name in rows:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        found = conn.execute(query).fetchone()
        assert found is not None
        counts[f"{schema}.{name}"] = int(found[0])
    return counts


def build_oracle(
    server: PgServer, scenario: Scenario, moments: list[datetime], database: str
) -> tuple[dict[datetime, dict[str, int]], dict[datetime, list[str]]]:
    counts: dict[datetime, dict[str, int]] = {}
    newest: dict[datetime, list[str]] = {}
    pending = sorted(moments)
    with psycopg.connect(server.dsn(database)) as conn:

        def record(moment: datetime) -> None:
            counts[moment] = table_counts(conn)
            rows = conn.execute(
                'SELECT "id" FROM "Order" ORDER BY "createdAt" DESC, "id" DESC LIMIT %s', (KEEP_LAST_ORDERS,)
            ).fetchall()
            newest[moment] = [str(r[0]) for r in rows]

        for change in scenario.changes:
            while pending and pending[0] < change.at:
                record(pending.pop(0))
            with conn.transaction():
                conn.execute(change.sql.encode())
        for moment in pending:
            record(moment)
    return counts, newest


def load(server: PgServer, path: Path, database: str) -> tuple[dict[str, int] | None, str]:
    tools = server.tools
    if path.suffix == ".dump":
        command = [
            str(tools.pg_restore),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "-d",
            database,
            str(path),
        ]
    else:
        command = [str(tools.psql), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(path)]
    done = subprocess.run(
        command, env=tool_env(server, database), capture_output=True, text=True, timeout=120
    )
    if done.returncode:
        return None, done.stderr
    with psycopg.connect(server.dsn(database)) as conn:
        return table_counts(conn), ""


@pytest.fixture(scope="module")
def written(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    app = tmp_path_factory.mktemp("homecheff-app")

    async def write() -> tuple[BackupsFolder, Scenario, tuple[str, str], tuple[str, str]]:
        async with Sandbox(pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=3) as sandbox:
            folder = await sandbox.write_backups(app)
            project = sandbox.project
            assert project is not None and project.scenario is not None
            return folder, project.scenario, (project.id, project.name), project.scenario_branch

    folder, scenario, project, branch = asyncio.run(write())
    prefix = f"rwtest_bk_{secrets.token_hex(3)}"
    names = [f"{prefix}_oracle"] + [f"{prefix}_{i}" for i in range(len(folder.files))]
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        oracle, newest = build_oracle(pg_server, scenario, [f.taken_at for f in folder.files], names[0])
        loaded: dict[Path, dict[str, int]] = {}
        errors: dict[Path, str] = {}
        for file, database in zip(folder.files, names[1:], strict=True):
            if file.kind == "json":
                continue
            counts, error = load(pg_server, file.path, database)
            if counts is None:
                errors[file.path] = error
            else:
                loaded[file.path] = counts
        yield Written(folder, scenario, project, branch, oracle, newest, loaded, errors)
    finally:

        def drop(name: str) -> None:
            with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

        # Each DROP DATABASE waits for a checkpoint; side by side they share them.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(drop, names))


def test_the_folder_has_every_kind_before_and_after_the_incident(written: Written) -> None:
    folder, incident = written.folder, written.scenario.incident_at
    app = folder.app_dir
    dumps, plain, cron = folder.of_kind("custom"), folder.of_kind("plain"), folder.of_kind("json")
    assert len(dumps) == 6 and len(plain) == 1 and len(cron) == 3
    assert all(f.path.parent == app / "backups" for f in dumps)
    assert all(f.path.parent == app / "backups" / "cron" for f in cron)
    assert plain[0].path.parent == app / "Downloads" and plain[0].path.suffix == ".sql"
    # Hourly, newest last; exactly the newest of each cron is from after the incident, and it is before the
    # customer signed up again (the damaged state: 2 users).
    times = [f.taken_at for f in dumps]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))
    for series in (dumps, cron):
        assert [f.after_incident for f in series] == [False] * (len(series) - 1) + [True]
        assert incident < series[-1].taken_at < datetime.now(UTC)
        assert series[-1].users == 2 and series[-2].users == 18
    assert plain[0].taken_at < incident - timedelta(hours=12)
    for f in dumps:
        assert f.path.name == f"main-{f.taken_at:%Y%m%dT%H%M%S}Z.dump"
    # Private files, dated when they were taken (a finder's fallback when a file says no time itself).
    every = [f.path for f in folder.files] + [f.manifest for f in dumps if f.manifest]
    for path in every:
        info = path.stat()
        assert info.st_mode & 0o777 == 0o600, path
        taken = next(f.taken_at for f in folder.files if path in (f.path, f.manifest))
        assert timedelta(0) <= datetime.fromtimestamp(info.st_mtime, UTC) - taken < timedelta(seconds=30)
    assert not list(app.rglob(".*.tmp")), "a temporary file was left behind"
    assert folder.seconds < 30


def test_every_dump_restores_with_bare_tools_and_holds_its_moment(written: Written) -> None:
    assert not written.load_errors, written.load_errors
    for f in written.folder.files:
        if f.kind == "json":
            continue
        expected = written.oracle[f.taken_at]
        assert written.loaded[f.path] == expected, f.path.name
        assert f.tables == expected
    counts = {f.path.name: written.loaded[f.path]["public.User"] for f in written.folder.of_kind("custom")}
    assert list(counts.values())[-2:] == [18, 2], counts


def test_custom_archives_say_when_and_what_they_are(written: Written, pg_server: PgServer) -> None:
    for f in written.folder.of_kind("custom"):
        # The header holds the local wall time of the moment (as pg_dump writes it), read in the same zone.
        listing = subprocess.run(
            [str(pg_server.tools.pg_restore), "--list", str(f.path)],
            env=tool_env(pg_server, "postgres"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        local = datetime.fromtimestamp(f.taken_at.timestamp())
        assert f"; Archive created at {local:%Y-%m-%d %H:%M:%S} " in listing, listing[:300]
        assert ";     dbname: neondb" in listing


def test_manifests_match_their_files(written: Written) -> None:
    for f in written.folder.of_kind("custom"):
        assert f.manifest == f.path.with_name(f.path.name + ".manifest.json")
        manifest = json.loads(f.manifest.read_text())
        data = f.path.read_bytes()
        assert manifest["format"] == MANIFEST_FORMAT
        assert manifest["file"] == f.path.name
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["size"] == len(data)
        assert manifest["tables"] == written.oracle[f.taken_at]
        assert datetime.fromisoformat(manifest["taken_at"]) == f.taken_at
        assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", manifest["lsn"])
        assert manifest["database"] == "neondb"
        assert manifest["project"] == {"id": written.project[0], "name": written.project[1]}
        assert manifest["branch"] == {"id": written.branch[0], "name": "main"}
        assert re.match(r"\d+\.\d+", manifest["server_version"])
        assert re.fullmatch(r"\d+(\.\d+)*", manifest["pg_dump_version"])
        assert "password" not in f.manifest.read_text().lower()
    lsns = [json.loads(f.manifest.read_text())["lsn"] for f in written.folder.of_kind("custom") if f.manifest]
    assert len(set(lsns)) > 1


def test_json_backups_are_the_crons_shape_with_a_truncated_table(written: Written) -> None:
    for f in written.folder.of_kind("json"):
        doc = json.loads(f.path.read_text())
        expected = written.oracle[f.taken_at]
        assert doc["success"] is True
        assert doc["timestamp"] == iso_utc(f.taken_at)
        assert doc["stats"] == {key: expected[table] for key, table in JSON_KEYS.items()}
        data = doc["data"]
        assert set(data) == set(JSON_KEYS)
        for key in ("users", "listings", "reviews"):
            assert len(data[key]) == doc["stats"][key]
        # Only the newest orders are kept, newest first; stats says how many there were.
        assert doc["stats"]["orders"] > KEEP_LAST_ORDERS
        assert [row["id"] for row in data["orders"]] == written.newest_orders[f.taken_at]
        assert f.truncated == {"orders": KEEP_LAST_ORDERS}
        # camelCase fields, ISO dates, and each user's sessions nested (none lost before the incident).
        user = data["users"][0]
        assert {"id", "email", "role", "createdAt", "updatedAt", "emailVerified", "sessions"} <= set(user)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", user["createdAt"])
        nested = [s for u in data["users"] for s in u["sessions"]]
        assert all(s["userId"] == u["id"] for u in data["users"] for s in u["sessions"])
        assert all(set(s) == {"id", "sessionToken", "userId", "expires"} for s in nested)
        if not f.after_incident:
            assert len(nested) == expected["public.Session"]
            assert "locale" not in user
        else:
            assert len(data["users"]) == 2 and "locale" in user
    users = [len(json.loads(f.path.read_text())["data"]["users"]) for f in written.folder.of_kind("json")]
    assert users[-2:] == [18, 2]


def test_the_archive_time_is_rewritten_only_where_the_layout_is_known(
    written: Written, tmp_path: Path
) -> None:
    source = written.folder.of_kind("custom")[0]
    copy = tmp_path / "copy.dump"
    shutil.copyfile(source.path, copy)
    original = copy.read_bytes()
    with copy.open("r+b") as f, pytest.raises(BackupsError, match="not laid out as expected"):
        set_archive_time(f, datetime(2030, 1, 1, tzinfo=UTC), dumped_at=0.0)
    assert copy.read_bytes() == original
    later = source.taken_at + timedelta(days=1)
    with copy.open("r+b") as f:
        set_archive_time(f, later, dumped_at=source.taken_at.timestamp())
    changed = copy.read_bytes()
    assert len(changed) == len(original)
    assert sum(a != b for a, b in zip(changed, original, strict=True)) <= 7 * 5
    (tmp_path / "text.dump").write_bytes(b"-- not an archive\n" * 10)
    with (tmp_path / "text.dump").open("r+b") as f, pytest.raises(BackupsError, match="PGDMP"):
        set_archive_time(f, later, dumped_at=0.0)


@pytest.mark.parametrize("obstacle", ["symlink", "file"])
async def test_a_folder_in_the_way_is_refused_before_anything_is_written(
    sandbox: Sandbox, tmp_path: Path, obstacle: str
) -> None:
    app, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    elsewhere.mkdir()
    if obstacle == "symlink":
        (app / "backups").symlink_to(elsewhere)
    else:
        (app / "backups").write_text("not a folder")
    with pytest.raises(
        BackupsError, match="symbolic link" if obstacle == "symlink" else "in the way"
    ) as refused:
        await sandbox.write_backups(app)
    assert refused.value.hint
    assert sorted(p.name for p in app.rglob("*")) == ["backups"]
    assert not list(elsewhere.iterdir())


async def test_a_failing_pg_dump_leaves_no_file_and_says_why(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.server is not None
    fake = tmp_path / "bin"
    fake.mkdir()
    # A real program in pg_dump's place that fails the way a lost connection does.
    script = fake / "pg_dump"
    script.write_text("#!/bin/sh\necho 'pg_dump: error: connection to server was lost' >&2\nexit 1\n")
    script.chmod(0o755)
    real = sandbox.server.tools
    sandbox.server.tools = PgTools(fake, real.major)
    try:
        with pytest.raises(BackupsError, match=r"pg_dump failed writing .*connection to server was lost"):
            await sandbox.write_backups(tmp_path / "app")
    finally:
        sandbox.server.tools = real
    assert not list((tmp_path / "app").rglob("*.dump"))
    assert not list((tmp_path / "app").rglob("*.sql"))
    assert not list((tmp_path / "app").rglob(".*.tmp"))


@pytest.mark.parametrize("major", sorted(installed()))
def test_archive_time_layouts_of_every_installed_pg_dump(
    pg_server: PgServer, tmp_path: Path, major: int
) -> None:
    # Archive 1.14 (PostgreSQL ≤ 15) and 1.15+ (16 on) differ before the date fields: both are known.
    tools = PgTools(installed()[major], major)
    if major < pg_server.major:
        pytest.skip(f"pg_dump {major} cannot dump a PostgreSQL {pg_server.major} server")
    archive = tmp_path / "postgres.dump"
    began = time.time()
    subprocess.run(
        [str(tools.pg_dump), "--format=custom", "--schema-only", "-f", str(archive)],
        env=tool_env(pg_server, "postgres"),
        check=True,
        timeout=60,
    )
    moment = datetime(2026, 3, 29, 0, 59, 58, tzinfo=UTC)
    with archive.open("r+b") as f:
        set_archive_time(f, moment, dumped_at=began)
    listing = subprocess.run(
        [str(tools.pg_restore), "--list", str(archive)],
        env=tool_env(pg_server, "postgres"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    local = datetime.fromtimestamp(moment.timestamp())
    assert f"; Archive created at {local:%Y-%m-%d %H:%M:%S} " in listing
