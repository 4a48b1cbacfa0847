"""The sandbox as a Neon: the client against it, point-in-time fidelity, refusals, operations, faults."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from recovery_wizard.neon import (
    BadResponseError,
    ConflictError,
    LockedError,
    NeonClient,
    NeonHTTPError,
    OutcomeUnknownError,
    RetryPolicy,
    UnauthorizedError,
)
from recovery_wizard.neon.models import Branch
from recovery_wizard.sandbox.engine import ApiError, Project
from recovery_wizard.sandbox.faults import FaultSpecError, parse_fault
from recovery_wizard.sandbox.service import Sandbox
from tests.sandbox.conftest import SpecChecker, in_process_http, neon_client

DB, ROLE = "neondb", "neondb_owner"


async def default_branch(client: NeonClient, project_id: str) -> Branch:
    return next(b for b in await client.branches(project_id) if b.default)


async def branch_uri(client: NeonClient, project_id: str, branch_id: str, *, pooled: bool = False) -> str:
    uri = await client.connection_uri(
        project_id, branch_id=branch_id, database_name=DB, role_name=ROLE, pooled=pooled
    )
    return uri.reveal()


async def query(uri: str, sql: str, options: str = "") -> list[tuple[object, ...]]:
    extra = {"options": options} if options else {}
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True, **extra) as conn:  # type: ignore[arg-type]
        cur = await conn.execute(sql.encode())
        return await cur.fetchall()


async def branch_at(client: NeonClient, project_id: str, parent: Branch, at: datetime, name: str) -> Branch:
    created = await client.create_branch(project_id, parent_id=parent.id, name=name, parent_timestamp=at)
    await client.wait_for_operations(project_id, created.operations)
    return created.branch


async def user_count(client: NeonClient, project_id: str, branch_id: str) -> int:
    rows = await query(await branch_uri(client, project_id, branch_id), 'SELECT count(*) FROM "User"')
    return int(str(rows[0][0]))


# --- the client against the sandbox ----------------------------------------------------------------


async def test_client_reads_the_scenario_project(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, checker = checked
    assert (await client.auth_details()).auth_method == "api_key_org"
    (project,) = await client.projects()
    assert project.id == sandbox.project_id
    assert project.name == "homecheff-prod"
    full = await client.project(project.id)
    assert full.history_retention_seconds == 7 * 24 * 3600
    branches = await client.branches(project.id)
    main = next(b for b in branches if b.default)
    assert main.is_root and main.current_state == "ready"
    assert len(branches) >= 2  # the scenario's preview branch too
    (endpoint,) = await client.endpoints(project.id, main.id)
    assert endpoint.host.startswith("127.0.0.1:")
    assert [d.name for d in await client.databases(project.id, main.id)] == [DB]
    assert [r.name for r in await client.roles(project.id, main.id)] == [ROLE]
    ops = await client.operations(project.id)
    assert isinstance(ops, list)
    assert [s.name for s in await client.snapshots(project.id) if s.manual] == ["before release"]
    orgs = await client.organizations()
    assert orgs[0].id == full.org_id
    assert checker.checked >= 9 or not checker.enabled


async def test_the_incident_is_in_the_data(checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox) -> None:
    client, _ = checked
    assert sandbox.project is not None and sandbox.project.scenario is not None
    incident = sandbox.project.scenario.incident_at
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    # The 2 admins, plus whoever signed up again after the incident.
    assert await user_count(client, pid, main.id) < 10
    before = await branch_at(client, pid, main, incident - timedelta(seconds=1), "before-incident")
    after = await branch_at(client, pid, main, incident + timedelta(seconds=1), "after-incident")
    assert await user_count(client, pid, before.id) >= 14
    assert await user_count(client, pid, after.id) == 2
    assert before.parent_timestamp is not None and before.parent_timestamp < incident


async def test_a_uri_built_from_host_password_and_database_reaches_the_branch(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    (endpoint,) = await client.endpoints(pid, main.id)
    password = await client.reveal_password(pid, main.id, ROLE)
    (db,) = await client.databases(pid, main.id)
    uri = f"postgresql://{ROLE}:{password.reveal()}@{endpoint.host}/{db.name}?sslmode=disable"
    rows = await query(uri, "SELECT count(*), current_database() <> 'neondb' FROM \"User\"")
    # The same data as through the API's own URI; the advertised name maps to the branch's real database.
    assert rows == [(await user_count(client, pid, main.id), True)]


@pytest.mark.parametrize("pooled", [False, True])
async def test_connection_uris_connect_pooled_and_direct(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, pooled: bool
) -> None:
    client, _ = checked
    main = await default_branch(client, sandbox.project_id)
    uri = await branch_uri(client, sandbox.project_id, main.id, pooled=pooled)
    assert uri.endswith("?sslmode=require&channel_binding=require")
    assert await query(uri, "SELECT 1") == [(1,)]


async def test_the_client_over_a_real_socket(sandbox: Sandbox) -> None:
    url = await sandbox.serve()
    assert url.startswith("http://127.0.0.1:")
    checker = SpecChecker()
    async with httpx.AsyncClient(event_hooks={"response": [checker]}) as http:
        client = NeonClient(http, sandbox.api_key, base_url=url)
        project = await client.project(sandbox.project_id)
        main = await default_branch(client, project.id)
        created = await client.create_branch(project.id, parent_id=main.id, name="over-the-socket")
        final = await client.wait_for_operations(project.id, created.operations)
        assert all(op.done for op in final)
        assert await user_count(client, project.id, created.branch.id) == await user_count(
            client, project.id, main.id
        )


# --- point-in-time fidelity, pgBackRest style -----------------------------------------------------


async def write_markers(uri: str) -> list[datetime]:
    """Write markers 1, 2, 3 through the endpoint; the moment after each (and one before any)."""
    moments = [datetime.now(UTC)]
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        await conn.execute("CREATE TABLE marker (n int PRIMARY KEY)")
        for n in (1, 2, 3):
            await asyncio.sleep(0.05)
            await conn.execute("INSERT INTO marker (n) VALUES (%s)", (n,))
            moments.append(datetime.now(UTC))
    return moments


async def markers(client: NeonClient, project_id: str, branch_id: str) -> list[int] | None:
    uri = await branch_uri(client, project_id, branch_id)
    try:
        rows = await query(uri, "SELECT n FROM marker ORDER BY n")
    except psycopg.errors.UndefinedTable:
        return None
    return [int(str(r[0])) for r in rows]


async def test_each_branch_holds_exactly_the_markers_written_before_its_moment(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    moments = await write_markers(await branch_uri(client, pid, main.id))
    found = []
    for i, moment in enumerate(moments):
        branch = await branch_at(client, pid, main, moment, f"marker-{i}")
        found.append(await markers(client, pid, branch.id))
    assert found == [None, [1], [1, 2], [1, 2, 3]]


async def test_in_place_restore_keeps_the_old_state_as_a_backup(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    uri_before = await branch_uri(client, pid, main.id)
    moments = await write_markers(uri_before)
    result = await client.restore_branch(
        pid,
        main.id,
        source_branch_id=main.id,
        source_timestamp=moments[2],
        preserve_under_name="main_old_markers",
    )
    await client.wait_for_operations(pid, result.operations)
    assert await markers(client, pid, main.id) == [1, 2]
    # The connection string stays the same.
    assert await branch_uri(client, pid, main.id) == uri_before
    (backup,) = await client.branches(pid, search="main_old_markers")
    assert backup.name == "main_old_markers"
    # As on Neon, the backup has no compute of its own: add one to look inside.
    assert await client.endpoints(pid, backup.id) == []
    added = await client.create_endpoint(pid, backup.id)
    await client.wait_for_operations(pid, added.operations)
    assert await markers(client, pid, backup.id) == [1, 2, 3]
    restored = await client.branch(pid, main.id)
    assert restored.last_reset_at is not None
    # The backup keeps the old history: it can be branched in the past, too.
    again = await branch_at(client, pid, backup, moments[1], "from-backup")
    assert await markers(client, pid, again.id) == [1]


async def test_time_travel_connection_sees_the_past_read_only(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    assert sandbox.project is not None and sandbox.project.scenario is not None
    incident = sandbox.project.scenario.incident_at
    main = await default_branch(client, sandbox.project_id)
    uri = await branch_uri(client, sandbox.project_id, main.id)
    then = (incident - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    async with await psycopg.AsyncConnection.connect(
        uri, autocommit=True, options=f"neon_timestamp:{then}"
    ) as conn:
        cur = await conn.execute('SELECT count(*) FROM "User"')
        row = await cur.fetchone()
        assert row is not None
        assert int(str(row[0])) >= 14
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute('DELETE FROM "Order"')
    # The branch itself still holds today's damaged data.
    assert await user_count(client, sandbox.project_id, main.id) < 10
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(psycopg.OperationalError, match="in the future"):
        await query(uri, "SELECT 1", options=f"neon_timestamp:{future}")


# --- refusals: the right status and message, and nothing changed ----------------------------------


async def state(client: NeonClient, project_id: str) -> tuple[list[str], int]:
    branches = sorted(b.id for b in await client.branches(project_id))
    return branches, len(await client.operations(project_id))


async def test_refusals_change_nothing(checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    preview = next(b for b in await client.branches(pid) if not b.default)
    now = datetime.now(UTC)
    before = await state(client, pid)
    refusals = [
        (
            client.create_branch(pid, parent_id=main.id, parent_timestamp=now + timedelta(minutes=5)),
            400,
            "in the future",
        ),
        (
            client.create_branch(pid, parent_id=main.id, parent_timestamp=now - timedelta(days=8)),
            400,
            "outside the history retention period",
        ),
        (
            client.restore_branch(
                pid,
                preview.id,
                source_branch_id=preview.id,
                source_timestamp=now - timedelta(hours=1),
                preserve_under_name="x",
            ),
            400,
            "root branches only",
        ),
        (
            client.restore_branch(
                pid, main.id, source_branch_id=main.id, source_timestamp=now - timedelta(hours=1)
            ),
            400,
            "preserve_under_name is required",
        ),
        (client.delete_branch(pid, main.id), 400, "default branch"),
        (client.create_branch(pid, parent_id=main.id, name=preview.name), 409, "already exists"),
        (client.create_branch(pid, parent_id="br-no-such-branch-1234"), 404, "not found"),
    ]
    for call, status, words in refusals:
        with pytest.raises(NeonHTTPError, match=words) as info:
            await call
        assert info.value.status == status
        assert info.value.request_id
    assert await state(client, pid) == before


async def test_an_unknown_or_missing_key_is_refused(sandbox: Sandbox) -> None:
    # No spec checker: a request without a key is outside the contract by design.
    async with in_process_http(sandbox) as http:
        for key in ("napi_wrong_key_123456", "x"):
            client = NeonClient(http, key, base_url=sandbox.api_url)
            with pytest.raises(UnauthorizedError, match="API key was refused"):
                await client.project(sandbox.project_id)
        response = await http.get(f"{sandbox.api_url}/projects")
        assert response.status_code == 401


async def test_a_second_mutation_while_one_runs_is_locked(sandbox: Sandbox) -> None:
    assert sandbox.engine is not None
    sandbox.engine.operation_seconds = 5
    # The sandbox clock stands still: the first create's operation still runs at the second create, however
    # long a loaded machine takes between the two.
    frozen = datetime.now(UTC)
    sandbox.engine.clock = lambda: frozen
    async with in_process_http(sandbox, SpecChecker()) as http:
        client = neon_client(sandbox, http, retry=RetryPolicy(max_attempts=1))
        pid = sandbox.project_id
        main = await default_branch(client, pid)
        await client.create_branch(pid, parent_id=main.id, name="first")
        with pytest.raises(LockedError, match="conflicting operations"):
            await client.create_branch(pid, parent_id=main.id, name="second")
        names = [b.name for b in await client.branches(pid)]
        assert "first" in names
        assert "second" not in names


async def test_operations_move_from_scheduling_to_finished(sandbox: Sandbox) -> None:
    """Each status is read at a moment the test chose: on the wall clock, a loaded machine took longer than the
    scheduling fifth (200 ms) to answer the create, and the first status seen was already "running"."""
    assert sandbox.engine is not None
    sandbox.engine.operation_seconds = 1.0
    frozen = datetime.now(UTC)
    sandbox.engine.clock = lambda: frozen
    async with in_process_http(sandbox, SpecChecker()) as http:
        client = neon_client(sandbox, http)
        pid = sandbox.project_id
        main = await default_branch(client, pid)
        created = await client.create_branch(pid, parent_id=main.id)
        op = created.operations[0]
        assert created.branch.current_state == "init"
        seen = [op.status]
        for step in (0.1, 0.15, 0.5, 0.3):  # 0.1, 0.25, 0.75, 1.05 s after the create
            frozen += timedelta(seconds=step)
            current = await client.operation(pid, op.id)
            if current.status != seen[-1]:
                seen.append(current.status)
        assert current.done
        assert seen == ["scheduling", "running", "finished"]
        assert (await client.branch(pid, created.branch.id)).current_state == "ready"


async def test_delete_branch_then_204(checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    created = await client.create_branch(pid, parent_id=main.id, name="to-delete")
    await client.wait_for_operations(pid, created.operations)
    deleted = await client.delete_branch(pid, created.branch.id)
    assert deleted is not None
    await client.wait_for_operations(pid, deleted.operations)
    assert await client.delete_branch(pid, created.branch.id) is None
    assert "to-delete" not in [b.name for b in await client.branches(pid)]


async def test_two_deletes_of_one_branch_at_once_remove_it_once(sandbox: Sandbox) -> None:
    """Both pass the checks before either has made its operations (the delete awaits between them and the
    removal): the second is refused as Neon refuses a mutation during another's operations, not a crash."""
    assert sandbox.engine is not None
    engine = sandbox.engine
    engine.operation_seconds = 0.05
    async with in_process_http(sandbox, SpecChecker()) as http:
        client = neon_client(sandbox, http)
        pid = sandbox.project_id
        main = await default_branch(client, pid)
        created = await client.create_branch(pid, parent_id=main.id, name="twice")
        await client.wait_for_operations(pid, created.operations)
        project = engine.projects[pid]
        settle = engine._settle_schedules

        async def settle_later(project: Project) -> None:
            await asyncio.sleep(0)  # the first delete yields here as a slow storage would, before it removes
            await settle(project)

        engine._settle_schedules = settle_later  # type: ignore[method-assign]
        first, second = await asyncio.gather(
            engine.delete_branch(project, created.branch.id),
            engine.delete_branch(project, created.branch.id),
            return_exceptions=True,
        )
        assert isinstance(first, tuple)
        assert [op.action for op in first[1]] == ["suspend_compute", "delete_timeline"]
        assert isinstance(second, ApiError) and second.status == 423, second
        assert created.branch.id in project.deleted and created.branch.id not in project.branches
        assert await client.delete_branch(pid, created.branch.id) is None  # asked again: already gone
        await engine.retired()


async def test_a_branch_deleted_just_after_writes_comes_back_with_them_in_its_history(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    """The delete no longer waits for the sandbox to copy the last writes into the branch's history (Neon's
    waits on no archiving): the copy finishes behind it, and the branch undeleted has its whole history."""
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    created = await client.create_branch(pid, parent_id=main.id, name="written-then-deleted")
    await client.wait_for_operations(pid, created.operations)
    bid = created.branch.id
    moments = await write_markers(await branch_uri(client, pid, bid))
    deleted = await client.delete_branch(pid, bid)
    assert deleted is not None
    await client.wait_for_operations(pid, deleted.operations)
    assert bid not in [b.id for b in await client.branches(pid)]
    async with in_process_http(sandbox) as http:
        recovered = await http.post(
            f"{sandbox.api_url}/projects/{pid}/branches/{bid}/recover",
            headers={"Authorization": f"Bearer {sandbox.api_key.reveal()}"},
        )
    assert recovered.status_code == 200, recovered.text
    back = await client.branch(pid, bid)
    assert await markers(client, pid, bid) == [1, 2, 3]
    found = [
        await markers(client, pid, (await branch_at(client, pid, back, at, f"b{i}")).id)
        for i, at in enumerate(moments[2:])
    ]
    assert found == [[1, 2], [1, 2, 3]]


async def test_branch_pages_and_updates(checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox) -> None:
    client, _ = checked
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    for i in range(3):
        created = await client.create_branch(pid, parent_id=main.id, name=f"page-{i}")
        await client.wait_for_operations(pid, created.operations)
    everything = await client.branches(pid)
    paged = await client.branches(pid, page_size=2, sort_by="name", sort_order="asc")
    assert sorted(b.id for b in paged) == sorted(b.id for b in everything)
    assert [b.name for b in paged] == sorted(b.name for b in everything)
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    updated = await client.update_branch(pid, paged[0].id, name="renamed", expires_at=expiry)
    assert updated.branch.name == "renamed"
    assert updated.branch.expires_at == expiry
    with pytest.raises(ConflictError):
        await client.update_branch(pid, paged[1].id, name="renamed")


async def test_schema_and_compare_schema(checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox) -> None:
    client, _ = checked
    assert sandbox.project is not None and sandbox.project.scenario is not None
    incident = sandbox.project.scenario.incident_at
    pid = sandbox.project_id
    main = await default_branch(client, pid)
    schema = await client.branch_schema(pid, main.id, db_name=DB)
    assert schema.sql is not None and 'CREATE TABLE public."User"' in schema.sql
    same = await client.compare_schema(pid, main.id, db_name=DB, base_branch_id=main.id)
    assert same == ""
    diff = await client.compare_schema(
        pid, main.id, db_name=DB, base_branch_id=main.id, base_timestamp=incident - timedelta(seconds=1)
    )
    assert diff.startswith("--- a/neondb")
    assert "+" in diff


# --- fault injection -------------------------------------------------------------------------------


async def test_injected_423_is_retried_and_creates_one_branch(sandbox: Sandbox) -> None:
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches#1-2=423:retry-after=0"))
    async with in_process_http(sandbox, SpecChecker()) as http:
        client = neon_client(sandbox, http)
        main = await default_branch(client, sandbox.project_id)
        created = await client.create_branch(sandbox.project_id, parent_id=main.id, name="after-423")
        assert client.requests_sent >= 4
        assert [b.name for b in await client.branches(sandbox.project_id)].count("after-423") == 1
        assert created.branch.name == "after-423"


async def test_injected_500_after_the_write_is_an_unknown_outcome(sandbox: Sandbox) -> None:
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches=500"))
    async with in_process_http(sandbox) as http:
        client = neon_client(sandbox, http)
        main = await default_branch(client, sandbox.project_id)
        with pytest.raises(OutcomeUnknownError):
            await client.create_branch(sandbox.project_id, parent_id=main.id, name="lost-answer")
        # The write happened: a client reconciles by name instead of creating it twice.
        assert [b.name for b in await client.branches(sandbox.project_id)].count("lost-answer") == 1


async def test_injected_malformed_answer(sandbox: Sandbox) -> None:
    sandbox.app.faults.append(parse_fault("GET /projects/*=malformed"))
    async with in_process_http(sandbox) as http:
        client = neon_client(sandbox, http)
        with pytest.raises(BadResponseError, match="not JSON"):
            await client.project(sandbox.project_id)
        assert (await client.project(sandbox.project_id)).id == sandbox.project_id


async def test_an_idle_connection_outlives_the_clients_keep_alive(sandbox: Sandbox) -> None:
    """The server keeps an idle connection past httpx's 5 s keep-alive expiry, so the client always lets it go
    first: at 5 s both, a POST sent as the server closed it lost its answer on a loaded machine."""
    from urllib.parse import urlsplit

    url = urlsplit(await sandbox.serve())
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    request = (
        f"GET {url.path.rstrip('/')}/projects/{sandbox.project_id} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nAuthorization: Bearer {sandbox.api_key.reveal()}\r\n\r\n"
    ).encode()

    async def ask() -> bytes:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        return head.split(b"\r\n", 1)[0]

    try:
        assert await ask() == b"HTTP/1.1 200 OK"
        await asyncio.sleep(6)  # past httpx's keep-alive expiry (5 s)
        assert await ask() == b"HTTP/1.1 200 OK"
    finally:
        writer.close()


async def test_dropped_connection_over_a_socket_is_retried_for_a_get(sandbox: Sandbox) -> None:
    sandbox.app.faults.append(parse_fault("GET /projects/*=drop"))
    url = await sandbox.serve()
    async with httpx.AsyncClient() as http:
        client = NeonClient(http, sandbox.api_key, base_url=url, retry=RetryPolicy(base_delay=0.01))
        assert (await client.project(sandbox.project_id)).id == sandbox.project_id
        assert client.requests_sent == 2


async def test_latency_is_added_to_every_answer(sandbox: Sandbox) -> None:
    sandbox.app.latency = 0.1
    async with in_process_http(sandbox) as http:
        client = neon_client(sandbox, http)
        began = time.perf_counter()
        await client.project(sandbox.project_id)
        await client.project(sandbox.project_id)
        assert time.perf_counter() - began >= 0.2


@pytest.mark.parametrize(
    "spec",
    [
        "nonsense",
        "POST /x=999",
        "GET /x#0=423",
        "GET /x#3-1=423",
        "GET /x=stall:seconds=abc",
        "GET /x=423:color=red",
        "GET /x?pooled=423",
    ],
)
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault(spec)


def test_fault_which_counts_per_spec() -> None:
    fault = parse_fault("GET */operations/*#2-3=503")
    assert [fault.fires() for _ in range(4)] == [False, True, True, False]
    assert parse_fault("* /x#2+=500").method == "*"
    every = parse_fault("/x#*=stall:seconds=1,when=before")
    assert every.before and every.stall_seconds == 1 and all(every.fires() for _ in range(3))


def test_a_fault_names_a_request_by_its_query() -> None:
    """Concurrent requests reach the server in any order: a spec can name one by what it asks instead."""
    pooled = parse_fault("GET /projects/*/connection_uri?pooled=true&role_name=*#1-2=429:retry-after=1")
    assert (pooled.query, pooled.first, pooled.last, pooled.retry_after) == (
        {"pooled": "true", "role_name": "*"},
        1,
        2,
        "1",
    )
    path = "/projects/p-1/connection_uri"
    assert pooled.matches("GET", path, "branch_id=br-1&role_name=app&pooled=true")
    assert not pooled.matches("GET", path, "branch_id=br-1&role_name=app&pooled=false")
    assert not pooled.matches("GET", path, "pooled=true")  # role_name absent
    assert not pooled.matches("GET", path)
    direct = parse_fault("GET /projects/*/connection_uri?pooled=false=malformed")
    assert direct.action == "malformed" and direct.query == {"pooled": "false"}
    assert parse_fault("GET /projects/*/connection_uri=500").matches("GET", path, "pooled=true")
