"""Typed models of the Neon API v2 resources that recovery uses.

Built on msgspec: decoding is strict about the fields we rely on (a wrong type is a BadResponseError, not a
crash three steps later) and silent about everything else, because Neon adds fields often. Enums are open
in practice (``OperationAction``, ``BranchState``…): every such field is a ``str`` and the known values
live in ``StrEnum`` classes for comparison, so a value we have never seen decodes fine.

Only the fields the tool uses are declared; add one when a feature needs it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class Model(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base: keyword-only; unknown fields are ignored (msgspec's default)."""


# --- open enums: known values, for comparison only ---------------------------------------------------


class OperationStatus(StrEnum):
    SCHEDULING = "scheduling"
    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    SKIPPED = "skipped"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"


OPERATION_OK = frozenset({OperationStatus.FINISHED, OperationStatus.SKIPPED})
OPERATION_FAILED = frozenset({OperationStatus.FAILED, OperationStatus.ERROR, OperationStatus.CANCELLED})


class BranchState(StrEnum):
    INIT = "init"
    READY = "ready"
    RESETTING = "resetting"
    ARCHIVED = "archived"


class EndpointType(StrEnum):
    READ_WRITE = "read_write"
    READ_ONLY = "read_only"


class EndpointState(StrEnum):
    INIT = "init"
    ACTIVE = "active"
    IDLE = "idle"


class AuthMethod(StrEnum):
    API_KEY_USER = "api_key_user"
    API_KEY_ORG = "api_key_org"
    OAUTH = "oauth"
    SESSION_COOKIE = "session_cookie"
    KEYCLOAK = "keycloak"


# --- resources ---------------------------------------------------------------------------------------


class AuthDetails(Model):
    account_id: str
    auth_method: str
    auth_data: str | None = None

    @property
    def is_personal_key(self) -> bool:
        """A personal key must name an organization (``org_id``) to list projects."""
        return self.auth_method == AuthMethod.API_KEY_USER


class Organization(Model):
    id: str
    name: str
    handle: str = ""
    plan: str = ""


class Project(Model):
    """A project, as listed or fetched. ``history_retention_seconds`` is the restore window."""

    id: str
    name: str
    region_id: str = ""
    pg_version: int | None = None
    org_id: str | None = None
    store_passwords: bool = True
    history_retention_seconds: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class RestrictedAction(Model):
    name: str
    reason: str = ""


class Branch(Model):
    id: str
    project_id: str
    name: str
    current_state: str
    parent_id: str | None = None
    parent_lsn: str | None = None
    parent_timestamp: datetime | None = None
    pending_state: str | None = None
    default: bool = False
    protected: bool = False
    logical_size: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_reset_at: datetime | None = None
    expires_at: datetime | None = None
    init_source: str | None = None
    restore_status: str | None = None
    restored_from: str | None = None
    restored_as: str | None = None
    restricted_actions: list[RestrictedAction] = []

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    def restriction(self, action: str) -> RestrictedAction | None:
        """The restriction on ``action`` (e.g. ``"restore"``), if Neon reports one."""
        return next((r for r in self.restricted_actions if r.name == action), None)


class Endpoint(Model):
    id: str
    host: str
    project_id: str
    branch_id: str
    type: str
    current_state: str
    pending_state: str | None = None
    region_id: str = ""
    disabled: bool = False
    created_at: datetime | None = None
    last_active: datetime | None = None

    @property
    def pooler_host(self) -> str:
        """Neon's pooled host: the endpoint id with ``-pooler`` appended, in the first label."""
        first, sep, rest = self.host.partition(".")
        return f"{first}-pooler{sep}{rest}"


class Operation(Model):
    id: str
    project_id: str
    action: str
    status: str
    branch_id: str | None = None
    endpoint_id: str | None = None
    error: str | None = None
    failures_count: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    total_duration_ms: int = 0

    @property
    def done(self) -> bool:
        return self.status in OPERATION_OK

    @property
    def failed(self) -> bool:
        return self.status in OPERATION_FAILED

    @property
    def terminal(self) -> bool:
        return self.done or self.failed


class Database(Model):
    id: int
    branch_id: str
    name: str
    owner_name: str
    created_at: datetime | None = None


class Role(Model):
    branch_id: str
    name: str
    protected: bool = False
    created_at: datetime | None = None


class Snapshot(Model):
    id: str
    name: str
    created_at: str
    lsn: str | None = None
    timestamp: str | None = None
    source_branch_id: str | None = None
    expires_at: str | None = None
    manual: bool | None = None
    full_size: int | None = None
    diff_size: int | None = None


# --- response envelopes ------------------------------------------------------------------------------


class CreatedBranch(Model):
    """The answer to creating a branch: what to wait for and how to reach it.

    Neon's ``connection_uris`` are deliberately not decoded: they hold passwords, and a model's ``repr``
    would show them. Ask :meth:`NeonClient.connection_uri` for a URI wrapped in a ``Secret``.
    """

    branch: Branch
    endpoints: list[Endpoint] = []
    operations: list[Operation] = []
    roles: list[Role] = []
    databases: list[Database] = []


class BranchOperations(Model):
    """The answer to update, delete and restore: the branch and the operations to wait for."""

    branch: Branch
    operations: list[Operation] = []


class EndpointOperations(Model):
    endpoint: Endpoint
    operations: list[Operation] = []


class SchemaDiff(Model):
    diff: str = ""


class BranchSchema(Model):
    sql: str | None = None
    json: dict[str, Any] | None = None


# Envelopes of single resources and lists: the client unwraps them.
class ProjectEnvelope(Model):
    project: Project


class Annotation(Model):
    """The key/value annotation Neon keeps for a branch (``annotation_value`` on create)."""

    value: dict[str, str] = {}


class BranchEnvelope(Model):
    branch: Branch
    annotation: Annotation | None = None


class OperationEnvelope(Model):
    operation: Operation


class OrganizationsEnvelope(Model):
    organizations: list[Organization]


class ProjectsPage(Model):
    projects: list[Project]
    pagination: dict[str, Any] | None = None


class BranchesPage(Model):
    branches: list[Branch]
    pagination: dict[str, Any] | None = None


class OperationsPage(Model):
    operations: list[Operation]
    pagination: dict[str, Any] | None = None


class EndpointsEnvelope(Model):
    endpoints: list[Endpoint]


class DatabasesEnvelope(Model):
    databases: list[Database]


class RolesEnvelope(Model):
    roles: list[Role]


class PasswordEnvelope(Model):
    password: str


class UriEnvelope(Model):
    uri: str


class SnapshotsEnvelope(Model):
    snapshots: list[Snapshot]


class SnapshotEnvelope(Model):
    snapshot: Snapshot


class CreatedSnapshot(Model):
    """The answer to creating a snapshot: the snapshot and the operations to wait for."""

    snapshot: Snapshot
    operations: list[Operation] = []


# --- snapshot restores (restore, finalize) -----------------------------------------------------------


class RestoredSnapshot(Model):
    """The answer to restoring a snapshot: the new branch, its computes (if any) and what to wait for.

    Un-finalized, the branch is a new root branch beside the target (``restore_status: restored``,
    ``restored_from: <snapshot id>``); finalized, it already stands in the target's place.
    """

    branch: Branch
    endpoints: list[Endpoint] = []
    operations: list[Operation] = []


class OperationsEnvelope(Model):
    """An answer that is only operations (``finalizeRestoreBranch``)."""

    operations: list[Operation] = []


class BackupFrequency(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


class BackupScheduleItem(Model):
    """One frequency of a branch's snapshot schedule (times are UTC; ``day`` is 1-7 for weekly, 1-31 for
    monthly); ``retention_seconds`` unset keeps each snapshot until it is deleted."""

    frequency: str
    hour: int | None = None
    day: int | None = None
    month: int | None = None
    retention_seconds: int | None = None


class BackupSchedule(Model):
    schedule: list[BackupScheduleItem] = []
