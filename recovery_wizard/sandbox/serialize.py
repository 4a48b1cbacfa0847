"""The sandbox's resources as Neon's JSON: every field the OpenAPI spec requires, with plausible values.

The usage counters (CPU seconds, bytes) are not measured: the sandbox reports zeros or stable estimates,
which the spec allows and the tool does not rely on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recovery_wizard.sandbox.engine import (
    BRANCHES_LIMIT,
    Branch,
    Database,
    DeletedBranch,
    Endpoint,
    Engine,
    Operation,
    Project,
    Role,
    rfc3339,
)

REGION = "aws-sandbox-local"
PROXY_HOST = "127.0.0.1"
ACCOUNT_ID = "00000000-0000-4000-8000-5a4db0c5a4db"


def _ts(moment: datetime) -> str:
    return rfc3339(moment)


def project_item(engine: Engine, project: Project) -> dict[str, Any]:
    """``ProjectListItem`` (the list) — ``project`` adds the consumption fields ``Project`` requires."""
    return {
        "id": project.id,
        "platform_id": "aws",
        "region_id": REGION,
        "name": project.name,
        "provisioner": "k8s-neonvm",
        "default_endpoint_settings": {"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 1},
        "settings": {"allowed_ips": {"ips": [], "protected_branches_only": False}},
        "pg_version": min(max(engine.storage.server.major, 14), 18),
        "proxy_host": PROXY_HOST,
        "branch_logical_size_limit": 0,
        "branch_logical_size_limit_bytes": 10737418240,
        "store_passwords": True,
        "active_time": 0,
        "cpu_used_sec": 0,
        "creation_source": "console",
        "created_at": _ts(project.created_at),
        "updated_at": _ts(project.updated_at),
        "owner_id": ACCOUNT_ID,
        "org_id": project.org_id,
        "history_retention_seconds": project.history_retention_seconds,
    }


def project(engine: Engine, project: Project) -> dict[str, Any]:
    body = project_item(engine, project)
    del body["active_time"]
    now = engine.clock()
    body.update(
        active_time_seconds=0,
        compute_time_seconds=0,
        written_data_bytes=0,
        data_transfer_bytes=0,
        data_storage_bytes_hour=0,
        consumption_period_start=_ts(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)),
        consumption_period_end=_ts(now),
    )
    return body


def branch(engine: Engine, project: Project, branch: Branch) -> dict[str, Any]:
    now = engine.clock()
    state = branch.state(now)
    body: dict[str, Any] = {
        "id": branch.id,
        "project_id": branch.project_id,
        "name": branch.name,
        "current_state": state,
        "state_changed_at": _ts(branch.ready_at if state == "ready" else branch.created_at),
        "logical_size": 31457280,
        "creation_source": "console",
        "primary": branch.default,
        "default": branch.default,
        "protected": branch.protected,
        "cpu_used_sec": 0,
        "compute_time_seconds": 0,
        "active_time_seconds": 0,
        "written_data_bytes": branch.written_bytes,
        "data_transfer_bytes": 0,
        "created_at": _ts(branch.created_at),
        "updated_at": _ts(branch.updated_at),
        "init_source": branch.init_source,
    }
    if state != "ready":
        body["pending_state"] = "ready"
    if branch.parent_id is not None:
        body["parent_id"] = branch.parent_id
        if branch.parent_lsn:
            body["parent_lsn"] = branch.parent_lsn
        if branch.parent_timestamp is not None:
            body["parent_timestamp"] = _ts(branch.parent_timestamp)
    if branch.expires_at is not None:
        body["expires_at"] = _ts(branch.expires_at)
        body["ttl_interval_seconds"] = max(int((branch.expires_at - branch.created_at).total_seconds()), 1)
    if branch.last_reset_at is not None:
        body["last_reset_at"] = _ts(branch.last_reset_at)
    restrictions = []
    if branch.parent_id is not None:
        restrictions.append({"name": "restore", "reason": "restore to a point in time needs a root branch"})
    if branch.restore_status is not None:
        body["restore_status"] = branch.restore_status
        body["restored_from"] = branch.restored_from
        if branch.restored_as is not None:
            body["restored_as"] = branch.restored_as
    if branch.restore_status == "restored":
        restrictions.append({"name": "restore", "reason": "unfinished snapshot restore: finalize it first"})
    if restrictions:
        body["restricted_actions"] = restrictions
    return body


def endpoint(engine: Engine, endpoint: Endpoint) -> dict[str, Any]:
    state = engine.endpoint_state(endpoint)
    body: dict[str, Any] = {
        "host": endpoint.host,
        "id": endpoint.id,
        "project_id": endpoint.project_id,
        "branch_id": endpoint.branch_id,
        "autoscaling_limit_min_cu": endpoint.autoscaling_min_cu,
        "autoscaling_limit_max_cu": endpoint.autoscaling_max_cu,
        "region_id": REGION,
        "type": endpoint.type,
        "current_state": state,
        "settings": endpoint.settings,
        "pooler_enabled": False,
        "pooler_mode": "transaction",
        "disabled": endpoint.disabled,
        "passwordless_access": endpoint.passwordless_access,
        "creation_source": "console",
        "created_at": _ts(endpoint.created_at),
        "updated_at": _ts(endpoint.updated_at),
        "proxy_host": PROXY_HOST,
        "suspend_timeout_seconds": endpoint.suspend_timeout_seconds,
        "provisioner": "k8s-neonvm",
    }
    if endpoint.name:
        body["name"] = endpoint.name
    if state == "init":
        body["pending_state"] = "active"
    if endpoint.last_active is not None:
        body["last_active"] = _ts(min(endpoint.last_active, engine.clock()))
    if state != "init":
        body["started_at"] = _ts(endpoint.ready_at)
    if state == "idle" and endpoint.suspended_at is not None:
        body["suspended_at"] = _ts(endpoint.suspended_at)
    return body


def operation(engine: Engine, op: Operation) -> dict[str, Any]:
    now = engine.clock()
    status = op.status(now)
    body: dict[str, Any] = {
        "id": op.id,
        "project_id": op.project_id,
        "action": op.action,
        "status": status,
        "failures_count": 0,
        "created_at": _ts(op.created_at),
        "updated_at": _ts(min(now, op.done_at)),
        "total_duration_ms": int((min(now, op.done_at) - op.created_at).total_seconds() * 1000),
    }
    if op.branch_id:
        body["branch_id"] = op.branch_id
    if op.endpoint_id:
        body["endpoint_id"] = op.endpoint_id
    return body


def database(db: Database, branch_id: str) -> dict[str, Any]:
    return {
        "id": db.id,
        "branch_id": branch_id,
        "name": db.name,
        "owner_name": db.owner,
        "created_at": _ts(db.created_at),
        "updated_at": _ts(db.updated_at),
    }


def role(role: Role, branch_id: str, *, with_password: bool = False) -> dict[str, Any]:
    body = {
        "branch_id": branch_id,
        "name": role.name,
        "protected": False,
        "authentication_method": "password",
        "created_at": _ts(role.created_at),
        "updated_at": _ts(role.updated_at or role.created_at),
    }
    if with_password:
        # Neon returns the password only when it is made (create, reset_password).
        body["password"] = role.password.reveal()
    return body


def recovery(gone: DeletedBranch) -> dict[str, Any]:
    return {
        "deleted_at": _ts(gone.deleted_at),
        "recoverable_until": _ts(gone.recoverable_until),
        "deletion_method": "user",
    }


def current_user(engine: Engine) -> dict[str, Any]:
    """``GET /users/me``: the sandbox's one user, with the Launch plan's limits.

    ``billing_account`` is optional in today's spec but Neon sends it, and clients generated from older
    specs (PyPI ``neon-api``) require it.
    """
    month = engine.clock().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    billing = {
        "state": "active",
        "payment_source": {"type": "none"},
        "subscription_type": "launch",
        "payment_method": "none",
        "quota_reset_at_last": _ts(month),
        "name": "Sandbox User",
        "email": "sandbox@example.invalid",
        **dict.fromkeys(
            ("address_city", "address_country", "address_line1", "address_line2", "address_postal_code"), ""
        ),
        "address_state": "",
    }
    return {
        "billing_account": billing,
        "id": ACCOUNT_ID,
        "email": "sandbox@example.invalid",
        "login": "sandbox",
        "name": "Sandbox",
        "last_name": "User",
        "image": "",
        "active_seconds_limit": 0,
        "projects_limit": 100,
        "branches_limit": BRANCHES_LIMIT,
        "max_autoscaling_limit": 16,
        "auth_accounts": [],
        "plan": "launch",
    }
