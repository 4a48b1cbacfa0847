"""Every client method: the request it sends (path, query, body) and what it makes of the answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from recovery_wizard.neon import NeonClient, PreconditionFailedError, format_timestamp
from recovery_wizard.redact import Secret
from tests.conftest import PROJECT, fixture, neon_error, reply

BR = "br-wispy-meadow-a1b2c3d4"
CHILD = "br-cool-frost-e5f6a7b8"


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def query_of(route: respx.Route, index: int = -1) -> dict[str, str]:
    return dict(route.calls[index].request.url.params)


def _branch(i: int) -> dict[str, Any]:
    b: dict[str, Any] = fixture("branch")["branch"]
    b.update(id=f"br-page-branch-{i:08d}", name=f"preview/{i}", default=False)
    return b


def _project(i: int) -> dict[str, Any]:
    p: dict[str, Any] = fixture("projects")["projects"][0]
    p.update(id=f"project-{i:04d}", name=f"project {i}")
    return p


def _branches_page(branches: list[dict[str, Any]], pagination: dict[str, str]) -> dict[str, Any]:
    return {"branches": branches, "annotations": {}, "pagination": pagination}


def _projects_page(projects: list[dict[str, Any]], cursor: str) -> dict[str, Any]:
    return {"projects": projects, "pagination": {"cursor": cursor}, "applications": {}, "integrations": {}}


def _op(i: int, created: datetime) -> dict[str, Any]:
    op: dict[str, Any] = fixture("operation")["operation"]
    op.update(id=f"00000000-0000-4000-8000-{i:012d}", created_at=format_timestamp(created))
    return op


# --- account ---------------------------------------------------------------------------------------


async def test_auth_details_tells_the_key_kind(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get("/auth").mock(return_value=reply("auth"))
    auth = await client.auth_details()
    assert auth.auth_method == "api_key_org"
    assert not auth.is_personal_key
    assert route.calls[0].request.headers["Authorization"].startswith("Bearer napi_")


async def test_organizations(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get("/users/me/organizations").mock(return_value=reply("organizations"))
    orgs = await client.organizations()
    assert [(o.id, o.name) for o in orgs] == [("org-quiet-river-87654321", "HomeCheff")]


# --- projects: cursor = last id, ends on a short or empty page -------------------------------------


async def test_projects_follow_cursor_pages_to_the_empty_end(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    pages = [[_project(1), _project(2)], [_project(3), _project(4)], []]
    responses = [reply(_projects_page(page, page[-1]["id"] if page else "project-0004")) for page in pages]
    route = neon_api.get("/projects").mock(side_effect=responses)
    projects = await client.projects(org_id="org-quiet-river-87654321", page_size=2)
    assert [p.id for p in projects] == ["project-0001", "project-0002", "project-0003", "project-0004"]
    assert [query_of(route, i).get("cursor") for i in range(3)] == [None, "project-0002", "project-0004"]
    assert all(query_of(route, i)["org_id"] == "org-quiet-river-87654321" for i in range(3))
    assert all(query_of(route, i)["limit"] == "2" for i in range(3))


async def test_projects_stop_on_a_short_page(client: NeonClient, neon_api: respx.MockRouter) -> None:
    responses = [
        reply(_projects_page([_project(1), _project(2)], "project-0002")),
        reply(_projects_page([_project(3)], "project-0003")),
    ]
    route = neon_api.get("/projects").mock(side_effect=responses)
    projects = await client.projects(search="home", page_size=2)
    assert len(projects) == 3
    assert route.call_count == 2
    assert query_of(route, 0)["search"] == "home"


async def test_project_reads_the_restore_window(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}").mock(return_value=reply("project"))
    project = await client.project(PROJECT)
    assert project.history_retention_seconds == 7 * 24 * 3600
    assert project.created_at == datetime(2026, 11, 14, 9, 12, 44, tzinfo=UTC)


# --- branches: opaque pagination.next, ends when it is absent --------------------------------------


async def test_branches_follow_next_and_send_our_own_sort_order(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    responses = [
        reply(_branches_page([_branch(1), _branch(2)], {"next": "opaque-1", "sort_order": "DESC"})),
        reply(_branches_page([_branch(3)], {"next": "opaque-2", "sort_by": "updated_at"})),
        reply(_branches_page([_branch(4)], {"sort_order": "DESC"})),
    ]
    route = neon_api.get(f"/projects/{PROJECT}/branches").mock(side_effect=responses)
    branches = await client.branches(PROJECT, search="preview", sort_by="updated_at", sort_order="DESC")
    assert [b.name for b in branches] == ["preview/1", "preview/2", "preview/3", "preview/4"]
    assert [query_of(route, i).get("cursor") for i in range(3)] == [None, "opaque-1", "opaque-2"]
    for i in range(3):
        assert query_of(route, i)["sort_order"] == "desc"  # never the "DESC" Neon echoed
        assert query_of(route, i)["search"] == "preview"
        assert query_of(route, i)["limit"] == "10000"


async def test_branches_single_page_and_fields(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/branches").mock(return_value=reply("branches"))
    main, child = await client.branches(PROJECT)
    assert route.call_count == 1
    assert main.default and main.is_root and main.current_state == "ready"
    assert not child.is_root and child.parent_id == BR
    assert child.parent_timestamp == datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC)


async def test_iter_branches_stops_paging_when_the_caller_stops(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/branches").mock(
        return_value=reply(_branches_page([_branch(1)], {"next": "more"}))
    )
    async for _ in client.iter_branches(PROJECT):
        break
    assert route.call_count == 1


async def test_branch(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches/{BR}").mock(return_value=reply("branch"))
    branch = await client.branch(PROJECT, BR)
    assert branch.id == BR and branch.restriction("restore") is None


async def test_create_branch_at_a_moment_sends_parent_endpoint_and_expiry(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches").mock(return_value=reply("created_branch", 201))
    amsterdam = timezone(timedelta(hours=1))
    created = await client.create_branch(
        PROJECT,
        parent_id=BR,
        name="main-restore-2026-11-21T01-29-59Z",
        parent_timestamp=datetime(2026, 11, 21, 2, 29, 59, tzinfo=amsterdam),
        expires_at=datetime(2026, 11, 22, 2, 0, 0, 999_000, tzinfo=UTC),
    )
    assert body_of(route) == {
        "branch": {
            "parent_id": BR,
            "name": "main-restore-2026-11-21T01-29-59Z",
            "parent_timestamp": "2026-11-21T01:29:59Z",
            "expires_at": "2026-11-22T02:00:00Z",
        },
        "endpoints": [{"type": "read_write"}],
    }
    assert created.branch.id == CHILD
    assert [op.action for op in created.operations] == ["create_timeline", "start_compute"]
    assert created.endpoints[0].pooler_host == "ep-odd-lake-c9d0e1f2-pooler.us-east-2.aws.neon.tech"
    assert [d.name for d in created.databases] == ["neondb"]
    assert [r.name for r in created.roles] == ["neondb_owner"]
    # The answer's connection_uris hold a password: they are not decoded into the model at all.
    assert "npg_Fixture5ecret" not in repr(created)


async def test_a_branch_is_created_with_an_annotation_and_read_back_with_it(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches").mock(return_value=reply("created_branch", 201))
    await client.create_branch(PROJECT, parent_id=BR, annotation={"recovery-wizard-run": "run-1"})
    assert body_of(route)["annotation_value"] == {"recovery-wizard-run": "run-1"}
    neon_api.get(f"/projects/{PROJECT}/branches/{BR}").mock(
        return_value=httpx.Response(
            200,
            json={
                "branch": _branch(1),
                "annotation": {"object": {"type": "console/branch", "id": BR}, "value": {"k": "v"}},
            },
        )
    )
    branch, annotation = await client.branch_annotated(PROJECT, BR)
    assert branch.id == "br-page-branch-00000001" and annotation == {"k": "v"}


async def test_create_branch_at_an_lsn_with_a_read_only_endpoint(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches").mock(return_value=reply("created_branch", 201))
    await client.create_branch(PROJECT, parent_id=BR, parent_lsn="0/1F3A5C8", endpoints=["read_only"])
    assert body_of(route) == {
        "branch": {"parent_id": BR, "parent_lsn": "0/1F3A5C8"},
        "endpoints": [{"type": "read_only"}],
    }


async def test_create_branch_keeps_sub_second_precision(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches").mock(return_value=reply("created_branch", 201))
    moment = datetime(2026, 11, 21, 1, 29, 59, 250_000, tzinfo=UTC)
    await client.create_branch(PROJECT, parent_id=BR, parent_timestamp=moment)
    assert body_of(route)["branch"]["parent_timestamp"] == "2026-11-21T01:29:59.250000Z"


async def test_create_branch_refuses_ambiguous_or_naive_moments(client: NeonClient) -> None:
    with pytest.raises(ValueError, match="not both"):
        await client.create_branch(
            PROJECT, parent_id=BR, parent_timestamp=datetime.now(UTC), parent_lsn="0/1"
        )
    with pytest.raises(ValueError, match="time zone"):
        await client.create_branch(PROJECT, parent_id=BR, parent_timestamp=datetime(2026, 11, 21, 1, 0))


async def test_update_branch_renames_and_clears_expiry(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.patch(f"/projects/{PROJECT}/branches/{CHILD}").mock(return_value=reply("update_branch"))
    result = await client.update_branch(
        PROJECT, CHILD, name="drill-2026-11-21", protected=False, expires_at=None
    )
    assert body_of(route) == {"branch": {"name": "drill-2026-11-21", "protected": False, "expires_at": None}}
    assert result.branch.name == "drill-2026-11-21"
    await client.update_branch(PROJECT, CHILD, expires_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    assert body_of(route) == {"branch": {"expires_at": "2026-11-22T02:00:00Z"}}
    with pytest.raises(ValueError, match="at least one"):
        await client.update_branch(PROJECT, CHILD)


async def test_delete_branch_returns_operations_or_none_when_gone(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.delete(f"/projects/{PROJECT}/branches/{CHILD}").mock(
        side_effect=[reply("delete_branch"), httpx.Response(204)]
    )
    first = await client.delete_branch(PROJECT, CHILD)
    assert first is not None and [op.action for op in first.operations] == [
        "suspend_compute",
        "delete_timeline",
    ]
    assert await client.delete_branch(PROJECT, CHILD) is None
    assert route.call_count == 2


async def test_restore_branch_in_place(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches/{BR}/restore").mock(
        return_value=reply("restore_branch")
    )
    result = await client.restore_branch(
        PROJECT,
        BR,
        source_branch_id=BR,
        source_timestamp=datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC),
        preserve_under_name="main-before-restore-2026-11-21T02-10-00Z",
    )
    assert body_of(route) == {
        "source_branch_id": BR,
        "source_timestamp": "2026-11-21T01:29:59Z",
        "preserve_under_name": "main-before-restore-2026-11-21T02-10-00Z",
    }
    assert result.branch.pending_state == "resetting"
    assert len(result.operations) == 2
    await client.restore_branch(PROJECT, BR, source_branch_id=CHILD, source_lsn="0/1F3A5C8")
    assert body_of(route) == {"source_branch_id": CHILD, "source_lsn": "0/1F3A5C8"}
    with pytest.raises(ValueError, match="not both"):
        await client.restore_branch(
            PROJECT, BR, source_branch_id=BR, source_lsn="0/1", source_timestamp=datetime.now(UTC)
        )


# --- endpoints, databases, roles, connection strings ------------------------------------------------


async def test_endpoints_list_create_and_start(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches/{CHILD}/endpoints").mock(return_value=reply("endpoints"))
    create = neon_api.post(f"/projects/{PROJECT}/endpoints").mock(
        return_value=reply("endpoint_operations", 201)
    )
    start = neon_api.post(f"/projects/{PROJECT}/endpoints/ep-odd-lake-c9d0e1f2/start").mock(
        return_value=reply("endpoint_operations")
    )
    (endpoint,) = await client.endpoints(PROJECT, CHILD)
    assert endpoint.current_state == "active" and endpoint.type == "read_write"
    created = await client.create_endpoint(PROJECT, CHILD, type="read_only")
    assert body_of(create) == {"endpoint": {"branch_id": CHILD, "type": "read_only"}}
    assert created.endpoint.id == "ep-odd-lake-c9d0e1f2"
    started = await client.start_endpoint(PROJECT, "ep-odd-lake-c9d0e1f2")
    assert start.calls[0].request.content == b""
    assert started.operations[0].action == "start_compute"


async def test_databases_and_roles(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches/{CHILD}/databases").mock(return_value=reply("databases"))
    neon_api.get(f"/projects/{PROJECT}/branches/{CHILD}/roles").mock(return_value=reply("roles"))
    (db,) = await client.databases(PROJECT, CHILD)
    (role,) = await client.roles(PROJECT, CHILD)
    assert (db.name, db.owner_name, role.name) == ("neondb", "neondb_owner", "neondb_owner")


async def test_reveal_password_is_a_secret(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches/{CHILD}/roles/neondb_owner/reveal_password").mock(
        return_value=reply("reveal_password")
    )
    password = await client.reveal_password(PROJECT, CHILD, "neondb_owner")
    assert isinstance(password, Secret)
    assert password.reveal() == "npg_Fixture5ecret"
    assert "npg_Fixture5ecret" not in f"{password} {password!r}"


async def test_reveal_password_refused_when_the_project_stores_none(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    neon_api.get(f"/projects/{PROJECT}/branches/{CHILD}/roles/neondb_owner/reveal_password").mock(
        return_value=neon_error(412, "project does not store passwords")
    )
    with pytest.raises(PreconditionFailedError, match="does not store passwords") as info:
        await client.reveal_password(PROJECT, CHILD, "neondb_owner")
    assert info.value.status == 412


async def test_role_names_are_quoted_in_paths(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get(url__regex=r".*/roles/.+/reveal_password$").mock(
        return_value=reply("reveal_password")
    )
    await client.reveal_password(PROJECT, CHILD, "app user/ro")
    assert route.calls[0].request.url.raw_path.endswith(b"/roles/app%20user%2Fro/reveal_password")


@pytest.mark.parametrize("pooled", [True, False])
async def test_connection_uri_pooled_and_direct(
    client: NeonClient, neon_api: respx.MockRouter, pooled: bool
) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/connection_uri").mock(return_value=reply("connection_uri"))
    uri = await client.connection_uri(
        PROJECT,
        branch_id=CHILD,
        endpoint_id="ep-odd-lake-c9d0e1f2",
        database_name="neondb",
        role_name="neondb_owner",
        pooled=pooled,
    )
    assert query_of(route) == {
        "branch_id": CHILD,
        "endpoint_id": "ep-odd-lake-c9d0e1f2",
        "database_name": "neondb",
        "role_name": "neondb_owner",
        "pooled": "true" if pooled else "false",
    }
    assert uri.reveal().startswith("postgresql://neondb_owner:npg_Fixture5ecret@ep-odd-lake")
    assert str(uri).startswith("postgresql://neondb_owner:****@ep-odd-lake-c9d0e1f2")


# --- operations ------------------------------------------------------------------------------------


async def test_operation(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/operations/9f3b2a1c-5d4e-4f6a-8b7c-0d1e2f3a4b5c").mock(
        return_value=reply("operation")
    )
    op = await client.operation(PROJECT, "9f3b2a1c-5d4e-4f6a-8b7c-0d1e2f3a4b5c")
    assert op.done and not op.failed and op.total_duration_ms == 1840


async def test_operations_follow_timestamp_cursor_to_the_end(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    t = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    ops = [_op(i, t - timedelta(minutes=i)) for i in range(5)]
    responses = [
        reply({"operations": ops[0:2], "pagination": {"cursor": ops[1]["created_at"]}}),
        reply({"operations": ops[2:4], "pagination": {"cursor": ops[3]["created_at"]}}),
        reply({"operations": ops[4:], "pagination": {"cursor": ops[4]["created_at"]}}),
    ]
    route = neon_api.get(f"/projects/{PROJECT}/operations").mock(side_effect=responses)
    found = await client.operations(PROJECT, page_size=2)
    assert [op.id for op in found] == [op["id"] for op in ops]
    assert [query_of(route, i).get("cursor") for i in range(3)] == [
        None,
        "2026-11-21T01:59:00Z",
        "2026-11-21T01:57:00Z",
    ]


async def test_operations_since_stops_paging_early(client: NeonClient, neon_api: respx.MockRouter) -> None:
    t = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    ops = [_op(i, t - timedelta(hours=i)) for i in range(4)]
    route = neon_api.get(f"/projects/{PROJECT}/operations").mock(
        side_effect=[
            reply({"operations": ops[0:2], "pagination": {"cursor": ops[1]["created_at"]}}),
            reply({"operations": ops[2:4], "pagination": {"cursor": ops[3]["created_at"]}}),
        ]
    )
    found = await client.operations(PROJECT, since=t - timedelta(hours=2), page_size=2)
    assert len(found) == 3
    assert route.call_count == 2


# --- schema and snapshots --------------------------------------------------------------------------


async def test_branch_schema_at_a_moment(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/branches/{BR}/schema").mock(
        return_value=reply("branch_schema")
    )
    schema = await client.branch_schema(
        PROJECT, BR, db_name="neondb", timestamp=datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC)
    )
    assert query_of(route) == {"db_name": "neondb", "timestamp": "2026-11-21T01:29:59Z"}
    assert schema.sql is not None and 'CREATE TABLE public."User"' in schema.sql


async def test_compare_schema_against_a_moment(client: NeonClient, neon_api: respx.MockRouter) -> None:
    route = neon_api.get(f"/projects/{PROJECT}/branches/{BR}/compare_schema").mock(
        return_value=reply("compare_schema")
    )
    diff = await client.compare_schema(
        PROJECT,
        BR,
        db_name="neondb",
        base_branch_id=BR,
        base_timestamp=datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC),
    )
    assert query_of(route) == {
        "db_name": "neondb",
        "base_branch_id": BR,
        "base_timestamp": "2026-11-21T01:29:59Z",
    }
    assert diff.startswith("--- a/neondb") and "+    role text" in diff


async def test_snapshots(client: NeonClient, neon_api: respx.MockRouter) -> None:
    neon_api.get(f"/projects/{PROJECT}/snapshots").mock(return_value=reply("snapshots"))
    (snap,) = await client.snapshots(PROJECT)
    assert snap.name == "nightly 2026-11-21" and snap.source_branch_id == BR


# --- snapshot restores (restore, finalize) -------------------------------------------------------------

SNAP = "snap-late-dew-55667788"
RESTORED = "br-quiet-snow-99aabbcc"


async def test_restore_snapshot_unfinalized_to_a_named_branch(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/snapshots/{SNAP}/restore").mock(
        return_value=reply("restored_snapshot")
    )
    restored = await client.restore_snapshot(PROJECT, SNAP, name="main-from-snapshot", target_branch_id=BR)
    # The name goes in the body (the query parameter is deprecated); preview first unless asked otherwise.
    assert body_of(route) == {"finalize_restore": False, "name": "main-from-snapshot", "target_branch_id": BR}
    assert query_of(route) == {}
    assert restored.branch.id == RESTORED
    assert restored.branch.restore_status == "restored" and restored.branch.restored_from == SNAP
    assert [e.type for e in restored.endpoints] == ["read_only"]
    assert [op.action for op in restored.operations] == ["create_timeline", "start_compute"]


async def test_restore_snapshot_finalized_sends_only_the_flag(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/snapshots/{SNAP}/restore").mock(
        return_value=reply("restored_snapshot")
    )
    await client.restore_snapshot(PROJECT, SNAP, finalize_restore=True)
    assert body_of(route) == {"finalize_restore": True}


async def test_restore_snapshot_not_found_is_a_not_found_error(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    from recovery_wizard.neon import NotFoundError

    neon_api.post(f"/projects/{PROJECT}/snapshots/{SNAP}/restore").mock(
        return_value=neon_error(404, f"snapshot {SNAP} not found")
    )
    with pytest.raises(NotFoundError, match="not found"):
        await client.restore_snapshot(PROJECT, SNAP)


async def test_finalize_restore_names_the_old_branch_and_returns_operations(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    route = neon_api.post(f"/projects/{PROJECT}/branches/{RESTORED}/finalize_restore").mock(
        return_value=reply("finalize_restore")
    )
    operations = await client.finalize_restore(PROJECT, RESTORED, name="main_old_2026-11-21")
    assert body_of(route) == {"name": "main_old_2026-11-21"}
    assert [op.action for op in operations] == ["suspend_compute", "start_compute"]
    await client.finalize_restore(PROJECT, RESTORED)
    assert body_of(route) == {}


async def test_finalize_of_a_branch_not_restored_from_a_snapshot_keeps_neons_message(
    client: NeonClient, neon_api: respx.MockRouter
) -> None:
    from recovery_wizard.neon.errors import NeonHTTPError

    neon_api.post(f"/projects/{PROJECT}/branches/{BR}/finalize_restore").mock(
        return_value=neon_error(400, f"branch {BR} was not restored from a snapshot")
    )
    with pytest.raises(NeonHTTPError, match="not restored from a snapshot") as caught:
        await client.finalize_restore(PROJECT, BR)
    assert caught.value.status == 400
