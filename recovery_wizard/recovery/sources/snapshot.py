"""A Neon snapshot: a root branch's data frozen at a moment, kept past the restore window.

Materialized by restoring the snapshot UN-finalized to a new branch beside the damaged one
(``restoreSnapshot`` with ``finalize_restore: false``): nothing the app uses changes, and the data is
verified first. In place, that preview is then finalized into the damaged branch's place
(``finalizeRestoreBranch``): the damaged branch's computes move to it (hosts stay, sessions restart), it takes
the damaged branch's name, and the damaged branch is kept under the plan's name. The live branch's id changes
(it is the preview's id from then on), so ids are re-read after.

Proving a branch is this run's own: Neon's ``restoreSnapshot`` takes no annotation, and an annotation can
only be set when a branch is created, so the run marker of history restores is not available. A resumed run
adopts a branch only when Neon says it was restored from THIS snapshot (``restored_from``), is a root branch
created after the run's ``begin`` record, and carries the name only this run asked for (branch names are
unique within a project, and the plan refused a name already taken). A person restoring the same snapshot
under the same name within the same minute is the only case this cannot tell apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from recovery_wizard.neon.errors import (
    BadResponseError,
    LockedError,
    NeonError,
    NeonHTTPError,
    NotFoundError,
    OutcomeUnknownError,
)
from recovery_wizard.neon.models import Branch, Snapshot
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.outcome import CancelledError, StepFailedError, UsageError
from recovery_wizard.recovery.sources.base import Made, Source, expiry_clause

if TYPE_CHECKING:
    from pathlib import Path

    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.recovery.plan import Plan
    from recovery_wizard.recovery.runner import Runner, RunResult

log = logging.getLogger("recovery_wizard.sources.snapshot")

LATEST = "latest"
# How many snapshots a "not found" message lists.
LISTED = 10


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class SnapshotSource(Source):
    """One resolved snapshot: what the journal keeps, so a resumed run restores exactly this one."""

    kind: ClassVar[str] = "snapshot"
    previews_in_place: ClassVar[bool] = True

    id: str
    name: str
    taken_at: datetime  # the moment the data is from (Neon's ``timestamp``; else its ``created_at``)
    created_at: datetime | None = None
    lsn: str | None = None
    source_branch_id: str | None = None
    expires_at: datetime | None = None
    asked_as: str = ""  # the text after ``snapshot:`` (``latest``, a name or an id)

    @classmethod
    def of(cls, snapshot: Snapshot, asked_as: str) -> SnapshotSource:
        created = _time(snapshot.created_at)
        taken = _time(snapshot.timestamp) or created
        assert taken is not None
        return cls(
            id=snapshot.id,
            name=snapshot.name,
            taken_at=taken,
            created_at=created,
            lsn=snapshot.lsn,
            source_branch_id=snapshot.source_branch_id,
            expires_at=_time(snapshot.expires_at),
            asked_as=asked_as,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotSource:
        taken = _time(data["taken_at"])
        assert taken is not None
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            taken_at=taken,
            created_at=_time(data.get("created_at")),
            lsn=data.get("lsn"),
            source_branch_id=data.get("source_branch_id"),
            expires_at=_time(data.get("expires_at")),
            asked_as=str(data.get("asked_as") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "taken_at": _iso(self.taken_at),
            "created_at": _iso(self.created_at),
            "lsn": self.lsn,
            "source_branch_id": self.source_branch_id,
            "expires_at": _iso(self.expires_at),
            "asked_as": self.asked_as,
        }

    # --- describing itself ---------------------------------------------------------------------------

    def describe(self, plan: Plan) -> str:
        return f"the snapshot {self.name!r} ({self.id}), data as of {plan.moment.describe()}"

    def why(self) -> str:
        return (
            "A snapshot keeps a root branch's data past the restore window. It is restored to a new branch "
            "first (nothing the app uses changes), verified beside the damaged branch, and only then kept "
            "as the new branch or finalized into the damaged branch's place."
        )

    def record_lines(self, plan: Plan) -> list[str]:
        lines = [
            f"- **Source**: Neon snapshot {self.name!r} (`{self.id}`), data as of {_iso(self.taken_at)}"
            + (f", LSN {self.lsn}" if self.lsn else "")
            + (f", asked for as `snapshot:{self.asked_as}`" if self.asked_as else "")
        ]
        if self.source_branch_id and self.source_branch_id != plan.branch.id:
            lines.append(f"- **Snapshot taken of**: `{self.source_branch_id}` (not {plan.branch.name})")
        return lines

    def restore_lines(self, plan: Plan) -> list[str]:
        what = f"the snapshot {self.name!r} ({self.id}, data as of {plan.moment.describe()})"
        if plan.command == "drill":
            expiry = expiry_clause(plan)
            return [
                f"Restore {what} to the throwaway branch {plan.name!r}, with a read-write compute{expiry}; "
                "wait for Neon's operations."
            ]
        if plan.in_place:
            return [
                f"Restore {what} to the preview branch {plan.preview_name!r} beside {plan.branch.name!r} "
                f"(not finalized: {plan.branch.name!r} is not changed yet); wait for Neon's operations."
            ]
        return [
            f"Restore {what} to the new branch {plan.name!r}, with a read-write compute; wait for Neon's "
            f"operations. {plan.branch.name!r} is not changed."
        ]

    def apply_lines(self, plan: Plan) -> list[str]:
        if not plan.in_place:
            return []
        return [
            f"After a typed confirmation, finalize: {plan.preview_name!r} takes the place of "
            f"{plan.branch.name!r} (its computes move to it and restart; the connection strings stay the "
            f"same) and today's {plan.branch.name!r} is kept as {plan.name!r}. The live branch's id changes."
        ]

    def undo_in_place(self, result: RunResult) -> str:
        plan, backup, live = result.plan, result.backup_branch, result.restore_branch
        assert plan is not None and backup is not None and live is not None
        return (
            f"- Undo the finalize: the damaged state is kept as {backup['name']} (`{backup['id']}`). Restore "
            f"{live.name} (now `{live.id}`) from it: Neon Console → Branches → {live.name} → Restore → from "
            f"{backup['name']}, or `POST …/branches/{live.id}/restore` with `source_branch_id: {backup['id']}`."
        )

    # --- materialize: an un-finalized restore -------------------------------------------------------

    def begin_data(self, plan: Plan, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "snapshot_id": self.id,
            "target_id": plan.branch.id,
            "expires_at": plan.expires_at,
        }

    async def make(self, run: Runner, name: str) -> Made:
        plan = run.plan
        try:
            restored = await run.client.restore_snapshot(
                run.project_id, self.id, name=name, target_branch_id=plan.branch.id, finalize_restore=False
            )
        except NotFoundError as exc:
            raise StepFailedError(
                "restore",
                f"Neon no longer has the snapshot {self.name!r} ({self.id}), or the branch "
                f"{plan.branch.name} it was to restore into: {exc.neon_message or exc}.",
                hint="It may have expired or been deleted since the plan was made: list what is left with "
                "`recovery-wizard backup list` (or the Neon Console → Backup & Restore) and start a new "
                f"`recovery-wizard {plan.command} --new --from snapshot:<id or name>`.",
            ) from None
        except LockedError:
            raise StepFailedError(
                "restore",
                "Neon refused the snapshot restore for now (423 Locked): another operation is running on "
                "the project.",
                hint=f"Wait for it to finish (Neon Console → Operations), then `recovery-wizard {plan.command} "
                "--resume`.",
            ) from None
        except NeonHTTPError as exc:
            if exc.status in (400, 409, 422):
                raise StepFailedError(
                    "restore",
                    f"Neon refused to restore the snapshot {self.name!r} into {plan.branch.name}: "
                    f"{exc.neon_message or exc}.",
                    hint="A snapshot restores into a root branch with no unfinished snapshot restore; "
                    "finalize or delete that one first (Neon Console → Branches).",
                ) from None
            raise
        if plan.expires_at is not None:
            # A drill's branch expires even if the drill is killed; restoreSnapshot cannot say so itself.
            try:
                updated = await run.client.update_branch(
                    run.project_id, restored.branch.id, expires_at=plan.expires_at
                )
                await run.wait(updated.operations, "restore")
            except (OutcomeUnknownError, BadResponseError):
                raise
            except NeonError as exc:
                run.reporter.warn(f"Could not set the drill branch's expiry ({exc}); the drill deletes it.")
        return Made(restored.branch, list(restored.endpoints), list(restored.operations))

    async def why_not_ours(self, run: Runner, branch_id: str) -> tuple[Branch, list[str]]:
        branch, annotation = await run.client.branch_annotated(run.project_id, branch_id)
        begin = run.journal.last("restore", "begin")
        reasons = []
        if branch.restored_from != self.id:
            reasons.append(
                f"it was not restored from the snapshot {self.id}"
                + (f" (but from {branch.restored_from})" if branch.restored_from else "")
            )
        marked = annotation.get(ownership.RUN_MARKER)
        if marked is not None and marked != run.journal.run_id:
            reasons.append(f"it was made by another recovery-wizard run ({marked})")
        if branch.parent_id is not None:
            reasons.append(f"it has a parent ({branch.parent_id}); a snapshot restore makes a root branch")
        begun_at = begin.at if begin is not None else None
        if begun_at is not None and (
            branch.created_at is None or branch.created_at < begun_at - ownership.CLOCK_SKEW
        ):
            reasons.append("it was created before this run began")
        if branch.restore_status == "restored" and (branch.default or branch.protected):
            reasons.append(
                "it is the project's " + ("default" if branch.default else "protected") + " branch"
            )
        return branch, reasons

    def proof(self, workdir: Path) -> tuple[Path, dict[str, Any]] | None:
        from recovery_wizard.recovery.backup.backupdir import resolve_dir

        return resolve_dir(workdir, None), {"snapshot_id": self.id}

    # --- in place: finalize ----------------------------------------------------------------------------

    async def put_in_place(self, run: Runner) -> None:
        plan, journal, result, client = run.plan, run.journal, run.result, run.client
        run.result.step = "finalize"
        done = journal.done("finalize")
        if done is not None:
            result.restore_branch = await client.branch(run.project_id, str(done.data["restored_id"]))
            result.backup_branch = {"id": str(done.data["old_id"]), "name": str(done.data["old_name"])}
            result.endpoint_id = None
            return
        preview = result.restore_branch
        assert preview is not None  # the restore step made it
        run.reporter.step("finalize", run.step_title("finalize"))
        begun = journal.begun_not_done("finalize")
        call = True
        if begun is None:
            if not run.yes and not await run.prompter.type_to_confirm(
                f"This puts the snapshot's data in the place of {plan.branch.name!r}: its computes move to "
                f"{preview.name!r} (they restart), which takes the name {plan.branch.name!r}; today's "
                f"{plan.branch.name!r} is kept as {plan.name!r}.",
                plan.branch.name,
            ):
                raise CancelledError(
                    f"The finalize was cancelled: {plan.branch.name} was not changed; the verified data is "
                    f"on {preview.name} ({preview.id})."
                )
            journal.append(
                "step",
                "begin",
                "finalize",
                restored_id=preview.id,
                target_id=plan.branch.id,
                old_name=plan.name,
            )
        else:
            run.reporter.info(f"Resuming: was {preview.name} finalized before the interruption?")
            call = (await client.branch(run.project_id, preview.id)).restore_status == "restored"
        if call:
            try:
                operations = await client.finalize_restore(run.project_id, preview.id, name=plan.name)
            except (OutcomeUnknownError, BadResponseError):
                run.reporter.warn("Neon's answer was lost; checking whether the finalize happened…")
                if (await client.branch(run.project_id, preview.id)).restore_status == "restored":
                    raise StepFailedError(
                        "finalize",
                        f"Neon's answer to finalizing {preview.name} was lost and it is not finalized.",
                        hint=f"Check the project's operations in the Neon Console, then run "
                        f"`recovery-wizard restore --resume {journal.run_id}`.",
                    ) from None
                await run.wait_for_branch(preview.id)
            except NeonHTTPError as exc:
                if exc.status == 423:
                    raise StepFailedError(
                        "finalize",
                        "Neon refused the finalize for now (423 Locked): another operation is running.",
                        hint="Wait for it to finish, then `recovery-wizard restore --resume`.",
                    ) from None
                raise StepFailedError(
                    "finalize",
                    f"Neon refused to finalize {preview.name} ({preview.id}) into {plan.branch.name}'s "
                    f"place: {exc.neon_message or exc}.",
                    hint=f"{plan.branch.name} was not changed. Finalize only works on a branch restored from a "
                    "snapshot and not finalized yet (Neon Console → Branches shows its restore status); "
                    f"fix what Neon says, then `recovery-wizard restore --resume {journal.run_id}`.",
                ) from None
            else:
                run.reporter.info(f"Finalizing {preview.name} into {plan.branch.name}'s place…")
                await run.wait(operations, "finalize")
        # Finalize changes which id is the live branch: read both again, never reuse the plan's.
        live = await client.branch(run.project_id, preview.id)
        old = await client.branch(run.project_id, plan.branch.id)
        if live.restore_status != "finalized" and live.name != plan.branch.name:
            raise StepFailedError(
                "finalize",
                f"Neon answered the finalize, but {preview.id} is {live.name!r} ({live.restore_status}).",
                hint="Check the branches in the Neon Console, then `recovery-wizard restore --resume`.",
            )
        result.restore_branch = live
        result.backup_branch = {"id": old.id, "name": old.name}
        result.endpoint_id = None  # the preview's read-only compute: the app's computes are now its own
        run.forget_uris()
        journal.append(
            "step",
            "done",
            "finalize",
            restored_id=live.id,
            live_name=live.name,
            old_id=old.id,
            old_name=old.name,
        )
        run.reporter.info(
            f"{live.name} is now {live.id} with the snapshot's data; the damaged state is kept as "
            f"{old.name} ({old.id})."
        )


async def resolve_snapshot(
    client: NeonClient,
    project_id: str,
    branch: Branch,
    ref: str,
    *,
    snapshots: list[Snapshot] | None = None,
) -> SnapshotSource:
    """``snapshot:<ref>`` as one snapshot (``latest``: the newest of ``branch``).

    Resolved once, here: the journal keeps the result, so ``--resume`` never picks a newer "latest".
    ``snapshots``: the project's, when the caller read them already (with the project and its branches).
    """
    if snapshots is None:
        snapshots = await client.snapshots(project_id)

    def listed() -> str:
        return "; ".join(f"{s.name!r} ({s.id}, {s.timestamp or s.created_at})" for s in snapshots[:LISTED])

    if ref == LATEST:
        own = [s for s in snapshots if s.source_branch_id == branch.id]
        if not own:
            raise UsageError(
                f"There is no snapshot of {branch.name!r} to restore from.",
                hint="Take one with `recovery-wizard backup` or in the Neon Console (Backup & Restore), or "
                + (
                    f"name another: --from snapshot:<id or name>; snapshots: {listed()}."
                    if snapshots
                    else "use --from history with --at for a moment inside the restore window."
                ),
            )
        chosen = max(own, key=lambda s: (_time(s.timestamp) or _time(s.created_at), s.created_at))
        return SnapshotSource.of(chosen, ref)
    matches = [s for s in snapshots if s.id == ref] or [s for s in snapshots if s.name == ref]
    if not matches:
        raise UsageError(
            f"There is no snapshot {ref!r} (by id or exact name) in this project.",
            hint=f"Snapshots: {listed()}."
            if snapshots
            else "The project has no snapshots: take one with "
            "`recovery-wizard backup`, or restore from history (--at).",
        )
    if len(matches) > 1:
        ids = ", ".join(f"{s.id} ({s.timestamp or s.created_at})" for s in matches)
        raise UsageError(
            f"{len(matches)} snapshots are named {ref!r}: {ids}.",
            hint=f"Pass the one you mean by id: --from snapshot:{matches[0].id}.",
        )
    return SnapshotSource.of(matches[0], ref)
