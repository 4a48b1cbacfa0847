"""The sandbox's routes against Neon's spec: no fall-through, every route's success and refusal, and the
operations recovery runbooks and Neon's own clients use (endpoint states, undelete, default branch,
databases and roles, ``schema?format=json``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import psycopg
import pytest
from starlette.routing import Match, Route

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.app import SandboxApi
from recovery_wizard.sandbox.engine import Engine
from recovery_wizard.sandbox.service import Sandbox
from tests import contract
from tests.sandbox.conftest import SpecChecker, in_process_http

DB, ROLE = "neondb", "neondb_owner"
PREFIX = "/api/v2"
# The snapshot routes have their own lifecycle tests (test_snapshots.py).
ELSEWHERE = ("/snapshot", "/backup_schedule", "/finalize_restore")


def sandbox_routes() -> list[Route]:
    # The route table only: no handler runs, so no engine is needed.
    return SandboxApi(cast(Engine, None), Secret("unused")).routes()


def served_by(routes: list[Route], method: str, path: str) -> Route | None:
    scope = {"type": "http", "method": method, "path": path}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def template(route: Route) -> str:
    """A route's path as the spec writes it: ``{project_id:neon_id}`` → ``{project_id}``."""
    parts = []
    for part in route.path.split("/"):
        parts.append(part.split(":", 1)[0] + "}" if part.startswith("{") and ":" in part else part)
    return "/".join(parts)


def concrete(spec_path: str) -> str:
    """A spec path with an id-like value in each parameter."""
    out = []
    for part in spec_path.split("/"):
        out.append(f"x-{part[1:-1].replace('_', '-')}-1" if part.startswith("{") else part)
    return PREFIX + "/".join(out)


# --- routing that cannot fall through -------------------------------------------------------------


def test_no_literal_spec_path_is_served_by_a_parameterised_route() -> None:
    routes = sandbox_routes()
    wrong = []
    for spec_path, item in contract.spec_dict()["paths"].items():
        for method in item:
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            route = served_by(routes, method.upper(), concrete(spec_path))
            if route is not None and template(route) != PREFIX + spec_path:
                wrong.append(f"{method.upper()} {spec_path} -> {template(route)}")
    assert wrong == []
    # Every route the sandbox serves is one of Neon's operations, spelled as the spec spells it.
    spec = contract.spec_dict()["paths"]
    invented = [
        f"{method} {template(route)}"
        for route in routes
        for method in route.methods or ()
        if method != "HEAD" and method.lower() not in spec.get(template(route).removeprefix(PREFIX), {})
    ]
    assert invented == []
    # And the literal sub-paths the issue names are routes of their own.
    for spec_path in ("/projects/shared", "/projects/{project_id}/branches/count", "/users/me"):
        route = served_by(routes, "GET", concrete(spec_path))
        assert route is not None and template(route) == PREFIX + spec_path


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_http(sandbox, SpecChecker()) as client:
        client.headers["Authorization"] = f"Bearer {sandbox.api_key.reveal()}"
        client.base_url = httpx.URL(sandbox.api_url + "/")
        yield client


async def test_literal_sub_paths_are_routes_and_unknown_paths_are_unknown_routes(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    pid = sandbox.project_id
    shared = await http.get("projects/shared")
    assert shared.status_code == 200 and shared.json()["projects"] == []
    count = await http.get(f"projects/{pid}/branches/count")
    assert count.status_code == 200
    assert count.json()["count"] == len(sandbox.project.branches if sandbox.project else {})
    assert (await http.get(f"projects/{pid}/branches/count", params={"search": "preview"})).json() == {
        "count": 1
    }
    # Paths the sandbox does not serve are unknown routes, never "project shared not found".
    async with in_process_http(sandbox) as raw:
        headers = {"Authorization": f"Bearer {sandbox.api_key.reveal()}"}
        base = sandbox.api_url
        for method, path in [
            ("POST", "/projects/auth/create"),
            ("GET", "/projects/auth"),
            ("PATCH", f"/projects/{pid}/branches/count"),
            ("DELETE", f"/projects/{pid}/branches/count"),
            ("GET", f"/projects/{pid}/branches/count/endpoints"),
            ("GET", "/projects/shared/branches"),
            ("GET", f"/projects/{pid}/no_such_thing"),
        ]:
            response = await raw.request(method, base + path, headers=headers)
            assert response.status_code in (404, 405), (method, path)
            body = response.json()
            assert set(body) == {"code", "message", "request_id"}
            assert "not found" not in body["message"], (method, path, body)


# --- every route: a success and a refusal, each checked against the spec --------------------------


class Tour:
    """Calls the sandbox, validates each answer against the spec, and notes which route answered how."""

    def __init__(self, sandbox: Sandbox, http: httpx.AsyncClient) -> None:
        self.sandbox = sandbox
        self.http = http
        self.routes = sandbox_routes()
        self.seen: dict[str, set[str]] = {}

    async def call(
        self,
        method: str,
        path: str,
        status: int,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        invalid: bool = False,
    ) -> Any:
        """``invalid``: the request breaks the spec on purpose (a refusal); only the answer is checked."""
        if invalid:
            async with in_process_http(self.sandbox) as raw:
                response = await raw.request(
                    method,
                    self.sandbox.api_url + path,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {self.sandbox.api_key.reveal()}"},
                )
            contract.validate_response(response.request, response)
        else:
            response = await self.http.request(method, path.lstrip("/"), json=json, params=params)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        self.note(method, path, status)
        await self.settle()
        return response.json() if response.content else None

    async def unauthorized(self, path: str) -> None:
        async with in_process_http(self.sandbox) as raw:
            response = await raw.get(self.sandbox.api_url + path)
        assert response.status_code == 401
        contract.validate_response(response.request, response)
        self.note("GET", path, 401)

    def note(self, method: str, path: str, status: int) -> None:
        route = served_by(self.routes, method, PREFIX + path.split("?")[0])
        assert route is not None, (method, path)
        key = f"{method} {template(route)}"
        self.seen.setdefault(key, set()).add("success" if status < 400 else "refusal")

    async def settle(self) -> None:
        """Wait until no operation runs, so the next mutation is not refused with 423."""
        assert self.sandbox.engine is not None and self.sandbox.project is not None
        engine, project = self.sandbox.engine, self.sandbox.project
        while any(op.status(engine.clock()) != "finished" for op in project.operations):
            await asyncio.sleep(0.01)


async def test_every_route_answers_success_and_refusal_by_the_spec(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    tour = Tour(sandbox, http)
    t = tour.call
    pid = sandbox.project_id
    p = f"/projects/{pid}"
    nope = "/projects/no-such-project-123"
    for path in ("/auth", "/users/me", "/users/me/organizations", "/projects", "/projects/shared"):
        await t("GET", path, 200)
        await tour.unauthorized(path)
    await t("GET", "/projects", 400, params={"limit": "0"}, invalid=True)
    await t("GET", "/projects/shared", 400, params={"limit": "0"}, invalid=True)
    await t("GET", p, 200)
    await t("GET", nope, 404)

    branches = (await t("GET", p + "/branches", 200))["branches"]
    main = next(b for b in branches if b["default"])
    await t("GET", p + "/branches", 400, params={"sort_by": "size"}, invalid=True)
    await t("GET", p + "/branches/count", 200)
    await t("GET", nope + "/branches/count", 404)
    b = f"{p}/branches/{main['id']}"
    await t("GET", b, 200)
    await t("GET", p + "/branches/br-no-such-branch-1", 404)

    created = await t(
        "POST",
        p + "/branches",
        201,
        json={"branch": {"parent_id": main["id"], "name": "tour"}, "endpoints": [{"type": "read_write"}]},
    )
    await t("POST", p + "/branches", 409, json={"branch": {"parent_id": main["id"], "name": "tour"}})
    tb = f"{p}/branches/{created['branch']['id']}"
    await t("PATCH", tb, 200, json={"branch": {"name": "tour-2"}})
    await t("PATCH", tb, 400, json={}, invalid=True)
    await t("POST", b + "/restore", 400, json={}, invalid=True)
    await t(
        "POST",
        b + "/restore",
        200,
        json={
            "source_branch_id": main["id"],
            "source_timestamp": (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "preserve_under_name": "main-before-tour",
        },
    )

    # Databases and roles.
    await t("GET", tb + "/databases", 200)
    await t("GET", p + "/branches/br-no-such-branch-1/databases", 404)
    await t("POST", tb + "/databases", 201, json={"database": {"name": "extra", "owner_name": ROLE}})
    await t("POST", tb + "/databases", 409, json={"database": {"name": "extra", "owner_name": ROLE}})
    await t("GET", tb + "/databases/extra", 200)
    await t("GET", tb + "/databases/nope", 404)
    await t("PATCH", tb + "/databases/extra", 200, json={"database": {"name": "extra2"}})
    await t("PATCH", tb + "/databases/extra2", 409, json={"database": {"name": DB}})
    await t("GET", tb + "/roles", 200)
    await t("GET", p + "/branches/br-no-such-branch-1/roles", 404)
    role = await t("POST", tb + "/roles", 201, json={"role": {"name": "reporter"}})
    assert role["role"]["password"]
    await t("POST", tb + "/roles", 409, json={"role": {"name": "reporter"}})
    await t("GET", tb + "/roles/reporter", 200)
    await t("GET", tb + "/roles/nobody", 404)
    await t("GET", tb + "/roles/reporter/reveal_password", 200)
    await t("GET", tb + "/roles/nobody/reveal_password", 404)
    await t("POST", tb + "/roles/reporter/reset_password", 200)
    await t("POST", tb + "/roles/nobody/reset_password", 404)
    await t("PATCH", tb + "/databases/extra2", 200, json={"database": {"owner_name": "reporter"}})
    await t("DELETE", tb + "/roles/reporter", 400)
    await t("DELETE", tb + "/databases/extra2", 200)
    await t("DELETE", tb + "/databases/extra2", 404)
    await t("DELETE", tb + "/roles/reporter", 200)

    # Schema.
    await t("GET", b + "/schema", 200, params={"db_name": DB})
    await t("GET", b + "/schema", 200, params={"db_name": DB, "format": "json"})
    await t("GET", b + "/schema", 400, params={}, invalid=True)
    await t("GET", b + "/compare_schema", 200, params={"db_name": DB, "base_branch_id": main["id"]})
    await t("GET", b + "/compare_schema", 400, params={}, invalid=True)

    # Endpoints.
    await t("GET", b + "/endpoints", 200)
    await t("GET", p + "/branches/br-no-such-branch-1/endpoints", 404)
    await t("GET", p + "/endpoints", 200)
    await t("GET", nope + "/endpoints", 404)
    (endpoint,) = (await t("GET", tb + "/endpoints", 200))["endpoints"]
    e = f"{p}/endpoints/{endpoint['id']}"
    gone = f"{p}/endpoints/ep-no-such-endpoint-1"
    await t(
        "POST",
        p + "/endpoints",
        400,
        json={"endpoint": {"branch_id": created["branch"]["id"], "type": "read_write"}},
    )
    ro = await t(
        "POST",
        p + "/endpoints",
        201,
        json={"endpoint": {"branch_id": created["branch"]["id"], "type": "read_only"}},
    )
    await t("GET", e, 200)
    await t("GET", gone, 404)
    await t("PATCH", e, 200, json={"endpoint": {"suspend_timeout_seconds": 60}})
    await t("PATCH", e, 400, json={"endpoint": {"suspend_timeout_seconds": 5}}, invalid=True)
    await t("POST", e + "/suspend", 200)
    await t("POST", gone + "/suspend", 404)
    await t("POST", e + "/start", 200)
    await t("POST", gone + "/start", 404)
    await t("POST", e + "/restart", 200)
    await t("POST", gone + "/restart", 404)
    ro_path = f"{p}/endpoints/{ro['endpoint']['id']}"
    await t("DELETE", ro_path, 200)
    await t("DELETE", ro_path, 204)
    await t("DELETE", gone, 404)
    await t("GET", p + "/connection_uri", 200, params={"database_name": DB, "role_name": ROLE})
    await t("GET", p + "/connection_uri", 400, params={}, invalid=True)

    # Default branch, delete and undelete.
    await t("POST", tb + "/set_as_default", 200)
    await t("DELETE", tb, 400)
    await t("POST", b + "/set_as_default", 200)
    expiring = await t(
        "POST",
        p + "/branches",
        201,
        json={
            "branch": {
                "parent_id": main["id"],
                "name": "expiring",
                "expires_at": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        },
    )
    eb = f"{p}/branches/{expiring['branch']['id']}"
    await t("POST", eb + "/set_as_default", 400)
    await t("POST", tb + "/recover", 400)
    await t("DELETE", tb, 200)
    await t("DELETE", tb, 204)
    await t("POST", tb + "/recover", 200)
    await t("POST", p + "/branches/br-no-such-branch-1/recover", 404)

    # Operations and snapshots.
    ops = (await t("GET", p + "/operations", 200))["operations"]
    await t("GET", p + "/operations", 400, params={"limit": "0"}, invalid=True)
    await t("GET", f"{p}/operations/{ops[0]['id']}", 200)
    await t("GET", f"{p}/operations/00000000-0000-4000-8000-000000000000", 404)
    await t("GET", p + "/snapshots", 200)
    await t("GET", nope + "/snapshots", 404)

    missing = {
        f"{method} {template(route)}": {"success", "refusal"}
        - tour.seen.get(f"{method} {template(route)}", set())
        for route in tour.routes
        for method in sorted(route.methods or ())
        if method != "HEAD"
        if not any(part in route.path for part in ELSEWHERE)
    }
    assert {k: v for k, v in missing.items() if v} == {}


# --- what the new operations do ---------------------------------------------------------------------


async def endpoint_state(http: httpx.AsyncClient, pid: str, endpoint_id: str) -> str:
    response = await http.get(f"projects/{pid}/endpoints/{endpoint_id}")
    return str(response.json()["endpoint"]["current_state"])


async def test_endpoint_states_follow_start_sessions_suspend_and_the_timeout(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    assert sandbox.engine is not None and sandbox.project is not None
    engine, pid = sandbox.engine, sandbox.project_id
    # The sandbox clock stands still and moves only by ``offset``: every state is read at a moment the test
    # sets (on the wall clock, a loaded machine could answer the start after its 50 ms, or pass 59 s by 1 s).
    base = datetime.now(UTC)
    offset = timedelta()
    engine.clock = lambda: base + offset
    main = sandbox.project.default_branch
    (endpoint,) = engine.branch_endpoints(sandbox.project, main)
    # The scenario's compute has been quiet for days: scaled to zero.
    assert await endpoint_state(http, pid, endpoint.id) == "idle"
    started = (await http.post(f"projects/{pid}/endpoints/{endpoint.id}/start")).json()
    assert [op["action"] for op in started["operations"]] == ["start_compute"]
    assert started["endpoint"]["current_state"] == "init"
    offset = timedelta(seconds=0.1)  # the start (0.05 s here) is done
    assert await endpoint_state(http, pid, endpoint.id) == "active"
    # Five minutes (Neon's default) without activity on the sandbox clock: idle again.
    offset = timedelta(seconds=301)
    assert await endpoint_state(http, pid, endpoint.id) == "idle"
    # A session wakes it and keeps it active however long it lasts.
    uri = (
        await http.get(f"projects/{pid}/connection_uri", params={"database_name": DB, "role_name": ROLE})
    ).json()["uri"]
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        offset = timedelta(seconds=1000)
        assert await endpoint_state(http, pid, endpoint.id) == "active"
        # A suspend ends the session and the compute goes idle at once.
        suspended = (await http.post(f"projects/{pid}/endpoints/{endpoint.id}/suspend")).json()
        assert [op["action"] for op in suspended["operations"]] == ["suspend_compute"]
        assert suspended["endpoint"]["current_state"] == "idle"
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT 1")
    # suspend_timeout_seconds is honoured: 60 s after the last activity, not 300.
    offset = timedelta(seconds=1000.1)  # the suspend is done
    patched = await http.patch(
        f"projects/{pid}/endpoints/{endpoint.id}", json={"endpoint": {"suspend_timeout_seconds": 60}}
    )
    assert patched.json()["endpoint"]["suspend_timeout_seconds"] == 60
    offset = timedelta(seconds=1000.2)  # the new configuration is applied: the compute woke to take it
    assert await endpoint_state(http, pid, endpoint.id) == "active"
    offset = timedelta(seconds=1000 + 59)
    assert await endpoint_state(http, pid, endpoint.id) == "active"
    offset = timedelta(seconds=1000 + 61)
    assert await endpoint_state(http, pid, endpoint.id) == "idle"
    # -1: never suspended.
    await http.patch(
        f"projects/{pid}/endpoints/{endpoint.id}", json={"endpoint": {"suspend_timeout_seconds": -1}}
    )
    offset = timedelta(days=30)
    assert await endpoint_state(http, pid, endpoint.id) == "active"


async def test_restart_drops_sessions_and_delete_removes_the_endpoint(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    pid = sandbox.project_id
    uri = (
        await http.get(f"projects/{pid}/connection_uri", params={"database_name": DB, "role_name": ROLE})
    ).json()["uri"]
    assert sandbox.project is not None and sandbox.engine is not None
    (endpoint,) = sandbox.engine.branch_endpoints(sandbox.project, sandbox.project.default_branch)
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        restarted = (await http.post(f"projects/{pid}/endpoints/{endpoint.id}/restart")).json()
        assert [op["action"] for op in restarted["operations"]] == ["suspend_compute", "start_compute"]
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT 1")
    await asyncio.sleep(0.1)
    # The same connection string works again after the restart.
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        assert await (await conn.execute("SELECT 1")).fetchall() == [(1,)]
    deleted = (await http.delete(f"projects/{pid}/endpoints/{endpoint.id}")).json()
    assert deleted["endpoint"]["id"] == endpoint.id
    assert (await http.get(f"projects/{pid}/endpoints/{endpoint.id}")).status_code == 404
    with pytest.raises(psycopg.OperationalError):
        await psycopg.AsyncConnection.connect(uri, connect_timeout=5)


async def test_a_deleted_branch_is_recovered_with_its_data_and_connection_string(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    pid = sandbox.project_id
    assert sandbox.project is not None
    main = sandbox.project.default_branch
    created = (
        await http.post(
            f"projects/{pid}/branches",
            json={"branch": {"parent_id": main.id, "name": "keepme"}, "endpoints": [{"type": "read_write"}]},
        )
    ).json()
    bid = created["branch"]["id"]
    uri = created["connection_uris"][0]["connection_uri"]
    await asyncio.sleep(0.1)
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    assert (await http.delete(f"projects/{pid}/branches/{bid}")).status_code == 200
    await asyncio.sleep(0.1)
    listed = (await http.get(f"projects/{pid}/branches", params={"include_deleted": "true"})).json()
    (gone,) = [b for b in listed["branches"] if b["id"] == bid]
    assert gone["recovery"]["deletion_method"] == "user"
    assert bid not in [b["id"] for b in (await http.get(f"projects/{pid}/branches")).json()["branches"]]
    recovered = (await http.post(f"projects/{pid}/branches/{bid}/recover")).json()
    assert recovered["branch"]["id"] == bid
    assert [e["current_state"] for e in recovered["endpoints"]] == ["idle"]
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        assert await (await conn.execute("SELECT n FROM kept")).fetchall() == [(42,)]
    # Past Neon's 7-day recovery window (on the sandbox clock) a deleted branch is gone for good.
    assert (await http.delete(f"projects/{pid}/branches/{bid}")).status_code == 200
    assert sandbox.engine is not None
    sandbox.engine.clock = lambda: datetime.now(UTC) + timedelta(days=7, seconds=1)
    late = await http.post(f"projects/{pid}/branches/{bid}/recover")
    assert late.status_code == 404
    listed = (await http.get(f"projects/{pid}/branches", params={"include_deleted": "true"})).json()
    assert bid not in [b["id"] for b in listed["branches"]]


async def test_set_as_default_moves_the_default_and_new_branches_follow(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    pid = sandbox.project_id
    assert sandbox.project is not None
    old = sandbox.project.default_branch
    preview = next(b for b in sandbox.project.branches.values() if not b.default)
    answer = (await http.post(f"projects/{pid}/branches/{preview.id}/set_as_default")).json()
    assert answer["branch"]["default"] is True
    assert (await http.get(f"projects/{pid}/branches/{old.id}")).json()["branch"]["default"] is False
    # The new default is protected from deletion like any default branch.
    refused = await http.delete(f"projects/{pid}/branches/{preview.id}")
    assert refused.status_code == 400 and "default" in refused.json()["message"]
    child = (await http.post(f"projects/{pid}/branches", json={"branch": {"name": "child"}})).json()
    assert child["branch"]["parent_id"] == preview.id


async def test_databases_and_roles_are_real(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    pid = sandbox.project_id
    assert sandbox.project is not None
    main = sandbox.project.default_branch
    b = f"projects/{pid}/branches/{main.id}"
    role = (await http.post(b + "/roles", json={"role": {"name": "app"}})).json()["role"]
    await asyncio.sleep(0.1)
    await http.post(b + "/databases", json={"database": {"name": "reports", "owner_name": "app"}})
    await asyncio.sleep(0.1)
    params = {"database_name": "reports", "role_name": "app"}
    uri = (await http.get(f"projects/{pid}/connection_uri", params=params)).json()["uri"]
    assert role["password"] in uri
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        await conn.execute("CREATE TABLE r (n int PRIMARY KEY); INSERT INTO r VALUES (7)")
    # A branch made now carries the new database and its data.
    child = (
        await http.post(
            f"projects/{pid}/branches",
            json={
                "branch": {"parent_id": main.id, "name": "with-reports"},
                "endpoints": [{"type": "read_write"}],
            },
        )
    ).json()
    await asyncio.sleep(0.1)
    child_uri = (
        await http.get(
            f"projects/{pid}/connection_uri", params={**params, "branch_id": child["branch"]["id"]}
        )
    ).json()["uri"]
    async with await psycopg.AsyncConnection.connect(child_uri, autocommit=True) as conn:
        assert await (await conn.execute("SELECT n FROM r")).fetchall() == [(7,)]
    # schema?format=json describes the table Neon's way.
    schema = (await http.get(b + "/schema", params={"db_name": "reports", "format": "json"})).json()["json"]
    assert schema["tables"] == [
        {
            "schema": "public",
            "name": "r",
            "columns": [{"name": "n", "type": "integer", "nullable": False, "generated": False}],
            "constraints": [{"type": "primary_key", "columns": ["n"], "name": "r_pkey"}],
        }
    ]
    # A reset password: the new one works at once; the old one until the reset's operation finishes.
    reset = (await http.post(b + "/roles/app/reset_password")).json()
    new_uri = uri.replace(role["password"], reset["role"]["password"])
    async with await psycopg.AsyncConnection.connect(new_uri, autocommit=True) as conn:
        await conn.execute("SELECT 1")
    await asyncio.sleep(0.1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await psycopg.AsyncConnection.connect(uri)
    # Deleting the database drops it: its connection string stops working.
    assert (await http.delete(b + "/databases/reports")).status_code == 200
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        await psycopg.AsyncConnection.connect(new_uri)


async def test_neon_limits_carry_neon_error_codes(
    sandbox: Sandbox, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recovery_wizard.sandbox import engine as engine_module

    monkeypatch.setattr(engine_module, "ROLES_LIMIT", 1)
    monkeypatch.setattr(engine_module, "DATABASES_LIMIT", 1)
    assert sandbox.project is not None
    b = f"projects/{sandbox.project_id}/branches/{sandbox.project.default_branch.id}"
    roles = await http.post(b + "/roles", json={"role": {"name": "second"}})
    assert (roles.status_code, roles.json()["code"]) == (422, "ROLES_LIMIT_EXCEEDED")
    dbs = await http.post(b + "/databases", json={"database": {"name": "second", "owner_name": ROLE}})
    assert (dbs.status_code, dbs.json()["code"]) == (422, "DATABASES_LIMIT_EXCEEDED")
    monkeypatch.setattr(engine_module, "BRANCHES_LIMIT", len(sandbox.project.branches))
    branches = await http.post(
        f"projects/{sandbox.project_id}/branches", json={"branch": {"name": "one-too-many"}}
    )
    assert (branches.status_code, branches.json()["code"]) == (422, "BRANCHES_LIMIT_EXCEEDED")
