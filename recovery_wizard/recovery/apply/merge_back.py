"""Merge back: bring only the lost rows back into the live branch and keep every write made since (issue 14).

From ANY source that materializes a branch (the source is never asked what kind it is):

1. ``restore`` (journalled by :func:`materialize_step`): the past becomes a branch (a read-only compute is
   enough), marked with the run's annotation and kept until ``KEEP_PAST`` as proof of what was merged.
2. ``merge-plan``: diff the past against the live (damaged) branch, read-only on both; show the plan and its
   conflicts. ``--dry-run`` stops here and deletes the past branch again: no branch is left, nothing is
   written to the live branch (not even the checkpoint or the merge's ledger).
3. Confirmation (``--yes`` answers it), then the role's rights (a refusal is exit 2, before any write).
4. ``checkpoint``: a branch at the head of the live branch, named for the run, marked, expiring after
   ``KEEP_CHECKPOINT``, so the merge itself can be undone (reset the live branch to it).
5. ``merge``: the plan in ONE transaction on the live branch (recovery/merge/apply.py), idempotent per run
   id through the ledger written in that transaction.
6. ``verify`` (this strategy's own): every re-inserted row is there, every row added since still is, the
   ``--check``s pass on the live branch; row counts before and after side by side.

The app's env files and Prisma are not touched: the data comes back to where the app already points.

Resume: ``done`` records are reused; a ``checkpoint`` begun but not done is looked for by name and adopted
only when its marker, parent and creation time prove it is this run's; a ``merge`` begun but not done asks
the ledger (``merged``) whether it committed: yes → done, no → nothing of it was written (PostgreSQL rolled
the transaction back), so the merge is planned again and applied. Never a partial merge.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.neon.errors import BadResponseError, NeonError, NotFoundError, OutcomeUnknownError
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery.alongside import alongside
from recovery_wizard.recovery.apply.materialize import materialize_step
from recovery_wizard.recovery.outcome import (
    CancelledError,
    StepFailedError,
    UsageError,
    VerificationFailedError,
)

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.neon.models import Branch
    from recovery_wizard.recovery.journal import Record
    from recovery_wizard.recovery.merge import MergeOptions, MergePlan
    from recovery_wizard.recovery.plan import Plan, RunOptions
    from recovery_wizard.recovery.runner import Runner, RunResult
    from recovery_wizard.recovery.ui import Prompter, Reporter
    from recovery_wizard.recovery.verify import Measurement
    from recovery_wizard.redact import Secret

# The past branch proves what was merged; the checkpoint lets the merge be undone. Both expire by
# themselves so a forgotten run costs nothing after a week.
KEEP_PAST: Final = timedelta(days=7)
KEEP_CHECKPOINT: Final = timedelta(days=7)
# A dry run's past branch is deleted at its end; the expiry is the safety net if it is killed first.
DRY_RUN_TTL: Final = timedelta(hours=1)
DRY_RUN_COMMAND: Final = "merge-dry-run"


def checkpoint_name(branch_name: str, now: datetime) -> str:
    return f"{branch_name}-before-merge-{now:%Y-%m-%dT%H-%M-%SZ}"


def merge_options(plan: Plan) -> MergeOptions:
    from recovery_wizard.recovery.merge import MergeOptions

    given = plan.merge or {}
    tables = given.get("tables")
    return MergeOptions(
        tables=list(tables) if tables else None,
        revert_changed=list(given.get("revert_changed") or []),
        rules=dict(given.get("rules") or {}),
    )


def merge_actions(plan: Plan) -> list[str]:
    """The plan's lines after the source made the past branch (Plan.actions calls it)."""
    given = plan.merge or {}
    live = plan.branch.name
    expiry = (
        f" (kept until {plan.expires_at:%Y-%m-%d %H:%M} UTC as proof of what was merged)"
        if plan.expires_at
        else ""
    )
    scope = f" for the tables {', '.join(given['tables'])}" if given.get("tables") else ""
    reverts = (
        f"; revert rows changed since in {', '.join(given['revert_changed'])}"
        if given.get("revert_changed")
        else ""
    )
    checks = f" and run {len(plan.checks)} check(s) on {live!r}" if plan.checks else ""
    return [
        f"Diff {plan.name!r}{expiry} against the live {live!r}{scope}, read-only on both, and show the "
        "merge plan: the rows deleted since to re-insert, the conflicts left out (each with its rule). "
        "A dry run stops here and deletes the past branch again.",
        f"After your confirmation: check the role may write what the plan needs, then make the checkpoint "
        f"branch {given.get('checkpoint_name')!r} at the head of {live!r} (expires in "
        f"{KEEP_CHECKPOINT.days} days) so the merge can be undone.",
        f"Merge in ONE transaction on {live!r}: re-insert the lost rows in foreign-key order{reverts}, move "
        "sequences past the highest id. Rows added since are never deleted; a conflict found then rolls it "
        "all back.",
        f"Verify: every re-inserted row is in {live!r}, every row added since still is{checks}.",
        "Env files and Prisma: nothing to change (the data comes back to where the app already points).",
        "Write the incident record (report.md): what came back per table, what was left out and why, and "
        "how to undo the merge.",
    ]


def why_not_our_checkpoint(
    branch: Branch, annotation: dict[str, str], *, run_id: str, parent_id: str, begun_at: datetime
) -> list[str]:
    """Why ``branch`` cannot be proven to be the checkpoint run ``run_id`` made (empty: proven)."""
    # Made at the live branch's head: no point of its history to check.
    return ownership.why_not_ours(branch, annotation, run_id=run_id, parent_id=parent_id, begun_at=begun_at)


def undo_lines(result: RunResult) -> list[str]:
    """How to undo a merge (Markdown list items): reset the live branch to the checkpoint."""
    plan, merge = result.plan, result.merge or {}
    checkpoint = merge.get("checkpoint")
    if plan is None or not checkpoint:
        return []
    live, cp = plan.branch, checkpoint
    when = cp.get("at") or "the checkpoint"
    return [
        f"- Undo the merge: reset {live.name} to the checkpoint {cp['name']} (`{cp['id']}`, {live.name} as it "
        f"was just before the merge, at {when}). This also drops every write made to {live.name} after "
        "the merge. Neon Console → Branches → "
        f"{live.name} → Restore → from {cp['name']}; or `neonctl branches restore {live.id} {cp['id']} "
        f"--project-id {plan.project.id} --preserve-under-name {live.name}_merged`; or, while it is inside "
        f"the restore window, `recovery-wizard restore --strategy in-place --at {when}`.",
        f"- The checkpoint expires on {cp.get('expires_at')}; the past branch {merge.get('past', {}).get('name')} "
        f"(what was merged from) on {merge.get('past', {}).get('expires_at')}. Delete them sooner with "
        "`neonctl branches delete <id>` once the merge is settled.",
    ]


class MergeBack:
    name = "merge-back"

    def __init__(self) -> None:
        self.plan: MergePlan | None = None  # the reviewed plan (in memory: it holds the rows it writes)
        self.before: Measurement | None = None  # the live branch measured before the merge

    # --- the runner's hooks -----------------------------------------------------------------------------

    async def restore(self, run: Runner, *, dry_run: bool = False) -> None:
        await materialize_step(run, run.plan.name, read_write=False)
        result = run.result
        assert result.restore_branch is not None
        result.merge = result.merge or {}
        result.merge["past"] = {
            "id": result.restore_branch.id,
            "name": result.restore_branch.name,
            "expires_at": _iso(run.plan.expires_at),
        }
        done = run.journal.done("merge")
        if done is not None:
            self._restore_from_journal(run)
            return
        live_url = await run._uri(run.plan.branch.id, None, pooled=False)
        if run.journal.begun_not_done("merge") is not None:
            from recovery_wizard.recovery import merge

            committed = await merge.merged(live_url, run.journal.run_id)
            self._restore_from_journal(run)
            if committed is not None:
                run.reporter.info("Resuming: the interrupted merge had committed; it is not applied again.")
                self._merged(run, committed.to_dict())
                return
            run.reporter.info(
                "Resuming: the interrupted merge never committed, so none of it was written. Planning it again."
            )
        await self._plan(run, live_url)
        assert self.plan is not None
        if dry_run:
            return
        if self.plan.inserts + self.plan.reverts == 0:
            run.reporter.info(
                "Nothing to merge back: no lost row can be re-inserted. The live branch is not changed."
            )
            run.journal.append("step", "done", "merge", nothing=True, run_id=run.journal.run_id)
            result.merge["result"] = {"inserted": {}, "reverted": {}, "nothing": True}
            return
        if not run.yes and not await run.prompter.confirm(
            f"Merge {self.plan.inserts} row(s) back into {run.plan.branch.name!r} (and revert "
            f"{self.plan.reverts})? Rows added since are kept.",
            default=False,
        ):
            raise CancelledError(f"The merge was cancelled; {run.plan.branch.name} was not changed.")
        await self._check_rights(run, live_url)
        await self._checkpoint(run)
        await self._apply(run, live_url)

    async def finish(self, run: Runner) -> None:
        return None

    async def verify(self, run: Runner) -> None:
        """After the merge: every row back, every row added since kept, the checks pass on the live branch."""
        from recovery_wizard.recovery import verify
        from recovery_wizard.recovery.runner import STEP_INFO, render_verification

        run.result.step = "verify"
        journal, result = run.journal, run.result
        recorded = journal.done("timeline")
        if recorded is not None:
            result.timeline = list(recorded.data.get("events", []))
        done = journal.done("verify")
        if done is not None:
            result.verification = dict(done.data["verification"])
            result.merge = {**(result.merge or {}), "check": done.data.get("merge_check")}
            if not done.data.get("ok", False):
                raise VerificationFailedError(_failure(result))
            return
        if (result.merge or {}).get("result", {}).get("nothing"):
            result.skipped["verify"] = "nothing was merged"
            return
        run.reporter.step("verify", STEP_INFO["verify"].title)
        live_url = await run._uri(run.plan.branch.id, None, pooled=False)
        # The project's events around the moment, for the record, read while the data is checked.
        async with alongside(run._collect_timeline()) as timeline:
            after, merge_check, merge_ok = await self._check(run, live_url)
            await timeline
        verification = verify.compare(self.before, after, run.plan.checks)
        result.verification = verification.to_dict()
        result.merge = {**(result.merge or {}), "check": merge_check}

        run.reporter.show(
            f"Verification ({run.plan.branch.name} before and after the merge)",
            render_verification(verification),
        )
        ok = verification.ok and merge_ok
        journal.append(
            "step",
            "done",
            "verify",
            ok=ok,
            verification=result.verification,
            merge_check=merge_check,
            lost_writes=result.lost,
        )
        if not ok:
            raise VerificationFailedError(_failure(result))

    async def _check(self, run: Runner, live_url: Secret) -> tuple[Measurement, dict[str, Any], bool]:
        """The live branch measured after the merge, and the merge's own check (its dict and verdict)."""
        from recovery_wizard.recovery import merge, verify

        if self.plan is not None:
            after, check = await asyncio.gather(
                verify.measure(live_url, run.plan.checks), merge.verify_merge(live_url, self.plan)
            )
            return after, check.to_dict(), check.ok
        # Resumed after the merge committed: the reviewed plan's rows are gone with the killed process.
        # Diff again: every row deleted since is now back, or is one of the conflicts left out.
        result = run.result
        assert result.restore_branch is not None
        past_url = await run._uri(result.restore_branch.id, result.endpoint_id, pooled=False)
        after, fresh = await asyncio.gather(
            verify.measure(live_url, run.plan.checks),
            merge.plan_merge(past_url, live_url, merge_options(run.plan)),
        )
        ok = fresh.inserts == 0 and fresh.reverts == 0
        return (
            after,
            {
                "ok": ok,
                "how": "diffed again after a resume: rows still to re-insert or revert",
                "still_to_insert": fresh.inserts,
                "still_to_revert": fresh.reverts,
            },
            ok,
        )

    # --- the steps -------------------------------------------------------------------------------------

    async def _plan(self, run: Runner, live_url: Secret) -> None:
        from recovery_wizard.recovery import merge, verify

        run.result.step = "merge-plan"
        run.reporter.step("merge-plan", "Plan the merge")
        result = run.result
        assert result.restore_branch is not None
        past_url = await run._uri(result.restore_branch.id, result.endpoint_id, pooled=False)
        try:
            planned, self.before, lost = await asyncio.gather(
                merge.plan_merge(past_url, live_url, merge_options(run.plan)),
                verify.measure(live_url, run.plan.checks),
                run._lost(live_url),
            )
        except merge.MergeError as exc:
            # Bad input found against the branches' catalogs (a table neither has): nothing was written
            # to the live branch. The past branch expires by itself.
            raise UsageError(str(exc), hint=exc.hint) from None
        self.plan = planned
        result.lost = [r.to_dict() for r in lost]
        summary = planned.to_dict()
        result.merge = {**(result.merge or {}), "plan": summary}
        run.reporter.show("Merge plan", planned.render())
        if planned.conflicts:
            run.reporter.warn(
                f"{len(planned.conflicts)} conflict(s) are left out of the merge (each named above and in "
                "the record); set a rule per table with --rule TABLE=skip|keep-live|take-past."
            )
        run.journal.append("step", "done", "merge-plan", plan=summary, lost_writes=result.lost)

    async def _check_rights(self, run: Runner, live_url: Secret) -> None:
        from recovery_wizard.recovery import merge

        assert self.plan is not None
        try:
            await merge.check_rights(live_url, self.plan)
        except merge.MergeRefusedError as exc:
            raise UsageError(str(exc), hint=exc.hint) from None

    async def _checkpoint(self, run: Runner) -> None:
        """A branch at the head of the live branch, before the merge writes: the merge's undo."""
        run.result.step = "checkpoint"
        plan, journal, result = run.plan, run.journal, run.result
        name = str((plan.merge or {}).get("checkpoint_name"))
        done = journal.done("checkpoint")
        if done is not None:
            result.merge = {**(result.merge or {}), "checkpoint": _checkpoint_dict(done.data)}
            return
        run.reporter.step("checkpoint", "Checkpoint the live branch")
        made: Branch | None = None
        begun: Record | None = journal.begun_not_done("checkpoint")
        if begun is not None:
            run.reporter.info(f"Resuming: looking for the checkpoint {name!r} the interrupted run asked for.")
            found = await run.reconcile(name)
            if found is not None:
                made = await self._adopt_checkpoint(run, found, begun.at)
        else:
            begun = journal.append(
                "step",
                "begin",
                "checkpoint",
                name=name,
                parent_id=plan.branch.id,
                expires_at=(datetime.now(UTC) + KEEP_CHECKPOINT).replace(microsecond=0),
            )
        assert begun is not None
        if made is None:
            expires = begun.data.get("expires_at")
            expires_at = datetime.fromisoformat(str(expires).replace("Z", "+00:00")) if expires else None
            try:
                created = await run.client.create_branch(
                    run.project_id,
                    parent_id=plan.branch.id,
                    name=name,
                    endpoints=(),  # read only to be restored from: a compute would idle at a cost
                    expires_at=expires_at,
                    annotation=ownership.marker(journal.run_id),
                )
            except (OutcomeUnknownError, BadResponseError):
                run.reporter.warn(f"Neon's answer was lost; checking whether {name!r} was created…")
                found = await run.reconcile(name)
                if found is None:
                    raise StepFailedError(
                        "checkpoint",
                        f"Neon's answer to creating the checkpoint {name!r} was lost and it does not exist.",
                        hint="Check the project's operations in the Neon Console; nothing was merged yet.",
                    ) from None
                made = await self._adopt_checkpoint(run, found, begun.at)
            else:
                await run.wait(list(created.operations), "checkpoint")
                made = await run.client.branch(run.project_id, created.branch.id)
        data = {
            "id": made.id,
            "name": made.name,
            "lsn": made.parent_lsn,
            "at": made.parent_timestamp or made.created_at,
            "expires_at": begun.data.get("expires_at"),
        }
        journal.append("step", "done", "checkpoint", **data)
        record = journal.done("checkpoint")
        assert record is not None
        result.merge = {**(result.merge or {}), "checkpoint": _checkpoint_dict(record.data)}
        run.reporter.info(
            f"Checkpoint {made.name} ({made.id}) holds {plan.branch.name} as it is before the merge."
        )

    async def _adopt_checkpoint(self, run: Runner, found: Branch, begun_at: datetime) -> Branch:
        branch, annotation = await run.client.branch_annotated(run.project_id, found.id)
        reasons = why_not_our_checkpoint(
            branch, annotation, run_id=run.journal.run_id, parent_id=run.plan.branch.id, begun_at=begun_at
        )
        if reasons:
            raise StepFailedError(
                "checkpoint",
                f"A branch named {branch.name!r} ({branch.id}) exists, but this run cannot prove it is its "
                f"checkpoint: {'; '.join(reasons)}. It was not adopted, and nothing was merged.",
                hint=f"Leave {branch.name} alone (something else may use it) and start a new merge with --new.",
            )
        return await run.wait_for_branch(branch.id)

    async def _apply(self, run: Runner, live_url: Secret) -> None:
        from recovery_wizard.recovery import merge

        assert self.plan is not None
        run.result.step = "merge"
        run.reporter.step("merge", "Merge the lost rows back")
        run.journal.append(
            "step",
            "begin",
            "merge",
            run_id=run.journal.run_id,
            inserts=self.plan.inserts,
            reverts=self.plan.reverts,
            conflicts=len(self.plan.conflicts),
        )
        try:
            done = await merge.apply_merge(
                live_url, self.plan, run.journal.run_id, before_commit=_crash_hook()
            )
        except merge.MergeRefusedError as exc:
            raise UsageError(str(exc), hint=exc.hint) from None
        except merge.MergeChangedError as exc:
            raise StepFailedError(
                "merge",
                f"{exc} Make a new plan: resuming plans the merge again against the live branch as it is now.",
                hint=exc.hint,
            ) from None
        except merge.MergeError as exc:
            raise StepFailedError("merge", str(exc), hint=exc.hint) from None
        self._merged(run, done.to_dict())

    def _merged(self, run: Runner, data: dict[str, Any]) -> None:
        summary = {k: v for k, v in data.items() if k != "already_applied"}
        run.journal.append("step", "done", "merge", **summary)
        run.result.merge = {**(run.result.merge or {}), "result": summary}
        inserted = sum(int(v) for v in summary.get("inserted", {}).values())
        reverted = sum(int(v) for v in summary.get("reverted", {}).values())
        run.reporter.info(
            f"Merged into {run.plan.branch.name}: {inserted} row(s) re-inserted, {reverted} reverted, in one "
            "transaction."
        )

    def _restore_from_journal(self, run: Runner) -> None:
        """What the journal knows of an earlier attempt: the plan's summary, the checkpoint, the merge."""
        journal, result = run.journal, run.result
        merge = dict(result.merge or {})
        planned = journal.done("merge-plan")
        if planned is not None:
            merge["plan"] = planned.data.get("plan")
            result.lost = list(planned.data.get("lost_writes", []))
        checkpoint = journal.done("checkpoint")
        if checkpoint is not None:
            merge["checkpoint"] = _checkpoint_dict(checkpoint.data)
        merged = journal.done("merge")
        if merged is not None:
            merge["result"] = dict(merged.data)
        result.merge = merge


# Crash tests: RECOVERY_WIZARD_CRASH_AT=commit:merge SIGKILLs the process inside the merge's transaction,
# every row written and the COMMIT not yet sent (the journal's hooks stop at record boundaries).
CRASH_IN_TRANSACTION: Final = "commit:merge"


def _crash_hook() -> Callable[[], Awaitable[None]] | None:
    from recovery_wizard.recovery.journal import CRASH_ENV

    if os.environ.get(CRASH_ENV) != CRASH_IN_TRANSACTION:
        return None

    async def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    return kill


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _checkpoint_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("id", "name", "lsn", "at", "expires_at")}


def _failure(result: RunResult) -> str:
    check = (result.merge or {}).get("check") or {}
    failed = [c["sql"] for c in (result.verification or {}).get("checks", []) if not c.get("passed")]
    missing = [
        f"{t['table']}: {t['reinserted_missing']} re-inserted row(s) missing, {t['added_missing']} added since missing"
        for t in check.get("tables", [])
        if t.get("reinserted_missing") or t.get("added_missing")
    ]
    if check.get("still_to_insert"):
        missing.append(f"{check['still_to_insert']} lost row(s) are still not back")
    parts = missing + [f"check failed: {sql}" for sql in failed]
    return (
        "Verification after the merge failed: "
        + ("; ".join(parts) or "the merge check did not pass")
        + ". The merge committed; the checkpoint undoes it (see the record)."
    )


# --- a dry run: the plan on screen, nothing left behind -------------------------------------------------


async def dry_run(
    client: NeonClient, options: RunOptions, plan: Plan, prompter: Prompter, reporter: Reporter
) -> RunResult:
    """Make the past branch, show the merge plan, delete the past branch again: nothing else is written.

    The past must be a branch to be diffed, so a dry run does make one (expiring in DRY_RUN_TTL, marked
    with its own run id) and deletes it at the end, after proving it is its own. Its journal's command is
    ``merge-dry-run``: never offered for ``restore --resume``. The checkpoint and the ledger are not made.
    """
    from recovery_wizard.recovery.journal import Journal
    from recovery_wizard.recovery.runner import Runner, finish_run

    now = datetime.now(UTC)
    plan = replace(plan, name=f"{plan.name}-dry-run", expires_at=(now + DRY_RUN_TTL).replace(microsecond=0))
    journal = Journal.create(options.workdir)
    journal.append("run", "start", command=DRY_RUN_COMMAND, options=options.to_dict(), plan=plan.to_dict())
    runner = Runner(client, plan, journal, prompter, reporter, yes=True)
    strategy = MergeBack()
    result = runner.result
    try:
        try:
            await strategy.restore(runner, dry_run=True)
        finally:
            await _delete_past(runner)
        result.status = "dry-run"
    except BaseException:
        result.status = "failed"
        finish_run(result, client)
        raise
    finish_run(result, client)
    return result


async def _delete_past(run: Runner) -> None:
    branch = run.result.restore_branch
    if branch is None:
        return
    try:
        _, reasons = await run.plan.source.why_not_ours(run, branch.id)
        if reasons:
            run.reporter.warn(
                f"The dry run's branch {branch.name} was not deleted ({'; '.join(reasons)}); it expires by itself."
            )
            return
        deleted = await run.client.delete_branch(run.project_id, branch.id)
        if deleted is not None:
            await run.wait(list(deleted.operations), "cleanup")
        run.result.deleted = True
        run.reporter.info(f"Deleted the dry run's past branch {branch.name}.")
    except NotFoundError:
        run.result.deleted = True
    except NeonError as exc:
        run.reporter.warn(
            f"The dry run's branch {branch.name} ({branch.id}) could not be deleted ({exc}); it expires at "
            f"{run.plan.expires_at:%Y-%m-%d %H:%M} UTC."
        )
