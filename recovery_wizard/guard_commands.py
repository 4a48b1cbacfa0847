"""The headless `whereis`, `guard -- <command>`, `guard list` and `guard prune` commands.

Kept beside commands.py (whose client, prompter and exit-code plumbing they reuse) so neither grows past
what one reader holds. Imported by cli.py only when one of them runs.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from recovery_wizard.commands import (
    GlobalOptions,
    _emit,
    _fail,
    _guarded,
    _interruptible,
    _run_async,
    _say,
    make_prompter,
    with_client,
)
from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import NeonClient, NeonError
from recovery_wizard.neon.errors import ForbiddenError, NotFoundError, UnauthorizedError
from recovery_wizard.plain.reporter import StderrReporter
from recovery_wizard.recovery import checkpoint as cp
from recovery_wizard.recovery.journal import Journal, runs_dir
from recovery_wizard.recovery.lock import AppLock, LockedError
from recovery_wizard.recovery.outcome import (
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    CancelledError,
    InterruptedRunError,
    UsageError,
)
from recovery_wizard.recovery.ui import Prompter
from recovery_wizard.textsafe import printable

# --- whereis ------------------------------------------------------------------------------------------


def whereis(g: GlobalOptions, sizes: bool) -> int:
    async def body(g: GlobalOptions, client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        from recovery_wizard.recovery.whereis import app_urls
        from recovery_wizard.recovery.whereis import whereis as locate_all

        urls = app_urls(g.workdir, os.environ)
        if not urls:
            raise UsageError(
                f"No database URL found in the environment or in {g.workdir}'s .env, .env.local or prisma/.env.",
                hint="Run it from your app's directory, or set DATABASE_URL.",
            )
        found, notes = await locate_all(client, urls, project_id=g.project_id, sizes=sizes)
        lines = []
        for where in found:
            lines.append(where.summary())
            if where.size is not None:
                lines.append(f"    size: {where.size.line()}")
            elif where.size_error:
                lines.append(f"    size: not read ({where.size_error})")
        lines += [f"note: {n}" for n in notes]
        _emit(g, {"urls": [w.to_dict() for w in found], "notes": notes}, "\n".join(lines))
        return EXIT_OK

    return _run_async(_guarded(g, body, quiet=True), g)


# --- guard -- <command> ---------------------------------------------------------------------------------


def guard(g: GlobalOptions, options: Any) -> int:
    """Prepare (API, checkpoint), run the command outside any event loop, then compare and warn."""
    from recovery_wizard.recovery.guard import default_ask, finish, prepare, run_command

    holder: list[Any] = []
    reporter = StderrReporter(quiet=True)

    async def phase_one() -> int:
        prompter = make_prompter(g)
        try:
            if g.api_key:
                holder.append(
                    await with_client(
                        g, reporter, prompter, lambda client: prepare(client, options, _say, default_ask)
                    )
                )
            else:
                # No key: no checkpoint, so a destructive command is refused unless --no-checkpoint; any
                # other command runs with a warning (the guard never stands between a script and its job).
                holder.append(await prepare(None, options, _say, default_ask))
        except (UsageError, UnauthorizedError, ForbiddenError, NotFoundError, LockedError) as exc:
            return _fail(g, exc, EXIT_USAGE, "refused")
        except (CancelledError, InterruptedRunError) as exc:
            return _fail(g, exc, exc.exit_code, exc.status)
        except RecoveryError as exc:
            return _fail(g, exc, EXIT_STEP_FAILED, "failed")
        return EXIT_OK

    code = asyncio.run(_interruptible(phase_one(), g))
    if code != EXIT_OK or not holder:
        return code
    prepared = holder[0]
    from recovery_wizard.recovery.guardcmd import echo

    _say(f"guard: running `{echo(options.argv)}`")
    done = run_command(options.argv, cwd=options.workdir)
    asyncio.run(finish(prepared, done, options, _say))
    return int(done.exit_code)


# --- guard list ------------------------------------------------------------------------------------------


def _state(c: cp.Checkpoint, now: datetime) -> str:
    if c.pruned:
        return "pruned"
    if c.expired(now):
        return "expired"
    return "kept"


def guard_list(g: GlobalOptions) -> int:
    now = datetime.now(UTC)
    found = cp.checkpoints(g.workdir, warn=lambda m: _say(f"warning: {m}"))
    rows = [
        (
            c.name,
            c.kind,
            c.at.strftime("%Y-%m-%d %H:%M:%S") if c.at else "",
            c.branch_name,
            "" if c.exit_code is None else str(c.exit_code),
            ",".join(c.lost) or "-",
            _state(c, now),
            printable(c.command),
        )
        for c in found
    ]
    header = ("NAME", "KIND", "AT (UTC)", "BRANCH", "EXIT", "LOST", "STATE", "COMMAND")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    text = "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)
    if not found:
        text = f"No guard checkpoints in {g.workdir}. Make one: recovery-wizard guard -- <your migration command>"
    _emit(g, {"checkpoints": [{**c.to_dict(), "state": _state(c, now)} for c in found]}, text)
    return EXIT_OK


# --- guard prune -----------------------------------------------------------------------------------------


def guard_prune(g: GlobalOptions, older_than: timedelta | None, dry_run: bool) -> int:
    async def body(g: GlobalOptions, client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        now = datetime.now(UTC)
        candidates = cp.prunable(cp.checkpoints(g.workdir), now, older_than)
        results: list[dict[str, Any]] = []
        if not candidates:
            _emit(g, {"results": [], "dry_run": dry_run}, "Nothing to prune: no checkpoint has expired.")
            return EXIT_OK
        lock = AppLock(g.workdir, command="guard prune").acquire()
        try:
            proven: list[cp.Checkpoint] = []
            for c in candidates:
                reasons = await cp.why_not_prune(client, c)
                if reasons is None:
                    _mark_pruned(g, c, already_gone=True)
                    results.append({"name": c.name, "id": c.id, "result": "already gone"})
                elif reasons:
                    _say(f"Not deleting {c.name} ({c.id}): {'; '.join(reasons)}.")
                    results.append({"name": c.name, "id": c.id, "result": "kept", "why": reasons})
                else:
                    proven.append(c)
            if proven and not dry_run:
                names = ", ".join(c.name for c in proven)
                if not await prompter.confirm(f"Delete {len(proven)} checkpoint(s): {names}?"):
                    raise CancelledError("Cancelled: no checkpoint was deleted.")
            for c in proven:
                if dry_run:
                    results.append({"name": c.name, "id": c.id, "result": "would delete"})
                    continue
                journal = Journal.open(runs_dir(g.workdir) / c.run_id)
                journal.append("step", "begin", "prune", id=c.id, checkpoint_kind=c.kind)
                try:
                    await cp.delete_checkpoint(client, c)
                except NeonError as exc:
                    journal.append("step", "failed", "prune", error=str(exc))
                    raise
                journal.append("step", "done", "prune", id=c.id)
                results.append({"name": c.name, "id": c.id, "result": "deleted"})
        finally:
            lock.release()
        text = "\n".join(f"{r['name']} ({r['id']}): {r['result']}" for r in results)
        _emit(g, {"results": results, "dry_run": dry_run}, text)
        return EXIT_OK

    return _run_async(_guarded(g, body, quiet=True), g)


def _mark_pruned(g: GlobalOptions, c: cp.Checkpoint, *, already_gone: bool) -> None:
    journal = Journal.open(runs_dir(g.workdir) / c.run_id)
    journal.append("step", "done", "prune", id=c.id, already_gone=already_gone)
