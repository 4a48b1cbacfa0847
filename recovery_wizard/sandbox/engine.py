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
    from recovery_wizard.sandbox.snapshots import SnapshotBook
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
    """A refusal with Neon's HTTP status, a Neon-like message and Neon's ``code`` (empty where Neon's is)."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


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
# Neon's per-branch limits (docs: "Manage databases", "Manage roles") and the code its refusal carries.
DATABASES_LIMIT = 500
ROLES_LIMIT = 500
# Branches per project on the plan the sandbox reports (``GET /users/me`` ``branches_limit``).
BRANCHES_LIMIT = 5000
# Neon's scale-to-zero default: ``suspend_timeout_seconds`` 0 means this many seconds; -1 means never.
DEFAULT_SUSPEND_SECONDS = 300
# Neon keeps a deleted branch recoverable for this long (``recoverProjectBranch``).
RECOVERY_WINDOW = timedelta(days=7)
# Neon's words for a mutation refused while another operation on the project runs (423).
LOCKED_MESSAGE = "project already has running conflicting operations, scheduling of new ones is prohibited"
# Role names Neon keeps for itself.
RESERVED_ROLES = frozenset({"postgres", "neon_superuser", "cloud_admin", "neon_service", "replicator"})


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
    updated_at: datetime | None = None
    # After a password reset the old one keeps working until the reset's operation finishes, as on Neon.
    old_password: Secret | None = None
    old_valid_until: datetime | None = None

    def accepts(self, password: str, now: datetime) -> bool:
        if hmac.compare_digest(self.password.reveal(), password):
            return True
        old, until = self.old_password, self.old_valid_until
        return (
            old is not None
            and until is not None
            and now < until
            and hmac.compare_digest(old.reveal(), password)
        )


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
    # Scale to zero on the sandbox clock: idle once ``suspend_timeout_seconds`` pass after the last activity
    # (a start, or a session opening or closing), or at once after a suspend.
    suspend_timeout_seconds: int = 0
    last_active: datetime | None = None
    suspended_at: datetime | None = None
    name: str | None = None
    disabled: bool = False
    passwordless_access: bool = False
    autoscaling_min_cu: float = 0.25
    autoscaling_max_cu: float = 1
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def sessions(self) -> int:
        return self.proxy.session_count + self.pooler.session_count

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
    annotation: dict[str, str] = field(default_factory=dict)  # Neon's annotation_value, kept as given
    pending: list[tuple[datetime, str, Pin]] = field(
        default_factory=list
    )  # (at, database, pin), oldest first
    snapshot_task: asyncio.Task[None] | None = None
    written_bytes: int = 0
    # Snapshot restores (snapshots.py): Neon's restore_status/restored_from/restored_as, and which branch
    # a finalize replaces (restore_target_id) or replaced this one (replaced_by).
    restore_status: str | None = None
    restored_from: str | None = None
    restored_as: str | None = None
    restore_target_id: str | None = None
    replaced_by: str | None = None

    def state(self, now: datetime) -> str:
        return "ready" if now >= self.ready_at else "init"


@dataclass
class DeletedBranch:
    """A soft-deleted branch: its data kept for ``RECOVERY_WINDOW``, its endpoints' ids and ports noted."""

    branch: Branch
    deleted_at: datetime
    endpoints: list[Endpoint]

    @property
    def recoverable_until(self) -> datetime:
        return self.deleted_at + RECOVERY_WINDOW


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
    deleted: dict[str, DeletedBranch] = field(default_factory=dict)
    deleted_endpoints: set[str] = field(default_factory=set)
    scenario: Scenario | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    snapshot_book: SnapshotBook | None = None  # snapshots and backup schedules (snapshots.py)
    # The default branch's timeline as the scenario left it. Restores and finalizes rewrite the live
    # branch's timeline later; the frozen copies it names are never dropped, so the scenario's past stays
    # readable for the backups folder (backups.py) whatever the user does to the branch meanwhile.
    scenario_history: tuple[Snapshot, ...] = ()
    scenario_branch: tuple[str, str] = ("", "")  # (id, name) of the default branch the scenario played on

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
        # Deleted branches whose history is still being completed (see delete_branch), by branch id.
        self._retiring: dict[str, asyncio.Task[None]] = {}
        # Branches a delete has claimed but not yet removed (it awaits between its checks and the removal).
        self._deleting: set[str] = set()

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
            raise ApiError(423, LOCKED_MESSAGE)

    async def _settle_schedules(self, project: Project) -> None:
        """Take the scheduled snapshots already due before a branch's history is rewritten or dropped
        (schedules are evaluated lazily, from the timeline: see snapshots.py)."""
        from recovery_wizard.sandbox.snapshots import Snapshots

        await Snapshots(self).tick(project)

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
        project.scenario_history = tuple(main.timeline)
        project.scenario_branch = (main.id, main.name)
        await self._add_endpoint(project, main, "read_write", ready_at=first)
        from recovery_wizard.sandbox.snapshots import Snapshots

        await Snapshots(self).seed(project, scenario)
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

    def _check_branch_limit(self, project: Project) -> None:
        if len(project.branches) >= BRANCHES_LIMIT:
            raise ApiError(
                422,
                f"the project has reached its limit of {BRANCHES_LIMIT} branches",
                "BRANCHES_LIMIT_EXCEEDED",
            )

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
        annotation: dict[str, str] | None = None,
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
        self._check_branch_limit(project)
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
        elif parent_timestamp is not None:
            # Like Neon: the branch reports the moment it was asked for (its LSN is the state then).
            branch.parent_timestamp = parent_timestamp
        branch.annotation = dict(annotation or {})
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
        # Root branches made by a snapshot restore, or replaced by finalizing one, can go (as on Neon).
        if branch.parent_id is None and branch.restore_status is None and branch.replaced_by is None:
            raise ApiError(400, "cannot delete the project's root branch")
        if branch.protected:
            raise ApiError(400, f"cannot delete branch {branch.id}: it is protected")
        if self.children(project, branch):
            raise ApiError(400, f"cannot delete branch {branch.id}: it has child branches")
        self._check_not_locked(project)
        # Two deletes of one branch at once both pass the checks above before either has made its operations
        # (both await below): the second would remove the endpoints again and fail on the branch gone. It is
        # refused as Neon refuses a mutation while another's operations run; the client retries a 423.
        if branch.id in self._deleting:
            raise ApiError(423, LOCKED_MESSAGE)
        self._deleting.add(branch.id)
        try:
            await self._settle_schedules(project)
            operations = []
            endpoints = self.branch_endpoints(project, branch)
            for endpoint in endpoints:
                operations.append(
                    self._operation(project, "suspend_compute", branch_id=branch.id, endpoint_id=endpoint.id)
                )
                # Its proxy and pooler stop: the sessions clients opened through them end now.
                await self._remove_endpoint(project, endpoint)
            operations.append(self._operation(project, "delete_timeline", branch_id=branch.id))
            del project.branches[branch.id]
            project.deleted_branches.add(branch.id)
            project.deleted[branch.id] = DeletedBranch(branch, self.clock(), endpoints)
        finally:
            self._deleting.discard(branch.id)
        # A soft delete, as on Neon: the data stays for the recovery window, history included. The copy of the
        # branch's last writes into its history (a pg_dump of the whole database: seconds after a large load)
        # finishes in the background, as Neon's delete waits on no archiving; only then are the sessions
        # left on the data ended (ending them sooner would end that copy too). Undelete waits for it.
        self._retire(branch)
        return branch, operations

    def _retire(self, branch: Branch) -> None:
        async def retire() -> None:
            with contextlib.suppress(Exception):
                await self.flush(branch)
            for live in branch.live.values():
                with contextlib.suppress(Exception):
                    await self.storage.terminate(live)

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring[branch.id] = task

        def forget(_: asyncio.Task[None]) -> None:
            if self._retiring.get(branch.id) is task:
                del self._retiring[branch.id]

        task.add_done_callback(forget)

    async def retired(self) -> None:
        """Wait until every deleted branch's history is complete and its sessions are ended."""
        while self._retiring:
            await asyncio.gather(*self._retiring.values(), return_exceptions=True)

    async def recover_branch(self, project: Project, branch_id: str) -> tuple[Branch, list[Endpoint]]:
        if branch_id in project.branches:
            raise ApiError(400, f"branch {branch_id} is not deleted")
        retiring = self._retiring.get(branch_id)
        if retiring is not None:
            await asyncio.shield(retiring)  # its history complete and the old sessions ended, then back
        gone = project.deleted.get(branch_id)
        now = self.clock()
        if gone is None or now >= gone.recoverable_until:
            raise ApiError(404, f"branch {branch_id} not found")
        branch = gone.branch
        if branch.parent_id is not None and branch.parent_id not in project.branches:
            raise ApiError(
                400, f"cannot recover branch {branch_id}: its parent {branch.parent_id} is deleted"
            )
        self._check_name_free(project, branch.name)
        self._check_branch_limit(project)
        self._check_not_locked(project)
        del project.deleted[branch_id]
        project.deleted_branches.discard(branch_id)
        # TTL branches come back without their expiry, as on Neon.
        branch.expires_at = None
        branch.updated_at = now
        project.branches[branch.id] = branch
        endpoints = []
        for old in gone.endpoints:
            # The same id, type and ports: connection strings stay valid. The compute comes back idle.
            try:
                endpoint = await self._add_endpoint(
                    project,
                    branch,
                    old.type,
                    ready_at=now,
                    endpoint_id=old.id,
                    ports=(old.proxy.port, old.pooler.port),
                )
            except OSError:
                # Another process took a port meanwhile: new ports (the URIs change, the ids do not).
                endpoint = await self._add_endpoint(
                    project, branch, old.type, ready_at=now, endpoint_id=old.id
                )
            endpoint.created_at = old.created_at
            endpoint.suspend_timeout_seconds = old.suspend_timeout_seconds
            endpoint.suspended_at = now
            endpoints.append(endpoint)
        return branch, endpoints

    async def set_default_branch(self, project: Project, branch: Branch) -> Branch:
        if branch.default:
            return branch
        if branch.expires_at is not None:
            raise ApiError(400, f"branch {branch.id} has an expiration time and cannot be the default branch")
        self._check_not_locked(project)
        now = self.clock()
        old = project.default_branch
        old.default, old.updated_at = False, now
        branch.default, branch.updated_at = True, now
        project.updated_at = now
        return branch

    def count_branches(self, project: Project, search: str) -> int:
        search = search.lower()
        return sum(
            1 for b in project.branches.values() if not search or search in b.name.lower() or search in b.id
        )

    # --- databases and roles -------------------------------------------------------------------------

    def database(self, branch: Branch, name: str) -> Database:
        try:
            return branch.databases[name]
        except KeyError:
            raise ApiError(404, f"database {name!r} not found") from None

    def role(self, branch: Branch, name: str) -> Role:
        try:
            return branch.roles[name]
        except KeyError:
            raise ApiError(404, f"role {name!r} not found") from None

    def _config_operations(self, project: Project, branch: Branch) -> list[Operation]:
        """Neon applies a database or role change to each running compute of the branch."""
        return [
            self._operation(project, "apply_config", branch_id=branch.id, endpoint_id=e.id)
            for e in self.branch_endpoints(project, branch)
        ]

    async def _record_catalog(
        self, branch: Branch, databases: dict[str, str], replay: dict[str, tuple[str, ...]]
    ) -> None:
        """A new head snapshot after a database was created, renamed or dropped."""
        branch.timeline.append(Snapshot(self.clock(), await self.storage.current_lsn(), databases, replay))

    async def create_database(
        self, project: Project, branch: Branch, name: str, owner: str
    ) -> tuple[Database, list[Operation]]:
        _check_pg_name(name, "database.name")
        if name in branch.databases:
            raise ApiError(409, f"database {name!r} already exists")
        if owner not in branch.roles:
            raise ApiError(400, f"database.owner_name: role {owner!r} not found")
        if len(branch.databases) >= DATABASES_LIMIT:
            raise ApiError(
                422, f"a branch can have at most {DATABASES_LIMIT} databases", "DATABASES_LIMIT_EXCEEDED"
            )
        self._check_not_locked(project)
        await self.flush(branch)
        now = self.clock()
        live, frozen = self.storage.new_name("live"), self.storage.new_name("snap")
        await self.storage.create_empty(live)
        await self.storage.copy(live, frozen)
        branch.live[name] = live
        database = branch.databases[name] = self._new_database(name, owner, now)
        head = branch.timeline[-1]
        await self._record_catalog(branch, {**head.databases, name: frozen}, dict(head.replay))
        branch.updated_at = now
        return database, self._config_operations(project, branch)

    async def update_database(
        self, project: Project, branch: Branch, name: str, *, new_name: str | None, owner: str | None
    ) -> tuple[Database, list[Operation]]:
        database = self.database(branch, name)
        if new_name is not None and new_name != name:
            _check_pg_name(new_name, "database.name")
            if new_name in branch.databases:
                raise ApiError(409, f"database {new_name!r} already exists")
        if owner is not None and owner not in branch.roles:
            raise ApiError(400, f"database.owner_name: role {owner!r} not found")
        self._check_not_locked(project)
        now = self.clock()
        if owner is not None:
            database.owner = owner
        if new_name is not None and new_name != name:
            await self.flush(branch)
            await self.storage.terminate(branch.live[name])
            branch.live[new_name] = branch.live.pop(name)
            database.name = new_name
            branch.databases = {(new_name if n == name else n): d for n, d in branch.databases.items()}
            head = branch.timeline[-1]
            await self._record_catalog(
                branch,
                {(new_name if n == name else n): f for n, f in head.databases.items()},
                {(new_name if n == name else n): r for n, r in head.replay.items()},
            )
        database.updated_at = branch.updated_at = now
        return database, self._config_operations(project, branch)

    async def delete_database(
        self, project: Project, branch: Branch, name: str
    ) -> tuple[Database, list[Operation]]:
        database = self.database(branch, name)
        self._check_not_locked(project)
        await self.flush(branch)
        live = branch.live.pop(name)
        del branch.databases[name]
        await self.storage.drop(live)
        head = branch.timeline[-1]
        await self._record_catalog(
            branch,
            {n: f for n, f in head.databases.items() if n != name},
            {n: r for n, r in head.replay.items() if n != name},
        )
        branch.updated_at = self.clock()
        return database, self._config_operations(project, branch)

    async def create_role(self, project: Project, branch: Branch, name: str) -> tuple[Role, list[Operation]]:
        _check_pg_name(name, "role.name")
        if name in RESERVED_ROLES or name.startswith("pg_"):
            raise ApiError(400, f"role name {name!r} is reserved")
        if name in branch.roles:
            raise ApiError(409, f"role {name!r} already exists")
        if len(branch.roles) >= ROLES_LIMIT:
            raise ApiError(422, f"a branch can have at most {ROLES_LIMIT} roles", "ROLES_LIMIT_EXCEEDED")
        self._check_not_locked(project)
        role = branch.roles[name] = self._new_role(name, self.clock())
        return role, self._config_operations(project, branch)

    async def delete_role(self, project: Project, branch: Branch, name: str) -> tuple[Role, list[Operation]]:
        role = self.role(branch, name)
        owned = sorted(d.name for d in branch.databases.values() if d.owner == name)
        if owned:
            # Postgres itself refuses to drop a role that owns objects; Neon passes the refusal on.
            raise ApiError(
                400,
                f"role {name!r} owns databases {', '.join(owned)}: delete them or change their owner first",
            )
        self._check_not_locked(project)
        del branch.roles[name]
        return role, self._config_operations(project, branch)

    async def reset_role_password(
        self, project: Project, branch: Branch, name: str
    ) -> tuple[Role, list[Operation]]:
        role = self.role(branch, name)
        self._check_not_locked(project)
        operations = self._config_operations(project, branch)
        now = self.clock()
        role.old_password = role.password
        role.old_valid_until = max((op.done_at for op in operations), default=now)
        role.password = self._new_role(name, now).password
        role.updated_at = now
        # Neon drops the connections to the branch's computes.
        for endpoint in self.branch_endpoints(project, branch):
            await endpoint.proxy.end_sessions()
            await endpoint.pooler.end_sessions()
        return role, operations

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
        if target.restore_status == "restored":
            raise ApiError(400, f"branch {target.id} is an unfinished snapshot restore: finalize it first")
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
        await self._settle_schedules(project)
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
        self,
        project: Project,
        branch: Branch,
        kind: str,
        *,
        ready_at: datetime,
        endpoint_id: str | None = None,
        ports: tuple[int, int] = (0, 0),
    ) -> Endpoint:
        endpoint_id = endpoint_id or f"ep-{_name(self.rng)}-{_suffix(self.rng)}"
        backend = self.storage.server.backend
        proxy = PgProxy(
            backend,
            self._resolver(project, endpoint_id),
            self._on_write(project),
            name=endpoint_id,
            port=ports[0],
            tls=self.tls,
            passwords=self._passwords(project, endpoint_id),
        )
        pooler = PgProxy(
            backend,
            self._resolver(project, endpoint_id),
            self._on_write(project),
            name=f"{endpoint_id}-pooler",
            port=ports[1],
            tls=self.tls,
            passwords=self._passwords(project, endpoint_id),
        )
        await proxy.start()
        try:
            await pooler.start()
        except BaseException:
            await proxy.stop()
            raise
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
        if self.endpoint_state(endpoint) != "idle":
            return []
        if endpoint.disabled:
            raise ApiError(400, f"endpoint {endpoint.id} is disabled")
        op = self._operation(project, "start_compute", branch_id=endpoint.branch_id, endpoint_id=endpoint.id)
        self._wake(endpoint, op.done_at)
        return [op]

    def _wake(self, endpoint: Endpoint, ready_at: datetime) -> None:
        """``init`` until ``ready_at``, then ``active`` for ``suspend_timeout_seconds`` without activity."""
        endpoint.ready_at = ready_at
        endpoint.last_active = ready_at
        endpoint.suspended_at = None
        endpoint.updated_at = self.clock()

    async def suspend_endpoint(self, project: Project, endpoint: Endpoint) -> list[Operation]:
        if self.endpoint_state(endpoint) == "idle":
            return []
        self._check_not_locked(project)
        op = self._operation(
            project, "suspend_compute", branch_id=endpoint.branch_id, endpoint_id=endpoint.id
        )
        await self._end_sessions(endpoint)
        endpoint.suspended_at = endpoint.updated_at = self.clock()
        return [op]

    async def restart_endpoint(self, project: Project, endpoint: Endpoint) -> list[Operation]:
        if endpoint.disabled:
            raise ApiError(400, f"endpoint {endpoint.id} is disabled")
        self._check_not_locked(project)
        ops = [
            self._operation(project, action, branch_id=endpoint.branch_id, endpoint_id=endpoint.id)
            for action in ("suspend_compute", "start_compute")
        ]
        await self._end_sessions(endpoint)
        self._wake(endpoint, ops[-1].done_at)
        return ops

    async def update_endpoint(
        self, project: Project, endpoint: Endpoint, changes: dict[str, object]
    ) -> list[Operation]:
        """PATCH an endpoint: ``changes`` holds the fields the request set, already type-checked."""
        timeout = changes.get("suspend_timeout_seconds")
        if isinstance(timeout, int) and 0 < timeout < 60:
            raise ApiError(400, "suspend_timeout_seconds must be -1, 0, or at least 60")
        low = changes.get("autoscaling_limit_min_cu", endpoint.autoscaling_min_cu)
        high = changes.get("autoscaling_limit_max_cu", endpoint.autoscaling_max_cu)
        assert isinstance(low, int | float) and isinstance(high, int | float)
        if not 0.25 <= low <= high:
            raise ApiError(
                400, "autoscaling_limit_min_cu must be at least 0.25 and at most autoscaling_limit_max_cu"
            )
        target = changes.get("branch_id")
        if isinstance(target, str) and target != endpoint.branch_id:
            branch = self.branch(project, target)
            if endpoint.type == "read_write" and any(
                e.type == "read_write" for e in self.branch_endpoints(project, branch)
            ):
                raise ApiError(400, f"branch {branch.id} already has a read-write endpoint")
        self._check_not_locked(project)
        if isinstance(timeout, int):
            endpoint.suspend_timeout_seconds = timeout
        endpoint.autoscaling_min_cu, endpoint.autoscaling_max_cu = float(low), float(high)
        for key, attr in (
            ("name", "name"),
            ("disabled", "disabled"),
            ("passwordless_access", "passwordless_access"),
        ):
            if key in changes:
                setattr(endpoint, attr, changes[key])
        settings = changes.get("settings")
        if isinstance(settings, dict):
            endpoint.settings = settings
        op = self._operation(project, "apply_config", branch_id=endpoint.branch_id, endpoint_id=endpoint.id)
        if isinstance(target, str) and target != endpoint.branch_id:
            # The compute now serves another branch: its sessions end, as a restart would end them.
            await self._end_sessions(endpoint)
            endpoint.branch_id = target
            op.branch_id = target
        if endpoint.disabled:
            await self._end_sessions(endpoint)
            endpoint.suspended_at = self.clock()
        elif self.endpoint_state(endpoint) == "idle":
            # An idle compute becomes active briefly to take the new configuration.
            self._wake(endpoint, op.done_at)
        endpoint.updated_at = self.clock()
        return [op]

    async def delete_endpoint(
        self, project: Project, endpoint_id: str
    ) -> tuple[Endpoint, list[Operation]] | None:
        if endpoint_id in project.deleted_endpoints:
            return None
        endpoint = self.endpoint(project, endpoint_id)
        self._check_not_locked(project)
        operations = []
        if self.endpoint_state(endpoint) != "idle":
            operations.append(
                self._operation(
                    project, "suspend_compute", branch_id=endpoint.branch_id, endpoint_id=endpoint.id
                )
            )
        await self._remove_endpoint(project, endpoint)
        project.deleted_endpoints.add(endpoint.id)
        return endpoint, operations

    async def _end_sessions(self, endpoint: Endpoint) -> None:
        await endpoint.proxy.end_sessions()
        await endpoint.pooler.end_sessions()

    def endpoint_state(self, endpoint: Endpoint) -> str:
        now = self.clock()
        if now < endpoint.ready_at:
            return "init"
        if endpoint.sessions:
            endpoint.last_active = now
            return "active"
        if endpoint.suspended_at is not None or endpoint.disabled:
            return "idle"
        timeout = endpoint.suspend_timeout_seconds or DEFAULT_SUSPEND_SECONDS
        last = endpoint.last_active or endpoint.ready_at
        if timeout > 0 and now >= last + timedelta(seconds=timeout):
            # Scaled to zero on the sandbox clock: note when, so the state stays put.
            endpoint.suspended_at = last + timedelta(seconds=timeout)
            return "idle"
        return "active"

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
            if role is None or not role.accepts(startup.password, self.clock()):
                raise RouteRefused("28P01", f'password authentication failed for user "{startup.user}"')
            if endpoint.disabled:
                raise RouteRefused("08004", f"endpoint {endpoint.id} is disabled")
            if startup.database not in branch.databases:
                raise RouteRefused("3D000", f'database "{startup.database}" does not exist')
            # An endpoint or branch still starting: wait, as a cold start does on Neon.
            wait = (max(endpoint.ready_at, branch.ready_at) - self.clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 30))
            # A connection wakes an idle compute (scale to zero's cold start) and counts as activity.
            if self.endpoint_state(endpoint) == "idle":
                self._wake(endpoint, self.clock())
            options, moment, lsn = _split_neon_options(startup.options)
            if moment is not None or lsn is not None:
                route = await self._time_travel_route(project, branch, startup.database, moment, lsn, options)
            else:
                route = Route(
                    database=branch.live[startup.database],
                    read_only=endpoint.type == "read_only",
                    options=options,
                    tag=(branch.id, startup.database),
                )
            return self._touch_on_close(endpoint, route)

        return resolve

    def _touch_on_close(self, endpoint: Endpoint, route: Route) -> Route:
        """The suspend timer restarts when a session ends."""
        inner = route.on_close

        async def on_close() -> None:
            endpoint.last_active = max(self.clock(), endpoint.last_active or endpoint.ready_at)
            if inner is not None:
                await inner()

        route.on_close = on_close
        return route

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
        await self.retired()
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

    async def schema_json(
        self, project: Project, branch: Branch, db_name: str, *, at: datetime | None, lsn: str | None
    ) -> dict[str, object]:
        """``schema?format=json``: Neon's ``BranchSchemaJSON`` (tables, columns, key constraints)."""
        snap = await self.state_at(
            project, branch, at=at, lsn=lsn, what="timestamp" if lsn is None else "LSN"
        )
        if db_name not in snap.databases:
            raise ApiError(404, f"database {db_name!r} not found")
        if not snap.replay.get(db_name):
            return await self._read_schema_json(snap.databases[db_name])
        scratch = self.storage.new_name("tmp")
        await self.copy_state(snap, db_name, scratch)
        try:
            return await self._read_schema_json(scratch)
        finally:
            await self.storage.drop(scratch)

    async def _read_schema_json(self, database: str) -> dict[str, object]:
        columns = await self.storage.fetch(database, _SCHEMA_COLUMNS)
        constraints = await self.storage.fetch(database, _SCHEMA_CONSTRAINTS)
        tables: dict[tuple[str, str], dict[str, object]] = {}
        for schema, table, column, type_name, nullable, generated in columns:
            entry = tables.setdefault(
                (str(schema), str(table)),
                {"schema": str(schema), "name": str(table), "columns": [], "constraints": []},
            )
            entry["columns"].append(  # type: ignore[attr-defined]
                {
                    "name": str(column),
                    "type": str(type_name),
                    "nullable": bool(nullable),
                    "generated": bool(generated),
                }
            )
        kinds = {"p": "primary_key", "u": "unique", "f": "foreign_key"}
        for schema, table, name, kind, cols, ref_schema, ref_table, ref_cols in constraints:
            owner = tables.get((str(schema), str(table)))
            if owner is None:
                continue
            item: dict[str, object] = {"type": kinds[str(kind)], "columns": list(cols), "name": str(name)}  # type: ignore[call-overload]
            if kind == "f":
                item["referenced_table"] = {
                    "schema": str(ref_schema),
                    "table": str(ref_table),
                    "columns": list(ref_cols),  # type: ignore[call-overload]
                }
            owner["constraints"].append(item)  # type: ignore[attr-defined]
        return {"tables": list(tables.values())}

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


_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
_SCHEMA_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       a.attgenerated <> ''
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER_SCHEMAS}
ORDER BY n.nspname, c.relname, a.attnum
"""
_SCHEMA_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, k.conname, k.contype,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.i),
       fn.nspname, fc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.i)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class fc ON fc.oid = k.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE k.contype IN ('p', 'u', 'f') AND {_USER_SCHEMAS}
ORDER BY n.nspname, c.relname, k.conname
"""


def _check_pg_name(name: str, field_name: str) -> None:
    """Postgres identifiers: 1 to 63 bytes; Neon refuses longer names rather than truncating them."""
    if not name or len(name.encode()) > 63:
        raise ApiError(400, f"{field_name} must be 1 to 63 bytes long")
