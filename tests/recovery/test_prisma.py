"""The Prisma step: detection across Prisma 5-7 layouts, then ``db pull``/``generate`` through a stand-in CLI.

The stand-in (tests/recovery/prisma_standin.py) introspects the real database at whatever URL reached it, so
a pulled schema holding this module's tables proves the restored DIRECT url went in the right variable.
A planted password must never show up in any message, hint, output line, log record or returned text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import stat
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from recovery_wizard.recovery import prisma
from recovery_wizard.recovery.prisma import (
    GENERATE_PLACEHOLDER_URL,
    PrismaEngineDownloadError,
    PrismaError,
    PrismaFailedError,
    PrismaNotFoundError,
    PrismaProject,
    PrismaPullEmptyError,
    PrismaTimeoutError,
    clean_printed_schema,
    count_models,
    db_pull,
    detect,
    generate,
    manual_commands,
    write_pulled,
)
from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer
from tests.recovery.prisma_standin import (
    BEHAVIOUR_ENV,
    STALE_ENV_PASSWORD,
    STALE_URL,
    config_text,
    make_project,
    read_log,
    schema_text,
)

PASSWORD = "Pl4nted-prisma-pw-5d1f2a"
URL_VARS = (
    "DATABASE_URL",
    "DIRECT_URL",
    "DATABASE_URL_UNPOOLED",
    "POSTGRES_PRISMA_URL",
    "POSTGRES_URL_NON_POOLING",
    "DEBUG",
    BEHAVIOUR_ENV,
)
PULL_WITH_BOTH = (
    "DIRECT_URL='<restored direct URL>' DATABASE_URL='<restored direct URL>' npx --no-install prisma db pull"
)


# --------------------------------------------------------------------------------------------------------
# Fixtures


@dataclass(frozen=True)
class RestoredDb:
    """A database with Prisma-like tables, reachable as ``url`` (a DIRECT url with ``password``)."""

    url: Secret
    password: str = field(repr=False)
    name: str = ""


def _create_tables(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        'CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text,'
        ' "createdAt" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP)'
    )
    conn.execute(
        'CREATE TABLE "Post" (id serial PRIMARY KEY, title text NOT NULL, published boolean NOT NULL DEFAULT'
        ' false, "authorId" integer NOT NULL REFERENCES "User"(id))'
    )
    # Not in the app's hand-written schema: the pull must bring it in.
    conn.execute(
        'CREATE TABLE "Order" (id uuid PRIMARY KEY, "userId" integer NOT NULL,'
        " total numeric(10,2), meta jsonb)"
    )


@pytest.fixture(scope="module")
def restored_db(pg_server: PgServer) -> Iterator[RestoredDb]:
    suffix = uuid.uuid4().hex[:8]
    name, role = f"rw_prisma_{suffix}", f"rw_prisma_{suffix}"
    params = conninfo_to_dict(pg_server.dsn("postgres"))
    user, password = role, PASSWORD
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), PASSWORD))
        except psycopg.errors.InsufficientPrivilege:
            # A DSN-given server may grant CREATEDB only: connect as the admin (works with trust auth; with
            # a password, that password is the one that must never leak).
            role, user = "", str(params.get("user") or "postgres")
            password = str(params.get("password") or PASSWORD)
        owner = sql.SQL(" OWNER {}").format(sql.Identifier(role)) if role else sql.SQL("")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)) + owner)
    try:
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            if role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            _create_tables(conn)
        host, port = str(params.get("host") or "localhost"), str(params.get("port") or "5432")
        if host.startswith("/"):  # a Unix socket, as Prisma writes it: ?host=/path
            url = f"postgresql://{user}:{password}@/{name}?host={host}&port={port}&schema=public&connect_timeout=10"
        else:
            url = f"postgresql://{user}:{password}@{host}:{port}/{name}?schema=public&connect_timeout=10"
        yield RestoredDb(Secret(url), password, name)
    finally:
        with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if role:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(autouse=True)
def shell_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No URL variables from the developer's shell leak into these tests (each test sets what it means)."""
    for name in URL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class Lines(list[str]):
    """An ``on_output`` callback that keeps every line."""

    def __call__(self, line: str) -> None:
        self.append(line)


def everything(error: BaseException) -> str:
    """Every way an exception can be shown: str, repr, hint, tail, tracebacks with and without locals.

    The test's own frames are left out: they are live, and pytest's assertion rewriting keeps the compared
    values (the password itself) in their locals.
    """
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    error = error.with_traceback(tb)
    plain = "".join(traceback.format_exception(error))
    with_locals = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    tail = "\n".join(getattr(error, "output_tail", ()))
    return "\n".join([str(error), repr(error), getattr(error, "hint", ""), tail, plain, with_locals])


def project_of(root: Path) -> PrismaProject:
    project = detect(root)
    assert project is not None
    return project


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes, as in some containers, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not Path("/proc").is_dir()
    return state not in ("Z", "X")


def last_run(root: Path) -> dict[str, object]:
    records = [r for r in read_log(root) if "event" not in r]
    assert records, "the stand-in never ran"
    return records[-1]


# --------------------------------------------------------------------------------------------------------
# detect()


def test_detect_prisma6_without_config(tmp_path: Path) -> None:
    root = make_project(tmp_path / "app", version="6.19.0")
    project = project_of(root)
    assert project.root == root.resolve()
    assert project.binary == root.resolve() / "node_modules" / ".bin" / "prisma"
    assert (project.version, project.major, project.minor) == ("6.19.0", 6, 19)
    assert project.schema_path == root.resolve() / "prisma" / "schema.prisma"
    assert project.config_path is None
    assert (project.url_var, project.direct_var) == ("DATABASE_URL", "DIRECT_URL")
    assert project.pull_env_var == "DIRECT_URL"
    assert not project.config_loads_dotenv
    assert not project.supports_url_flag


@pytest.mark.parametrize("version", ["5.22.0", "6.19.0"])
@pytest.mark.parametrize(
    ("url_var", "direct_var", "pull_var"),
    [
        ("DATABASE_URL", "DATABASE_URL_UNPOOLED", "DATABASE_URL_UNPOOLED"),  # Vercel/Neon integration
        ("POSTGRES_PRISMA_URL", "POSTGRES_URL_NON_POOLING", "POSTGRES_URL_NON_POOLING"),  # Vercel Postgres
        ("DATABASE_URL", None, "DATABASE_URL"),
    ],
)
def test_detect_reads_the_variable_names_the_schema_uses(
    tmp_path: Path, version: str, url_var: str, direct_var: str | None, pull_var: str
) -> None:
    project = project_of(make_project(tmp_path, version=version, url_var=url_var, direct_var=direct_var))
    assert (project.url_var, project.direct_var, project.pull_env_var) == (url_var, direct_var, pull_var)


def test_detect_ignores_commented_out_datasource_lines(tmp_path: Path) -> None:
    schema = schema_text("6.19.0", url_var="DATABASE_URL", direct_var=None).replace(
        '  provider  = "postgresql"\n',
        '  provider  = "postgresql"\n  // directUrl = env("OLD_DIRECT_URL")  // before Neon\n',
    )
    project = project_of(make_project(tmp_path, schema=schema, direct_var=None))
    assert (project.url_var, project.direct_var) == ("DATABASE_URL", None)


def test_detect_package_json_schema_location(tmp_path: Path) -> None:
    root = make_project(tmp_path, version="5.22.0")
    (root / "db").mkdir()
    (root / "prisma" / "schema.prisma").rename(root / "db" / "main.prisma")
    package = json.loads((root / "package.json").read_text())
    (root / "package.json").write_text(json.dumps({**package, "prisma": {"schema": "db/main.prisma"}}))
    assert project_of(root).schema_path == root.resolve() / "db" / "main.prisma"


def test_detect_prefers_a_root_schema_like_prisma_does(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "schema.prisma").write_text(schema_text("6.19.0", url_var="ROOT_URL", direct_var=None))
    project = project_of(root)
    assert project.schema_path == root.resolve() / "schema.prisma"
    assert project.url_var == "ROOT_URL"


def test_detect_prisma6_config_without_datasource_keeps_the_schema_variables(tmp_path: Path) -> None:
    config = (
        'import "dotenv/config";\nimport path from "node:path";\n'
        'import { defineConfig } from "prisma/config";\n\n'
        'export default defineConfig({\n  schema: path.join("db", "schema.prisma"),\n});\n'
    )
    root = make_project(tmp_path, version="6.16.2", config=config)
    (root / "db").mkdir()
    (root / "prisma" / "schema.prisma").rename(root / "db" / "schema.prisma")
    project = project_of(root)
    assert project.config_path == root.resolve() / "prisma.config.ts"
    assert project.schema_path == root.resolve() / "db" / "schema.prisma"
    assert (project.url_var, project.direct_var) == ("DATABASE_URL", "DIRECT_URL")
    assert project.config_loads_dotenv


def test_detect_prisma6_config_with_datasource_wins(tmp_path: Path) -> None:
    config = (
        'import { defineConfig, env } from "prisma/config";\n\nexport default defineConfig({\n'
        '  schema: "prisma/schema.prisma",\n'
        '  datasource: {\n    url: env("POSTGRES_PRISMA_URL"),\n'
        '    directUrl: env("POSTGRES_URL_NON_POOLING"),\n  },\n'
        "});\n"
    )
    project = project_of(make_project(tmp_path, version="6.19.0", config=config))
    assert (project.url_var, project.direct_var) == ("POSTGRES_PRISMA_URL", "POSTGRES_URL_NON_POOLING")
    assert not project.config_loads_dotenv


@pytest.mark.parametrize(
    ("url_expr", "expected"),
    [
        ('env("DATABASE_URL")', "DATABASE_URL"),
        ("env('DIRECT_URL')", "DIRECT_URL"),
        ('env<{ DATABASE_URL_UNPOOLED: string }>("DATABASE_URL_UNPOOLED")', "DATABASE_URL_UNPOOLED"),
        ("process.env.DATABASE_URL_UNPOOLED", "DATABASE_URL_UNPOOLED"),
        ('process.env["POSTGRES_URL_NON_POOLING"]!', "POSTGRES_URL_NON_POOLING"),
        ('process.env.DIRECT_URL ?? ""', "DIRECT_URL"),
        ('"postgresql://app@db.internal/app"', None),
        ("buildUrl()", None),
    ],
)
def test_detect_prisma7_config_url_variable(tmp_path: Path, url_expr: str, expected: str | None) -> None:
    root = make_project(tmp_path, version="7.2.0", config=config_text(url_expr=url_expr), url_var=expected)
    project = project_of(root)
    assert project.config_path == root.resolve() / "prisma.config.ts"
    assert project.url_var == expected
    assert project.direct_var is None  # 7.x has no directUrl
    assert project.pull_env_var == expected
    assert project.config_loads_dotenv
    assert project.schema_path == root.resolve() / "prisma" / "schema.prisma"


def test_detect_prisma7_config_through_a_constant(tmp_path: Path) -> None:
    config = (
        "// The CLI always talks to the direct (unpooled) endpoint.\n"
        "import { config } from 'dotenv';\nimport { defineConfig } from 'prisma/config';\n\n"
        "config({ path: '.env' });\n"
        "const url = process.env.DATABASE_URL_UNPOOLED; // not DATABASE_URL: that one is pooled\n\n"
        "export default defineConfig({ schema: 'prisma/schema.prisma', datasource: { url } });\n"
    )
    project = project_of(make_project(tmp_path, version="7.4.1", config=config))
    assert project.url_var == "DATABASE_URL_UNPOOLED"
    assert project.config_loads_dotenv


def test_prisma7_10_looks_for_prisma7_config_first(tmp_path: Path) -> None:
    root = make_project(tmp_path, version="7.10.0", config=config_text(url_expr='env("DATABASE_URL")'))
    (root / "prisma7.config.ts").write_text(config_text(url_expr='env("DIRECT_URL")', dotenv=False))
    project = project_of(root)
    assert project.config_path == root.resolve() / "prisma7.config.ts"
    assert project.url_var == "DIRECT_URL"
    assert not project.config_loads_dotenv
    assert project.supports_url_flag


def test_prisma7_before_7_10_ignores_prisma7_config(tmp_path: Path) -> None:
    root = make_project(tmp_path, version="7.5.0", config=config_text(url_expr='env("DATABASE_URL")'))
    (root / "prisma7.config.ts").write_text(config_text(url_expr='env("DIRECT_URL")'))
    project = project_of(root)
    assert project.config_path == root.resolve() / "prisma.config.ts"
    assert project.url_var == "DATABASE_URL"


def test_detect_config_in_dot_config_directory(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        version="7.1.0",
        config=config_text(url_expr='env("DIRECT_URL")', schema="../prisma/schema.prisma"),
        config_name=".config/prisma.ts",
    )
    project = project_of(root)
    assert project.config_path == root.resolve() / ".config" / "prisma.ts"
    assert project.schema_path == root.resolve() / "prisma" / "schema.prisma"
    assert project.url_var == "DIRECT_URL"


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("5.22.0", False),
        ("6.19.0", False),
        ("7.0.0", False),
        ("7.2.1", False),
        ("7.3.0", True),
        ("7.10.2", True),
    ],
)
def test_supports_url_flag(tmp_path: Path, version: str, supported: bool) -> None:
    assert project_of(make_project(tmp_path, version=version)).supports_url_flag is supported


def test_detect_none_without_prisma(tmp_path: Path) -> None:
    assert detect(tmp_path / "missing") is None
    assert detect(tmp_path) is None
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"next": "15.5.4"}}))
    (tmp_path / "README.md").write_text("# a Next.js app without Prisma\n")
    assert detect(tmp_path) is None


async def test_not_installed_is_reported_with_the_install_command(tmp_path: Path) -> None:
    root = make_project(tmp_path, install=False)
    project = project_of(root)
    assert (project.binary, project.version, project.major) == (None, None, None)
    assert project.pull_env_var == "DIRECT_URL"
    with pytest.raises(PrismaNotFoundError) as info:
        await db_pull(project, Secret("postgresql://u:x-unused-pw@h/db"), backup_dir=tmp_path / "backups")
    assert "node_modules/.bin/prisma" in str(info.value)
    assert "`npm install`" in info.value.hint
    assert PULL_WITH_BOTH in info.value.hint
    assert "npx --no-install prisma generate" in info.value.hint
    assert not (tmp_path / "backups").exists()

    (root / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    with pytest.raises(PrismaNotFoundError) as info:
        await generate(project)
    assert "`pnpm install`" in info.value.hint
    assert "db pull" not in info.value.hint


# --------------------------------------------------------------------------------------------------------
# db pull


async def test_db_pull_brings_the_restored_tables_into_the_schema(
    tmp_path: Path, restored_db: RestoredDb, shell_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The shell and the app's .env still point at the damaged database: neither may win.
    shell_env.setenv("DIRECT_URL", STALE_URL)
    shell_env.setenv("DATABASE_URL", STALE_URL)
    root = make_project(tmp_path / "app")
    schema = root / "prisma" / "schema.prisma"
    schema.chmod(0o640)
    before = schema.read_bytes()
    lines = Lines()

    result = await db_pull(
        project_of(root), restored_db.url, backup_dir=tmp_path / "backups", on_output=lines
    )

    assert result.backup_path.parent == tmp_path / "backups"
    assert result.backup_path.read_bytes() == before
    assert stat.S_IMODE(result.backup_path.stat().st_mode) == 0o600
    after = schema.read_text()
    assert stat.S_IMODE(schema.stat().st_mode) == 0o640  # mode kept through the atomic replace
    assert "model Order {" in after and "model User {" in after and "model Post {" in after
    assert 'directUrl = env("DIRECT_URL")' in after  # the datasource block is carried over
    assert result.written and result.models == 3 == count_models(after)
    assert result.schema_after == after and result.schema_before == before.decode()
    assert "+model Order {" in result.diff
    assert result.diff.startswith(
        "--- prisma/schema.prisma (before)\n+++ prisma/schema.prisma (restored database)"
    )
    # The printed schema is shown once, as the diff above, not streamed line by line.
    assert "model Order {" not in lines

    run = last_run(root)
    assert run["argv"][1:] == ["db", "pull", "--print", "--schema", "prisma/schema.prisma"]  # type: ignore[index]
    assert run["cwd"] == str(root.resolve())
    assert run["stdin_devnull"] is True
    assert run["vars"] == {  # the DIRECT url, in directUrl's variable (and url's: Prisma <= 6 needs both set)
        "DATABASE_URL": {"set": True, "value": restored_db.url.reveal()},
        "DIRECT_URL": {"set": True, "value": restored_db.url.reveal()},
    }
    env = run["env"]
    assert isinstance(env, dict)
    assert (env["CI"], env["PRISMA_HIDE_UPDATE_MESSAGE"], env["NO_COLOR"]) == ("1", "1", "1")

    texts = [
        result.diff,
        repr(result),
        "\n".join(lines),
        caplog.text,
        *(r.getMessage() for r in caplog.records),
    ]
    assert not [t for t in texts if restored_db.password in t or STALE_ENV_PASSWORD in t]


async def test_db_pull_without_write_leaves_the_schema_alone(tmp_path: Path, restored_db: RestoredDb) -> None:
    root = make_project(
        tmp_path / "app",
        version="5.22.0",
        url_var="POSTGRES_PRISMA_URL",
        direct_var="POSTGRES_URL_NON_POOLING",
    )
    schema = root / "prisma" / "schema.prisma"
    before, mtime = schema.read_bytes(), schema.stat().st_mtime_ns

    result = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", write=False)

    assert not result.written
    assert (schema.read_bytes(), schema.stat().st_mtime_ns) == (before, mtime)
    assert "+model Order {" in result.diff and result.models == 3
    assert result.backup_path.read_bytes() == before
    assert last_run(root)["vars"]["POSTGRES_URL_NON_POOLING"]["value"] == restored_db.url.reveal()  # type: ignore[index]

    again = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")
    assert again.written and again.backup_path != result.backup_path
    unchanged = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")
    assert not unchanged.written and unchanged.diff == ""


async def test_write_pulled_writes_what_the_diff_showed_without_a_second_pull(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    root = make_project(tmp_path / "app", version="6.19.0")
    schema = root / "prisma" / "schema.prisma"
    before = schema.read_bytes()
    shown = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", write=False)
    runs = len(read_log(root))
    assert "password" not in repr(shown) and restored_db.password not in repr(shown)

    written = write_pulled(shown, while_what="while the diff was on screen")

    assert written.written and not shown.written
    assert len(read_log(root)) == runs  # Prisma did not run again
    assert written.diff == shown.diff and written.backup_path == shown.backup_path
    assert "model Order {" in schema.read_text() and schema.read_bytes() != before
    assert write_pulled(written, while_what="again") is written  # already written: nothing to do


async def test_write_pulled_refuses_a_schema_edited_while_the_diff_was_shown(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    root = make_project(tmp_path / "app", version="6.19.0")
    schema = root / "prisma" / "schema.prisma"
    shown = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", write=False)
    edited = schema.read_bytes() + b"\n// a teammate's edit\n"
    schema.write_bytes(edited)

    with pytest.raises(PrismaError, match="changed while the diff was on screen; it was not overwritten"):
        write_pulled(shown, while_what="while the diff was on screen")
    assert schema.read_bytes() == edited


async def test_db_pull_prisma7_config_gets_the_url_in_its_variable(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    root = make_project(
        tmp_path,
        version="7.2.0",
        config=config_text(url_expr='env("DATABASE_URL_UNPOOLED")'),
        url_var="DATABASE_URL_UNPOOLED",
    )
    result = await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")

    run = last_run(root)
    assert "--url" not in run["argv"]  # type: ignore[operator]
    assert run["vars"]["DATABASE_URL_UNPOOLED"]["value"] == restored_db.url.reveal()  # type: ignore[index]
    assert run["env"]["DOTENV_CONFIG_QUIET"] == "true"  # type: ignore[index]
    written = (root / "prisma" / "schema.prisma").read_text()
    assert result.models == 3 and "Loaded Prisma config" not in written  # CLI chatter kept out of the file
    assert written.startswith("// This is your Prisma schema file")
    assert 'provider = "prisma-client"' in written


async def test_db_pull_uses_url_flag_when_a_7_3_config_reads_no_variable(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    # The config holds the damaged database's URL literally: only --url can override it.
    config = config_text(url_expr='"postgresql://app@ep-damaged-prod-123456.invalid/app"', dotenv=False)
    root = make_project(tmp_path, version="7.3.0", config=config, url_var=None, direct_var=None)
    project = project_of(root)
    assert project.url_var is None and project.supports_url_flag
    lines = Lines()

    result = await db_pull(project, restored_db.url, backup_dir=tmp_path / "b", on_output=lines)

    argv = last_run(root)["argv"]
    assert argv[1:4] == ["db", "pull", "--print"]  # type: ignore[index]
    assert argv[-2:] == ["--url", restored_db.url.reveal()]  # type: ignore[index]
    assert result.models == 3
    assert restored_db.password not in result.diff + "\n".join(lines)
    assert "--url '<restored direct URL>'" in manual_commands(project)


async def test_db_pull_uses_url_flag_when_dotenv_would_override(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    config = config_text(url_expr='env("DATABASE_URL")', dotenv=False).replace(
        'import { defineConfig, env } from "prisma/config";',
        'import dotenv from "dotenv";\nimport { defineConfig, env } from "prisma/config";\n\n'
        "dotenv.config({ override: true });",
    )
    root = make_project(tmp_path, version="7.10.0", config=config)
    await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")
    run = last_run(root)
    assert "--url" in run["argv"]  # type: ignore[operator]
    assert run["vars"]["DATABASE_URL"]["value"] == restored_db.url.reveal()  # type: ignore[index]


@pytest.mark.parametrize("version", ["7.0.0", "7.2.1"])
async def test_db_pull_refuses_when_the_url_cannot_be_set(tmp_path: Path, version: str) -> None:
    config = config_text(url_expr='"postgresql://app@ep-damaged-prod-123456.invalid/app"')
    root = make_project(tmp_path, version=version, config=config, url_var=None)
    with pytest.raises(PrismaError) as info:
        await db_pull(project_of(root), Secret(f"postgresql://u:{PASSWORD}@h/db"), backup_dir=tmp_path / "b")
    assert "no --url" in str(info.value) and "prisma.config.ts" in str(info.value)
    assert 'env("DIRECT_URL")' in info.value.hint
    assert read_log(root) == []  # nothing ran, nothing was backed up
    assert PASSWORD not in everything(info.value)


def literal_url_schema() -> str:
    literal = "postgresql://neondb_owner:literal-schema-pw-77@ep-damaged-prod-123456.invalid/neondb"
    return schema_text("6.19.0", url_var=None, direct_var=None).replace(
        '  provider  = "postgresql"\n', f'  provider  = "postgresql"\n  url       = "{literal}"\n'
    )


async def test_db_pull_refuses_a_literal_url_in_a_prisma6_schema(tmp_path: Path) -> None:
    root = make_project(tmp_path, schema=literal_url_schema(), url_var=None, direct_var=None)
    with pytest.raises(PrismaError) as info:
        await db_pull(project_of(root), Secret(f"postgresql://u:{PASSWORD}@h/db"), backup_dir=tmp_path / "b")
    assert "would copy a --url into the schema" in str(info.value)
    assert read_log(root) == []
    assert "literal-schema-pw-77" not in everything(info.value)


async def test_db_pull_refuses_a_multi_file_schema(tmp_path: Path) -> None:
    config = 'import { defineConfig } from "prisma/config";\n\nexport default defineConfig({ schema: "prisma/schema" });\n'
    root = make_project(tmp_path, version="6.19.0", config=config)
    (root / "prisma" / "schema").mkdir()
    (root / "prisma" / "schema.prisma").rename(root / "prisma" / "schema" / "main.prisma")
    project = project_of(root)
    assert project.schema_path == root.resolve() / "prisma" / "schema"
    with pytest.raises(PrismaError) as info:
        await db_pull(project, Secret(f"postgresql://u:{PASSWORD}@h/db"), backup_dir=tmp_path / "b")
    assert "split over several files" in str(info.value)
    assert "npx --no-install prisma db pull" in info.value.hint
    assert read_log(root) == []


async def test_engine_download_failure_is_not_blamed_on_the_database(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    root = make_project(tmp_path, behaviour="engine-offline")
    schema = root / "prisma" / "schema.prisma"
    before = schema.read_bytes()
    with pytest.raises(PrismaEngineDownloadError) as info:
        await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")
    message = str(info.value)
    assert "the Prisma engine could not be downloaded" in message
    assert "getaddrinfo ENOTFOUND binaries.prisma.sh" in message
    assert "database server" not in message.lower() and "P1001" not in message
    hint = info.value.hint
    assert f"cd {root.resolve()}" in hint
    assert PULL_WITH_BOTH in hint and "npx --no-install prisma generate" in hint
    assert "PRISMA_SCHEMA_ENGINE_BINARY" in hint
    assert info.value.exit_code == 1
    assert schema.read_bytes() == before


async def test_empty_pull_leaves_the_schema_untouched(tmp_path: Path, restored_db: RestoredDb) -> None:
    root = make_project(tmp_path, behaviour="empty")
    schema = root / "prisma" / "schema.prisma"
    before, mtime = schema.read_bytes(), schema.stat().st_mtime_ns
    with pytest.raises(PrismaPullEmptyError) as info:
        await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b")
    assert "found no tables" in str(info.value) and "left unchanged" in str(info.value)
    assert "DIRECT_URL" in info.value.hint and PULL_WITH_BOTH in info.value.hint
    assert (schema.read_bytes(), schema.stat().st_mtime_ns) == (before, mtime)


async def test_p4001_is_an_empty_pull_and_its_echoed_url_is_masked(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    config = config_text(url_expr='"postgresql://app@ep-damaged-prod-123456.invalid/app"')
    root = make_project(tmp_path, version="7.3.0", behaviour="p4001", config=config, url_var=None)
    lines = Lines()
    with pytest.raises(PrismaPullEmptyError) as info:
        await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", on_output=lines)
    assert "P4001" in str(info.value)
    echoed = [line for line in lines if "The introspected database was empty" in line]
    assert echoed and "****" in echoed[0]  # Prisma printed the --url; we show it masked
    assert restored_db.password not in everything(info.value) + "\n".join(lines)


async def test_a_hanging_prisma_is_stopped_with_its_children(tmp_path: Path, restored_db: RestoredDb) -> None:
    root = make_project(tmp_path, behaviour="hang")
    schema = root / "prisma" / "schema.prisma"
    before = schema.read_bytes()
    # Long enough for the stand-in to start, print and start its child on a loaded machine (a 1 s timeout
    # could fire before it got that far): the test is about what the timeout ends, not how soon.
    with pytest.raises(PrismaTimeoutError) as info:
        await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", timeout=10)
    assert "did not finish within 10 s" in str(info.value)
    assert "connect_timeout=30" in info.value.hint and "npx --no-install prisma db pull" in info.value.hint
    assert any("Introspecting" in line for line in info.value.output_tail)
    pids = next(r["pids"] for r in read_log(root) if r.get("event") == "hang")
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert schema.read_bytes() == before


async def test_cancelling_a_pull_stops_prisma(tmp_path: Path, restored_db: RestoredDb) -> None:
    root = make_project(tmp_path, behaviour="hang")
    task = asyncio.create_task(
        db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", timeout=60)
    )
    for _ in range(200):
        if any(r.get("event") == "hang" for r in read_log(root)):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = next(r["pids"] for r in read_log(root) if r.get("event") == "hang")
    assert not any(alive(pid) for pid in pids)


async def test_a_failing_pull_shows_its_output_redacted(
    tmp_path: Path, restored_db: RestoredDb, shell_env: pytest.MonkeyPatch
) -> None:
    shell_env.setenv("DEBUG", "prisma:*")  # an engineer debugging: Prisma's debug output echoes the URL
    root = make_project(tmp_path, behaviour="fail")
    lines = Lines()
    with pytest.raises(PrismaFailedError) as info:
        await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "b", on_output=lines)
    message = str(info.value)
    assert "`prisma db pull` failed (exit code 1)" in message
    assert "Prisma could not reach the database server" in message  # P1001 explained
    assert "Can't reach database server at" in message  # and its own words, from the tail
    assert any("connecting to postgresql://" in line and ":****@" in line for line in info.value.output_tail)
    assert any("binaries.prisma.sh" in line for line in lines)  # a debug line, not an engine failure
    assert info.value.exit_code == 1
    assert PULL_WITH_BOTH in info.value.hint
    assert restored_db.password not in everything(info.value) + "\n".join(lines)


async def test_the_output_callback_failing_does_not_leave_prisma_running(
    tmp_path: Path, restored_db: RestoredDb
) -> None:
    root = make_project(tmp_path)
    before = (root / "prisma" / "schema.prisma").read_bytes()

    def broken(line: str) -> None:
        raise RuntimeError("the log widget went away")

    with pytest.raises(RuntimeError, match="log widget"):
        # generate streams its output (a pull keeps its printed schema to itself).
        await generate(project_of(root), on_output=broken)
    # Prisma's pipes were drained to the end (no stall), then the error surfaced; nothing was written.
    assert not alive(int(last_run(root)["pid"]))  # type: ignore[call-overload]
    assert (root / "prisma" / "schema.prisma").read_bytes() == before


@pytest.mark.parametrize("behaviour", ["ok", "engine-offline", "empty", "fail", "p4001"])
async def test_the_planted_password_never_shows(
    tmp_path: Path,
    restored_db: RestoredDb,
    shell_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    behaviour: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    shell_env.setenv("DEBUG", "prisma:*")
    shell_env.setenv(BEHAVIOUR_ENV, behaviour)  # one app, every part
    for version, config in (
        ("6.19.0", None),
        ("7.3.0", config_text(url_expr='"postgresql://x@h.invalid/x"')),
    ):
        root = make_project(
            tmp_path / version, version=version, config=config, url_var=None if config else "DATABASE_URL"
        )
        project = project_of(root)
        lines = Lines()
        texts: list[str] = []
        for step in ("pull", "generate"):
            try:
                if step == "pull":
                    # The default timeouts: a short one could stop Prisma on a loaded machine before the URL
                    # reached it, and the check below of where the URL went would see less than it should.
                    result = await db_pull(
                        project, restored_db.url, backup_dir=tmp_path / "b", on_output=lines
                    )
                    texts += [repr(result), result.diff, result.schema_after, result.schema_before]
                else:
                    await generate(project, on_output=lines, url=restored_db.url)
            except PrismaError as exc:
                texts.append(everything(exc))
        captured = capsys.readouterr()
        texts += [
            "\n".join(lines),
            caplog.text,
            captured.out,
            captured.err,
            *(r.getMessage() for r in caplog.records),
        ]
        assert len(read_log(root)) >= 2  # the URL did reach Prisma ...
        assert not [t for t in texts if restored_db.password in t]  # ... and nowhere else


# --------------------------------------------------------------------------------------------------------
# generate


async def test_generate_needs_no_database(tmp_path: Path) -> None:
    root = make_project(tmp_path, env_file=False)
    lines = Lines()
    await generate(project_of(root), on_output=lines)
    assert any("Generated Prisma Client (v6.19.0)" in line for line in lines)
    run = last_run(root)
    assert run["argv"][1:] == ["generate"]  # type: ignore[index]
    assert run["vars"]["DIRECT_URL"] == {"set": False, "value": None}  # type: ignore[index]


async def test_prisma_children_get_only_what_they_need_from_the_environment(
    tmp_path: Path, restored_db: RestoredDb, shell_env: pytest.MonkeyPatch
) -> None:
    """NEON_API_KEY and the shell's other secrets never reach Prisma; PATH, proxies and the URLs do."""
    for name, value in {
        "NEON_API_KEY": "napi_never_for_prisma_0123456789",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-never-for-prisma",
        "GITHUB_TOKEN": "ghp_never_for_prisma",
        "REDIS_URL": "redis://:hunter2@cache:6379",
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "NODE_OPTIONS": "--max-old-space-size=2048",
        "PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING": "1",
        "LC_ALL": "C.UTF-8",
    }.items():
        shell_env.setenv(name, value)
    root = make_project(tmp_path / "app")
    await db_pull(project_of(root), restored_db.url, backup_dir=tmp_path / "backups")
    await generate(project_of(root), url=restored_db.url)
    runs = [r for r in read_log(root) if "event" not in r]
    assert [cast(list[str], r["argv"])[1] for r in runs][-2:] == ["db", "generate"]
    for run in runs[-2:]:
        names = set(cast(list[str], run["env_names"]))
        assert not names & {"NEON_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "REDIS_URL"}
        assert {"PATH", "HOME", "HTTPS_PROXY", "NODE_OPTIONS", "LC_ALL"} <= names
        assert {"PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING", "DATABASE_URL", "DIRECT_URL"} <= names


async def test_a_variable_the_schema_names_reaches_prisma(
    tmp_path: Path, restored_db: RestoredDb, shell_env: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "app")
    schema = root / "prisma" / "schema.prisma"
    schema.write_text(
        schema.read_text().replace(
            'directUrl = env("DIRECT_URL")',
            'directUrl = env("DIRECT_URL")\n  shadowDatabaseUrl = env("SHADOW_DATABASE_URL")',
        )
    )
    shell_env.setenv("SHADOW_DATABASE_URL", "postgresql://shadow@localhost/shadow")
    shell_env.setenv("UNRELATED_DATABASE_URL", "postgresql://other:pw@elsewhere/db")
    await generate(project_of(root), url=restored_db.url)
    names = set(cast(list[str], last_run(root)["env_names"]))
    assert "SHADOW_DATABASE_URL" in names
    assert "UNRELATED_DATABASE_URL" not in names


async def test_generate_offline(tmp_path: Path) -> None:
    root = make_project(tmp_path, behaviour="engine-offline")
    with pytest.raises(PrismaEngineDownloadError) as info:
        await generate(project_of(root))
    assert "the Prisma engine could not be downloaded" in str(info.value)
    assert "libquery_engine" in str(info.value)
    assert info.value.hint.endswith("npx --no-install prisma generate") and "db pull" not in info.value.hint


async def test_generate_prisma7_config_with_env_helper(tmp_path: Path, restored_db: RestoredDb) -> None:
    # prisma/config's env() throws when the variable is unset, even for generate: a placeholder satisfies it.
    root = make_project(tmp_path, version="7.10.0", env_file=False)
    await generate(project_of(root))
    assert last_run(root)["vars"]["DATABASE_URL"]["value"] == GENERATE_PLACEHOLDER_URL  # type: ignore[index]
    await generate(project_of(root), url=restored_db.url)
    assert last_run(root)["vars"]["DATABASE_URL"]["value"] == restored_db.url.reveal()  # type: ignore[index]


async def test_generate_failure_and_timeout(tmp_path: Path, shell_env: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path, behaviour="fail")
    with pytest.raises(PrismaFailedError) as failed:
        await generate(project_of(root))
    assert "Could not resolve @prisma/client" in str(failed.value)
    shell_env.setenv(BEHAVIOUR_ENV, "hang")
    with pytest.raises(PrismaTimeoutError) as timed_out:
        await generate(project_of(root), timeout=0.5)
    assert "`prisma generate` did not finish within 0.5 s" in str(timed_out.value)


# --------------------------------------------------------------------------------------------------------
# Pieces


def test_manual_commands_name_variables_never_values(tmp_path: Path) -> None:
    project = project_of(make_project(tmp_path, url_var="DATABASE_URL", direct_var=None))
    assert manual_commands(project).split("\n") == [
        f"cd {tmp_path.resolve()}",
        "DATABASE_URL='<restored direct URL>' npx --no-install prisma db pull",
        "npx --no-install prisma generate",
    ]
    assert manual_commands(project, pull=False).split("\n")[1:] == ["npx --no-install prisma generate"]


def test_clean_printed_schema() -> None:
    printed = (
        "\x1b[2mLoaded Prisma config from prisma.config.ts.\x1b[22m\n\n"
        "[dotenv@17.2.3] injecting env (2) from .env -- tip: use { quiet: true }\n"
        "Prisma schema loaded from prisma/schema.prisma\n"
        '// This is your Prisma schema file\n\ndatasource db {\n  provider = "postgresql"\n}\n\n'
        "model User {\n  id Int @id\n}\n\n// introspectionSchemaVersion: NonPrisma,\n\n"
    )
    assert clean_printed_schema(printed) == (
        '// This is your Prisma schema file\n\ndatasource db {\n  provider = "postgresql"\n}\n\n'
        "model User {\n  id Int @id\n}\n"
    )
    assert clean_printed_schema("\n\n") == ""
    assert count_models("model A {\n}\n  model B{\n}\n// model C {\nenum model {\n}") == 2


def test_a_printed_datasource_holding_the_url_is_replaced_by_ours() -> None:
    url = f"postgresql://u:{PASSWORD}@h/db"
    before = 'datasource db {\n  provider = "postgresql"\n}\n\nmodel A {\n  id Int @id\n}\n'
    printed = before.replace('"postgresql"\n', f'"postgresql"\n  url      = "{url}"\n')
    assert url in printed
    assert prisma._scrub_datasource(printed, before, (url,)) == before
    assert prisma._scrub_datasource(printed + f"// {url}\n", before, (url,)) is None
    weak = "postgresql://postgres:postgres@localhost/app"  # its password is in `provider = "postgresql"`
    assert prisma._scrub_datasource(before, before, (weak,)) == before


@pytest.mark.parametrize(
    ("line", "engine"),
    [
        (
            "Error: request to https://binaries.prisma.sh/all_commits/x/debian-openssl-3.0.x/schema-engine.gz.sha256"
            " failed, reason: getaddrinfo EAI_AGAIN binaries.prisma.sh",
            True,
        ),
        (
            "Error: Failed to fetch the engine file at https://mirror.example/x/libquery_engine.so.node.gz",
            True,
        ),
        (
            "Error: Failed to fetch sha256 checksum at https://mirror.example/x/schema-engine.sha256 - 404",
            True,
        ),
        (
            "Error: request to https://registry.npmmirror.com/-/binary/prisma/all_commits/abc/windows/"
            "query_engine.dll.node.gz.sha256 failed, reason: unable to verify the first certificate",
            True,
        ),
        ("Error: Not Found https://binaries.prisma.sh/all_commits/x/linux-nixos/migration-engine.gz", True),
        ("Error: P1001: Can't reach database server at `ep-x.neon.tech:5432`", False),
        (
            "  prisma:download Downloading https://binaries.prisma.sh/all_commits/x/debian-openssl-3.0.x/"
            "schema-engine.gz to /app/node_modules/@prisma/engines/schema-engine +2ms",
            False,
        ),
        ("✔ Generated Prisma Client (v6.19.0) to ./node_modules/@prisma/client in 48ms", False),
    ],
)
def test_engine_download_lines(line: str, engine: bool) -> None:
    assert bool(prisma._ENGINE_DOWNLOAD_RE.search(line)) is engine


# --------------------------------------------------------------------------------------------------------
# Real Prisma (opt-in)

REAL_PRISMA_ENV = "RECOVERY_WIZARD_REAL_PRISMA"


async def test_real_prisma(tmp_path: Path, restored_db: RestoredDb) -> None:
    """Against the real CLI from npm: a pull either works or, offline, is reported as an engine download."""
    if os.environ.get(REAL_PRISMA_ENV) != "1":
        pytest.skip(f"set {REAL_PRISMA_ENV}=1 to install the real Prisma CLI from npm and run it (slow)")
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    root = make_project(tmp_path / "app", version="6.19.0", install=False, env_file=False)
    try:
        installed = await asyncio.to_thread(
            subprocess.run,
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "prisma@6.19.0",
                "@prisma/client@6.19.0",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install prisma took more than 5 minutes")
    if installed.returncode != 0:
        pytest.skip(f"npm could not install prisma: {installed.stderr.strip().splitlines()[-1:]}")
    project = project_of(root)
    assert project.binary is not None and project.major == 6
    outcome: prisma.PullResult | PrismaEngineDownloadError
    try:
        outcome = await db_pull(project, restored_db.url, backup_dir=tmp_path / "b", timeout=120)
    except PrismaEngineDownloadError as exc:  # the documented offline behaviour, recognised from real output
        outcome = exc
    if isinstance(outcome, PrismaEngineDownloadError):
        assert "the Prisma engine could not be downloaded" in str(outcome)
        assert restored_db.password not in everything(outcome)
    else:
        assert outcome.models == 3 and "model Order" in outcome.schema_after
        assert restored_db.password not in outcome.diff
