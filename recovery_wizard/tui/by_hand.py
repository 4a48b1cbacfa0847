"""The "By hand" line of the why panel for the restore: the real command for this run, not an example.

neonctl's `branches create --parent` reads a bare timestamp as "the default branch at that time"; it has no
`name@time` form for another parent. So a restore of the default branch is shown as neonctl, a restore of
any other branch as the API call the wizard itself makes, and an in-place restore as `branches restore
<branch> ^self@<time>`, which neonctl supports for every branch.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime

from recovery_wizard.neon.models import Branch

API_URL = "https://console.neon.tech/api/v2"


def _stamp(at: datetime | None) -> str:
    if at is None:
        return "<time, RFC 3339 UTC>"
    return at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{at.microsecond // 1000:03d}Z" if at.microsecond else "Z")


def restore_command(
    project_id: str | None,
    branch: Branch | None,
    at: datetime | None,
    *,
    name: str | None = None,
    in_place: bool = False,
) -> str:
    """The command that does this run's restore by hand (placeholders for what is not chosen yet)."""
    project = project_id or "<project id>"
    when = _stamp(at)
    if in_place:
        target = branch.id if branch is not None else "<branch id>"
        backup = f" --preserve-under-name {shlex.quote(name)}" if name else ""
        return f"neonctl branches restore {target} ^self@{when}{backup} --project-id {project}"
    new_name = shlex.quote(name) if name else "<new branch name>"
    if branch is None or branch.default:
        return f"neonctl branches create --project-id {project} --name {new_name} --parent {when}"
    body = json.dumps(
        {
            "branch": {"parent_id": branch.id, "parent_timestamp": when, "name": name or "<new branch name>"},
            "endpoints": [{"type": "read_write"}],
        }
    )
    return (
        f"# neonctl takes a bare timestamp only for the default branch; for {branch.name} use the API:\n"
        f"curl -X POST {API_URL}/projects/{project}/branches "
        '-H "Authorization: Bearer $NEON_API_KEY" -H "Content-Type: application/json" '
        f"-d {shlex.quote(body)}"
    )


def snapshot_restore_command(
    project_id: str | None, snapshot_id: str, branch: Branch | None, *, in_place: bool = False
) -> str:
    """The API call that restores a snapshot by hand: un-finalized beside the branch (look first), or
    finalized into the branch's place (neonctl has no snapshot commands yet)."""
    project = project_id or "<project id>"
    body: dict[str, object] = {"finalize_restore": in_place}
    if branch is not None:
        body["target_branch_id"] = branch.id
    return (
        f"curl -X POST {API_URL}/projects/{project}/snapshots/{snapshot_id}/restore "
        '-H "Authorization: Bearer $NEON_API_KEY" -H "Content-Type: application/json" '
        f"-d {shlex.quote(json.dumps(body))}"
    )
