"""Neon's semantics over a real PostgreSQL: projects, branches with point-in-time history, endpoints.

How point-in-time works here (the honest mechanism)
---------------------------------------------------
Neon keeps every page version and can materialise any LSN. The sandbox keeps, per branch, a *timeline of
snapshots*: after every recorded change it stores an exact, frozen copy of the branch's databases, labelled
with the change's time and the server's WAL LSN at that moment. The state "as of T" is the newest snapshot
labelled at or before T, which is exactly the data as it was at T, because nothing changed in between
(a change would have made a snapshot).

Recorded changes are (1) the scenario's history, applied by the sandbox itself (snapshots by
``CREATE DATABASE … TEMPLATE``) and (2) every transaction that wrote through an endpoint, which the endpoint
proxy reports when it ends (snapshots by ``pg_dump | psql`` while clients stay connected; see storage.py).
A scenario is built fast by freezing a copy only every few changes: the snapshots between name the last
frozen copy plus the recorded changes to replay on top of it (``Snapshot.replay``). The changes carry explicit
values (ids, timestamps), so a replayed copy holds exactly the same data as a frozen one would.
The proxy holds a writing transaction's ReadyForQuery until the sandbox has *pinned* the committed state
(an exported MVCC snapshot, a millisecond or two), so each snapshot holds exactly the data as of its label,
whatever lands while it is being copied. If writes come faster than snapshots can be copied (more than
``MAX_PENDING`` waiting), the oldest waiting states are skipped: a moment inside such a burst then shows
data from slightly earlier, never data from after it.
Snapshots are immutable and shared between a branch and its children; they are dropped with the sandbox.

Branching at T copies the newest snapshot at or before T into the new branch's live databases. In-place
restore replaces the target's live databases with the source's state at T (ending their sessions, as Neon
briefly drops connections) and keeps the old state as a backup branch. Time-travel connections
(``options=neon_timestamp:…``) get a throwaway read-only copy of the snapshot for the session.

Endpoints speak TLS with the sandbox's own CA (see tls.py) and SCRAM-SHA-256-PLUS; their URIs carry Neon's
``sslmode=require&channel_binding=require``. Where the sandbox differs from Neon (documented in
docs/sandbox.md): plain TCP is accepted too (``sslmode=disable``); endpoints are loopback proxies whose ``host`` is ``127.0.0.1:PORT`` (pooled = a second port); after an
in-place restore the target stays a root branch and the backup is a root branch holding the old history.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import difflib
import hmac
import logging
import random
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.proxy import (
    ClientStartup,
    PasswordLookup,
    PgProxy,
    Resolver,
    Route,
    RouteRefused,
)

if TYPE_CHECKING:
    from recovery_wizard.sandbox.scenarios import Scenario
    from recovery_wizard.sandbox.storage import Pin, Storage
    from recovery_wizard.sandbox.tls import SandboxTls

log = logging.getLogger("recovery_wizard.sandbox")

_ADJECTIVES = (
    "autumn billowing bitter black blue bold broad broken calm cold cool crimson curly damp dark dawn "
    "delicate divine dry empty falling fancy flat floral fragrant frosty gentle green hidden holy icy jolly "
    "late lingering little lively long lucky misty morning muddy mute nameless noisy odd old orange patient "
    "plain polished proud purple quiet rapid raspy red restless rough round royal shiny shrill shy silent "
    "small snowy soft solitary sparkling spring square steep still summer super sweet throbbing tight tiny "
    "twilight wandering weathered white wild winter wispy withered yellow young"
).split()
_NOUNS = (
    "art band bar base bird block boat bonus bread breeze brook bush butterfly cake cell cherry cloud "
    "credit darkness dawn dew disk dream dust feather field fire firefly flower fog forest frog frost glade "
    "glitter grass hall hat haze heart hill king lab lake leaf limit math meadow mode moon morning mountain "
    "mouse mud night paper pine poetry pond queen rain recipe resonance rice river salad scene sea shadow "
    "shape silence sky smoke snow snowflake sound star sun sunset surf term thunder tooth tree truth union "
    "unit violet voice water waterfall wave wildflower wind wood"
).split()


class ApiError(Exception):
    """A refusal with Neon's HTTP status and a Neon-like message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"


def _suffix(rng: random.Random, length: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def lsn_value(lsn: str) -> int:
    """``"0/1F3A5C8"`` → an int, for ordering."""
    try:
        high, low = lsn.split("/")
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise ApiError(400, f"invalid LSN {lsn!r}: expected the form 0/1F3A5C8") from None


def rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str, field_name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{field_name}: invalid timestamp {value!r}, expected RFC 3339") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"{field_name}: timestamp {value!r} has no time zone")
    return moment.astimezone(UTC)


# Pinned states waiting to be copied, per branch; past this, the older ones are skipped (see above).
MAX_PENDING = 16
# A scenario freezes a full copy after this many changes; the snapshots between replay onto the last one.
FREEZE_EVERY = 8


@dataclass(frozen=True)
class Snapshot:
    """The exact state of a branch's databases from ``at`` until the next snapshot."""

    at: datetime
    lsn: str
    databases: dict[str, str]  # advertised database name -> frozen real database
    # Per database: recorded changes (SQL, in order) to apply on top of the frozen copy.
    replay: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def carry(self, databases: dict[str, str]) -> Snapshot:
        """This state with some databases replaced by new frozen copies (which need no replay)."""
        replay = {name: sql for name, sql in self.replay.items() if name not in databases}
        return Snapshot(self.at, self.lsn, {**self.databases, **databases}, replay)


@dataclass
class Database:
    id: int
    name: str
    owner: str
    created_at: datetime
    updated_at: datetime


@dataclass
class Role:
    name: str
    password: Secret
    created_at: datetime


@dataclass
class Operation:
    id: str
    project_id: str
    action: str
    created_at: datetime
    done_at: datetime
    branch_id: str | None = None
    endpoint_id: str | None = None

    def status(self, now: datetime) -> str:
        if now >= self.done_at:
            return "finished"
        # The first fifth of the time it waits its turn, as Neon's scheduler does.
        span = (self.done_at - self.created_at).total_seconds()
        return "scheduling" if (now - self.created_at).total_seconds() < span / 5 else "running"


@dataclass
class Endpoint:
    id: str
    project_id: str
    branch_id: str
    type: str
    created_at: datetime
    ready_at: datetime
    proxy: PgProxy
    pooler: PgProxy
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    @property
    def pooler_host(self) -> str:
        return f"127.0.0.1:{self.pooler.port}"


@dataclass
class Branch:
    id: str
    project_id: str
    name: str
    created_at: datetime
    ready_at: datetime
    timeline: list[Snapshot]
    live: dict[str, str]  # advertised database name -> real live database
    databases: dict[str, Database]
    roles: dict[str, Role]
    default: bool = False
    protected: bool = False
    parent_id: str | None = None
    parent_lsn: str | None = None
    parent_timestamp: datetime | None = None
    expires_at: datetime | None = None
    last_reset_at: datetime | None = None
    init_source: str = "parent-data"
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pending: list[tuple[datetime, str, Pin]] = field(
        default_factory=list
    )  # (at, database, pin), oldest first
    snapshot_task: asyncio.Task[None] | None = None
    written_bytes: int = 0

    def state(self, now: datetime) -> str:
        return "ready" if now >= self.ready_at else "init"


@dataclass
class Project:
    id: str
    name: str
    org_id: str
    created_at: datetime
    history_retention_seconds: int
    branches: dict[str, Branch] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    operations: list[Operation] = field(default_factory=list)
    deleted_branches: set[str] = field(default_factory=set)
    scenario: Scenario | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def default_branch(self) -> Branch:
        return next(b for b in self.branches.values() if b.default)


@dataclass
class CreatedBranch:
    branch: Branch
    endpoints: list[Endpoint]
    operations: list[Operation]


class Engine:
    """Every Neon behaviour the sandbox offers, with no HTTP in sight."""

    def __init__(
        self,
        storage: Storage,
        *,
        operation_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seed: int | None = None,
        tls: SandboxTls | None = None,
    ) -> None:
        self.storage = storage
        self.tls = tls  # None: endpoints speak plain TCP only and their URIs say sslmode=disable
        self.operation_seconds = operation_seconds
        self.clock = clock
        self.rng = random.Random(seed)
        self.projects: dict[str, Project] = {}
        self._db_ids = 834686
        self._last_op_at: datetime | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    # --- lookups -------------------------------------------------------------------------------------

    def project(self, project_id: str) -> Project:
        try:
            return self.projects[project_id]
        except KeyError:
            raise ApiError(404, f"project {project_id} not found") from None

    def branch(self, project: Project, branch_id: str) -> Branch:
        try:
            return project.branches[branch_id]
        except KeyError:
            raise ApiError(404, f"branch {branch_id} not found") from None

    def endpoint(self, project: Project, endpoint_id: str) -> Endpoint:
        try:
            return project.endpoints[endpoint_id]
        except KeyError:
            raise ApiError(404, f"endpoint {endpoint_id} not found") from None

    def children(self, project: Project, branch: Branch) -> list[Branch]:
        return [b for b in project.branches.values() if b.parent_id == branch.id]

    def branch_endpoints(self, project: Project, branch: Branch) -> list[Endpoint]:
        return [e for e in project.endpoints.values() if e.branch_id == branch.id]

    # --- operations ----------------------------------------------------------------------------------

    def _operation(
        self, project: Project, action: str, *, branch_id: str | None = None, endpoint_id: str | None = None
    ) -> Operation:
        now = self.clock()
        # Strictly increasing creation times: the operations list pages by a timestamp cursor.
        if self._last_op_at is not None and now <= self._last_op_at:
            now = self._last_op_at + timedelta(microseconds=1)
        self._last_op_at = now
        op = Operation(
            id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            project_id=project.id,
            action=action,
            created_at=now,
            done_at=now + timedelta(seconds=self.operation_seconds),
            branch_id=branch_id,
            endpoint_id=endpoint_id,
        )
        project.operations.append(op)
        return op

    def _check_not_locked(self, project: Project) -> None:
        """Neon refuses a mutation while another operation runs on the project (423)."""
        now = self.clock()
        if any(op.status(now) != "finished" for op in project.operations):
            raise ApiError(
                423,
                "project already has running conflicting operations, scheduling of new ones is prohibited",
            )

    # --- history -------------------------------------------------------------------------------------

    def window_start(self, project: Project) -> datetime:
        return self.clock() - timedelta(seconds=project.history_retention_seconds)

    async def flush(self, branch: Branch) -> None:
        """Wait until every write reported so far is in the branch's timeline."""
        while branch.snapshot_task is not None and not branch.snapshot_task.done():
            await asyncio.shield(branch.snapshot_task)

    async def state_at(
        self,
        project: Project,
        branch: Branch,
        *,
        at: datetime | None = None,
        lsn: str | None = None,
        what: str,
    ) -> Snapshot:
        """The branch's snapshot for a moment, an LSN, or its head; refusing what Neon refuses."""
        await self.flush(branch)
        if at is not None:
            now = self.clock()
            if at > now:
                raise ApiError(400, f"{what} {rfc3339(at)} is in the future")
            start = self.window_start(project)
            if at < start:
                raise ApiError(
                    400,
                    f"{what} {rfc3339(at)} is outside the history retention period of the project "
                    f"({project.history_retention_seconds} seconds); the earliest restorable moment is "
                    f"{rfc3339(start)}",
                )
            times = [s.at for s in branch.timeline]
            index = bisect.bisect_right(times, at) - 1
            if index < 0:
                raise ApiError(400, f"{what} {rfc3339(at)} is before the branch's history begins")
            return branch.timeline[index]
        if lsn is not None:
            wanted = lsn_value(lsn)
            candidates = [s for s in branch.timeline if lsn_value(s.lsn) <= wanted]
            if not candidates:
                raise ApiError(400, f"{what} {lsn} is before the branch's history begins")
            if wanted > lsn_value(branch.timeline[-1].lsn) and wanted > lsn_value(
                await self.storage.current_lsn()
            ):
                raise ApiError(400, f"{what} {lsn} is in the future")
            snap = candidates[-1]
            if snap.at < self.window_start(project) and snap is not branch.timeline[-1]:
                raise ApiError(400, f"{what} {lsn} is outside the history retention period of the project")
            return snap
        return branch.timeline[-1]

    async def copy_state(self, snap: Snapshot, database: str, name: str) -> None:
        """Make ``name`` an exact copy of ``database`` as of ``snap`` (frozen copy, then any replay)."""
        await self.storage.copy(snap.databases[database], name)
        for statements in snap.replay.get(database, ()):
            await self.storage.execute(name, statements)

    async def note_write(self, branch: Branch, database: str) -> None:
        """A transaction that wrote to ``database`` on ``branch`` just committed: pin that state.

        The proxy awaits this before telling the client the transaction ended, so the client's next write
        cannot land before the state is pinned.
        """
        live = branch.live.get(database)
        if live is None:
            return
        at = self.clock()
        pin = await self.storage.pin(live)
        branch.pending.append((at, database, pin))
        branch.updated_at = at
        while len(branch.pending) > MAX_PENDING:
            _, _, skipped = branch.pending.pop(0)
            await skipped.release()
        if branch.snapshot_task is None or branch.snapshot_task.done():
            branch.snapshot_task = asyncio.get_running_loop().create_task(self._copy_pinned(branch))

    async def _copy_pinned(self, branch: Branch) -> None:
        while branch.pending:
            at, database, pin = branch.pending.pop(0)
            copy = self.storage.new_name("snap")
            try:
                await self.storage.snapshot_live(branch.live[database], copy, pin)
            except Exception:
                log.exception("snapshot of branch %s database %s failed", branch.id, database)
                continue
            finally:
                await pin.release()
            lsn = await self.storage.current_lsn()
            latest = branch.timeline[-1].carry({database: copy})
            branch.timeline.append(Snapshot(at, lsn, latest.databases, latest.replay))

    # --- projects ------------------------------------------------------------------------------------

    def _new_role(self, name: str, at: datetime) -> Role:
        return Role(
            name=name, password=Secret("npg_" + secrets.token_urlsafe(12).replace("-", "x")), created_at=at
        )

    def _new_database(self, name: str, owner: str, at: datetime) -> Database:
        self._db_ids += 1
        return Database(id=self._db_ids, name=name, owner=owner, created_at=at, updated_at=at)

    async def create_project(self, scenario: Scenario) -> Project:
        """A project whose default branch has lived through the scenario's history."""
        first = scenario.changes[0].at
        project = Project(
            id=f"{_name(self.rng)}-{self.rng.randrange(10**7, 10**8)}",
            name=scenario.project_name,
            org_id=f"org-{_name(self.rng)}-{self.rng.randrange(10**7, 10**8)}",
            created_at=first,
            history_retention_seconds=scenario.history_retention_seconds,
            scenario=scenario,
        )
        self.projects[project.id] = project
        live = self.storage.new_name("live")
        await self.storage.create_empty(live)
        role = self._new_role(scenario.role, first)
        main = Branch(
            id=f"br-{_name(self.rng)}-{_suffix(self.rng)}",
            project_id=project.id,
            name="main",
            created_at=first,
            ready_at=first,
            timeline=[],
            live={scenario.database: live},
            databases={scenario.database: self._new_database(scenario.database, role.name, first)},
            roles={role.name: role},
            default=True,
        )
        project.branches[main.id] = main
        pending = sorted(scenario.branches, key=lambda b: b.at)
        frozen, replay = "", ()  # type: tuple[str, tuple[str, ...]]
        for index, change in enumerate(scenario.changes):
            while pending and pending[0].at < change.at:
                spec = pending.pop(0)
                await self._create_branch_now(project, main, spec.name, spec.at, ("read_write",))
            await self.storage.execute(live, change.sql)
            last = index == len(scenario.changes) - 1
            if not frozen or last or change.kind != "write" or len(replay) + 1 >= FREEZE_EVERY:
                frozen, replay = self.storage.new_name("snap"), ()
                await self.storage.copy(live, frozen)
            else:
                replay = (*replay, change.sql)
            db = scenario.database
            lsn = await self.storage.current_lsn()
            main.timeline.append(Snapshot(change.at, lsn, {db: frozen}, {db: replay} if replay else {}))
            main.updated_at = change.at
        for spec in pending:
            await self._create_branch_now(project, main, spec.name, spec.at, ("read_write",))
        await self._add_endpoint(project, main, "read_write", ready_at=first)
        return project

    async def _create_branch_now(
        self, project: Project, parent: Branch, name: str, at: datetime, endpoints: tuple[str, ...]
    ) -> Branch:
        """A branch created in the scenario's past (no operations: they finished long ago)."""
        snap = parent.timeline[-1]
        branch = await self._materialise(project, parent, name, snap, created_at=at, ready_at=at)
        branch.parent_timestamp = None
        for kind in endpoints:
            await self._add_endpoint(project, branch, kind, ready_at=at)
        return branch

    async def _materialise(
        self,
        project: Project,
        parent: Branch,
        name: str,
        snap: Snapshot,
        *,
        created_at: datetime,
        ready_at: datetime,
        expires_at: datetime | None = None,
    ) -> Branch:
        live: dict[str, str] = {}
        for db_name in snap.databases:
            live[db_name] = self.storage.new_name("live")
            await self.copy_state(snap, db_name, live[db_name])
        history = [s for s in parent.timeline if s.at <= snap.at]
        # The branch's own history starts with a snapshot at its creation, sharing the frozen copies.
        history.append(Snapshot(max(created_at, snap.at), snap.lsn, dict(snap.databases), dict(snap.replay)))
        branch = Branch(
            id=f"br-{_name(self.rng)}-{_suffix(self.rng)}",
            project_id=project.id,
            name=name,
            created_at=created_at,
            ready_at=ready_at,
            timeline=history,
            live=live,
            databases={
                n: self._new_database(n, d.owner, created_at)
                for n, d in parent.databases.items()
                if n in live
            },
            roles={n: Role(r.name, r.password, created_at) for n, r in parent.roles.items()},
            parent_id=parent.id,
            parent_lsn=snap.lsn,
            parent_timestamp=snap.at,
            expires_at=expires_at,
            updated_at=created_at,
        )
        project.branches[branch.id] = branch
        return branch

    # --- branches ------------------------------------------------------------------------------------

    def _check_name_free(self, project: Project, name: str) -> None:
        if any(b.name == name for b in project.branches.values()):
            raise ApiError(409, f"branch with name {name!r} already exists")

    def _check_expiry(self, expires_at: datetime | None) -> None:
        if expires_at is None:
            return
        now = self.clock()
        if expires_at <= now:
            raise ApiError(400, "expires_at must be in the future")
        if expires_at > now + timedelta(days=30):
            raise ApiError(400, "expires_at must be at most 30 days in the future")

    async def create_branch(
        self,
        project: Project,
        *,
        parent_id: str | None,
        name: str | None,
        parent_timestamp: datetime | None,
        parent_lsn: str | None,
        endpoints: list[str],
        expires_at: datetime | None,
        init_source: str | None,
    ) -> CreatedBranch:
        parent = self.branch(project, parent_id) if parent_id else project.default_branch
        if parent_timestamp is not None and parent_lsn is not None:
            raise ApiError(400, "parent_timestamp and parent_lsn are mutually exclusive")
        if init_source not in (None, "parent-data"):
            raise ApiError(400, f"init_source {init_source!r} is not supported by the sandbox")
        for kind in endpoints:
            if kind not in ("read_write", "read_only"):
                raise ApiError(400, f"unknown endpoint type {kind!r}")
        if endpoints.count("read_write") > 1:
            raise ApiError(400, "a branch can have only one read-write endpoint")
        self._check_expiry(expires_at)
        now = self.clock()
        name = name or f"br-{_name(self.rng)}-{_suffix(self.rng, 6)}"
        self._check_name_free(project, name)
        self._check_not_locked(project)
        snap = await self.state_at(
            project,
            parent,
            at=parent_timestamp,
            lsn=parent_lsn,
            what="parent timestamp" if parent_lsn is None else "parent LSN",
        )
        op_timeline = self._operation(project, "create_timeline")
        branch = await self._materialise(
            project, parent, name, snap, created_at=now, ready_at=op_timeline.done_at, expires_at=expires_at
        )
        if parent_timestamp is None and parent_lsn is None:
            branch.parent_timestamp = now
        op_timeline.branch_id = branch.id
        operations = [op_timeline]
        created: list[Endpoint] = []
        for kind in endpoints:
            endpoint = await self._add_endpoint(project, branch, kind, ready_at=op_timeline.done_at)
            operations.append(
                self._operation(project, "start_compute", branch_id=branch.id, endpoint_id=endpoint.id)
            )
            created.append(endpoint)
        project.updated_at = now
        return CreatedBranch(branch, created, operations)

    async def update_branch(
        self,
        project: Project,
        branch: Branch,
        *,
        name: str | None,
        protected: bool | None,
        expires_at: datetime | None,
        set_expiry: bool,
    ) -> Branch:
        if name is not None and name != branch.name:
            self._check_name_free(project, name)
            branch.name = name
        if protected is not None:
            branch.protected = protected
        if set_expiry:
            if expires_at is not None and (branch.default or branch.protected):
                raise ApiError(400, "expires_at cannot be set on the default branch or a protected branch")
            if expires_at is not None and self.children(project, branch):
                raise ApiError(400, "expires_at cannot be set on a branch that has children")
            self._check_expiry(expires_at)
            branch.expires_at = expires_at
        branch.updated_at = self.clock()
        return branch

    async def delete_branch(self, project: Project, branch_id: str) -> tuple[Branch, list[Operation]] | None:
        if branch_id in project.deleted_branches:
            return None
        branch = self.branch(project, branch_id)
        if branch.default:
            raise ApiError(400, "cannot delete the project's default branch")
        if branch.parent_id is None:
            raise ApiError(400, "cannot delete the project's root branch")
        if self.children(project, branch):
            raise ApiError(400, f"cannot delete branch {branch.id}: it has child branches")
        self._check_not_locked(project)
        await self.flush(branch)
        operations = []
        for endpoint in self.branch_endpoints(project, branch):
            operations.append(
                self._operation(project, "suspend_compute", branch_id=branch.id, endpoint_id=endpoint.id)
            )
            await self._remove_endpoint(project, endpoint)
        operations.append(self._operation(project, "delete_timeline", branch_id=branch.id))
        for live in branch.live.values():
            await self.storage.drop(live)
        del project.branches[branch.id]
        project.deleted_branches.add(branch.id)
        return branch, operations

    async def restore_branch(
        self,
        project: Project,
        target: Branch,
        *,
        source_branch_id: str,
        source_timestamp: datetime | None,
        source_lsn: str | None,
        preserve_under_name: str | None,
    ) -> tuple[Branch, list[Operation]]:
        source = self.branch(project, source_branch_id)
        point_in_time = source_timestamp is not None or source_lsn is not None
        if source_timestamp is not None and source_lsn is not None:
            raise ApiError(400, "source_timestamp and source_lsn are mutually exclusive")
        if source.id == target.id and not point_in_time:
            raise ApiError(
                400, "source_timestamp or source_lsn is required when restoring a branch to its own history"
            )
        if point_in_time and (target.parent_id is not None or source.parent_id is not None):
            raise ApiError(
                400, "restore to a point in time is supported for root branches only; create a branch instead"
            )
        if (source.id == target.id or self.children(project, target)) and not preserve_under_name:
            raise ApiError(
                400,
                "preserve_under_name is required when restoring a branch to its own history "
                "or a branch with children",
            )
        if preserve_under_name:
            self._check_name_free(project, preserve_under_name)
        self._check_not_locked(project)
        snap = await self.state_at(
            project,
            source,
            at=source_timestamp,
            lsn=source_lsn,
            what="source timestamp" if source_lsn is None else "source LSN",
        )
        await self.flush(target)
        now = self.clock()
        operations: list[Operation] = []
        if preserve_under_name:
            backup = await self._materialise(
                project, target, preserve_under_name, target.timeline[-1], created_at=now, ready_at=now
            )
            # The backup carries the target's whole history and becomes the parent of its children.
            backup.timeline = list(target.timeline)
            backup.parent_id, backup.parent_lsn, backup.parent_timestamp = None, None, None
            for child in self.children(project, target):
                child.parent_id = backup.id
            operations.append(self._operation(project, "create_timeline", branch_id=backup.id))
        endpoints = self.branch_endpoints(project, target)
        for endpoint in endpoints:
            operations.append(
                self._operation(project, "suspend_compute", branch_id=target.id, endpoint_id=endpoint.id)
            )
        for name, live in list(target.live.items()):
            await self.storage.terminate(live)
            await self.storage.drop(live)
            del target.live[name]
        for name in snap.databases:
            target.live[name] = self.storage.new_name("live")
            await self.copy_state(snap, name, target.live[name])
        target.databases = {
            n: self._new_database(n, d.owner, now)
            for n, d in (source.databases if source.id != target.id else target.databases).items()
            if n in target.live
        }
        target.timeline = [s for s in source.timeline if s.at <= snap.at]
        target.timeline.append(
            Snapshot(now, await self.storage.current_lsn(), dict(snap.databases), dict(snap.replay))
        )
        target.last_reset_at = now
        target.updated_at = now
        for endpoint in endpoints:
            operations.append(
                self._operation(project, "start_compute", branch_id=target.id, endpoint_id=endpoint.id)
            )
        target.ready_at = max(op.done_at for op in operations) if operations else now
        return target, operations

    # --- endpoints -----------------------------------------------------------------------------------

    async def _add_endpoint(
        self, project: Project, branch: Branch, kind: str, *, ready_at: datetime
    ) -> Endpoint:
        endpoint_id = f"ep-{_name(self.rng)}-{_suffix(self.rng)}"
        backend = self.storage.server.backend
        proxy = PgProxy(
            backend,
            self._resolver(project, endpoint_id),
            self._on_write(project),
            name=endpoint_id,
            tls=self.tls,
            passwords=self._passwords(project, endpoint_id),
        )
        pooler = PgProxy(
            backend,
            self._resolver(project, endpoint_id),
            self._on_write(project),
            name=f"{endpoint_id}-pooler",
            tls=self.tls,
            passwords=self._passwords(project, endpoint_id),
        )
        await proxy.start()
        await pooler.start()
        endpoint = Endpoint(
            id=endpoint_id,
            project_id=project.id,
            branch_id=branch.id,
            type=kind,
            created_at=self.clock() if ready_at > branch.created_at else branch.created_at,
            ready_at=ready_at,
            proxy=proxy,
            pooler=pooler,
        )
        project.endpoints[endpoint.id] = endpoint
        return endpoint

    async def _remove_endpoint(self, project: Project, endpoint: Endpoint) -> None:
        del project.endpoints[endpoint.id]
        await endpoint.proxy.stop()
        await endpoint.pooler.stop()

    async def create_endpoint(
        self, project: Project, branch: Branch, kind: str
    ) -> tuple[Endpoint, list[Operation]]:
        if kind not in ("read_write", "read_only"):
            raise ApiError(400, f"unknown endpoint type {kind!r}")
        if kind == "read_write" and any(
            e.type == "read_write" for e in self.branch_endpoints(project, branch)
        ):
            raise ApiError(400, f"branch {branch.id} already has a read-write endpoint")
        self._check_not_locked(project)
        op = self._operation(project, "start_compute", branch_id=branch.id)
        endpoint = await self._add_endpoint(project, branch, kind, ready_at=op.done_at)
        op.endpoint_id = endpoint.id
        return endpoint, [op]

    def start_endpoint(self, project: Project, endpoint: Endpoint) -> list[Operation]:
        now = self.clock()
        if endpoint.proxy.session_count or now < endpoint.ready_at:
            return []
        op = self._operation(project, "start_compute", branch_id=endpoint.branch_id, endpoint_id=endpoint.id)
        endpoint.ready_at = max(endpoint.ready_at, now)
        return [op]

    def endpoint_state(self, endpoint: Endpoint) -> str:
        if self.clock() < endpoint.ready_at:
            return "init"
        return "active" if endpoint.proxy.session_count + endpoint.pooler.session_count else "idle"

    # --- connections ---------------------------------------------------------------------------------

    def connection_uri(
        self,
        project: Project,
        *,
        branch_id: str | None,
        endpoint_id: str | None,
        database_name: str,
        role_name: str,
        pooled: bool,
    ) -> str:
        branch = self.branch(project, branch_id) if branch_id else project.default_branch
        if endpoint_id:
            endpoint = self.endpoint(project, endpoint_id)
            if endpoint.branch_id != branch.id:
                raise ApiError(400, f"endpoint {endpoint_id} does not belong to branch {branch.id}")
        else:
            candidates = self.branch_endpoints(project, branch)
            rw = [e for e in candidates if e.type == "read_write"] or candidates
            if not rw:
                raise ApiError(404, f"branch {branch.id} has no endpoint")
            endpoint = rw[0]
        if role_name not in branch.roles:
            raise ApiError(404, f"role {role_name!r} not found")
        if database_name not in branch.databases:
            raise ApiError(404, f"database {database_name!r} not found")
        from urllib.parse import quote

        password = branch.roles[role_name].password.reveal()
        host = endpoint.pooler_host if pooled else endpoint.host
        # Neon's own parameters: TLS required and SCRAM bound to the TLS channel.
        params = "sslmode=require&channel_binding=require" if self.tls is not None else "sslmode=disable"
        return (
            f"postgresql://{quote(role_name, safe='')}:{quote(password, safe='')}@{host}/"
            f"{quote(database_name, safe='')}?{params}"
        )

    def _on_write(self, project: Project) -> Callable[[Route], Awaitable[None]]:
        async def on_write(route: Route) -> None:
            if not isinstance(route.tag, tuple):
                return
            branch_id, database = route.tag
            branch = project.branches.get(branch_id)
            if branch is not None and branch.live.get(database) == route.database:
                await self.note_write(branch, database)

        return on_write

    def _passwords(self, project: Project, endpoint_id: str) -> PasswordLookup:
        """The endpoint proxy's password lookup for SCRAM: the role's password on the endpoint's branch."""

        def password(user: str) -> Secret | None:
            endpoint = project.endpoints.get(endpoint_id)
            if endpoint is None:
                raise RouteRefused("57P01", "terminating connection: the endpoint was deleted")
            role = project.branches[endpoint.branch_id].roles.get(user)
            return None if role is None else role.password

        return password

    def _resolver(self, project: Project, endpoint_id: str) -> Resolver:
        async def resolve(startup: ClientStartup) -> Route:
            endpoint = project.endpoints.get(endpoint_id)
            if endpoint is None:
                raise RouteRefused("57P01", "terminating connection: the endpoint was deleted")
            branch = project.branches[endpoint.branch_id]
            role = branch.roles.get(startup.user)
            if role is None or not hmac.compare_digest(role.password.reveal(), startup.password):
                raise RouteRefused("28P01", f'password authentication failed for user "{startup.user}"')
            if startup.database not in branch.databases:
                raise RouteRefused("3D000", f'database "{startup.database}" does not exist')
            # An endpoint or branch still starting: wait, as a cold start does on Neon.
            wait = (max(endpoint.ready_at, branch.ready_at) - self.clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 30))
            options, moment, lsn = _split_neon_options(startup.options)
            if moment is not None or lsn is not None:
                return await self._time_travel_route(project, branch, startup.database, moment, lsn, options)
            return Route(
                database=branch.live[startup.database],
                read_only=endpoint.type == "read_only",
                options=options,
                tag=(branch.id, startup.database),
            )

        return resolve

    async def _time_travel_route(
        self,
        project: Project,
        branch: Branch,
        database: str,
        moment: str | None,
        lsn: str | None,
        options: str,
    ) -> Route:
        try:
            at = parse_time(moment, "neon_timestamp") if moment is not None else None
            snap = await self.state_at(project, branch, at=at, lsn=lsn, what="time travel timestamp")
        except ApiError as exc:
            raise RouteRefused("22023", exc.message) from None
        if database not in snap.databases:
            raise RouteRefused("3D000", f'database "{database}" did not exist at that moment')
        copy = self.storage.new_name("tt")
        await self.copy_state(snap, database, copy)

        async def drop() -> None:
            with contextlib.suppress(Exception):
                await self.storage.drop(copy)

        return Route(database=copy, read_only=True, options=options, on_close=drop)

    async def close(self) -> None:
        for project in self.projects.values():
            for branch in project.branches.values():
                if branch.snapshot_task is not None:
                    with contextlib.suppress(Exception):
                        await branch.snapshot_task
                for _, _, pin in branch.pending:
                    await pin.release()
                branch.pending.clear()
            for endpoint in list(project.endpoints.values()):
                await self._remove_endpoint(project, endpoint)

    # --- schema --------------------------------------------------------------------------------------

    async def schema(
        self, project: Project, branch: Branch, db_name: str, *, at: datetime | None, lsn: str | None
    ) -> str:
        snap = await self.state_at(
            project, branch, at=at, lsn=lsn, what="timestamp" if lsn is None else "LSN"
        )
        if db_name not in snap.databases:
            raise ApiError(404, f"database {db_name!r} not found")
        if not snap.replay.get(db_name):
            return await self.storage.schema_sql(snap.databases[db_name])
        scratch = self.storage.new_name("tmp")
        await self.copy_state(snap, db_name, scratch)
        try:
            return await self.storage.schema_sql(scratch)
        finally:
            await self.storage.drop(scratch)

    async def compare_schema(
        self,
        project: Project,
        branch: Branch,
        db_name: str,
        *,
        at: datetime | None,
        lsn: str | None,
        base: Branch,
        base_at: datetime | None,
        base_lsn: str | None,
    ) -> str:
        mine = await self.schema(project, branch, db_name, at=at, lsn=lsn)
        theirs = await self.schema(project, base, db_name, at=base_at, lsn=base_lsn)
        diff = difflib.unified_diff(
            theirs.splitlines(keepends=True), mine.splitlines(keepends=True), f"a/{db_name}", f"b/{db_name}"
        )
        return "".join(diff)


def _split_neon_options(options: str) -> tuple[str, str | None, str | None]:
    """Take ``neon_timestamp:``/``neon_lsn:`` (and Neon's ``endpoint=``) out of a libpq ``options`` string."""
    keep: list[str] = []
    moment = lsn = None
    for token in options.split():
        if token.startswith("neon_timestamp:"):
            moment = token.split(":", 1)[1]
        elif token.startswith("neon_lsn:"):
            lsn = token.split(":", 1)[1]
        elif token.startswith("endpoint="):
            continue
        else:
            keep.append(token)
    return " ".join(keep), moment, lsn
