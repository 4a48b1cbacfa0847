"""One time axis for the question "restore to when?": the restore window, the project's control-plane
operations (paged ``GET /operations``, newest first), branch events (created, reset or restored) and the
incident time the user states.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.timepoint import RestoreWindow

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.neon.models import Project
    from recovery_wizard.recovery.checkpoint import Checkpoint

# A busy project has thousands of operations a week; the newest ones are the ones an incident is near.
MAX_OPERATIONS = 500


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # window-start, operation, branch-created, branch-reset, checkpoint, incident, now
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
) -> list[Event]:
    """``checkpoints``: the guard's restore points (``checkpoint.checkpoints(workdir)``), named by the command
    that followed them, so nobody has to guess the moment before a migration."""
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
    return sorted(events, key=lambda e: e.at, reverse=True)


def render_timeline(events: list[Event], zone: tzinfo) -> str:
    """Newest first, UTC and local, one line each."""
    marks = {
        "incident": "!!",
        "window-start": "|<",
        "now": ">|",
        "branch-created": "+b",
        "branch-reset": "~b",
        "checkpoint": "@@",
    }
    lines = []
    for event in events:
        local = event.at.astimezone(zone)
        lines.append(
            f"{marks.get(event.kind, '  ')} {event.at:%Y-%m-%d %H:%M:%S} UTC  ({local:%H:%M:%S} local)  {event.summary}"
        )
    return "\n".join(lines)
