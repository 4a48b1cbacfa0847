"""An async client for the parts of the Neon API v2 that recovery uses.

One injected ``httpx.AsyncClient`` carries every request (tests pass one wired to respx, the sandbox one
wired to an ASGI app). Requests go through :class:`Transport` (retries, errors); this module only knows
paths, parameters, bodies, pagination and models.

Pagination comes in three shapes (see docs/neon-api.md): projects and operations page by a
``pagination.cursor`` and end on a short page; branches page by an opaque ``pagination.next`` and end when
it is absent. All list methods follow them to the end; ``iter_*`` variants stop early when the caller does.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from recovery_wizard.neon.errors import (
    BadResponseError,
    ChildBranchSnapshotError,
    NeonError,
    NeonHTTPError,
    SnapshotQuotaError,
)
from recovery_wizard.neon.models import (
    AuthDetails,
    BackupSchedule,
    BackupScheduleItem,
    Branch,
    BranchEnvelope,
    BranchesPage,
    BranchOperations,
    BranchSchema,
    CreatedBranch,
    CreatedSnapshot,
    Database,
    DatabasesEnvelope,
    Endpoint,
    EndpointOperations,
    EndpointsEnvelope,
    EndpointType,
    Operation,
    OperationEnvelope,
    OperationsEnvelope,
    OperationsPage,
    Organization,
    OrganizationsEnvelope,
    PasswordEnvelope,
    Project,
    ProjectEnvelope,
    ProjectsPage,
    RestoredSnapshot,
    Role,
    RolesEnvelope,
    SchemaDiff,
    Snapshot,
    SnapshotEnvelope,
    SnapshotsEnvelope,
    UriEnvelope,
)
from recovery_wizard.neon.retry import RetryPolicy
from recovery_wizard.neon.transport import DEFAULT_API_URL, Params, RetryNotice, Transport
from recovery_wizard.neon.waiter import Durations, WaitPolicy, WaitProgress, wait_for_operations
from recovery_wizard.redact import Secret

# Largest pages Neon allows: fewer round trips when a project has thousands of branches.
PROJECTS_PAGE: Final = 400
OPERATIONS_PAGE: Final = 1000
BRANCHES_PAGE: Final = 10000
# A paging loop that has not ended after this many pages is following a broken cursor.
_MAX_PAGES: Final = 10_000


class _Unset:
    """Marks "leave as is", because ``None`` means "remove" for ``expires_at``."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def format_timestamp(moment: datetime, *, whole_seconds: bool = False) -> str:
    """RFC 3339 in UTC with a ``Z``, as Neon's examples write it (``2024-02-26T12:00:00Z``).

    ``whole_seconds`` drops the fraction (``expires_at`` takes second precision only).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timestamp sent to Neon must carry a time zone")
    moment = moment.astimezone(UTC)
    if whole_seconds or moment.microsecond == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seg(value: str) -> str:
    """Quote one path segment: role and database names may hold spaces or slashes."""
    return quote(value, safe="")


class NeonClient:
    """The Neon API, as recovery needs it. Every method may raise a :class:`NeonError`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str | Secret,
        *,
        base_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        wait: WaitPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        for name, value in (("sleep", sleep), ("clock", clock), ("wall_clock", wall_clock)):
            if value is not None:
                kwargs[name] = value
        self.transport = Transport(
            http,
            api_key,
            base_url=base_url,
            retry=retry,
            timeout=timeout,
            rng=rng,
            on_retry=on_retry,
            **kwargs,
        )
        self.wait_policy = wait or WaitPolicy()
        # How long the operations this client has read took, by project and action: the waiter's first guess.
        self.durations = Durations()

    def __repr__(self) -> str:
        from recovery_wizard.neon.apiurl import display_url

        return f"NeonClient(base_url={display_url(self.transport.base_url)!r})"

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, retries included (for benchmarks and the incident record)."""
        return self.transport.requests_sent

    # --- account -----------------------------------------------------------------------------------

    async def auth_details(self) -> AuthDetails:
        """What kind of key this is (``auth_method``): personal keys need an ``org_id`` to list projects."""
        return await self.transport.request("GET", "/auth", AuthDetails)

    async def organizations(self) -> list[Organization]:
        """The organizations a personal key's user belongs to."""
        envelope = await self.transport.request("GET", "/users/me/organizations", OrganizationsEnvelope)
        return envelope.organizations

    # --- projects ----------------------------------------------------------------------------------

    async def iter_projects(
        self, *, org_id: str | None = None, search: str | None = None, page_size: int = PROJECTS_PAGE
    ) -> AsyncIterator[Project]:
        params: dict[str, str | int | bool | None] = {"limit": page_size, "org_id": org_id, "search": search}
        async for item in self._cursor_pages("/projects", ProjectsPage, "projects", params, page_size):
            yield item

    async def projects(
        self, *, org_id: str | None = None, search: str | None = None, page_size: int = PROJECTS_PAGE
    ) -> list[Project]:
        """Every project the key sees (all pages)."""
        return [p async for p in self.iter_projects(org_id=org_id, search=search, page_size=page_size)]

    async def project(self, project_id: str) -> Project:
        envelope = await self.transport.request("GET", f"/projects/{_seg(project_id)}", ProjectEnvelope)
        return envelope.project

    # --- branches ----------------------------------------------------------------------------------

    async def iter_branches(
        self,
        project_id: str,
        *,
        search: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        page_size: int = BRANCHES_PAGE,
    ) -> AsyncIterator[Branch]:
        # Always send our own sort parameters with each page: Neon may echo sort_order back as "DESC",
        # which its own enum (asc/desc) refuses, so never copy them from the response.
        base: dict[str, str | int | bool | None] = {
            "limit": page_size,
            "search": search,
            "sort_by": sort_by,
            "sort_order": sort_order.lower() if sort_order else None,
        }
        path = f"/projects/{_seg(project_id)}/branches"
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await self.transport.request("GET", path, BranchesPage, params={**base, "cursor": cursor})
            for branch in page.branches:
                yield branch
            cursor = _pagination_value(page.pagination, "next")
            if not cursor:
                return
            if cursor in seen:
                raise BadResponseError(f"Neon repeated a page cursor while listing branches of {project_id}.")
            seen.add(cursor)
        raise BadResponseError(f"Listing branches of {project_id} did not end after {_MAX_PAGES} pages.")

    async def branches(
        self,
        project_id: str,
        *,
        search: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        page_size: int = BRANCHES_PAGE,
    ) -> list[Branch]:
        """Every branch of the project (all pages); ``search`` matches names and ids."""
        return [
            b
            async for b in self.iter_branches(
                project_id, search=search, sort_by=sort_by, sort_order=sort_order, page_size=page_size
            )
        ]

    async def branch(self, project_id: str, branch_id: str) -> Branch:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}", BranchEnvelope
        )
        return envelope.branch

    async def branch_annotated(self, project_id: str, branch_id: str) -> tuple[Branch, dict[str, str]]:
        """The branch and the annotation Neon keeps for it (what ``create_branch(annotation=…)`` set)."""
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}", BranchEnvelope
        )
        return envelope.branch, dict(envelope.annotation.value) if envelope.annotation else {}

    async def create_branch(
        self,
        project_id: str,
        *,
        parent_id: str,
        name: str | None = None,
        parent_timestamp: datetime | None = None,
        parent_lsn: str | None = None,
        endpoints: Sequence[str] = (EndpointType.READ_WRITE,),
        expires_at: datetime | None = None,
        init_source: str | None = None,
        annotation: dict[str, str] | None = None,
    ) -> CreatedBranch:
        """Create a branch of ``parent_id`` (required: without it Neon forks the DEFAULT branch).

        ``endpoints`` defaults to one read-write compute, since a branch without one cannot be reached.
        ``annotation`` is kept by Neon with the branch (a run marks what it made, to prove it later).
        """
        if parent_timestamp is not None and parent_lsn is not None:
            raise ValueError("give parent_timestamp or parent_lsn, not both")
        branch: dict[str, Any] = {"parent_id": parent_id}
        if name is not None:
            branch["name"] = name
        if parent_timestamp is not None:
            branch["parent_timestamp"] = format_timestamp(parent_timestamp)
        if parent_lsn is not None:
            branch["parent_lsn"] = parent_lsn
        if expires_at is not None:
            branch["expires_at"] = format_timestamp(expires_at, whole_seconds=True)
        if init_source is not None:
            branch["init_source"] = init_source
        body: dict[str, Any] = {"branch": branch}
        if annotation:
            body["annotation_value"] = dict(annotation)
        if endpoints:
            body["endpoints"] = [{"type": str(kind)} for kind in endpoints]
        return await self.transport.request(
            "POST", f"/projects/{_seg(project_id)}/branches", CreatedBranch, json=body
        )

    async def update_branch(
        self,
        project_id: str,
        branch_id: str,
        *,
        name: str | None = None,
        protected: bool | None = None,
        expires_at: datetime | _Unset | None = UNSET,
    ) -> BranchOperations:
        """Rename, (un)protect, or set ``expires_at`` (``None`` removes the expiry)."""
        branch: dict[str, Any] = {}
        if name is not None:
            branch["name"] = name
        if protected is not None:
            branch["protected"] = protected
        if not isinstance(expires_at, _Unset):
            branch["expires_at"] = (
                None if expires_at is None else format_timestamp(expires_at, whole_seconds=True)
            )
        if not branch:
            raise ValueError("update_branch needs at least one change")
        return await self.transport.request(
            "PATCH",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}",
            BranchOperations,
            json={"branch": branch},
        )

    async def delete_branch(self, project_id: str, branch_id: str) -> BranchOperations | None:
        """Delete a branch; None when Neon answers 204 (it was already gone)."""
        return await self.transport.request(
            "DELETE", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}", BranchOperations
        )

    async def restore_branch(
        self,
        project_id: str,
        branch_id: str,
        *,
        source_branch_id: str,
        source_timestamp: datetime | None = None,
        source_lsn: str | None = None,
        preserve_under_name: str | None = None,
    ) -> BranchOperations:
        """In-place restore of ``branch_id`` from ``source_branch_id`` (at a moment or LSN).

        Overwrites every database on the branch; its connection strings stay the same. The old state is kept
        as a branch named ``preserve_under_name``, whose id the answer does not carry: find it by name.
        """
        if source_timestamp is not None and source_lsn is not None:
            raise ValueError("give source_timestamp or source_lsn, not both")
        body: dict[str, Any] = {"source_branch_id": source_branch_id}
        if source_timestamp is not None:
            body["source_timestamp"] = format_timestamp(source_timestamp)
        if source_lsn is not None:
            body["source_lsn"] = source_lsn
        if preserve_under_name is not None:
            body["preserve_under_name"] = preserve_under_name
        return await self.transport.request(
            "POST",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/restore",
            BranchOperations,
            json=body,
        )

    # --- endpoints ---------------------------------------------------------------------------------

    async def endpoints(self, project_id: str, branch_id: str) -> list[Endpoint]:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/endpoints", EndpointsEnvelope
        )
        return envelope.endpoints

    async def project_endpoints(self, project_id: str) -> list[Endpoint]:
        """Every compute of the project, whatever its branch: one request to find which one a host is."""
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/endpoints", EndpointsEnvelope
        )
        return envelope.endpoints

    async def create_endpoint(
        self, project_id: str, branch_id: str, *, type: str = EndpointType.READ_WRITE
    ) -> EndpointOperations:
        return await self.transport.request(
            "POST",
            f"/projects/{_seg(project_id)}/endpoints",
            EndpointOperations,
            json={"endpoint": {"branch_id": branch_id, "type": str(type)}},
        )

    async def start_endpoint(self, project_id: str, endpoint_id: str) -> EndpointOperations:
        return await self.transport.request(
            "POST", f"/projects/{_seg(project_id)}/endpoints/{_seg(endpoint_id)}/start", EndpointOperations
        )

    # --- databases, roles, connection strings -----------------------------------------------------

    async def databases(self, project_id: str, branch_id: str) -> list[Database]:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/databases", DatabasesEnvelope
        )
        return envelope.databases

    async def roles(self, project_id: str, branch_id: str) -> list[Role]:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/roles", RolesEnvelope
        )
        return envelope.roles

    async def reveal_password(self, project_id: str, branch_id: str, role_name: str) -> Secret:
        """The role's password; Neon answers 412 (PreconditionFailedError) when it stores none."""
        envelope = await self.transport.request(
            "GET",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/roles/{_seg(role_name)}/reveal_password",
            PasswordEnvelope,
        )
        return Secret(envelope.password)

    async def connection_uri(
        self,
        project_id: str,
        *,
        database_name: str,
        role_name: str,
        branch_id: str | None = None,
        endpoint_id: str | None = None,
        pooled: bool = False,
    ) -> Secret:
        """A ready connection URI (with password), pooled (for the app) or direct (for tools)."""
        params: Params = {
            "branch_id": branch_id,
            "endpoint_id": endpoint_id,
            "database_name": database_name,
            "role_name": role_name,
            "pooled": pooled,
        }
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/connection_uri", UriEnvelope, params=params
        )
        return Secret(envelope.uri)

    # --- operations --------------------------------------------------------------------------------

    async def operation(self, project_id: str, operation_id: str) -> Operation:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/operations/{_seg(operation_id)}", OperationEnvelope
        )
        self.durations.record([envelope.operation])
        return envelope.operation

    async def iter_operations(
        self, project_id: str, *, page_size: int = OPERATIONS_PAGE
    ) -> AsyncIterator[Operation]:
        """The project's operations, newest first; stop iterating to stop paging."""
        params: dict[str, str | int | bool | None] = {"limit": page_size}
        path = f"/projects/{_seg(project_id)}/operations"
        async for op in self._cursor_pages(path, OperationsPage, "operations", params, page_size):
            self.durations.record([op])
            yield op

    async def operations(
        self, project_id: str, *, since: datetime | None = None, page_size: int = OPERATIONS_PAGE
    ) -> list[Operation]:
        """The project's operations, newest first: all of them, or those created at or after ``since``."""
        found: list[Operation] = []
        async for op in self.iter_operations(project_id, page_size=page_size):
            if since is not None and op.created_at is not None and op.created_at < since:
                break
            found.append(op)
        return found

    async def wait_for_operations(
        self,
        project_id: str,
        operations: Sequence[Operation],
        *,
        on_progress: Callable[[WaitProgress], None] | None = None,
        policy: WaitPolicy | None = None,
    ) -> list[Operation]:
        """Poll until every operation is done; raise if one fails or the deadline passes."""
        return await wait_for_operations(
            self,
            project_id,
            operations,
            policy=policy or self.wait_policy,
            on_progress=on_progress,
            sleep=self.transport.sleep,
            clock=self.transport.clock,
            durations=self.durations,
        )

    # --- schema and snapshots ----------------------------------------------------------------------

    async def branch_schema(
        self,
        project_id: str,
        branch_id: str,
        *,
        db_name: str,
        timestamp: datetime | None = None,
        lsn: str | None = None,
        format: str | None = None,
    ) -> BranchSchema:
        """The schema of a database on a branch, now or at a moment/LSN (``format="json"`` for structure)."""
        params: Params = {
            "db_name": db_name,
            "timestamp": format_timestamp(timestamp) if timestamp else None,
            "lsn": lsn,
            "format": format,
        }
        return await self.transport.request(
            "GET",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/schema",
            BranchSchema,
            params=params,
        )

    async def compare_schema(
        self,
        project_id: str,
        branch_id: str,
        *,
        db_name: str,
        base_branch_id: str | None = None,
        base_timestamp: datetime | None = None,
        base_lsn: str | None = None,
        timestamp: datetime | None = None,
        lsn: str | None = None,
    ) -> str:
        """A unified diff of ``branch_id``'s schema (at ``timestamp``) against the base; empty if equal."""
        params: Params = {
            "db_name": db_name,
            "base_branch_id": base_branch_id,
            "base_timestamp": format_timestamp(base_timestamp) if base_timestamp else None,
            "base_lsn": base_lsn,
            "timestamp": format_timestamp(timestamp) if timestamp else None,
            "lsn": lsn,
        }
        result = await self.transport.request(
            "GET",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/compare_schema",
            SchemaDiff,
            params=params,
        )
        return result.diff

    async def snapshots(self, project_id: str) -> list[Snapshot]:
        envelope = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/snapshots", SnapshotsEnvelope
        )
        return envelope.snapshots

    # --- taking and keeping snapshots (backup) ----------------------------------------------------------
    # Restoring and finalizing snapshots live in their own block. Neon's refusals are mapped to errors that
    # say what to do (child branch, full quota); a 423 is retried by the transport as for every write.

    async def create_snapshot(
        self,
        project_id: str,
        branch_id: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        timestamp: datetime | None = None,
        lsn: str | None = None,
    ) -> CreatedSnapshot:
        """Take a snapshot of a ROOT branch (now, or at ``timestamp``/``lsn`` inside the restore window).

        A child branch is refused before anything is sent (:class:`ChildBranchSnapshotError`): Neon would
        refuse it too, with a message that does not say what to do instead.
        """
        if timestamp is not None and lsn is not None:
            raise ValueError("give timestamp or lsn, not both")
        branch = await self.branch(project_id, branch_id)
        if not branch.is_root:
            raise ChildBranchSnapshotError(
                f"Branch {branch.name!r} ({branch.id}) is a child of {branch.parent_id}: Neon takes snapshots "
                "of root branches only."
            )
        params: Params = {
            "name": name,
            "expires_at": format_timestamp(expires_at, whole_seconds=True) if expires_at else None,
            "timestamp": format_timestamp(timestamp) if timestamp else None,
            "lsn": lsn,
        }
        path = f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/snapshot"
        try:
            return await self.transport.request("POST", path, CreatedSnapshot, params=params)
        except NeonHTTPError as exc:
            raise _snapshot_refusal(exc, branch) from exc

    async def update_snapshot(self, project_id: str, snapshot_id: str, *, name: str) -> Snapshot:
        """Rename a snapshot."""
        envelope = await self.transport.request(
            "PATCH",
            f"/projects/{_seg(project_id)}/snapshots/{_seg(snapshot_id)}",
            SnapshotEnvelope,
            json={"snapshot": {"name": name}},
        )
        return envelope.snapshot

    async def delete_snapshot(self, project_id: str, snapshot_id: str) -> list[Operation]:
        """Delete a snapshot; the operations to wait for (none when Neon answers 204)."""
        envelope = await self.transport.request(
            "DELETE", f"/projects/{_seg(project_id)}/snapshots/{_seg(snapshot_id)}", OperationsEnvelope
        )
        return envelope.operations if envelope is not None else []

    async def backup_schedule(self, project_id: str, branch_id: str) -> list[BackupScheduleItem]:
        """The branch's snapshot schedule (empty: none)."""
        found = await self.transport.request(
            "GET", f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/backup_schedule", BackupSchedule
        )
        return found.schedule

    async def set_backup_schedule(
        self, project_id: str, branch_id: str, schedule: Sequence[BackupScheduleItem]
    ) -> None:
        """Replace the branch's snapshot schedule (an empty list turns it off). Root branches only."""
        import msgspec

        body = {"schedule": [msgspec.to_builtins(item) for item in schedule]}
        path = f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/backup_schedule"
        try:
            await self.transport.request("PUT", path, json=body)
        except NeonHTTPError as exc:
            raise _snapshot_refusal(exc, None) from exc

    # --- snapshot restores (restore, finalize) ---------------------------------------------------

    async def restore_snapshot(
        self,
        project_id: str,
        snapshot_id: str,
        *,
        name: str | None = None,
        target_branch_id: str | None = None,
        finalize_restore: bool = False,
    ) -> RestoredSnapshot:
        """Restore a snapshot to a NEW branch (``restoreSnapshot``); ``target_branch_id`` is the branch it
        is meant to replace (default: the snapshot's source branch).

        Un-finalized (the default) the data can be looked at first, and nothing the app uses changes; call
        :meth:`finalize_restore` to put it in the target's place. The name goes in the body (the query
        parameter is deprecated).
        """
        body: dict[str, Any] = {"finalize_restore": finalize_restore}
        if name is not None:
            body["name"] = name
        if target_branch_id is not None:
            body["target_branch_id"] = target_branch_id
        return await self.transport.request(
            "POST",
            f"/projects/{_seg(project_id)}/snapshots/{_seg(snapshot_id)}/restore",
            RestoredSnapshot,
            json=body,
        )

    async def finalize_restore(
        self, project_id: str, branch_id: str, *, name: str | None = None
    ) -> list[Operation]:
        """Put ``branch_id`` (restored from a snapshot, un-finalized) in its target's place.

        The target's computes move to it (they restart), it takes the target's name, and the target is
        renamed ``name`` (Neon picks one when omitted). The live branch's ID changes: re-read it after.
        """
        body: dict[str, Any] = {} if name is None else {"name": name}
        envelope = await self.transport.request(
            "POST",
            f"/projects/{_seg(project_id)}/branches/{_seg(branch_id)}/finalize_restore",
            OperationsEnvelope,
            json=body,
        )
        return envelope.operations

    # --- paging ------------------------------------------------------------------------------------

    async def _cursor_pages(
        self,
        path: str,
        page_type: type[ProjectsPage] | type[OperationsPage],
        field: str,
        params: dict[str, str | int | bool | None],
        page_size: int,
    ) -> AsyncIterator[Any]:
        """Pages keyed by ``pagination.cursor`` (projects, operations): a short or empty page is the last."""
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await self.transport.request("GET", path, page_type, params={**params, "cursor": cursor})
            items: list[Any] = getattr(page, field)
            for item in items:
                yield item
            cursor = _pagination_value(page.pagination, "cursor")
            if len(items) < page_size or not cursor:
                return
            if cursor in seen:
                raise BadResponseError(f"Neon repeated a page cursor while listing {path}.")
            seen.add(cursor)
        raise BadResponseError(f"Listing {path} did not end after {_MAX_PAGES} pages.")


# Words Neon's refusals use for a full snapshot allowance and for a non-root branch. Neon gives no
# distinct error code for either (only the status and a message), so the message is what is read.
_QUOTA_WORDS = ("quota", "limit", "maximum", "too many", "exceed")
_ROOT_WORDS = ("root branch", "has a parent", "child branch")


def _snapshot_refusal(exc: NeonHTTPError, branch: Branch | None) -> NeonError:
    """A snapshot request Neon refused, as the error that says what to do; other errors unchanged."""
    said = (exc.neon_message or str(exc)).lower()
    kwargs: dict[str, Any] = {
        "method": exc.method,
        "path": exc.path,
        "status": exc.status,
        "neon_message": exc.neon_message,
        "code": exc.code,
        "request_id": exc.request_id,
        "attempts": exc.attempts,
    }
    if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 404, 423, 429):
        if any(word in said for word in _QUOTA_WORDS):
            return SnapshotQuotaError(
                f"Neon refused the snapshot: the project's snapshot allowance is used up ({exc.neon_message}).",
                **kwargs,
            )
        if any(word in said for word in _ROOT_WORDS):
            what = f"Branch {branch.name!r}" if branch else "The branch"
            return ChildBranchSnapshotError(
                f"{what} is not a root branch: Neon keeps snapshots and backup schedules of root branches "
                f"only ({exc.neon_message}).",
                **kwargs,
            )
    return exc


def _pagination_value(pagination: dict[str, Any] | None, key: str) -> str | None:
    if not pagination:
        return None
    value = pagination.get(key)
    return str(value) if value else None
