"""Contract tests: the fixtures the tests serve, and the checker itself, against Neon's OpenAPI spec.

Every request the client sends in the other tests, and every in-contract answer they serve, is validated at
teardown of the ``neon_api`` fixture (tests/conftest.py). These tests check the recorded fixtures one by one,
prove the checker is not vacuous, and keep the map of client methods to spec operations complete.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import httpx
import pytest

from recovery_wizard.neon import NeonClient
from tests import contract
from tests.conftest import API, FIXTURES, PROJECT

BR = "br-wispy-meadow-a1b2c3d4"
OP = "9f3b2a1c-5d4e-4f6a-8b7c-0d1e2f3a4b5c"
P = f"/projects/{PROJECT}"

# fixture file -> the request it answers and its status.
FIXTURE_REQUESTS: dict[str, tuple[str, str, int]] = {
    "auth": ("GET", "/auth", 200),
    "organizations": ("GET", "/users/me/organizations", 200),
    "projects": ("GET", "/projects", 200),
    "project": ("GET", P, 200),
    "branches": ("GET", f"{P}/branches", 200),
    "branch": ("GET", f"{P}/branches/{BR}", 200),
    "created_branch": ("POST", f"{P}/branches", 201),
    "update_branch": ("PATCH", f"{P}/branches/{BR}", 200),
    "delete_branch": ("DELETE", f"{P}/branches/{BR}", 200),
    "restore_branch": ("POST", f"{P}/branches/{BR}/restore", 200),
    "endpoints": ("GET", f"{P}/branches/{BR}/endpoints", 200),
    "endpoint_operations": ("POST", f"{P}/endpoints/ep-odd-lake-c9d0e1f2/start", 200),
    "databases": ("GET", f"{P}/branches/{BR}/databases", 200),
    "roles": ("GET", f"{P}/branches/{BR}/roles", 200),
    "reveal_password": ("GET", f"{P}/branches/{BR}/roles/neondb_owner/reveal_password", 200),
    "connection_uri": ("GET", f"{P}/connection_uri?database_name=neondb&role_name=neondb_owner", 200),
    "operation": ("GET", f"{P}/operations/{OP}", 200),
    "operations": ("GET", f"{P}/operations", 200),
    "branch_schema": ("GET", f"{P}/branches/{BR}/schema?db_name=neondb", 200),
    "compare_schema": ("GET", f"{P}/branches/{BR}/compare_schema?db_name=neondb", 200),
    "snapshots": ("GET", f"{P}/snapshots", 200),
    "restored_snapshot": ("POST", f"{P}/snapshots/snap-late-dew-55667788/restore", 200),
    "finalize_restore": ("POST", f"{P}/branches/br-quiet-snow-99aabbcc/finalize_restore", 200),
    "error_locked": ("POST", f"{P}/branches", 423),
}

# Each public client method and the spec operation it calls.
CLIENT_OPERATIONS: dict[str, str] = {
    "auth_details": "getAuthDetails",
    "organizations": "getCurrentUserOrganizations",
    "projects": "listProjects",
    "iter_projects": "listProjects",
    "project": "getProject",
    "branches": "listProjectBranches",
    "iter_branches": "listProjectBranches",
    "branch": "getProjectBranch",
    "branch_annotated": "getProjectBranch",
    "create_branch": "createProjectBranch",
    "update_branch": "updateProjectBranch",
    "delete_branch": "deleteProjectBranch",
    "restore_branch": "restoreProjectBranch",
    "endpoints": "listProjectBranchEndpoints",
    "create_endpoint": "createProjectEndpoint",
    "start_endpoint": "startProjectEndpoint",
    "databases": "listProjectBranchDatabases",
    "roles": "listProjectBranchRoles",
    "reveal_password": "getProjectBranchRolePassword",
    "connection_uri": "getConnectionURI",
    "operation": "getProjectOperation",
    "operations": "listProjectOperations",
    "iter_operations": "listProjectOperations",
    "wait_for_operations": "getProjectOperation",
    "branch_schema": "getProjectBranchSchema",
    "compare_schema": "getProjectBranchSchemaComparison",
    "snapshots": "listSnapshots",
    "project_endpoints": "listProjectEndpoints",
    "create_snapshot": "createSnapshot",
    "update_snapshot": "updateSnapshot",
    "delete_snapshot": "deleteSnapshot",
    "backup_schedule": "getSnapshotSchedule",
    "set_backup_schedule": "setSnapshotSchedule",
    "restore_snapshot": "restoreSnapshot",
    "finalize_restore": "finalizeRestoreBranch",
}


def _request(method: str, path: str, body: object | None = None) -> httpx.Request:
    return httpx.Request(method, API + path, json=body, headers={"Authorization": "Bearer k"})


def test_every_fixture_file_is_mapped() -> None:
    names = {p.stem for p in Path(FIXTURES).glob("*.json")}
    assert names == set(FIXTURE_REQUESTS)


@pytest.mark.parametrize("name", sorted(FIXTURE_REQUESTS))
def test_fixture_matches_the_spec(name: str) -> None:
    method, path, status = FIXTURE_REQUESTS[name]
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    request = _request(method, path)
    contract.validate_response(request, httpx.Response(status, json=body, request=request))


def test_checker_rejects_a_bad_request_body() -> None:
    request = _request(
        "POST", f"{P}/branches", {"branch": {"parent_id": BR}, "endpoints": [{"type": "bogus"}]}
    )
    with pytest.raises(contract.ContractError, match="bogus"):
        contract.validate_request(request)


def test_checker_rejects_a_missing_required_parameter() -> None:
    with pytest.raises(contract.ContractError, match="database_name"):
        contract.validate_request(_request("GET", f"{P}/connection_uri?role_name=x"))


def test_checker_rejects_a_request_without_the_key() -> None:
    with pytest.raises(contract.ContractError, match="Security"):
        contract.validate_request(httpx.Request("GET", API + P))


def test_checker_rejects_a_response_missing_required_fields() -> None:
    request = _request("GET", f"{P}/branches/{BR}")
    response = httpx.Response(200, json={"branch": {"id": BR}, "annotation": {}}, request=request)
    with pytest.raises(contract.ContractError, match="project_id"):
        contract.validate_response(request, response)


def test_every_client_method_maps_to_a_spec_operation() -> None:
    operation_ids = contract.operation_ids()
    public = {
        name
        for name, member in inspect.getmembers(NeonClient)
        if not name.startswith("_")
        and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
    }
    assert public == set(CLIENT_OPERATIONS), "map each new client method to its spec operation"
    assert set(CLIENT_OPERATIONS.values()) <= operation_ids
    print(f"client covers {len(set(CLIENT_OPERATIONS.values()))} of {len(operation_ids)} spec operations")
