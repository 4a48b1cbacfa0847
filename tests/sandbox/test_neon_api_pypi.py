"""Neon's Python client (PyPI ``neon-api``), unchanged, against the sandbox.

Its models were generated from an older spec and are strict (every field the old spec required must be
there), so it catches answers that today's spec allows but Neon itself would never give. It is installed
once into its own virtual environment in the pytest cache; the test skips, saying why, when PyPI is out
of reach.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from recovery_wizard.sandbox.service import Sandbox

NEON_API_VERSION = "0.3.0"

# Runs inside the client's own environment; prints {call: "pass" | "FAIL …"} as JSON, never a secret.
SCRIPT = r"""
import json, os, time
from neon_api import NeonAPI

neon = NeonAPI(api_key=os.environ["NEON_API_KEY"], base_url=os.environ["NEON_API_URL"].rstrip("/") + "/")
pid = os.environ["NEON_PROJECT_ID"]
results = {}

def call(name, fn):
    try:
        answer = fn()
    except Exception as exc:
        results[name] = f"FAIL {type(exc).__name__}: {str(exc)[:300]}"
        return None
    results[name] = "pass"
    time.sleep(0.15)  # let the call's operations finish: the next mutation would meet a 423
    return answer

call("me", neon.me)
call("projects", neon.projects)
branches = call("branches", lambda: neon.branches(pid))
main = next(b for b in branches.branches if b.default)
created = call("branch_create", lambda: neon.branch_create(
    pid, branch={"parent_id": main.id, "name": "py"}, endpoints=[{"type": "read_write"}]))
call("databases", lambda: neon.databases(pid, main.id))
call("database", lambda: neon.database(pid, main.id, "neondb"))
call("database_create", lambda: neon.database_create(
    pid, main.id, database={"name": "pydb", "owner_name": "neondb_owner"}))
call("role_create", lambda: neon.role_create(pid, main.id, "pyrole"))
call("role", lambda: neon.role(pid, main.id, "pyrole"))
call("role_password_reset", lambda: neon.role_password_reset(pid, main.id, "pyrole"))
call("role_delete", lambda: neon.role_delete(pid, main.id, "pyrole"))
call("database_delete", lambda: neon.database_delete(pid, main.id, "pydb"))
endpoints = call("endpoints", lambda: neon.endpoints(pid))
endpoint = next(e for e in endpoints.endpoints if e.branch_id == main.id)
call("endpoint", lambda: neon.endpoint(pid, endpoint.id))
call("endpoint_suspend", lambda: neon.endpoint_suspend(pid, endpoint.id))
call("endpoint_start", lambda: neon.endpoint_start(pid, endpoint.id))
call("endpoint_update", lambda: neon.endpoint_update(
    pid, endpoint.id, endpoint={"suspend_timeout_seconds": 120}))
call("operations", lambda: neon.operations(pid))
call("connection_uri", lambda: neon.connection_uri(pid, database_name="neondb", role_name="neondb_owner"))
call("branch_delete", lambda: neon.branch_delete(pid, created.branch.id))
print(json.dumps(results))
"""


@pytest.fixture(scope="session")
def neon_api_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)
    name = f"neon-api-{NEON_API_VERSION}"
    root = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    python = root / "venv" / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    marker = root / "installed"
    if not marker.exists():
        venv.create(root / "venv", with_pip=True, clear=True)
        try:
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", f"neon-api=={NEON_API_VERSION}"],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            pytest.skip(
                f"pip could not install neon-api=={NEON_API_VERSION} (PyPI out of reach?): {output[-300:]!r}"
            )
        marker.touch()
    return python


async def test_neon_api_from_pypi_runs_unchanged_against_the_sandbox(
    neon_api_python: Path, sandbox: Sandbox
) -> None:
    url = await sandbox.serve()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NEON_API_URL": url,
        "NEON_API_KEY": sandbox.api_key.reveal(),
        "NEON_PROJECT_ID": sandbox.project_id,
    }
    process = await asyncio.create_subprocess_exec(
        str(neon_api_python),
        "-c",
        SCRIPT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    results = json.loads(out)
    assert {name: outcome for name, outcome in results.items() if outcome != "pass"} == {}
    assert len(results) == 20
