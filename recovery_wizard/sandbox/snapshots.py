"""Neon's snapshots (beta) in the sandbox: take, list, rename, delete, restore, finalize, and backup schedules.

A snapshot here is what the engine already keeps: a branch's frozen state (``engine.Snapshot``) at a moment,
shared with the branch's timeline, so taking one copies nothing and restoring one copies exactly that data.

Neon's rules, as its API reference and docs state them:
- Snapshots are taken of ROOT branches only, at the head or at a ``timestamp``/``lsn`` inside the restore
  window; ``expires_at`` deletes one automatically.
- ``restoreSnapshot`` makes a NEW root branch holding the snapshot's data. With ``finalize_restore=false``
  (the default) it stays beside the target (``restore_status: restored``, ``restored_from: <snapshot>``) so
  the data can be looked at first; the sandbox gives it a read-only endpoint for that.
- ``finalizeRestoreBranch`` puts the restored branch in the target's place: the target's computes move to
  it (their sessions end, as a restart does; hosts stay the same), it takes the target's name (and default
  flag), and the target is renamed ``<name> (old)`` (or the ``name`` given). So the live branch's ID CHANGES.
- A backup schedule (``hourly``/``daily``/``weekly``/``monthly``/``yearly`` at ``hour``/``day``/``month``
  UTC, ``retention_seconds``) takes snapshots when due on the sandbox clock.

Schedules are evaluated lazily: whenever the snapshot API is used, when a scenario is loaded, and before
an in-place restore or a delete rewrites or drops a branch's history (``Engine._settle_schedules``), every
due moment since the last evaluation is taken with the data as of that moment (the timeline holds it) and
every snapshot past its expiry is deleted. Nothing can observe the difference from a timer except the
operations list, which shows a scheduled snapshot's operation once that evaluation ran.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from recovery_wizard.sandbox import serialize
from recovery_wizard.sandbox.bodies import json_body
from recovery_wizard.sandbox.engine import (
    ApiError,
    Branch,
    Engine,
    Operation,
    Project,
    Role,
    Snapshot,
    _name,
    _suffix,
    parse_time,
    rfc3339,
)

if TYPE_CHECKING:
    from recovery_wizard.sandbox.scenarios import Scenario

Handler = Callable[[Request], Awaitable[Response]]

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "yearly")
MIN_RETENTION_SECONDS = 3600  # the spec's minimum for BackupScheduleItem.retention_seconds
# A clock moved far ahead with an hourly schedule and no retention would take a snapshot per hour: past
# this many per evaluation the oldest due moments are skipped (each is still a correct snapshot).
MAX_FIRED_PER_TICK = 1000


@dataclass
class SnapshotRecord:
    id: str
    name: str
    source_branch_id: str
    state: Snapshot  # the frozen data (shared with the branch's timeline)
    at: datetime  # the moment the data is from
    lsn: str
    created_at: datetime
    roles: dict[str, Role]  # the branch's roles when taken: a restore brings them back
    owners: dict[str, str]  # database name -> owner when taken
    expires_at: datetime | None = None
    manual: bool = True


@dataclass
class ScheduleItem:
    frequency: str
    hour: int | None = None
    day: int | None = None
    month: int | None = None
    retention_seconds: int | None = None

    def due(self, moment: datetime) -> bool:
        """Whether ``moment`` (a whole UTC hour) is one of this item's due times."""
        hour = self.hour if self.hour is not None else 0
        day = self.day if self.day is not None else 1
        month = self.month if self.month is not None else 1
        if self.frequency == "hourly":
            return True
        if moment.hour != hour:
            return False
        if self.frequency == "daily":
            return True
        if self.frequency == "weekly":
            return moment.isoweekday() == day
        if self.frequency == "monthly":
            return moment.day == min(day, calendar.monthrange(moment.year, moment.month)[1])
        return moment.month == month and moment.day == day  # yearly

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frequency": self.frequency}
        for key in ("hour", "day", "month", "retention_seconds"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Schedule:
    items: list[ScheduleItem]
    evaluated_to: datetime  # due moments up to here have been taken


@dataclass
class SnapshotBook:
    """One project's snapshots and backup schedules."""

    snapshots: dict[str, SnapshotRecord] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)  # branch id -> schedule
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def book(project: Project) -> SnapshotBook:
    if project.snapshot_book is None:
        project.snapshot_book = SnapshotBook()
    return project.snapshot_book


def _whole_hour_after(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor + timedelta(hours=1)


def _state_at(branch: Branch, at: datetime) -> Snapshot | None:
    """The branch's data at ``at`` straight from its timeline (no restore-window check: a scheduled
    snapshot due at ``at`` was taken then)."""
    index = bisect.bisect_right([s.at for s in branch.timeline], at) - 1
    return branch.timeline[index] if index >= 0 else None


class Snapshots:
    """The snapshot logic for one engine; ``SnapshotApi`` puts HTTP in front of it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _new_id(self) -> str:
        return f"snap-{_name(self.engine.rng)}-{_suffix(self.engine.rng)}"

    def _record(
        self,
        project: Project,
        branch: Branch,
        state: Snapshot,
        *,
        at: datetime,
        name: str,
        created_at: datetime,
        expires_at: datetime | None,
        manual: bool,
    ) -> SnapshotRecord:
        record = SnapshotRecord(
            id=self._new_id(),
            name=name,
            source_branch_id=branch.id,
            state=state,
            at=at,
            lsn=state.lsn,
            created_at=created_at,
            roles={n: Role(r.name, r.password, r.created_at) for n, r in branch.roles.items()},
            owners={n: d.owner for n, d in branch.databases.items()},
            expires_at=expires_at,
            manual=manual,
        )
        book(project).snapshots[record.id] = record
        return record

    def _past_operation(self, project: Project, action: str, at: datetime, branch_id: str) -> Operation:
        """An operation that ran at ``at`` (a scheduled snapshot found due by a later evaluation)."""
        op = self.engine._operation(project, action, branch_id=branch_id)
        span = op.done_at - op.created_at
        op.created_at, op.done_at = at, at + span
        return op

    # --- schedules and expiry ------------------------------------------------------------------------

    async def tick(self, project: Project, *, record_operations: bool = True) -> None:
        """Take every scheduled snapshot now due and delete every expired snapshot, on the sandbox clock."""
        snaps = book(project)
        async with snaps.lock:
            now = self.engine.clock()
            for branch_id, schedule in list(snaps.schedules.items()):
                branch = project.branches.get(branch_id)
                if branch is None:
                    del snaps.schedules[branch_id]
                    continue
                await self.engine.flush(branch)
                await self._fire(project, branch, schedule, now, record_operations)
            for record in list(snaps.snapshots.values()):
                if record.expires_at is not None and record.expires_at <= now:
                    del snaps.snapshots[record.id]

    async def _fire(
        self, project: Project, branch: Branch, schedule: Schedule, now: datetime, record_operations: bool
    ) -> None:
        longest = max((i.retention_seconds or 0 for i in schedule.items), default=0)
        start = schedule.evaluated_to
        if longest and all(i.retention_seconds for i in schedule.items):
            # Due moments older than every retention would be deleted as soon as taken: skip them.
            start = max(start, now - timedelta(seconds=longest))
        due: list[tuple[datetime, ScheduleItem]] = []
        moment = _whole_hour_after(start)
        while moment <= now:
            item = next((i for i in schedule.items if i.due(moment)), None)
            if item is not None:
                due.append((moment, item))
            moment += timedelta(hours=1)
        schedule.evaluated_to = now
        for at, item in due[-MAX_FIRED_PER_TICK:]:
            expires = at + timedelta(seconds=item.retention_seconds) if item.retention_seconds else None
            if expires is not None and expires <= now:
                continue
            state = _state_at(branch, at)
            if state is None:
                continue
            self._record(
                project,
                branch,
                state,
                at=at,
                name=f"{branch.name} {item.frequency} {at.strftime('%Y-%m-%d %H:%M')} UTC",
                created_at=at,
                expires_at=expires,
                manual=False,
            )
            if record_operations:
                self._past_operation(project, "create_timeline", at, branch.id)

    def schedule(self, project: Project, branch: Branch) -> list[ScheduleItem]:
        entry = book(project).schedules.get(branch.id)
        return list(entry.items) if entry else []

    def set_schedule(self, project: Project, branch: Branch, items: list[ScheduleItem]) -> None:
        self._check_root(branch, "backup schedules can be set on")
        snaps = book(project)
        if not items:
            snaps.schedules.pop(branch.id, None)
            return
        existing = snaps.schedules.get(branch.id)
        snaps.schedules[branch.id] = Schedule(
            items, existing.evaluated_to if existing else self.engine.clock()
        )

    # --- snapshots -----------------------------------------------------------------------------------

    @staticmethod
    def _check_root(branch: Branch, what: str) -> None:
        """Snapshots, schedules and snapshot restores are for root branches, and not for a pending restore."""
        if branch.parent_id is not None:
            raise ApiError(400, f"{what} root branches only: branch {branch.id} has a parent")
        if branch.restore_status == "restored":
            raise ApiError(
                400,
                f"branch {branch.id} was restored from a snapshot and is not finalized: "
                "finalize or delete it first",
            )

    def record(self, project: Project, snapshot_id: str) -> SnapshotRecord:
        try:
            return book(project).snapshots[snapshot_id]
        except KeyError:
            raise ApiError(404, f"snapshot {snapshot_id} not found") from None

    async def create(
        self,
        project: Project,
        branch: Branch,
        *,
        name: str | None,
        at: datetime | None,
        lsn: str | None,
        expires_at: datetime | None,
    ) -> tuple[SnapshotRecord, list[Operation]]:
        self._check_root(branch, "snapshots can be taken of")
        if at is not None and lsn is not None:
            raise ApiError(400, "timestamp and lsn are mutually exclusive")
        now = self.engine.clock()
        if expires_at is not None and expires_at <= now:
            raise ApiError(400, "expires_at must be in the future")
        self.engine._check_not_locked(project)
        state = await self.engine.state_at(
            project, branch, at=at, lsn=lsn, what="timestamp" if lsn is None else "lsn"
        )
        moment = at if at is not None else (state.at if lsn is not None else now)
        record = self._record(
            project,
            branch,
            state,
            at=moment,
            name=name or f"{branch.name} {moment.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            created_at=now,
            expires_at=expires_at,
            manual=True,
        )
        return record, [self.engine._operation(project, "create_timeline", branch_id=branch.id)]

    def update(
        self,
        project: Project,
        snapshot_id: str,
        *,
        name: str | None,
        expires_at: datetime | None,
        set_expiry: bool,
    ) -> SnapshotRecord:
        record = self.record(project, snapshot_id)
        if set_expiry and expires_at is not None and expires_at <= self.engine.clock():
            raise ApiError(400, "expires_at must be in the future")
        if name is not None:
            record.name = name
        if set_expiry:
            record.expires_at = expires_at
        return record

    def delete(self, project: Project, snapshot_id: str) -> list[Operation]:
        self.record(project, snapshot_id)
        self.engine._check_not_locked(project)
        del book(project).snapshots[snapshot_id]
        return [self.engine._operation(project, "delete_timeline")]

    async def restore(
        self,
        project: Project,
        snapshot_id: str,
        *,
        name: str | None,
        target_branch_id: str | None,
        finalize: bool,
    ) -> tuple[Branch, list[Any], list[Operation]]:
        record = self.record(project, snapshot_id)
        target_id = target_branch_id or record.source_branch_id
        if target_id in project.deleted_branches or target_id not in project.branches:
            raise ApiError(404, f"target branch {target_id} not found")
        target = project.branches[target_id]
        self._check_root(target, "a snapshot can be restored into")
        name = name or f"{target.name} (restored {rfc3339(record.at)})"
        self.engine._check_name_free(project, name)
        self.engine._check_not_locked(project)
        now = self.engine.clock()
        op = self.engine._operation(project, "create_timeline")
        storage = self.engine.storage
        live: dict[str, str] = {}
        for db_name in record.state.databases:
            live[db_name] = storage.new_name("live")
            await self.engine.copy_state(record.state, db_name, live[db_name])
        restored = Branch(
            id=f"br-{_name(self.engine.rng)}-{_suffix(self.engine.rng)}",
            project_id=project.id,
            name=name,
            created_at=now,
            ready_at=op.done_at,
            # A new root timeline: its history begins with the snapshot's data, now.
            timeline=[
                Snapshot(now, record.state.lsn, dict(record.state.databases), dict(record.state.replay))
            ],
            live=live,
            databases={
                n: self.engine._new_database(n, record.owners.get(n, next(iter(record.roles), "")), now)
                for n in live
            },
            roles={n: Role(r.name, r.password, now) for n, r in record.roles.items()},
            init_source="parent-data",
            updated_at=now,
            restore_status="restored",
            restored_from=record.id,
            restore_target_id=target.id,
        )
        project.branches[restored.id] = restored
        op.branch_id = restored.id
        operations = [op]
        if finalize:
            operations += await self.finalize(project, restored, old_name=None, locked_ok=True)
            endpoints = self.engine.branch_endpoints(project, restored)
        else:
            # Neon lets the data be looked at before it replaces anything: a read-only compute to query.
            start = self.engine._operation(project, "start_compute", branch_id=restored.id)
            endpoint = await self.engine._add_endpoint(project, restored, "read_only", ready_at=start.done_at)
            start.endpoint_id = endpoint.id
            operations.append(start)
            endpoints = [endpoint]
        project.updated_at = now
        return restored, endpoints, operations

    async def finalize(
        self, project: Project, restored: Branch, *, old_name: str | None, locked_ok: bool = False
    ) -> list[Operation]:
        if restored.restore_status is None or restored.restored_from is None:
            raise ApiError(
                400,
                f"branch {restored.id} was not restored from a snapshot: only a branch made by "
                "restoreSnapshot with finalize_restore=false can be finalized",
            )
        if restored.restore_status != "restored":
            raise ApiError(400, f"the restore of branch {restored.id} is already finalized")
        target_id = restored.restore_target_id or ""
        target = project.branches.get(target_id)
        if target is None:
            raise ApiError(404, f"branch {target_id}, which this restore was to replace, no longer exists")
        now = self.engine.clock()
        if old_name is None:
            old_name = f"{target.name} (old)"
            if any(b.name == old_name for b in project.branches.values()):
                old_name = f"{target.name} (old {rfc3339(now)})"
        else:
            self.engine._check_name_free(project, old_name)
        if not locked_ok:
            self.engine._check_not_locked(project)
        operations: list[Operation] = []
        # The target's computes move to the restored branch: same hosts, a restart (sessions end).
        for endpoint in self.engine.branch_endpoints(project, target):
            operations.append(
                self.engine._operation(
                    project, "suspend_compute", branch_id=target.id, endpoint_id=endpoint.id
                )
            )
            for live in target.live.values():
                await self.engine.storage.terminate(live)
            endpoint.branch_id = restored.id
            endpoint.updated_at = now
            start = self.engine._operation(
                project, "start_compute", branch_id=restored.id, endpoint_id=endpoint.id
            )
            endpoint.ready_at = max(endpoint.ready_at, start.done_at)
            operations.append(start)
        name = target.name
        target.name = old_name
        restored.name = name
        restored.default, target.default = target.default, False
        restored.protected = target.protected
        restored.restore_status = "finalized"
        restored.restored_as = target.id
        restored.updated_at = target.updated_at = now
        target.replaced_by = restored.id
        snaps = book(project)
        # The schedule belongs to the branch that now plays the target's part.
        if target.id in snaps.schedules:
            snaps.schedules[restored.id] = snaps.schedules.pop(target.id)
        project.updated_at = now
        return operations

    # --- scenarios -----------------------------------------------------------------------------------

    async def seed(self, project: Project, scenario: Scenario) -> None:
        """The scenario's snapshots and backup schedule, as if they had run through its history."""
        main = project.default_branch
        for spec in scenario.snapshots:
            state = _state_at(main, spec.at)
            if state is None:
                raise ValueError(f"snapshot {spec.name!r} is before the scenario's history")
            self._record(
                project,
                main,
                state,
                at=spec.at,
                name=spec.name,
                created_at=spec.at,
                expires_at=spec.expires_at,
                manual=True,
            )
        if scenario.backup_schedule:
            items = [
                ScheduleItem(s.frequency, s.hour, s.day, s.month, s.retention_seconds)
                for s in scenario.backup_schedule
            ]
            book(project).schedules[main.id] = Schedule(items, scenario.changes[0].at)
        # Past firings: their operations finished long before the sandbox started (none are recorded).
        await self.tick(project, record_operations=False)


def snapshot_body(record: SnapshotRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "lsn": record.lsn,
        "timestamp": rfc3339(record.at),
        "source_branch_id": record.source_branch_id,
        "created_at": rfc3339(record.created_at),
        "manual": record.manual,
    }
    if record.expires_at is not None:
        body["expires_at"] = rfc3339(record.expires_at)
    return body


def _parse_item(raw: Any, index: int) -> ScheduleItem:
    where = f"schedule[{index}]"
    if not isinstance(raw, dict):
        raise ApiError(400, f"{where} must be an object")
    frequency = raw.get("frequency")
    if frequency not in FREQUENCIES:
        raise ApiError(400, f"{where}.frequency must be one of {', '.join(FREQUENCIES)}")
    bounds = {"hour": (0, 23), "day": (1, 31), "month": (1, 12)}
    if frequency == "weekly":
        bounds["day"] = (1, 7)
    values: dict[str, int | None] = {}
    for key, (low, high) in bounds.items():
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise ApiError(400, f"{where}.{key} must be an integer between {low} and {high}")
        values[key] = value
    retention = raw.get("retention_seconds")
    if retention is not None and (
        isinstance(retention, bool) or not isinstance(retention, int) or retention < MIN_RETENTION_SECONDS
    ):
        raise ApiError(
            400, f"{where}.retention_seconds must be an integer of at least {MIN_RETENTION_SECONDS}"
        )
    return ScheduleItem(str(frequency), values["hour"], values["day"], values["month"], retention)


class SnapshotApi:
    """The snapshot routes, for ``app.SandboxApi``'s route table (it adds auth and Neon's error body)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.logic = Snapshots(engine)

    def table(self, project_path: str, branch_path: str) -> list[tuple[str, str, Handler]]:
        p, b = project_path, branch_path
        return [
            ("GET", p + "/snapshots", self.list_snapshots),
            ("PATCH", p + "/snapshots/{snapshot_id:neon_id}", self.update_snapshot),
            ("DELETE", p + "/snapshots/{snapshot_id:neon_id}", self.delete_snapshot),
            ("POST", p + "/snapshots/{snapshot_id:neon_id}/restore", self.restore_snapshot),
            ("POST", b + "/snapshot", self.create_snapshot),
            ("POST", b + "/finalize_restore", self.finalize_restore),
            ("GET", b + "/backup_schedule", self.get_schedule),
            ("PUT", b + "/backup_schedule", self.set_schedule),
        ]

    async def _project(self, request: Request) -> Project:
        project = self.engine.project(request.path_params["project_id"])
        await self.logic.tick(project)
        return project

    async def _branch(self, request: Request) -> tuple[Project, Branch]:
        project = await self._project(request)
        return project, self.engine.branch(project, request.path_params["branch_id"])

    def _ops(self, operations: list[Operation]) -> list[dict[str, Any]]:
        return [serialize.operation(self.engine, op) for op in operations]

    async def list_snapshots(self, request: Request) -> Response:
        project = await self._project(request)
        records = sorted(book(project).snapshots.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        return JSONResponse({"snapshots": [snapshot_body(r) for r in records]})

    async def create_snapshot(self, request: Request) -> Response:
        project, branch = await self._branch(request)
        query = request.query_params
        stamp, expiry = query.get("timestamp"), query.get("expires_at")
        record, operations = await self.logic.create(
            project,
            branch,
            name=query.get("name") or None,
            at=parse_time(stamp, "timestamp") if stamp else None,
            lsn=query.get("lsn") or None,
            expires_at=parse_time(expiry, "expires_at") if expiry else None,
        )
        return JSONResponse({"snapshot": snapshot_body(record), "operations": self._ops(operations)})

    async def update_snapshot(self, request: Request) -> Response:
        project = await self._project(request)
        body = await json_body(request)
        spec = body.get("snapshot")
        if not isinstance(spec, dict):
            raise ApiError(400, "snapshot is required and must be an object")
        name, expiry = spec.get("name"), spec.get("expires_at")
        if name is not None and (not isinstance(name, str) or not name):
            raise ApiError(400, "snapshot.name must be a non-empty string")
        if expiry is not None and not isinstance(expiry, str):
            raise ApiError(400, "snapshot.expires_at must be a timestamp or null")
        # Neon's CLI also sends expires_at here (null clears it), beyond the spec's name.
        if name is None and "expires_at" not in spec:
            raise ApiError(400, "nothing to update: give snapshot.name or snapshot.expires_at")
        record = self.logic.update(
            project,
            request.path_params["snapshot_id"],
            name=name,
            expires_at=parse_time(expiry, "snapshot.expires_at") if expiry else None,
            set_expiry="expires_at" in spec,
        )
        return JSONResponse({"snapshot": snapshot_body(record)})

    async def delete_snapshot(self, request: Request) -> Response:
        project = await self._project(request)
        operations = self.logic.delete(project, request.path_params["snapshot_id"])
        return JSONResponse({"operations": self._ops(operations)}, 202)

    async def restore_snapshot(self, request: Request) -> Response:
        project = await self._project(request)
        body = await json_body(request)
        name = body.get("name", request.query_params.get("name"))
        target = body.get("target_branch_id")
        finalize = body.get("finalize_restore", False)
        if name is not None and (not isinstance(name, str) or not name):
            raise ApiError(400, "name must be a non-empty string")
        if target is not None and (not isinstance(target, str) or not target):
            raise ApiError(400, "target_branch_id must be a non-empty string")
        if not isinstance(finalize, bool):
            raise ApiError(400, "finalize_restore must be true or false")
        branch, endpoints, operations = await self.logic.restore(
            project,
            request.path_params["snapshot_id"],
            name=name,
            target_branch_id=target,
            finalize=finalize,
        )
        return JSONResponse(
            {
                "branch": serialize.branch(self.engine, project, branch),
                "endpoints": [serialize.endpoint(self.engine, e) for e in endpoints],
                "operations": self._ops(operations),
            }
        )

    async def finalize_restore(self, request: Request) -> Response:
        project, branch = await self._branch(request)
        body = await json_body(request)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ApiError(400, "name must be a non-empty string")
        operations = await self.logic.finalize(project, branch, old_name=name)
        return JSONResponse({"operations": self._ops(operations)})

    async def get_schedule(self, request: Request) -> Response:
        project, branch = await self._branch(request)
        return JSONResponse({"schedule": [i.body() for i in self.logic.schedule(project, branch)]})

    async def set_schedule(self, request: Request) -> Response:
        project, branch = await self._branch(request)
        body = await json_body(request)
        raw = body.get("schedule")
        if not isinstance(raw, list):
            raise ApiError(400, "schedule is required and must be a list")
        self.logic.set_schedule(project, branch, [_parse_item(item, i) for i, item in enumerate(raw)])
        return JSONResponse({})
