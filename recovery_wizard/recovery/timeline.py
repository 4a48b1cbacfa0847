"""One time axis for the question "restore to when?": the restore window, the project's control-plane
operations (paged ``GET /operations``, newest first), branch events (created, reset or restored), Neon
snapshots and local backup files (by their manifests) and the incident time the user states.

A moment before the window is not a dead end when a backup from before it exists: :func:`backups_before`
names the newest ones, and :func:`offer_backups` turns them into the hint of a refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.timepoint import RestoreWindow

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.neon.models import Project
    from recovery_wizard.recovery.backup.listing import BackupEntry
    from recovery_wizard.recovery.checkpoint import Checkpoint

# A busy project has thousands of operations a week; the newest ones are the ones an incident is near.
MAX_OPERATIONS = 500


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # window-start, operation, branch-created, branch-reset, snapshot, backup-file, checkpoint,
    # incident, now
    summary: str
    ref: str = ""  # an id: operation, branch

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "summary": self.summary, "ref": self.ref}


async def build_timeline(
    client: NeonClient,
    project: Project,
    window: RestoreWindow,
    *,
    incident: datetime | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    backups: list[BackupEntry] | None = None,
) -> list[Event]:
    """The events, newest first. ``backups`` (snapshots and files, see :func:`project_backups`) are shown
    whatever their age: those before the window are what a restore from outside it uses. ``checkpoints``: the
    guard's restore points (``checkpoint.checkpoints(workdir)``), named by the command that followed them, so
    nobody has to guess the moment before a migration."""
    events = [
        Event(window.earliest, "window-start", "oldest restorable moment"),
        Event(window.now, "now", "now"),
    ]
    if incident is not None:
        events.append(Event(incident, "incident", "the incident (as you stated it)"))
    for made in checkpoints:
        if made.at is not None and made.project_id == project.id and not made.pruned:
            events.append(
                Event(made.at, "checkpoint", f"checkpoint {made.label}: {made.restore_command}", made.run_id)
            )

    async def operations() -> list[Event]:
        found: list[Event] = []
        async for op in client.iter_operations(project.id, page_size=200):
            if op.created_at is None or op.created_at < window.earliest or len(found) >= MAX_OPERATIONS:
                break
            where = f" on {op.branch_id}" if op.branch_id else ""
            found.append(Event(op.created_at, "operation", f"{op.action} ({op.status}){where}", op.id))
        return found

    # Both lists at once: the restore reads its timeline while it verifies, and waits for it.
    operation_events, branches = await asyncio.gather(operations(), client.branches(project.id))
    events += operation_events
    for branch in branches:
        if branch.created_at is not None and branch.created_at >= window.earliest:
            events.append(
                Event(branch.created_at, "branch-created", f"branch {branch.name} created", branch.id)
            )
        if branch.last_reset_at is not None and branch.last_reset_at >= window.earliest:
            events.append(
                Event(branch.last_reset_at, "branch-reset", f"branch {branch.name} reset/restored", branch.id)
            )
    for entry in backups or ():
        if entry.kind == "snapshot":
            events.append(Event(entry.at, "snapshot", f"Neon snapshot {entry.name}", entry.ref))
        else:
            events.append(Event(entry.at, "backup-file", f"backup file {entry.name}", entry.ref))
    return sorted(events, key=lambda e: e.at, reverse=True)


async def project_backups(client: NeonClient, project_id: str, backups_dir: Path | None) -> list[BackupEntry]:
    """The project's snapshots and the local backup files of ``backups_dir`` (when it exists), newest first."""
    from recovery_wizard.recovery.backup.listing import all_backups

    snapshots = await client.snapshots(project_id)

    def read_files() -> list[BackupEntry]:
        directory = backups_dir if backups_dir is not None and backups_dir.is_dir() else None
        entries = all_backups(directory, snapshots)
        # A file of another project's backup is not this project's past.
        return [e for e in entries if e.kind == "snapshot" or _file_of(e, project_id)]

    return await asyncio.to_thread(read_files)


def _file_of(entry: BackupEntry, project_id: str) -> bool:
    from recovery_wizard.recovery.backup.manifest import read_manifest

    manifest = read_manifest(Path(entry.ref))
    return manifest is not None and manifest.project.get("id") == project_id


def backups_before(moment: datetime, entries: list[BackupEntry], *, limit: int = 3) -> list[BackupEntry]:
    """The newest snapshots or backup files holding data from at or before ``moment`` (newest first)."""
    from recovery_wizard.recovery.backup.listing import backups_before as before

    return before(moment, entries, limit=limit)


def describe_offer(moment: datetime, candidates: list[BackupEntry]) -> str:
    """A refusal's hint naming the backups to restore from instead (empty when there are none)."""
    if not candidates:
        return ""
    named = "; ".join(f"{c.source} ({c.name}, {c.at:%Y-%m-%d %H:%M} UTC)" for c in candidates)
    return (
        f"Backups from before {moment:%Y-%m-%d %H:%M} UTC exist, newest first: {named}. Restore from one "
        f"with `recovery-wizard restore --from {candidates[0].source}`."
    )


async def offer_backups(
    client: NeonClient, project_id: str, moment: datetime, backups_dir: Path | None
) -> str:
    """:func:`describe_offer` for ``moment``, reading the snapshots and files; empty if none or unreadable."""
    from recovery_wizard.errors import RecoveryError

    try:
        entries = await project_backups(client, project_id, backups_dir)
    except RecoveryError:
        return ""  # the refusal stands on its own; the offer is a help, not a requirement
    return describe_offer(moment, backups_before(moment, entries))


def render_timeline(events: list[Event], zone: tzinfo) -> str:
    """Newest first, UTC and local, one line each."""
    marks = {
        "incident": "!!",
        "window-start": "|<",
        "now": ">|",
        "branch-created": "+b",
        "branch-reset": "~b",
        "checkpoint": "@@",
        "snapshot": "[s",
        "backup-file": "[f",
    }
    lines = []
    for event in events:
        local = event.at.astimezone(zone)
        lines.append(
            f"{marks.get(event.kind, '  ')} {event.at:%Y-%m-%d %H:%M:%S} UTC  ({local:%H:%M:%S} local)  {event.summary}"
        )
    return "\n".join(lines)
