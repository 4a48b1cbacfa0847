"""Guard checkpoints: made before a guarded command, read back as restore points, pruned when provably ours.

A checkpoint is a Neon branch at the guarded branch's head (named ``guard-<run id>``, expiring, marked with
the run's annotation) or, where the guarded branch is a root, optionally a Neon snapshot. The guard's
journal (command ``guard``) holds everything a restore needs to come back to it, and nothing secret:

- ``begin checkpoint``: kind, name, project id, guarded branch id and name, expires_at;
- ``done checkpoint``: the checkpoint's id (branch or snapshot), its LSN and time;
- ``run start``: the command echoed with its secrets masked.

:func:`checkpoints` is what the timeline and the ``checkpoint:<run id>`` restore source read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.errors import NotFoundError
from recovery_wizard.neon.models import EndpointType
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.journal import Journal, find_run, journals

COMMAND = "guard"
STEP = "checkpoint"


def checkpoint_name(run_id: str) -> str:
    return f"guard-{run_id}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Checkpoint:
    """One restore point a guard made, as its journal records it."""

    run_id: str
    kind: str  # "branch" or "snapshot"
    name: str
    id: str  # the checkpoint branch's or snapshot's id
    lsn: str | None
    at: datetime | None  # the moment it holds (UTC)
    command: str  # the guarded command, secrets masked
    project_id: str
    branch_id: str  # the guarded branch
    branch_name: str
    expires_at: datetime | None
    begun_at: datetime
    exit_code: int | None  # None: the command has not ended (or the guard was killed)
    lost: tuple[str, ...]  # tables that lost more than the threshold while the command ran
    pruned: bool

    @property
    def restore_command(self) -> str:
        return f"recovery-wizard restore --from checkpoint:{self.run_id}"

    @property
    def label(self) -> str:
        """How the timeline and the wizard list it: ``before `prisma migrate deploy`, 21:29:58``."""
        when = self.at.astimezone(UTC).strftime("%H:%M:%S UTC") if self.at else "time unknown"
        return f"before `{self.command}`, {when}"

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "lsn": self.lsn,
            "at": self.at.isoformat() if self.at else None,
            "command": self.command,
            "project_id": self.project_id,
            "branch_id": self.branch_id,
            "branch_name": self.branch_name,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "exit_code": self.exit_code,
            "lost": list(self.lost),
            "pruned": self.pruned,
            "restore_command": self.restore_command,
            "label": self.label,
        }


def from_journal(journal: Journal) -> Checkpoint | None:
    """The checkpoint a guard run made, or None (no checkpoint, or it was never confirmed made)."""
    if journal.command != COMMAND:
        return None
    begin, done = journal.last(STEP, "begin"), journal.done(STEP)
    if begin is None or done is None:
        return None
    start = journal.start
    ran = journal.done("command")
    loss = journal.last("counts", "done")
    return Checkpoint(
        run_id=journal.run_id,
        kind=str(begin.data.get("checkpoint_kind") or "branch"),
        name=str(begin.data.get("name") or ""),
        id=str(done.data.get("id") or ""),
        lsn=done.data.get("lsn"),
        at=_time(done.data.get("at")),
        command=str(start.data.get("guarded") or "") if start else "",
        project_id=str(begin.data.get("project_id") or ""),
        branch_id=str(begin.data.get("branch_id") or ""),
        branch_name=str(begin.data.get("branch_name") or ""),
        expires_at=_time(begin.data.get("expires_at")),
        begun_at=begin.at,
        exit_code=None if ran is None else ran.data.get("exit_code"),
        lost=tuple(str(t) for t in (loss.data.get("lost") or [])) if loss else (),
        pruned=journal.done("prune") is not None,
    )


def checkpoints(workdir: Path, *, warn: Callable[[str], None] | None = None) -> list[Checkpoint]:
    """Every checkpoint the guard made in this app directory, newest first (pruned ones included, marked)."""
    found = []
    for journal in journals(workdir, warn=warn):
        checkpoint = from_journal(journal)
        if checkpoint is not None:
            found.append(checkpoint)
    return found


def find_checkpoint(workdir: Path, run_id: str) -> Checkpoint | None:
    """The checkpoint of run ``run_id`` (what ``--from checkpoint:<run id>`` names)."""
    return from_journal(find_run(workdir, run_id))


# --- making one ---------------------------------------------------------------------------------------


async def make_branch_checkpoint(
    client: NeonClient,
    journal: Journal,
    *,
    project_id: str,
    branch_id: str,
    branch_name: str,
    expires_at: datetime,
) -> Checkpoint:
    """A branch at the head of ``branch_id``, expiring, marked as this run's; journalled before and after.

    No compute: a checkpoint is read only when it is restored from, and a compute would cost time here
    (the guard runs before every migration) and money while it idles. A 423 (another operation runs on the
    project) is waited out by the client's retry policy, as the restore does.
    """
    name = checkpoint_name(journal.run_id)
    journal.append(
        "step",
        "begin",
        STEP,
        checkpoint_kind="branch",
        name=name,
        project_id=project_id,
        branch_id=branch_id,
        branch_name=branch_name,
        expires_at=expires_at.replace(microsecond=0),
    )
    created = await client.create_branch(
        project_id,
        parent_id=branch_id,
        name=name,
        endpoints=(),
        expires_at=expires_at,
        annotation=ownership.marker(journal.run_id),
    )
    await client.wait_for_operations(project_id, created.operations)
    branch = created.branch
    at = branch.parent_timestamp or branch.created_at or datetime.now(UTC)
    journal.append("step", "done", STEP, id=branch.id, lsn=branch.parent_lsn, at=at)
    checkpoint = from_journal(journal)
    assert checkpoint is not None
    return checkpoint


async def make_snapshot_checkpoint(
    client: NeonClient,
    journal: Journal,
    *,
    project_id: str,
    branch_id: str,
    branch_name: str,
    expires_at: datetime,
) -> Checkpoint:
    """A Neon snapshot of a root branch, named for the run; its id in the journal is the proof it is ours."""
    name = checkpoint_name(journal.run_id)
    journal.append(
        "step",
        "begin",
        STEP,
        checkpoint_kind="snapshot",
        name=name,
        project_id=project_id,
        branch_id=branch_id,
        branch_name=branch_name,
        expires_at=expires_at.replace(microsecond=0),
    )
    created = await client.create_snapshot(project_id, branch_id, name=name, expires_at=expires_at)
    await client.wait_for_operations(project_id, created.operations)
    snap = created.snapshot
    journal.append("step", "done", STEP, id=snap.id, lsn=snap.lsn, at=snap.timestamp or snap.created_at)
    checkpoint = from_journal(journal)
    assert checkpoint is not None
    return checkpoint


# --- pruning ------------------------------------------------------------------------------------------


def prunable(found: list[Checkpoint], now: datetime, older_than: timedelta | None) -> list[Checkpoint]:
    """Checkpoints that expired, or (with ``older_than``) were made longer ago than that; not pruned yet."""
    return [
        c
        for c in found
        if not c.pruned and (c.expired(now) or (older_than is not None and c.begun_at <= now - older_than))
    ]


async def why_not_prune(client: NeonClient, checkpoint: Checkpoint) -> list[str] | None:
    """Why the checkpoint cannot be proven ours (empty: proven); None when it is already gone."""
    if checkpoint.kind == "snapshot":
        snaps = {s.id: s for s in await client.snapshots(checkpoint.project_id)}
        snap = snaps.get(checkpoint.id)
        if snap is None:
            return None
        if snap.source_branch_id not in (None, checkpoint.branch_id):
            return [f"it was taken of another branch ({snap.source_branch_id})"]
        return (
            []
            if snap.name == checkpoint.name
            else [f"it is named {snap.name!r} now, not {checkpoint.name!r}"]
        )
    try:
        branch, annotation = await client.branch_annotated(checkpoint.project_id, checkpoint.id)
    except NotFoundError:
        return None
    reasons = []
    marked = annotation.get(ownership.RUN_MARKER)
    if marked != checkpoint.run_id:
        reasons.append(
            "it carries no marker of this guard run" if marked is None else f"it is run {marked}'s"
        )
    if branch.parent_id != checkpoint.branch_id:
        reasons.append("its parent is not the branch the guard protected")
    if branch.default or branch.protected:
        reasons.append("it is the project's default or a protected branch")
    if branch.created_at is not None and branch.created_at < checkpoint.begun_at - ownership.CLOCK_SKEW:
        reasons.append("it was created before the guard run began")
    endpoints = await client.endpoints(checkpoint.project_id, branch.id)
    if any(e.type == EndpointType.READ_WRITE for e in endpoints):
        reasons.append("someone gave it a read-write compute (it may be in use)")
    return reasons


async def delete_checkpoint(client: NeonClient, checkpoint: Checkpoint) -> None:
    if checkpoint.kind == "snapshot":
        ops = await client.delete_snapshot(checkpoint.project_id, checkpoint.id)
        await client.wait_for_operations(checkpoint.project_id, ops)
        return
    try:
        deleted = await client.delete_branch(checkpoint.project_id, checkpoint.id)
    except NotFoundError:
        return
    if deleted is not None:
        await client.wait_for_operations(checkpoint.project_id, deleted.operations)
