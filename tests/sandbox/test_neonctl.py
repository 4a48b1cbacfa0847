"""Neon's own CLI, ``neonctl`` from npm, unchanged, against the sandbox (``--api-host``).

neonctl is installed once into the pytest cache directory (``.pytest_cache/d/neonctl``) and reused by later
runs; the tests skip, saying why, only when node/npm are missing or the npm registry is out of reach.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recovery_wizard.sandbox.service import Sandbox

# The version the closing note's figures were measured with; NEONCTL_VERSION overrides it.
NEONCTL_VERSION = os.environ.get("NEONCTL_VERSION", "5.0.1")
TIMEOUT = 120


@pytest.fixture(scope="session")
def neonctl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to install neonctl from npm; they are not on PATH")
    # The pytest cache keeps it between runs; without the cache plugin, once per session.
    cache = getattr(request.config, "cache", None)
    name = f"neonctl-{NEONCTL_VERSION}"
    root = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    binary = root / "node_modules" / ".bin" / "neonctl"
    if not binary.exists():
        try:
            subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(root),
                    "--no-audit",
                    "--no-fund",
                    f"neonctl@{NEONCTL_VERSION}",
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            pytest.skip(
                f"npm could not install neonctl@{NEONCTL_VERSION} (registry out of reach?): {output[-300:]!r}"
            )
    return binary


class Neonctl:
    def __init__(self, binary: Path, sandbox: Sandbox, home: Path) -> None:
        self.binary = binary
        self.sandbox = sandbox
        self.home = home

    async def __call__(self, *args: str, text: bool = False) -> Any:
        """Run ``neonctl ARGS --output json`` against the sandbox; its parsed output (or its text)."""
        command = [
            str(self.binary),
            *args,
            "--api-host",
            self.sandbox.api_url,
            "--project-id",
            self.sandbox.project_id,
            "--output",
            "json",
            "--no-analytics",
            "--no-color",
            "--config-dir",
            str(self.home / "config"),
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "NEON_API_KEY": self.sandbox.api_key.reveal(),
        }
        # Async: the sandbox answers from this test's event loop while neonctl runs.
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=self.home,  # neonctl may write context files (and .gitignore lines) where it runs
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert process.returncode == 0, (args, err.decode()[-2000:])
        if text:
            return out.decode().strip()
        return json.loads(out) if out.strip() else None


@pytest.fixture
async def cli(neonctl: Path, sandbox: Sandbox, tmp_path: Path) -> Neonctl:
    await sandbox.serve()
    return Neonctl(neonctl, sandbox, tmp_path)


async def count_users(uri: str) -> int:
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        row = await (await conn.execute('SELECT count(*) FROM "User"')).fetchone()
        assert row is not None
        return int(str(row[0]))


async def plain_uri(sandbox: Sandbox, branch_id: str) -> str:
    """A URI from the sandbox's own API (``sslmode=disable``), to check data behind neonctl's back."""
    assert sandbox.engine is not None and sandbox.project is not None
    return sandbox.engine.connection_uri(
        sandbox.project,
        branch_id=branch_id,
        endpoint_id=None,
        database_name="neondb",
        role_name="neondb_owner",
        pooled=False,
    )


async def test_neonctl_lists_branches_restores_and_sets_the_default(cli: Neonctl, sandbox: Sandbox) -> None:
    assert sandbox.project is not None and sandbox.project.scenario is not None
    incident = sandbox.project.scenario.incident_at
    before = (incident - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    projects = await cli("projects", "list")
    assert [p["id"] for p in projects["projects"]] == [sandbox.project_id]
    assert projects["shared_with_you"] == []

    branches = await cli("branches", "list")
    main = next(b for b in branches if b["default"])
    assert {b["name"] for b in branches} >= {"main", "preview/checkout-redesign"}

    # A branch at a moment before the incident holds the users the incident deleted.
    created = await cli("branches", "create", "--name", "before-incident", "--parent", before)
    assert created["branch"]["parent_timestamp"] <= before
    await asyncio.sleep(0.2)
    assert await count_users(await plain_uri(sandbox, created["branch"]["id"])) >= 14
    assert await count_users(await plain_uri(sandbox, main["id"])) < 10

    # In-place restore of main to that moment, keeping the damaged state under a backup name.
    restored = await cli(
        "branches", "restore", "main", f"^self@{before}", "--preserve-under-name", "main-damaged"
    )
    assert restored["id"] == main["id"]
    await asyncio.sleep(0.2)
    assert await count_users(await plain_uri(sandbox, main["id"])) >= 14
    names = {b["name"] for b in await cli("branches", "list")}
    assert "main-damaged" in names

    # set-default moves the default to the restored copy's sibling.
    await asyncio.sleep(0.2)
    default = await cli("branches", "set-default", "before-incident")
    assert default["default"] is True
    after = {b["name"]: b["default"] for b in await cli("branches", "list")}
    assert after["before-incident"] is True and after["main"] is False

    operations = await cli("operations", "list")
    actions = {op["action"] for op in operations}
    assert {"create_timeline", "start_compute"} <= actions
    assert all(op["status"] in ("scheduling", "running", "finished") for op in operations)


async def test_neonctl_connection_string_with_its_defaults_runs_a_query(cli: Neonctl) -> None:
    # neonctl's own defaults: sslmode=require&channel_binding=require, so this runs over TLS with
    # SCRAM-SHA-256-PLUS, as an app configured the usual way does.
    uri = await cli("connection-string", "main", text=True)
    assert "sslmode=require" in uri and "channel_binding=require" in uri
    assert await count_users(uri) >= 1


async def test_neonctl_manages_databases_roles_and_branches(cli: Neonctl, sandbox: Sandbox) -> None:
    me = await cli("me")
    assert me["plan"] and me["billing_account"]["state"] == "active"
    created = await cli("databases", "create", "--name", "reports", "--branch", "main")
    assert created["name"] == "reports"
    await asyncio.sleep(0.2)
    assert {d["name"] for d in await cli("databases", "list", "--branch", "main")} == {"neondb", "reports"}
    await cli("databases", "delete", "reports", "--branch", "main")
    await asyncio.sleep(0.2)
    role = await cli("roles", "create", "--name", "reporter", "--branch", "main")
    assert role["name"] == "reporter"
    await asyncio.sleep(0.2)
    assert "reporter" in {r["name"] for r in await cli("roles", "list", "--branch", "main")}
    await cli("roles", "delete", "reporter", "--branch", "main")
    await asyncio.sleep(0.2)
    await cli("branches", "create", "--name", "scratch")
    await asyncio.sleep(0.2)
    await cli("branches", "add-compute", "scratch", "--type", "read_only")
    await asyncio.sleep(0.2)
    deleted = await cli("branches", "delete", "scratch")
    assert deleted["name"] == "scratch"
    assert "scratch" not in {b["name"] for b in await cli("branches", "list")}
