"""Neon history at a moment: the restore window's copy-on-write past, the source the runbook began with.

Materialized as a branch of the damaged branch at the moment (``create_branch`` with ``parent_timestamp``),
marked with the run's annotation so a resumed run can prove it made it. In place, Neon restores the damaged
branch itself to the moment and keeps its current state as a backup branch (``preserve_under_name``): no
preview branch, so the damaged data is measured first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from recovery_wizard.neon.errors import BadResponseError, OutcomeUnknownError
from recovery_wizard.neon.models import Branch, EndpointType
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.outcome import CancelledError, StepFailedError
from recovery_wizard.recovery.sources.base import Made, Source, children_clause, expiry_clause

if TYPE_CHECKING:
    from recovery_wizard.recovery.plan import Plan
    from recovery_wizard.recovery.runner import Runner, RunResult


class HistorySource(Source):
    """The damaged branch as it was at ``plan.moment`` (the moment lives in the plan: nothing else here)."""

    kind: ClassVar[str] = "history"
    previews_in_place: ClassVar[bool] = False

    # Stateless: every instance is the same source (plans compare equal after a journal round trip).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, HistorySource)

    def __hash__(self) -> int:
        return hash(self.kind)

    def describe(self, plan: Plan) -> str:
        return f"{plan.branch.name!r} as it was at {plan.moment.describe()}"

    def why(self) -> str:
        return (
            "Neon keeps every change within the restore window; a branch at a moment is an exact copy "
            "then, made in seconds whatever the size."
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def record_lines(self, plan: Plan) -> list[str]:
        return [f"- **Source**: Neon history (the restore window) at {plan.moment.rfc3339()}"]

    def restore_lines(self, plan: Plan) -> list[str]:
        moment = plan.moment.describe()
        if plan.command == "drill":
            expiry = expiry_clause(plan)
            return [
                f"Create the throwaway branch {plan.name!r} from {plan.branch.name!r} as it was at {moment}, "
                f"with a read-write compute{expiry}; wait for Neon's operations."
            ]
        if plan.in_place:
            moved = children_clause(plan)
            return [
                f"Measure the damaged data on {plan.branch.name!r} now (read-only), for comparison.",
                f"Restore {plan.branch.name!r} IN PLACE to {moment}. Its current state is kept as the branch "
                f"{plan.name!r}{moved}. Connections to {plan.branch.name!r} drop briefly; its connection "
                "strings stay the same.",
            ]
        return [
            f"Create the branch {plan.name!r} from {plan.branch.name!r} as it was at {moment}, with a "
            f"read-write compute; wait for Neon's operations. {plan.branch.name!r} is not changed."
        ]

    def undo_in_place(self, result: RunResult) -> str:
        plan, backup = result.plan, result.backup_branch
        assert plan is not None and backup is not None
        return (
            f"- Undo the in-place restore: restore {plan.branch.name} from the backup branch "
            f"{backup['name']} (Neon Console → Branches → {plan.branch.name} → Restore → "
            f"from {backup['name']}, or `POST …/branches/{plan.branch.id}/restore` with "
            f"`source_branch_id: {backup['id']}`)."
        )

    # --- materialize: a branch at the moment ---------------------------------------------------------

    def begin_data(self, plan: Plan, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "parent_id": plan.branch.id,
            "at": plan.moment.utc,
            "expires_at": plan.expires_at,
        }

    async def make(self, run: Runner, name: str) -> Made:
        plan = run.plan
        created = await run.client.create_branch(
            run.project_id,
            parent_id=plan.branch.id,
            name=name,
            parent_timestamp=plan.moment.utc,
            endpoints=[EndpointType.READ_WRITE],
            expires_at=plan.expires_at,
            # The run's marker, kept by Neon: what lets a resumed run prove the branch is its own.
            annotation=ownership.marker(run.journal.run_id),
        )
        return Made(created.branch, list(created.endpoints), list(created.operations))

    async def why_not_ours(self, run: Runner, branch_id: str) -> tuple[Branch, list[str]]:
        branch, annotation = await run.client.branch_annotated(run.project_id, branch_id)
        begin = run.journal.last("restore", "begin")
        return branch, ownership.why_not_ours(
            branch,
            annotation,
            run_id=run.journal.run_id,
            parent_id=run.plan.branch.id,
            moment=run.plan.moment.utc,
            begun_at=begin.at if begin is not None else None,
        )

    # --- in place: Neon's restore with a backup --------------------------------------------------------

    def point_words(self, plan: Plan) -> str:
        """The point the branch is restored to, in words (the confirmation and the progress line)."""
        return plan.moment.describe()

    def restore_from(self, plan: Plan) -> dict[str, Any]:
        """What Neon's restore is asked to restore from: the branch's own history at the moment."""
        return {"source_branch_id": plan.branch.id, "source_timestamp": plan.moment.utc}

    async def put_in_place(self, run: Runner) -> None:
        plan, journal, result = run.plan, run.journal, run.result
        done = journal.done("restore")
        if done is not None:
            result.restore_branch = await run.client.branch(run.project_id, plan.branch.id)
            result.backup_branch = {"id": str(done.data["backup_id"]), "name": plan.name}
            return
        if journal.begun_not_done("restore") is None:
            # Before the first write (or again on resume: the data is still the damaged data).
            await run.measure_damaged()
        run.reporter.step("restore", run.step_title("restore"))
        backup: Branch | None = None
        if journal.begun_not_done("restore") is not None:
            run.reporter.info(f"Resuming: looking for the backup {plan.name!r} of the interrupted restore.")
            backup = await run.reconcile(plan.name)
            if backup is not None:
                backup = await self._adopt_backup(run, backup)
        else:
            if not run.yes and not await run.prompter.type_to_confirm(
                f"This overwrites every database on {plan.branch.name!r} with its state at "
                f"{self.point_words(plan)}.",
                plan.branch.name,
            ):
                raise CancelledError("The in-place restore was cancelled; nothing was changed.")
            journal.append(
                "step",
                "begin",
                "restore",
                target_id=plan.branch.id,
                at=plan.moment.utc,
                preserve_under_name=plan.name,
            )
        if backup is None:
            try:
                answer = await run.client.restore_branch(
                    run.project_id, plan.branch.id, preserve_under_name=plan.name, **self.restore_from(plan)
                )
            except (OutcomeUnknownError, BadResponseError):
                run.reporter.warn("Neon's answer was lost; checking whether the restore happened…")
                backup = await run.reconcile(plan.name)
                if backup is not None:
                    backup = await self._adopt_backup(run, backup)
                if backup is None:
                    raise StepFailedError(
                        "restore",
                        "Neon's answer to the in-place restore was lost and its backup branch does not exist.",
                        hint="Check the project's operations in the Neon Console, then run `restore --resume`.",
                    ) from None
            else:
                run.reporter.info(f"Restoring {plan.branch.name} in place to {self.point_words(plan)}…")
                await run.wait(answer.operations, "restore")
                backup = await run.find_branch(plan.name)
        if backup is None:
            raise StepFailedError(
                "restore", f"The restore finished but its backup branch {plan.name!r} was not found."
            )
        result.restore_branch = await run.client.branch(run.project_id, plan.branch.id)
        result.backup_branch = {"id": backup.id, "name": backup.name}
        # The branch's roles are now as they were at the moment (a password may differ): ask again.
        run.forget_uris()
        journal.append("step", "done", "restore", backup_id=backup.id, backup_name=backup.name)
        run.reporter.info(
            f"{plan.branch.name} is restored; its old state is kept as {backup.name} ({backup.id})."
        )

    async def _adopt_backup(self, run: Runner, found: Branch) -> Branch:
        """The in-place restore's backup found by name: adopt it only if the restore provably made it."""
        target = await run.client.branch(run.project_id, run.plan.branch.id)
        begin = run.journal.last("restore", "begin")
        assert begin is not None  # a backup is looked for only after the restore's begin record
        reasons = ownership.why_not_our_backup(found, target, begun_at=begin.at)
        if reasons:
            raise StepFailedError(
                "restore",
                f"A branch named {found.name!r} ({found.id}) exists, but this run cannot prove it is the backup "
                f"its in-place restore of {target.name} made: {'; '.join(reasons)}. It was not adopted, and "
                f"{target.name} was not restored by this run.",
                hint=f"If {found.name} is someone's copy, keep it and rename it (Neon Console → Branches), then "
                "run `recovery-wizard restore --resume`; or start a new restore with another --name.",
            )
        return found
