"""A guard checkpoint: the guarded branch as it was just before a guarded command, to the byte.

``--from checkpoint:<run id>`` (or ``checkpoint:latest``) reads the guard's journal in this app directory
(:func:`recovery.checkpoint.find_checkpoint`): the checkpoint's kind, id, LSN and time, the branch it
guarded and the command that followed it. Nothing is guessed from a name or a time.

A branch checkpoint is restored one of two ways, chosen once in the plan and journalled (``mode``):

- ``lsn``: from the GUARDED branch's history at the checkpoint's LSN (``parent_lsn``; in place,
  ``source_lsn``). The LSN is the exact point the checkpoint branch was made at, so this is the same data
  to the byte, and it does not need the checkpoint branch at all (it may have expired or been pruned).
  Used whenever the checkpoint's moment is inside the restore window (clear of its sliding old edge).
- ``branch``: from the checkpoint branch itself (its head: a full copy at that point, kept past the window
  until it expires). Used when the LSN has left the window, when the guarded branch was restored in place
  since (its history after that is another timeline), or when no LSN was recorded.

Neither possible (outside the window and the branch is gone): a usage error naming what else holds the data
(snapshots, backup files). A snapshot checkpoint is a Neon snapshot: it is restored exactly as
``--from snapshot:<id>`` would (:class:`SnapshotCheckpointSource` only adds the checkpoint's story).

In place, a branch checkpoint goes through the history source's path (Neon's restore of the branch with
``preserve_under_name``, after measuring the damaged data): only the point it restores from differs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from recovery_wizard.neon.errors import NeonHTTPError, NotFoundError
from recovery_wizard.neon.models import Branch, EndpointType
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.checkpoint import Checkpoint, checkpoints, find_checkpoint
from recovery_wizard.recovery.journal import JournalError
from recovery_wizard.recovery.outcome import StepFailedError, UsageError
from recovery_wizard.recovery.sources.base import Made, children_clause, expiry_clause
from recovery_wizard.recovery.sources.history import HistorySource
from recovery_wizard.recovery.sources.snapshot import SnapshotSource
from recovery_wizard.recovery.timepoint import Moment, RestoreWindow

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.recovery.plan import Plan, RunOptions
    from recovery_wizard.recovery.runner import Runner

LATEST: Final = "latest"
LSN: Final = "lsn"
BRANCH: Final = "branch"
# A history restore names a checkpoint this close to its moment (the plan says the exact way back).
NEAR: Final = timedelta(hours=1)
# What else may hold the data when a checkpoint cannot be restored.
ELSEWHERE: Final = (
    "Other ways back: a Neon snapshot (`recovery-wizard backup list`, then --from snapshot:<id or name>), "
    "a backup file (`recovery-wizard backups find`, then --from file:<path>), or Neon history at a moment "
    "inside the restore window (--at TIME; `recovery-wizard timeline` shows what happened when)."
)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _hhmmss(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- reading the guard's journal -------------------------------------------------------------------------


def read_checkpoint(workdir: Path, ref: str) -> Checkpoint:
    """The checkpoint ``ref`` names (a guard run id, or ``latest``) in this app directory; else exit 2."""
    listing = "`recovery-wizard guard list` shows the checkpoints made in this directory"
    if ref.lower() == LATEST:
        made = [c for c in checkpoints(workdir) if c.at is not None]
        if not made:
            raise UsageError(
                f"No guard checkpoint was made in {workdir}.",
                hint="Checkpoints are made by `recovery-wizard guard -- <command>` and journalled in the "
                f"directory it ran in: run the restore there. {ELSEWHERE}",
            )
        return made[0]
    try:
        found = find_checkpoint(workdir, ref)
    except JournalError:
        raise UsageError(
            f"There is no guard run {ref!r} in {workdir}/.recovery-wizard.",
            hint=f"{listing} (with their run ids); run the restore in the directory the guard ran in "
            "(its journal is in .recovery-wizard/runs/ there).",
        ) from None
    if found is None:
        raise UsageError(
            f"Run {ref!r} made no checkpoint to restore: it is not a guard run, the guard ran with "
            "--checkpoint none, or the checkpoint was never confirmed made.",
            hint=f"{listing}. {ELSEWHERE}",
        )
    if found.at is None:
        raise UsageError(
            f"The journal of guard run {ref!r} does not say when its checkpoint was made.",
            hint=f"{listing}. {ELSEWHERE}",
        )
    return found


def scoped_options(options: RunOptions, checkpoint: Checkpoint) -> RunOptions:
    """The options with the checkpoint's project and guarded branch; a --project-id/--branch that names
    another one is a usage error (the checkpoint is of one branch, and only that branch's history has it)."""
    if options.project_id and options.project_id != checkpoint.project_id:
        raise UsageError(
            f"The checkpoint {checkpoint.name} is of project {checkpoint.project_id}, but the project given "
            f"(--project-id or NEON_PROJECT_ID) is {options.project_id}.",
            hint=f"Drop --project-id (or set NEON_PROJECT_ID={checkpoint.project_id}) to restore it.",
        )
    if options.branch and options.branch not in (checkpoint.branch_id, checkpoint.branch_name):
        raise UsageError(
            f"The checkpoint {checkpoint.name} is of the branch {checkpoint.branch_name!r} "
            f"({checkpoint.branch_id}), not {options.branch!r}.",
            hint="Leave --branch out: a checkpoint restores the branch it guarded.",
        )
    return replace(options, project_id=checkpoint.project_id, branch=checkpoint.branch_id)


def nearby_note(workdir: Path, project_id: str, branch_id: str, moment: datetime) -> str | None:
    """For a history restore: the guard checkpoint of this branch closest to ``moment`` (within NEAR)."""
    near = [
        c
        for c in checkpoints(workdir)
        if c.at is not None
        and c.project_id == project_id
        and c.branch_id == branch_id
        and abs(c.at - moment) <= NEAR
    ]
    if not near:
        return None
    closest = min(near, key=lambda c: abs((c.at or moment) - moment))
    assert closest.at is not None
    seconds = (closest.at - moment).total_seconds()
    if abs(seconds) < 1:
        return None
    gap = f"{abs(seconds) / 60:.0f} min" if abs(seconds) >= 90 else f"{abs(seconds):.0f} s"
    return (
        f"A guard checkpoint was made {gap} {'after' if seconds > 0 else 'before'} this moment, just before "
        f"`{closest.command}` ({_hhmmss(closest.at)}): to come back to exactly that point instead, "
        f"run `{closest.restore_command}`."
    )


# --- a branch checkpoint -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointSource(HistorySource):
    """A guard's branch checkpoint, resolved: where it is, and which way (``mode``) it is restored."""

    kind: ClassVar[str] = "checkpoint"
    previews_in_place: ClassVar[bool] = False

    run_id: str
    name: str  # the checkpoint branch's name (guard-<run id>)
    id: str  # the checkpoint branch's id
    lsn: str | None
    at: datetime  # when the checkpoint was made: the moment its data is from
    command: str  # the guarded command, masked
    guarded_id: str
    guarded_name: str
    mode: str  # LSN or BRANCH
    reason: str  # why that mode, in words (the plan, the why panel, the record)
    exit_code: int | None = None
    asked_as: str = ""

    @property
    def taken_at(self) -> datetime:
        return self.at

    @classmethod
    def of(cls, checkpoint: Checkpoint, *, mode: str, reason: str, asked_as: str) -> CheckpointSource:
        assert checkpoint.at is not None
        return cls(
            run_id=checkpoint.run_id,
            name=checkpoint.name,
            id=checkpoint.id,
            lsn=checkpoint.lsn,
            at=checkpoint.at,
            command=checkpoint.command,
            guarded_id=checkpoint.branch_id,
            guarded_name=checkpoint.branch_name,
            mode=mode,
            reason=reason,
            exit_code=checkpoint.exit_code,
            asked_as=asked_as,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointSource:
        at = _time(data["at"])
        assert at is not None
        return cls(
            run_id=str(data["run_id"]),
            name=str(data["name"]),
            id=str(data["id"]),
            lsn=data.get("lsn"),
            at=at,
            command=str(data.get("command") or ""),
            guarded_id=str(data["guarded_id"]),
            guarded_name=str(data.get("guarded_name") or ""),
            mode=str(data["mode"]),
            reason=str(data.get("reason") or ""),
            exit_code=data.get("exit_code"),
            asked_as=str(data.get("asked_as") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "checkpoint_kind": "branch",
            "run_id": self.run_id,
            "name": self.name,
            "id": self.id,
            "lsn": self.lsn,
            "at": _iso(self.at),
            "command": self.command,
            "guarded_id": self.guarded_id,
            "guarded_name": self.guarded_name,
            "mode": self.mode,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "asked_as": self.asked_as,
        }

    # --- describing itself ---------------------------------------------------------------------------

    def _point(self, plan: Plan) -> str:
        return (
            f"{plan.branch.name!r} at the checkpoint's LSN {self.lsn} ({plan.moment.describe()})"
            if self.mode == LSN
            else f"the checkpoint branch {self.name!r} ({self.id}), a copy of {plan.branch.name!r} as of "
            f"{plan.moment.describe()}"
        )

    def describe(self, plan: Plan) -> str:
        return f"{self._point(plan)}, just before `{self.command}` (guard checkpoint {self.name})"

    def why(self) -> str:
        way = (
            "its LSN is the exact point of the guarded branch's history the checkpoint was made at, so a "
            "branch at that LSN holds the same data to the byte (the checkpoint branch itself is not needed)"
            if self.mode == LSN
            else "the checkpoint branch is a full copy of the guarded branch at that point, kept until it "
            "expires"
        )
        return f"The guard made a checkpoint just before `{self.command}`: {way}. {self.reason}"

    def record_lines(self, plan: Plan) -> list[str]:
        ended = "" if self.exit_code is None else f" (it exited with {self.exit_code})"
        how = (
            f"the history of {plan.branch.name} at LSN `{self.lsn}`"
            if self.mode == LSN
            else f"the checkpoint branch `{self.id}` itself"
        )
        return [
            f"- **Source**: guard checkpoint {self.name} (guard run `{self.run_id}`), made "
            f"{_iso(self.at)}" + (f" at LSN `{self.lsn}`" if self.lsn else ""),
            f"- **Followed by**: `{self.command}`{ended}",
            f"- **Restored from**: {how}. {self.reason}",
        ]

    def restore_lines(self, plan: Plan) -> list[str]:
        point = self._point(plan)
        note = f" ({self.reason})" if self.reason else ""
        if plan.command == "drill":
            expiry = expiry_clause(plan)
            return [
                f"Create the throwaway branch {plan.name!r} from {point}, with a read-write compute"
                f"{expiry}; wait for Neon's operations{note}."
            ]
        if plan.in_place:
            moved = children_clause(plan)
            return [
                f"Measure the damaged data on {plan.branch.name!r} now (read-only), for comparison.",
                f"Restore {plan.branch.name!r} IN PLACE from {point}, as it was just before "
                f"`{self.command}`{note}. Its current state is kept as the branch {plan.name!r}{moved}. "
                f"Connections to {plan.branch.name!r} drop briefly; its connection strings stay the same.",
            ]
        return [
            f"Create the branch {plan.name!r} from {point}, as it was just before `{self.command}`{note}, "
            f"with a read-write compute; wait for Neon's operations. {plan.branch.name!r} is not changed."
        ]

    # --- materialize ---------------------------------------------------------------------------------

    def _parent(self) -> tuple[str, str | None]:
        """(parent branch id, parent LSN) of the branch this source makes."""
        return (self.guarded_id, self.lsn) if self.mode == LSN else (self.id, None)

    def begin_data(self, plan: Plan, name: str) -> dict[str, Any]:
        parent_id, lsn = self._parent()
        return {
            "name": name,
            "parent_id": parent_id,
            "parent_lsn": lsn,
            "checkpoint": self.run_id,
            "expires_at": plan.expires_at,
        }

    async def make(self, run: Runner, name: str) -> Made:
        plan = run.plan
        parent_id, lsn = self._parent()
        try:
            created = await run.client.create_branch(
                run.project_id,
                parent_id=parent_id,
                name=name,
                parent_lsn=lsn,
                endpoints=[EndpointType.READ_WRITE],
                expires_at=plan.expires_at,
                annotation=ownership.marker(run.journal.run_id),
            )
        except NotFoundError:
            raise StepFailedError(
                "restore",
                f"The checkpoint branch {self.name} ({self.id}) no longer exists (it expired or was deleted "
                "since the plan was made).",
                hint="Start a new restore from it (`--new`): the plan then says whether its LSN can still be "
                f"restored from {self.guarded_name}'s history. {ELSEWHERE}",
            ) from None
        except NeonHTTPError as exc:
            if exc.status != 400:
                raise
            raise StepFailedError(
                "restore",
                f"Neon refused a branch of {self.guarded_name} at the checkpoint's LSN {self.lsn}: "
                f"{exc.neon_message or exc}.",
                hint="The LSN may have left the restore window since the plan was made: start a new restore "
                "from the checkpoint (`--new`), which uses the checkpoint branch if it still exists. "
                + ELSEWHERE,
            ) from None
        return Made(created.branch, list(created.endpoints), list(created.operations))

    async def why_not_ours(self, run: Runner, branch_id: str) -> tuple[Branch, list[str]]:
        branch, annotation = await run.client.branch_annotated(run.project_id, branch_id)
        begin = run.journal.last("restore", "begin")
        parent_id, lsn = self._parent()
        # The run's marker is the proof; the parent, the LSN and the creation time the plan fixed are checked
        # too (no timestamp: the branch was asked for at an LSN, or at the checkpoint branch's head).
        return branch, ownership.why_not_ours(
            branch,
            annotation,
            run_id=run.journal.run_id,
            parent_id=parent_id,
            lsn=lsn,
            begun_at=begin.at if begin is not None else None,
        )

    # --- in place: the history source's path, from the checkpoint's point -----------------------------

    def point_words(self, plan: Plan) -> str:
        return self._point(plan)

    def restore_from(self, plan: Plan) -> dict[str, Any]:
        if self.mode == LSN:
            return {"source_branch_id": plan.branch.id, "source_lsn": self.lsn}
        return {"source_branch_id": self.id}


# --- a snapshot checkpoint ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotCheckpointSource(SnapshotSource):
    """A guard's snapshot checkpoint: restored as the snapshot source restores it, told as a checkpoint."""

    kind: ClassVar[str] = "checkpoint"

    run_id: str = ""
    command: str = ""
    guarded_name: str = ""
    exit_code: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotCheckpointSource:
        base = SnapshotSource.from_dict(data)
        return cls(
            **{f.name: getattr(base, f.name) for f in fields(SnapshotSource)},
            run_id=str(data.get("run_id") or ""),
            command=str(data.get("command") or ""),
            guarded_name=str(data.get("guarded_name") or ""),
            exit_code=data.get("exit_code"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "kind": self.kind,
            "checkpoint_kind": "snapshot",
            "run_id": self.run_id,
            "command": self.command,
            "guarded_name": self.guarded_name,
            "exit_code": self.exit_code,
        }

    def describe(self, plan: Plan) -> str:
        return (
            f"the guard checkpoint {self.name!r} (a Neon snapshot, {self.id}) made just before "
            f"`{self.command}`, data as of {plan.moment.describe()}"
        )

    def why(self) -> str:
        return f"The guard took a Neon snapshot just before `{self.command}`. {super().why()}"

    def record_lines(self, plan: Plan) -> list[str]:
        ended = "" if self.exit_code is None else f" (it exited with {self.exit_code})"
        return [
            f"- **Checkpoint**: guard run `{self.run_id}`, a snapshot made just before the command below",
            f"- **Followed by**: `{self.command}`{ended}",
            *super().record_lines(plan),
        ]


# --- resolving `checkpoint:<ref>` in the plan -------------------------------------------------------------


async def resolve_checkpoint(
    client: NeonClient,
    project_id: str,
    branch: Branch,
    checkpoint: Checkpoint,
    window: RestoreWindow,
    *,
    asked_as: str,
) -> tuple[HistorySource | SnapshotSource, list[str]]:
    """The source for ``checkpoint`` on the guarded ``branch``, and what the plan should warn about."""
    assert checkpoint.at is not None
    warnings: list[str] = []
    if checkpoint.exit_code is None:
        warnings.append(
            f"The command that followed the checkpoint (`{checkpoint.command}`) has no recorded end: it may "
            "still be running (or the guard was killed). Restoring now does not stop it."
        )
    if checkpoint.kind == "snapshot":
        return await _snapshot_source(client, project_id, checkpoint), warnings

    moment = Moment(checkpoint.at, "", UTC)
    in_window = not window.disabled and checkpoint.at < window.now and not window.near_old_edge(moment)
    reset_since = branch.last_reset_at is not None and branch.last_reset_at > checkpoint.at
    own, gone_why = await _checkpoint_branch(client, project_id, checkpoint)

    def chosen(mode: str, reason: str) -> CheckpointSource:
        return CheckpointSource.of(checkpoint, mode=mode, reason=reason, asked_as=asked_as)

    if checkpoint.lsn and in_window and not (reset_since and own is not None):
        reason = f"Its LSN is inside the restore window ({window.describe(UTC)})"
        reason += f"; the checkpoint branch is not needed ({gone_why})." if gone_why else "."
        if reset_since:
            warnings.append(
                f"{branch.name!r} was restored in place after the checkpoint and the checkpoint branch is "
                f"gone ({gone_why}): its history at LSN {checkpoint.lsn} is used; compare the verification's "
                "counts with what you expect."
            )
        return chosen(LSN, reason), warnings
    if own is not None:
        if not checkpoint.lsn:
            reason = "The guard recorded no LSN, so the checkpoint branch itself is restored from."
        elif reset_since:
            reason = (
                f"{branch.name!r} was restored in place since the checkpoint (its history after that is "
                "another timeline), so the checkpoint branch itself is restored from."
            )
        else:
            reason = (
                f"Its LSN is outside the restore window ({window.describe(UTC)}), so the checkpoint branch "
                "itself (a full copy, kept until it expires) is restored from."
            )
        endpoints = await client.endpoints(project_id, own.id)
        if any(e.type == EndpointType.READ_WRITE for e in endpoints):
            warnings.append(
                f"Someone gave the checkpoint branch {own.name} a read-write compute: it may hold writes made "
                "after the checkpoint. Its current data is what is restored."
            )
        return chosen(BRANCH, reason), warnings
    outside = (
        "no LSN was recorded"
        if not checkpoint.lsn
        else f"its moment ({_hhmmss(checkpoint.at)}) is outside the restore window "
        f"({window.describe(UTC)}) or too close to its old edge"
    )
    raise UsageError(
        f"The checkpoint {checkpoint.name} cannot be restored: {outside}, and the checkpoint branch "
        f"({checkpoint.id}) {gone_why}.",
        hint=ELSEWHERE,
    )


async def _checkpoint_branch(
    client: NeonClient, project_id: str, checkpoint: Checkpoint
) -> tuple[Branch | None, str]:
    """The checkpoint branch if it is still there and provably the guard's; else None and why not."""
    if checkpoint.pruned:
        return None, "was deleted by `guard prune`"
    try:
        own, annotation = await client.branch_annotated(project_id, checkpoint.id)
    except NotFoundError:
        expired = checkpoint.expires_at is not None and checkpoint.expires_at <= datetime.now(UTC)
        return None, "expired" if expired else "no longer exists (deleted)"
    if annotation.get(ownership.RUN_MARKER) != checkpoint.run_id:
        # Its parent may have changed (an in-place restore moves children to the backup): its data did not.
        # Without the guard's marker, though, it is not provably the checkpoint.
        return None, "carries no marker of the guard run any more"
    return own, ""


async def _snapshot_source(
    client: NeonClient, project_id: str, checkpoint: Checkpoint
) -> SnapshotCheckpointSource:
    snap = next((s for s in await client.snapshots(project_id) if s.id == checkpoint.id), None)
    if snap is None:
        expired = checkpoint.expires_at is not None and checkpoint.expires_at <= datetime.now(UTC)
        raise UsageError(
            f"The checkpoint {checkpoint.name} was a Neon snapshot ({checkpoint.id}), which "
            + ("has expired." if expired else "no longer exists (deleted or pruned)."),
            hint=f"If its moment ({_hhmmss(checkpoint.at or datetime.now(UTC))}) is inside the restore window, "
            f"restore from history there: --at {_iso(checkpoint.at)}. {ELSEWHERE}",
        )
    # Not asked for as `snapshot:…`: the record names the guard run instead (its asked_as stays empty).
    base = SnapshotSource.of(snap, "")
    return SnapshotCheckpointSource(
        **{f.name: getattr(base, f.name) for f in fields(SnapshotSource)},
        run_id=checkpoint.run_id,
        command=checkpoint.command,
        guarded_name=checkpoint.branch_name,
        exit_code=checkpoint.exit_code,
    )
