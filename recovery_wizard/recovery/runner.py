"""The runbook's steps and the runner that drives them, journalled and resumable.

Each step is an object that can describe itself (for the plan and the TUI's "why" panel) and run. Every
step first asks the journal what already happened: ``done`` → reuse its result; ``begin`` without ``done``
(a crash in the middle of its side effect) → reconcile with the world before doing anything, so a resumed
run never creates a second branch or writes a file twice. The headless CLI and the TUI both call
:func:`run`; they differ only in the prompter and reporter they pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon.errors import NeonError, NotFoundError, OutcomeUnknownError
from recovery_wizard.neon.models import Branch
from recovery_wizard.neon.waiter import WaitProgress
from recovery_wizard.recovery import envfile, ownership, prisma, verify
from recovery_wizard.recovery.alongside import alongside
from recovery_wizard.recovery.apply import strategy_for
from recovery_wizard.recovery.handoff import left_by_hand
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.recovery.lostwrites import LostRows, lost_writes, recommend_strategy
from recovery_wizard.recovery.outcome import (
    CancelledError,
    InterruptedRunError,
    RunError,
    StepFailedError,
    UsageError,
    VerificationFailedError,
    resume_hint,
)
from recovery_wizard.recovery.plan import EnvTarget, Plan, RunOptions, resolve_plan
from recovery_wizard.recovery.stepinfo import StepInfo
from recovery_wizard.recovery.timepoint import Moment, RestoreWindow, parse_moment, resolve_zone
from recovery_wizard.redact import Secret

if TYPE_CHECKING:
    from collections.abc import Callable

    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.recovery.options import FirstReads
    from recovery_wizard.recovery.timeline import Event
    from recovery_wizard.recovery.ui import Prompter, Reporter

log = logging.getLogger("recovery_wizard.runner")

# The incident record lists the project's events this close to the restore point, at most this many.
TIMELINE_SPAN = timedelta(hours=6)
TIMELINE_MAX = 40
# After an unknown outcome, how long to look for the thing we asked for before concluding it was not made.
RECONCILE_ATTEMPTS = 4
RECONCILE_PAUSE = 1.5


STEP_INFO: dict[str, StepInfo] = {
    info.key: info
    for info in (
        StepInfo(
            "plan",
            "Plan and pre-flight",
            "Resolve the project, the damaged branch, the moment, the database and role, the env files.",
            "Nothing is written before you have seen exactly what will happen; wrong input is refused here.",
            "Console: Branches → your branch → Restore; read the restore window under Settings → Storage.",
        ),
        StepInfo(
            "measure",
            "Measure the damaged data",
            "Count the rows of every table on the damaged branch, read-only, before an in-place restore.",
            "An in-place restore overwrites the branch: measure now to compare afterwards.",
            "psql \"$DIRECT_URL\" -c 'SELECT relname, n_live_tup FROM pg_stat_user_tables'",
        ),
        StepInfo(
            "restore",
            "Restore",
            "Create a branch at the chosen moment (or restore the branch in place) and wait for Neon.",
            "Neon keeps every change within the restore window; a branch at a moment is an exact copy then.",
            "neonctl branches create --parent main@2026-11-21T01:29:59Z --name main-restore",
        ),
        StepInfo(
            "finalize",
            "Put it in place",
            "Finalize the verified snapshot restore: it takes the damaged branch's name and computes.",
            "A snapshot is previewed on a branch of its own first; finalizing swaps it in, keeping the "
            "damaged branch under another name (its id is the live branch's no more).",
            "Console: Backup & Restore → the restored branch → Finalize restore.",
        ),
        StepInfo(
            "verify",
            "Verify",
            "Compare row counts of damaged and restored side by side and run your checks, read-only.",
            "A restore to the wrong moment looks fine until someone counts: prove the data is back first.",
            'psql "$RESTORED_DIRECT_URL" -c \'SELECT count(*) FROM "User"\'',
        ),
        StepInfo(
            "env",
            "Point the app at it",
            "Rewrite the pooled and direct connection strings in your env files, with backups.",
            "The app keeps writing to the damaged branch until its DATABASE_URL changes.",
            "Console: the restored branch → Connect → copy the pooled and direct strings into .env.",
        ),
        StepInfo(
            "prisma",
            "Prisma",
            "Run the project's own `prisma db pull` over the direct URL, then `prisma generate`.",
            "The Prisma Client must match the restored schema (an incident is often a migration).",
            "npx --no-install prisma db pull && npx --no-install prisma generate",
        ),
        StepInfo(
            "cleanup",
            "Clean up",
            "Delete the drill's throwaway branch.",
            "A drill leaves nothing behind but its report.",
            "neonctl branches delete <drill branch>",
        ),
        StepInfo(
            "report",
            "Write the incident record",
            "report.md: what was done, when, with which ids, what the restore lost, and how to undo it.",
            "At 2 a.m. nobody remembers the ids the next morning: write them down as they happen.",
            "Write it by hand from the Console's Operations page.",
        ),
    )
}


def step_info_for(plan: Plan, key: str) -> StepInfo:
    """``STEP_INFO[key]`` as this plan's source tells it: the restore step's why is the source's own."""
    info = STEP_INFO[key]
    if key == "restore":
        from dataclasses import replace

        return replace(info, why=plan.source.why())
    return info


@dataclass
class RunResult:
    """What a run did: the ``--json`` result and the report's material."""

    journal: Journal
    plan: Plan | None = None
    status: str = "running"
    restore_branch: Branch | None = None
    endpoint_id: str | None = None
    backup_branch: dict[str, str] | None = None
    verification: dict[str, Any] | None = None
    lost: list[dict[str, Any]] = field(default_factory=list)
    env_files: list[dict[str, Any]] = field(default_factory=list)
    prisma: dict[str, Any] | None = None
    deleted: bool = False
    error: RunError | None = None
    report_path: Path | None = None
    requests: int = 0
    step: str = ""  # the step running now: a failure is blamed on it, not on the last one journalled
    timeline: list[dict[str, Any]] = field(default_factory=list)
    search: dict[str, Any] | None = None  # the find-moment search that chose the restore point, if any
    skipped: dict[str, str] = field(default_factory=dict)  # step -> why it did not run (for the record)
    # Merge back: past branch, plan summary, checkpoint, what was merged, the check after (merge_back.py).
    merge: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        restore = None
        if self.restore_branch is not None:
            restore = {"id": self.restore_branch.id, "name": self.restore_branch.name}
        return {
            "status": self.status,
            "run_id": self.journal.run_id,
            "command": plan.command if plan else None,
            "strategy": plan.strategy if plan else None,
            "project": {"id": plan.project.id, "name": plan.project.name} if plan else None,
            "branch": {"id": plan.branch.id, "name": plan.branch.name} if plan else None,
            "restore_point": plan.moment.rfc3339() if plan else None,
            "source": plan.source.to_dict() if plan else None,
            "restore_branch": restore,
            "backup_branch": self.backup_branch,
            "deleted": self.deleted,
            "env_files": self.env_files,
            "checks": (self.verification or {}).get("checks", []),
            "verification": self.verification,
            "lost_writes": self.lost,
            "prisma": self.prisma,
            "report": str(self.report_path) if self.report_path else None,
            "timeline": self.timeline,
            "moment_search": None
            if self.search is None
            else {k: v for k, v in self.search.items() if k != "probes"},
            "error": None if self.error is None else {"message": str(self.error), "hint": self.error.hint},
            "requests": self.requests,
            "warnings": list(plan.warnings) if plan else [],
            "left_by_hand": left_by_hand(self),
            "merge": self.merge,
            "recommended_strategy": self.recommended_strategy,
        }

    @property
    def recommended_strategy(self) -> str | None:
        """``merge-back`` when a whole restore loses writes made since the moment (the wizard offers it)."""
        if self.plan is None or self.plan.merge_back:
            return None
        return recommend_strategy(self.lost)


class Runner:
    def __init__(
        self,
        client: NeonClient,
        plan: Plan,
        journal: Journal,
        prompter: Prompter,
        reporter: Reporter,
        *,
        yes: bool,
    ) -> None:
        self.client = client
        self.plan = plan
        self.journal = journal
        self.prompter = prompter
        self.reporter = reporter
        self.yes = yes
        self.result = RunResult(journal, plan)
        self.damaged: verify.Measurement | None = None
        self.strategy = strategy_for(plan)
        # Connection URIs already asked for, by (branch, endpoint, pooled): verify, .env and Prisma need the
        # same ones, and each repeat would be one more round trip on the restore's critical path.
        self._uris: dict[tuple[str, str | None, bool], Secret] = {}

    @property
    def project_id(self) -> str:
        return self.plan.project.id

    def _progress(self, what: str) -> Any:
        def show(progress: WaitProgress) -> None:
            self.reporter.progress(
                f"{what}: {progress.finished}/{progress.total} operations done, {progress.elapsed:.0f} s"
            )

        return show

    async def _wait(self, operations: list[Any], what: str) -> None:
        if operations:
            await self.client.wait_for_operations(
                self.project_id, operations, on_progress=self._progress(what)
            )

    async def wait(self, operations: list[Any], what: str) -> None:
        """Wait for Neon's ``operations``, showing progress as ``what`` (sources and strategies call it)."""
        await self._wait(operations, what)

    def step_title(self, key: str) -> str:
        return STEP_INFO[key].title

    async def find_branch(self, name: str) -> Branch | None:
        matches = [b for b in await self.client.branches(self.project_id, search=name) if b.name == name]
        return matches[0] if matches else None

    async def reconcile(self, name: str) -> Branch | None:
        """After an unknown outcome: did Neon make the branch ``name``? Look a few times before saying no."""
        for attempt in range(RECONCILE_ATTEMPTS):
            found = await self.find_branch(name)
            if found is not None:
                return found
            if attempt < RECONCILE_ATTEMPTS - 1:
                await asyncio.sleep(RECONCILE_PAUSE)
        return None

    async def _why_not_ours(self, branch_id: str) -> tuple[Branch, list[str]]:
        """The branch as Neon has it now, and every reason it is not provably this run's (none: it is)."""
        return await self.plan.source.why_not_ours(self, branch_id)

    async def adopt(self, found: Branch) -> Branch:
        """A branch found by name after a crash or a lost answer: adopt it only if this run proves it made it."""
        branch, reasons = await self._why_not_ours(found.id)
        if reasons:
            raise StepFailedError(
                "restore",
                f"A branch named {branch.name!r} ({branch.id}) exists, but this run cannot prove it made it: "
                f"{'; '.join(reasons)}. It was not adopted, changed or deleted.",
                hint=f"Leave {branch.name} alone: something else may use it. Branch names are unique, so this "
                f"run never made its own branch: start a new `recovery-wizard {self.plan.command}` with "
                "another --name.",
            )
        return await self.wait_for_branch(branch.id)

    async def wait_for_branch(self, branch_id: str) -> Branch:
        """A branch found by reconciling: wait until its operations (which we did not see) finish."""
        pending = [op for op in await self.client.operations(self.project_id) if op.branch_id == branch_id]
        await self._wait([op for op in pending if not op.terminal], "restore")
        return await self.client.branch(self.project_id, branch_id)

    # --- restore and finish: the source makes the data, the strategy decides what is done with it ------

    async def restore(self) -> None:
        """The restore step: the strategy has the plan's source materialize (or restore in place)."""
        self.result.step = "restore"
        from recovery_wizard.recovery.preload import preload_soon

        # While Neon runs the operation, import what verify and the record need (off the critical path).
        preloaded = preload_soon()
        await self.strategy.restore(self)
        await preloaded

    async def finish(self) -> None:
        """After the verification: what the strategy still does (a snapshot's finalize), if anything."""
        await self.strategy.finish(self)

    # The step's names before sources existed (the TUI and tests call them): both are ``restore``.
    restore_new_branch = restore
    restore_in_place = restore

    async def measure_damaged(self) -> None:
        """In place: the damaged data is about to be overwritten, so measure it first (read-only)."""
        self.result.step = "measure"
        self.reporter.step("measure", STEP_INFO["measure"].title)
        url = await self._uri(self.plan.branch.id, None, pooled=False)
        self.damaged = await verify.measure(url, self.plan.checks)
        self.result.lost = [r.to_dict() for r in await self._lost(url)]
        self.journal.append("step", "done", "measure", lost_writes=self.result.lost)

    # --- verify ---------------------------------------------------------------------------------------

    async def _uri(self, branch_id: str, endpoint_id: str | None, *, pooled: bool) -> Secret:
        key = (branch_id, endpoint_id, pooled)
        cached = self._uris.get(key)
        if cached is None:
            cached = self._uris[key] = await self.client.connection_uri(
                self.project_id,
                branch_id=branch_id,
                endpoint_id=endpoint_id,
                database_name=self.plan.database,
                role_name=self.plan.role,
                pooled=pooled,
            )
        return cached

    async def _prefetch_uri(self, branch_id: str, endpoint_id: str | None, *, pooled: bool) -> None:
        try:
            await self._uri(branch_id, endpoint_id, pooled=pooled)
        except NeonError as exc:
            log.debug("reading a connection URI ahead of time failed (asked again when needed): %s", exc)

    async def direct_uri(self, branch_id: str, endpoint_id: str | None) -> Secret:
        """The direct (not pooled) connection URI of a branch's compute: what a source loads a file over."""
        return await self._uri(branch_id, endpoint_id, pooled=False)

    def forget_uris(self) -> None:
        """Ask Neon for connection URIs again (before retrying a step: a password may have been reset)."""
        self._uris.clear()

    async def _lost(self, damaged_url: Secret) -> list[LostRows]:
        try:
            return await lost_writes(damaged_url, self.plan.moment.utc)
        except Exception as exc:  # the record is a nicety: never fail a restore over it
            self.reporter.warn(f"Could not list the writes after the restore point: {exc}")
            return []

    async def verify(self) -> None:
        if self.plan.merge_back:
            # The merge checks the live branch it wrote to, not a restored branch beside it.
            from recovery_wizard.recovery.apply.merge_back import MergeBack

            assert isinstance(self.strategy, MergeBack)
            await self.strategy.verify(self)
            return
        self.result.step = "verify"
        done = self.journal.done("verify")
        recorded = self.journal.done("timeline")
        if recorded is not None:
            self.result.timeline = list(recorded.data.get("events", []))
        if done is not None:
            self.result.verification = dict(done.data["verification"])
            self.result.lost = list(done.data.get("lost_writes", []))
            if not done.data.get("ok", False):
                raise VerificationFailedError(self._verify_failure_message())
            return
        self.reporter.step("verify", STEP_INFO["verify"].title)
        assert self.result.restore_branch is not None
        if self.result.deleted:
            raise StepFailedError(
                "verify",
                f"The drill branch {self.result.restore_branch.name} was deleted before it was verified.",
                hint="Start a new drill: `recovery-wizard drill`.",
            )
        # The timeline for the record is read while the data is measured: it is off the critical path (and
        # never outlives this step, nor the client it uses).
        async with alongside(self._collect_timeline()) as timeline:
            if self.plan.in_place and not self.plan.source.previews_in_place:
                # Neon overwrote the damaged branch: it was measured before (the measure step).
                restored_url = await self._uri(
                    self.result.restore_branch.id, self.result.endpoint_id, pooled=False
                )
                damaged = self.damaged
                restored = await verify.measure(restored_url, self.plan.checks)
                measured = self.journal.done("measure")
                if damaged is None and measured is not None:
                    # Resumed after the restore: the damaged data is gone, but what it lost was recorded.
                    self.result.lost = list(measured.data.get("lost_writes", []))
            else:
                restored_id, endpoint_id = self.result.restore_branch.id, self.result.endpoint_id
                # The pooled URI the .env step writes, asked for with the two verify needs (one round, not a
                # round of its own while the data is measured): that step then asks Neon nothing. Best
                # effort: if this read fails, the env step asks again (and owns the error). The three reach
                # Neon in any order; the fault tests name each by what it asks (pooled=true/false), not by
                # its place in the order.
                async with alongside(
                    self._prefetch_uri(restored_id, endpoint_id, pooled=True)
                    if self.plan.env_targets
                    else asyncio.sleep(0)
                ) as prefetch:
                    restored_url, damaged_url = await asyncio.gather(
                        self._uri(restored_id, endpoint_id, pooled=False),
                        self._uri(self.plan.branch.id, None, pooled=False),
                    )
                    damaged, restored, lost, _ = await asyncio.gather(
                        verify.measure(damaged_url, self.plan.checks),
                        verify.measure(restored_url, self.plan.checks),
                        self._lost(damaged_url),
                        prefetch,
                    )
                self.result.lost = [r.to_dict() for r in lost]
            await timeline
        verification = verify.compare(damaged, restored, self.plan.checks)
        self.result.verification = verification.to_dict()
        self.reporter.show("Verification", render_verification(verification))
        # What the source itself says the restored branch must hold (a file's own row counts).
        own = await self.plan.source.check_restored(self, restored_url)
        ok = verification.ok
        if own is not None:
            from recovery_wizard.recovery.sources.file import render_counts

            self.result.verification["source_counts"] = own
            self.result.verification["ok"] = ok = ok and bool(own["ok"])
            self.reporter.show("Against the backup file's own counts", render_counts(own))
        self.journal.append(
            "step",
            "done",
            "verify",
            ok=ok,
            verification=self.result.verification,
            lost_writes=self.result.lost,
        )
        if not ok:
            raise VerificationFailedError(self._verify_failure_message())
        if self.plan.command == "restore":
            _say_merge_fits(self.result, self.reporter, "are not")

    async def _collect_timeline(self) -> None:
        """The project's events around the restore point, for the incident record (best effort)."""
        from recovery_wizard.recovery.timeline import build_timeline

        moment = self.plan.moment.utc
        try:
            events = await build_timeline(self.client, self.plan.project, self.plan.window, incident=None)
        except NeonError as exc:
            self.reporter.warn(f"Could not read the project's timeline for the record: {exc}")
            return
        self.result.timeline = [e.to_dict() for e in events_near(events, moment)]
        self.journal.append("step", "done", "timeline", events=self.result.timeline)

    def _verify_failure_message(self) -> str:
        verification = self.result.verification or {}
        failed = [c["sql"] for c in verification.get("checks", []) if not c.get("passed")]
        own = verification.get("source_counts") or {}
        wrong = [t for t in own.get("tables", []) if not t.get("ok")]
        if wrong:
            listed = "; ".join(
                f"{t['table']}: {'missing' if t['actual'] is None else t['actual']} rows, the file says "
                f"{'at least ' if t['at_least'] else ''}{t['expected']}"
                for t in wrong
            )
            return (
                f"Verification failed: the restored branch does not hold the backup file's rows ({listed})"
                + (f" and {len(failed)} check(s) did not pass" if failed else "")
                + ". No env file was touched."
            )
        return (
            f"Verification failed: {len(failed)} check(s) did not pass on the restored data ({'; '.join(failed)}). "
            "No env file was touched."
        )

    # --- env files ------------------------------------------------------------------------------------

    async def rewrite_env(self) -> None:
        self.result.step = "env"
        if self.plan.merge_back:
            self.result.skipped["env"] = (
                "a merge-back writes the lost rows into the branch the app already uses; its connection "
                "strings stay the same"
            )
            return
        if self.plan.in_place or not self.plan.env_targets:
            self.result.skipped["env"] = (
                "a drill does not touch the app"
                if self.plan.command == "drill"
                else "an in-place restore keeps the branch's connection strings"
                if self.plan.in_place
                else "no env file with the damaged branch's connection strings was found"
            )
            return
        self.reporter.step("env", STEP_INFO["env"].title)
        assert self.result.restore_branch is not None
        branch_id, endpoint_id = self.result.restore_branch.id, self.result.endpoint_id
        pooled, direct = await asyncio.gather(
            self._uri(branch_id, endpoint_id, pooled=True), self._uri(branch_id, endpoint_id, pooled=False)
        )
        backup_dir = self.journal.run_dir / "env-backups"
        for index, target in enumerate(self.plan.env_targets):
            self.result.env_files.append(await self._rewrite_one(index, target, pooled, direct, backup_dir))

    async def _rewrite_one(
        self, index: int, target: EnvTarget, pooled: Secret, direct: Secret, backup_dir: Path
    ) -> dict[str, Any]:
        key = f"env:{index}"
        summary = {"path": str(target.path), "variables": target.variables}
        done = self.journal.done(key)
        if done is not None:
            return {**summary, "backup": done.data.get("backup")}
        env = envfile.EnvFile.read(target.path)
        begun = self.journal.begun_not_done(key)
        changed_since = False
        if begun is not None:
            if env.digest == begun.data.get("after"):
                # The swap happened before the crash: record it exactly as an uninterrupted write does.
                self._env_done(key, target.path, begun.data.get("backup"), env.digest)
                return {**summary, "backup": begun.data.get("backup")}
            changed_since = env.digest != begun.data.get("before")
        changes: dict[str, str] = {}
        if target.pooled_var:
            changes[target.pooled_var] = envfile.merge_url(env.get(target.pooled_var), pooled.reveal())
        if target.direct_var:
            changes[target.direct_var] = envfile.merge_url(env.get(target.direct_var), direct.reveal())
        new_text = env.rewritten(changes)
        if changed_since:
            assert begun is not None
            self.reporter.show(
                f"Changes to {target.path} as it is now (it changed since the interrupted run read it)",
                envfile.masked_diff(target.path, env.text, new_text),
            )
            if self.yes:
                raise StepFailedError(
                    "env",
                    f"{target.path} changed since the interrupted run read it; under --yes it is not rewritten "
                    "without a look at the new diff.",
                    hint=f"Run `recovery-wizard restore --resume {self.journal.run_id}` without --yes to review "
                    f"the diff against the file as it is now (the version the run first read is backed up in "
                    f"{begun.data.get('backup')}).",
                )
            if not await self.prompter.confirm(
                f"{target.path} changed since the interrupted run read it. Write these changes to it?",
                default=False,
            ):
                raise CancelledError(f"{target.path} was not changed (cancelled).")
        else:
            self.reporter.show(
                f"Changes to {target.path}", envfile.masked_diff(target.path, env.text, new_text)
            )
            if not self.yes and not await self.prompter.confirm(
                f"Write these changes to {target.path}?", default=False
            ):
                raise CancelledError(f"{target.path} was not changed (cancelled).")
        backup_path = envfile.backup(env, backup_dir)
        # `after` is what the file will hold: on resume it tells a finished write from one never started.
        self.journal.append(
            "step",
            "begin",
            key,
            path=target.path,
            before=env.digest,
            after=_digest_of(new_text),
            backup=backup_path,
        )
        envfile.write_atomic(env, new_text)
        self._env_done(key, target.path, backup_path, _digest_of(new_text))
        self.reporter.info(f"Rewrote {', '.join(target.variables)} in {target.path} (backup: {backup_path}).")
        return {**summary, "backup": str(backup_path)}

    def _env_done(self, key: str, path: Path, backup: Any, written: str) -> None:
        """The one shape of an env file's ``done`` record, whichever path wrote it: `env rollback` reads it."""
        self.journal.append("step", "done", key, path=path, backup=backup, written=written)

    # --- prisma ---------------------------------------------------------------------------------------

    async def run_prisma(self) -> None:
        self.result.step = "prisma"
        project = self.plan.prisma
        if self.plan.merge_back:
            self.result.skipped["prisma"] = (
                "a merge-back changes rows, not the schema: the Prisma Client still matches the live branch"
            )
            return
        if project is None or self.plan.command != "restore":
            self.result.skipped["prisma"] = self._prisma_skip_reason()
            return
        finished = self.journal.done("prisma")
        if finished is not None:
            self.result.prisma = dict(finished.data)
            return
        self.reporter.step("prisma", STEP_INFO["prisma"].title)
        assert self.result.restore_branch is not None
        direct = await self._uri(self.result.restore_branch.id, self.result.endpoint_id, pooled=False)
        self.journal.append("step", "begin", "prisma", root=project.root)
        try:
            pulled = await prisma.db_pull(
                project,
                direct,
                backup_dir=self.journal.run_dir / "prisma",
                on_output=self.reporter.output,
                write=self.yes,
            )
            if not self.yes:
                self.reporter.show("Schema changes from `prisma db pull`", pulled.diff or "(no changes)")
                if pulled.diff and await self.prompter.confirm(
                    "Write the pulled schema to schema.prisma?", default=False
                ):
                    # Exactly the schema whose diff was shown, not a second pull.
                    pulled = prisma.write_pulled(pulled, while_what="while the diff was on screen")
            await prisma.generate(project, on_output=self.reporter.output, url=direct)
        except prisma.PrismaError as exc:
            self.journal.append("step", "failed", "prisma", error=str(exc))
            raise StepFailedError("prisma", str(exc), hint=exc.hint) from None
        self.result.prisma = {
            "version": project.version,
            "models": pulled.models,
            "schema_backup": str(pulled.backup_path),
            "schema_written": pulled.written,
            "diff": pulled.diff,
        }
        self.journal.append("step", "done", "prisma", **self.result.prisma)

    def _prisma_skip_reason(self) -> str:
        if self.plan.command != "restore":
            return "a drill does not touch the app"
        start = self.journal.start
        if start is not None and (start.data.get("options") or {}).get("prisma") is False:
            return "--no-prisma was given"
        try:
            detected = prisma.detect(self.workdir)
        except Exception as exc:  # the record is a nicety: never fail a restore over it
            return f"Prisma could not be detected ({exc})"
        if detected is None:
            return f"no Prisma schema or config was found in {self.workdir}"
        return (
            "the Prisma CLI is not installed (node_modules/.bin/prisma): run `npm install`, then "
            "`npx prisma db pull` and `npx prisma generate` by hand"
        )

    # --- drill cleanup --------------------------------------------------------------------------------

    async def cleanup(self) -> None:
        self.result.step = "cleanup"
        if self.plan.command != "drill" or self.result.restore_branch is None:
            return
        if self.plan.keep:
            self.reporter.info(f"Keeping {self.result.restore_branch.name} (--keep).")
            return
        if self.journal.done("cleanup") is not None:
            self.result.deleted = True
            return
        self.reporter.step("cleanup", STEP_INFO["cleanup"].title)
        branch = self.result.restore_branch
        if not self.result.deleted:
            try:
                await self._refuse_foreign_deletion(branch)
            except NotFoundError:
                self.result.deleted = True  # already gone: nothing left to clean up
        if self.result.deleted:
            self.journal.append("step", "done", "cleanup", branch_id=branch.id, already_gone=True)
            self.reporter.info(f"The drill branch {branch.name} was already deleted.")
            return
        if self.journal.begun_not_done("cleanup") is None:
            self.journal.append("step", "begin", "cleanup", branch_id=branch.id)
        try:
            deleted = await self.client.delete_branch(self.project_id, branch.id)
        except NotFoundError:
            deleted = None  # gone already (an earlier delete whose answer was lost): a finished cleanup
        except OutcomeUnknownError:
            deleted = None
            try:
                await self.client.branch(self.project_id, branch.id)
            except NotFoundError:
                pass
            else:
                raise StepFailedError(
                    "cleanup",
                    f"Neon's answer to deleting the drill branch {branch.name} was lost and it still exists.",
                    hint="Run `recovery-wizard drill --resume` to delete it again.",
                ) from None
        if deleted is not None:
            await self._wait(deleted.operations, "cleanup")
        self.result.deleted = True
        self.journal.append("step", "done", "cleanup", branch_id=branch.id, already_gone=deleted is None)
        self.reporter.info(f"Deleted the drill branch {branch.name}.")

    async def _refuse_foreign_deletion(self, branch: Branch) -> None:
        """Refuse to delete a branch this drill cannot prove it made, or that the app still uses.

        Raises NotFoundError when the branch is already gone.
        """
        fresh, reasons = await self._why_not_ours(branch.id)
        endpoints = await self.client.endpoints(self.project_id, fresh.id)
        needles = [fresh.id, *(e.id for e in endpoints), *(e.host for e in endpoints)]
        if endpoints:
            # The pooled host is not in the endpoint list (Neon: `<ep id>-pooler…`; elsewhere another host).
            try:
                pooled = await self._uri(fresh.id, endpoints[0].id, pooled=True)
                needles.append(urlsplit(pooled.reveal()).netloc.rpartition("@")[2])
            except NeonError as exc:
                log.debug("the drill branch's pooled URI could not be read: %s", exc)
        files = ownership.env_files_of(self.workdir, (t.path for t in self.plan.env_targets))
        for path in ownership.env_files_pointing_at(files, needles):
            reasons.append(f"{path} points at it")
        if reasons:
            raise StepFailedError(
                "cleanup",
                f"Not deleting {fresh.name} ({fresh.id}): {'; '.join(reasons)}.",
                hint=f"Nothing was deleted. If {fresh.name} really is a leftover drill branch, delete it by hand "
                f"once nothing uses it: `neonctl branches delete {fresh.id}`.",
            )

    @property
    def workdir(self) -> Path:
        """The app directory: the run directory is ``<workdir>/.recovery-wizard/runs/<run id>``."""
        return self.journal.run_dir.parents[2]


def _say_merge_fits(result: RunResult, reporter: Reporter, are: str) -> None:
    """After (or, in a dry run, before) a whole restore: say when a merge would keep writes it loses."""
    plan = result.plan
    if plan is None or result.recommended_strategy != "merge-back":
        return
    written = sum(int(r.get("rows", 0)) for r in result.lost)
    reporter.warn(
        f"{written} row(s) were written to {plan.branch.name} after the restore point and {are} in the "
        "restored data. `--strategy merge-back` would bring back only the lost rows and keep them."
    )


async def _lost_now(client: NeonClient, plan: Plan) -> list[dict[str, Any]]:
    """A dry run's look at the writes a whole restore would lose (read-only; best effort, never fatal)."""
    try:
        url = await client.connection_uri(
            plan.project.id,
            branch_id=plan.branch.id,
            database_name=plan.database,
            role_name=plan.role,
            pooled=False,
        )
        return [r.to_dict() for r in await lost_writes(url, plan.moment.utc)]
    except Exception as exc:  # the advice is a nicety: a dry run never fails over it
        log.debug("the writes after the moment could not be listed: %s", exc)
        return []


def events_near(events: list[Event], moment: datetime) -> list[Event]:
    """The project's events closest to ``moment`` (within TIMELINE_SPAN, at most TIMELINE_MAX), oldest first.

    Closest first, not newest first: the newest events of a project are the run's own operations, which
    would otherwise fill the list and push out what happened around the restore point.
    """
    near = [
        e for e in events if abs(e.at - moment) <= TIMELINE_SPAN and e.kind not in ("now", "window-start")
    ]
    closest = sorted(near, key=lambda e: abs(e.at - moment))[:TIMELINE_MAX]
    return sorted(closest, key=lambda e: e.at)


def _digest_of(text: str) -> str:
    """The digest of ``text`` as written (UTF-8; a BOM is part of the text), as EnvFile.digest computes it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_verification(verification: verify.Verification) -> str:
    """Damaged and restored side by side, as a plain-text table (the CLI and the report use it)."""
    rows = [("table", "damaged", "restored", "")]
    for t in verification.tables:
        damaged = "—" if t.damaged is None else f"{t.damaged.rows}{'' if t.damaged.exact else '~'}"
        restored = "—" if t.restored is None else f"{t.restored.rows}{'' if t.restored.exact else '~'}"
        delta = "" if t.delta in (None, 0) else f"{t.delta:+d}"
        rows.append((f"{t.schema}.{t.table}" if t.schema != "public" else t.table, damaged, restored, delta))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    for check in verification.checks:
        mark = "PASS" if check.restored.passed else "FAIL"
        damaged = "—" if check.damaged is None else (check.damaged.value or check.damaged.error or "NULL")
        lines.append(
            f"{mark}  {check.sql}  (damaged: {damaged}, restored: {check.restored.value or check.restored.error})"
        )
    if any(
        not side.exact for t in verification.tables for side in (t.damaged, t.restored) if side is not None
    ):
        lines.append("~ = planner estimate (large table)")
    return "\n".join(lines)


async def run(
    client: NeonClient,
    options: RunOptions,
    prompter: Prompter,
    reporter: Reporter,
    *,
    resume: Journal | None = None,
    on_journal: Callable[[Journal], None] | None = None,
    first: FirstReads | None = None,
) -> RunResult:
    """Plan, confirm, and run every step, journalled; always writes the incident record once it started.

    Once the journal exists, every way a run can stop ends the same way: the journal's ``end`` record, the
    incident record, and a result whose error says how to resume. A step's failure (a ``RecoveryError`` or
    an ``OSError``, e.g. an unwritable directory) is ``failed``; a cancellation of the task (the CLI cancels
    it on SIGINT, SIGTERM and SIGHUP, naming the signal) is ``interrupted``. ``on_journal`` is called with
    the journal as soon as it exists (the CLI names the run in its lock). ``first``: the project and its
    branches, already asked for (a new run's planning takes them).
    """
    if resume is not None:
        journal = resume
        plan = await plan_from_journal(client, journal, options)
        journal.append("run", "resume")
        reporter.info(f"Resuming run {journal.run_id}.")
    else:
        reporter.step("plan", STEP_INFO["plan"].title)
        plan = await resolve_plan(client, options, prompter, reporter, first=first)
        reporter.show("Plan", "\n".join(f"{i}. {line}" for i, line in enumerate(plan.actions(), start=1)))
        for warning in plan.warnings:
            reporter.warn(warning)
        if options.dry_run and plan.merge_back:
            from recovery_wizard.recovery.apply.merge_back import dry_run

            return await dry_run(client, options, plan, prompter, reporter)
        if options.dry_run:
            journal = Journal(options.workdir / ".recovery-wizard" / "dry-run")  # never written
            dry = RunResult(journal, plan, status="dry-run")
            if plan.command == "restore":
                dry.lost = await _lost_now(client, plan)
                _say_merge_fits(dry, reporter, "would not be")
            return dry
        if not options.yes and not await prompter.confirm("Go ahead?", default=False):
            raise CancelledError("Cancelled before any change.")
        journal = begin_run(options, plan)
    if on_journal is not None:
        on_journal(journal)
    runner = Runner(client, plan, journal, prompter, reporter, yes=options.yes)
    result = runner.result
    linked = journal.done("find-moment")
    result.search = dict(linked.data) if linked is not None else None
    try:
        await runner.restore()
        try:
            await runner.verify()
        finally:
            if plan.command == "drill":
                await runner.cleanup()
        await runner.finish()
        await runner.rewrite_env()
        await runner.run_prisma()
        result.status = "done"
    except RunError as exc:
        result.status, result.error = exc.status, exc
        if isinstance(exc, StepFailedError):
            exc.hint = resume_hint(exc.hint, plan.command, journal.run_id)
    except (RecoveryError, OSError) as exc:
        # NeonError, EnvFileError, PrismaError, JournalError, a full disk, an unwritable directory: the
        # run has written already (its journal at least), so this is a failed step to resume, never a
        # refusal to re-run (a new run would make a second branch).
        fail(result, exc)
    except asyncio.CancelledError as exc:
        interrupted(result, exc)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled here: the run ends as "interrupted", with its record written
    except KeyboardInterrupt:
        # Ctrl-C at a terminal prompt (prompt_toolkit reads it as a key and raises this).
        interrupted(result, KeyboardInterrupt("Ctrl-C"))
    finally:
        if result.status != "running":
            if plan.command == "drill":
                record_drill_proof(result, options.workdir)
            finish_run(result, client)
    return result


def record_drill_proof(result: RunResult, workdir: Path) -> None:
    """A drill of a backup (a file, a snapshot) notes whether it restored, so `backup list` shows when each
    was last proven. Only a drill that got as far as verifying says anything: an interrupted one proves
    nothing either way. Best effort: the drill's own outcome stands if the note cannot be written."""
    from recovery_wizard.recovery.backup.proofs import record_proof

    plan = result.plan
    if plan is None or result.journal.done("proof") is not None:
        return
    if result.verification is not None:
        # The backup restored and held what it should; a clean-up failure after that is not the backup's.
        ok = bool(result.verification.get("ok", True))
    elif result.journal.last("load", "failed") is not None:
        ok = False  # the file did not load: that is what a drill is for finding out
    else:
        return
    where = plan.source.proof(workdir)
    if where is None:
        return
    directory, identity = where
    try:
        record_proof(directory, run_id=result.journal.run_id, ok=ok, **identity)
        result.journal.append("step", "done", "proof", ok=ok, directory=directory, **identity)
    except (OSError, ValueError) as exc:
        log.warning("could not record the drill's proof in %s: %s", directory, exc)


def begin_run(options: RunOptions, plan: Plan, search: dict[str, Any] | None = None) -> Journal:
    """The run directory and the journal's first record (the resolved plan, which --resume re-reads).

    ``search`` is the find-moment result that chose the restore point (the TUI passes its own); otherwise
    the latest find-moment run in this directory whose last good moment is the plan's moment is linked.
    """
    search = search or find_search(
        options.workdir, plan.moment.utc, project_id=plan.project.id, branch_id=plan.branch.id
    )
    journal = Journal.create(options.workdir)
    journal.append("run", "start", command=options.command, options=options.to_dict(), plan=plan.to_dict())
    if search is not None:
        journal.append("step", "done", "find-moment", **search)
    return journal


def find_search(
    workdir: Path, moment: datetime, *, project_id: str | None = None, branch_id: str | None = None
) -> dict[str, Any] | None:
    """The find-moment run (newest first) whose last_good is ``moment`` (to the millisecond), with its probes.

    Given ``project_id``/``branch_id``, only a search made on that project and branch counts: a search of
    another branch that happens to end at the same moment says nothing about this one."""
    from recovery_wizard.recovery.journal import journals

    for journal in journals(workdir):  # a damaged old journal is skipped, never fatal to a new run
        start, end = (
            journal.start,
            next((r for r in journal.records if r.kind == "run" and r.event == "end"), None),
        )
        if (
            start is None
            or start.data.get("command") != "find-moment"
            or end is None
            or "last_good" not in end.data
        ):
            continue
        searched_project = (start.data.get("project") or {}).get("id")
        searched_branch = (start.data.get("branch") or {}).get("id")
        if (project_id is not None and searched_project != project_id) or (
            branch_id is not None and searched_branch != branch_id
        ):
            continue
        last_good = datetime.fromisoformat(str(end.data["last_good"]).replace("Z", "+00:00"))
        if abs(last_good - moment) <= timedelta(milliseconds=1):
            probes = [r.data for r in journal.records if r.step == "probe" and r.event == "done"]
            return {
                "run_id": journal.run_id,
                # When the search ran (the record shows it then, not when the restore began).
                "started_at": start.at,
                "searched_at": end.at,
                "canary": start.data.get("canary"),
                "last_good": end.data["last_good"],
                "first_bad": end.data.get("first_bad"),
                "probes": probes,
            }
    return None


def fail(result: RunResult, exc: RecoveryError | OSError) -> None:
    """A failure during a step (Neon, a file, the disk): the run stops there, resumable."""
    plan = result.plan
    if isinstance(exc, RecoveryError):
        message, hint = str(exc), exc.hint
    else:
        what = f" ({exc.filename})" if exc.filename else ""
        message, hint = f"{exc.strerror or exc}{what}", "Fix what the message names."
    result.status = "failed"
    result.error = StepFailedError(
        result.step or _current_step(result.journal),
        message,
        hint=resume_hint(hint, plan.command if plan else "restore", result.journal.run_id),
    )


def interrupted(result: RunResult, exc: BaseException) -> None:
    """The task was cancelled (a signal in the CLI): stopped where it was, resumable."""
    plan = result.plan
    cause = str(exc.args[0]) if exc.args else "a cancellation"
    step = result.step or _current_step(result.journal)
    result.status = "interrupted"
    result.error = InterruptedRunError(
        f"Interrupted by {cause} during step {step!r}; it stopped there, nothing is half-written.",
        hint=resume_hint("", plan.command if plan else "restore", result.journal.run_id),
    )


def finish_run(result: RunResult, client: NeonClient) -> None:
    """Write the incident record and close the journal (whatever the status).

    A report that cannot be written (a full disk) must not hide the run's own outcome: the journal still
    gets its ``end`` record, and the failure is added to the result's hint.
    """
    from recovery_wizard.recovery.report import write_report

    result.requests = client.requests_sent
    try:
        result.report_path = write_report(result)
    except OSError as exc:
        log.warning("could not write the incident record: %s", exc.strerror or exc)
        if result.error is not None:
            result.error.hint += f" (The incident record could not be written: {exc.strerror or exc}.)"
    try:
        result.journal.append("run", "end", status=result.status, report=result.report_path)
    except OSError as exc:
        log.warning("could not close the journal: %s", exc.strerror or exc)


def _current_step(journal: Journal) -> str:
    for record in reversed(journal.records):
        if record.kind == "step" and record.step:
            return record.step.split(":")[0]
    return "plan"


async def plan_from_journal(client: NeonClient, journal: Journal, options: RunOptions) -> Plan:
    """The plan of an interrupted run, exactly as it was resolved (its moment is not re-parsed)."""
    start = journal.start
    if start is None or not isinstance(start.data.get("plan"), dict):
        command = journal.command
        raise UsageError(
            f"Run {journal.run_id} is {'a ' + command + ' run' if command else 'not a restore or drill'};"
            " it has no restore plan to resume.",
            hint=f"Resume a {options.command} run (`recovery-wizard {options.command} --resume` takes the"
            f" latest), or start a new one with `recovery-wizard {options.command} --new`.",
        )
    if journal.command != options.command:
        raise UsageError(
            f"Run {journal.run_id} is a {journal.command} run; `{options.command} --resume` cannot continue it.",
            hint=f"Run `recovery-wizard {journal.command} --resume {journal.run_id}`.",
        )
    saved = start.data["plan"]
    from recovery_wizard.recovery.sources import source_from_dict

    source = source_from_dict(saved.get("source"))
    project = await client.project(saved["project"]["id"])
    branch = await client.branch(project.id, saved["branch"]["id"])
    zone = resolve_zone(start.data["options"].get("tz"))
    moment = parse_moment(saved["restore_point"], zone=zone, now=datetime.now(UTC))
    moment = Moment(moment.utc, saved.get("restore_point_input") or moment.text, zone)
    window = RestoreWindow.from_retention(project.history_retention_seconds, datetime.now(UTC))
    detected = prisma.detect(options.workdir) if saved.get("prisma") else None
    targets = [
        EnvTarget(Path(t["path"]), t.get("pooled_var"), t.get("direct_var"), False, t.get("warnings", []))
        for t in saved.get("env_files", [])
    ]
    expires = saved.get("expires_at")
    return Plan(
        command=saved["command"],
        strategy=saved["strategy"],
        project=project,
        branch=branch,
        moment=moment,
        window=window,
        database=saved["database"],
        role=saved["role"],
        name=saved["name"],
        env_targets=targets,
        checks=list(saved.get("checks", [])),
        prisma=detected,
        children=[],
        warnings=list(saved.get("warnings", [])),
        keep=bool(start.data["options"].get("keep")),
        expires_at=datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None,
        source=source,
        preview_name=saved.get("preview_name"),
        merge=saved.get("merge"),
    )
