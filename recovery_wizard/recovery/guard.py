"""`recovery-wizard guard -- <command>`: know where a command's database is, keep a way back, then run it.

Three phases, kept apart so the command in the middle owns the terminal:

1. ``prepare`` (async, API): find the URL the command will reach (a URL on its command line, else the app's
   direct URL, else its pooled one), resolve it to a Neon branch, decide whether to ask (a command that can
   destroy data, or any command on the default or a protected branch), then journal the run, count each
   table's rows and take the checkpoint (both at once: the counts are read-only).
2. ``run_command`` (sync): the command with the guard's own stdin, stdout and stderr (nothing re-buffered,
   nothing read), its exit code passed through, 128+N when signal N ended it.
3. ``finish`` (async): count again; a table that lost more than the threshold of its rows ends the guard
   with a loud warning and the one command that brings the data back.

Nothing is written to Neon before the person saw where the command goes (and, when asked, typed the branch
name). No secret reaches the output or the journal: the echoed command is masked by ``guardcmd.echo``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from recovery_wizard.neon import NeonClient, NeonError
from recovery_wizard.neon.errors import ForbiddenError, UnauthorizedError
from recovery_wizard.recovery import checkpoint as cp
from recovery_wizard.recovery import guardcmd, prisma
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.recovery.lock import AppLock
from recovery_wizard.recovery.outcome import (
    CancelledError,
    InterruptedRunError,
    StepFailedError,
    UsageError,
)
from recovery_wizard.recovery.whereis import AppUrl, Resolver, TableSize, Where, app_urls, locate, table_sizes
from recovery_wizard.redact import Secret, mask_url

# Neon refuses expires_at more than 30 days ahead.
MAX_EXPIRY: Final = timedelta(days=30)
COUNT_TIMEOUT: Final = 60.0
# Variables a migration reads its URL from, before the pooled ones (Prisma's directUrl and the like).
_DIRECT_VARS: Final = ("DIRECT_URL", "DATABASE_URL_UNPOOLED", "POSTGRES_URL_NON_POOLING")
_POOLED_VARS: Final = ("DATABASE_URL", "POSTGRES_PRISMA_URL", "POSTGRES_URL")

Say = Callable[[str], None]
AskTyped = Callable[[str], str | None]  # prompt -> what was typed (None: no terminal to ask on)


@dataclass
class GuardOptions:
    argv: list[str]
    workdir: Path
    environ: Mapping[str, str]
    project_id: str | None = None
    checkpoint: str = "branch"  # "branch", "snapshot" or "none"
    allow_default: bool = False
    yes: bool = False
    threshold: float = 10.0  # percent of a table's rows
    expires: timedelta = timedelta(days=7)


@dataclass
class Prepared:
    """What phase 1 settled: the target, the journal, the checkpoint, the counts before."""

    target: AppUrl
    where: Where | None
    reason: str | None
    journal: Journal | None = None
    checkpoint: cp.Checkpoint | None = None
    before: TableSize | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Completed:
    exit_code: int  # what the guard exits with: the command's, or 128+N after signal N
    signal: str | None  # "SIGTERM" when a signal ended the command
    started_at: datetime


@dataclass(frozen=True)
class Loss:
    table: str
    before: int
    after: int | None  # None: the table is gone

    @property
    def percent(self) -> float:
        return 100.0 * (self.before - (self.after or 0)) / self.before

    def line(self) -> str:
        if self.after is None:
            return f"{self.table}: the table is gone ({self.before:,} rows before)"
        lost = self.before - self.after
        return f"{self.table}: lost {lost:,} of {self.before:,} rows ({self.percent:.0f} %)"


# --- phase 1 -------------------------------------------------------------------------------------------


def pick_target(options: GuardOptions) -> AppUrl:
    """The URL the command will reach: on its command line, else the direct one, else the pooled one.

    The process environment wins over the env files, as it does for the app and for Prisma.
    """
    given = guardcmd.url_in(options.argv)
    if given:
        return AppUrl("command line", "argv", Secret(given))
    found = app_urls(options.workdir, options.environ)
    detected = prisma.detect(options.workdir)
    direct = [detected.direct_var] if detected and detected.direct_var else []
    pooled = [detected.url_var] if detected and detected.url_var else []
    order = [*direct, *_DIRECT_VARS, *pooled, *_POOLED_VARS]
    for name in order:
        for app_url in found:  # environment first, then the files
            if app_url.variable == name:
                return app_url
    if found:
        return found[0]
    raise UsageError(
        f"No database URL found for the command: none of {', '.join(_POOLED_VARS + _DIRECT_VARS)} is set in "
        f"the environment or in {options.workdir}'s .env, .env.local or prisma/.env.",
        hint="Run the guard from your app's directory, or set DATABASE_URL (and DIRECT_URL) for the command.",
    )


NO_KEY: Final = "no Neon API key was given (set NEON_API_KEY)"


async def resolve(
    client: NeonClient | None, options: GuardOptions, target: AppUrl
) -> tuple[Where | None, str | None]:
    """Where the target points, or (None, why) when the API cannot be asked. A refused key is an error."""
    if client is None:
        return None, NO_KEY
    try:
        return await locate(Resolver(client, options.project_id), target), None
    except (UnauthorizedError, ForbiddenError):
        raise
    except NeonError as exc:
        return None, str(exc)


def _refused(message: str, hint: str) -> UsageError:
    return UsageError(message, hint=hint)


def plan_checkpoint(
    options: GuardOptions, where: Where | None, api_error: str | None, reason: str | None
) -> tuple[str, list[str]]:
    """The checkpoint kind to take ("none" included) and the warnings to show; raises when refused."""
    kind = options.checkpoint
    warnings: list[str] = []
    if where is None or where.kind != "neon":
        if where is None:
            why = f"the Neon API could not be asked where it points ({api_error})"
        elif where.kind == "foreign":
            why = f"{where.host} is not an endpoint the API key can see (a different account or project)"
        else:
            why = f"{where.host} is not a Neon endpoint"
        if reason and kind != "none":
            raise _refused(
                f"Refusing to run it without a checkpoint: {reason}, and {why}, so no checkpoint can be made.",
                "Try again once the guard can reach the branch through the API (check NEON_API_KEY and "
                "NEON_PROJECT_ID), or pass --no-checkpoint to run it with nothing to come back to.",
            )
        if kind != "none":
            warnings.append(f"No checkpoint: {why}.")
        return "none", warnings
    assert where.branch is not None
    if kind == "snapshot" and not where.branch.is_root:
        raise _refused(
            f"--checkpoint snapshot needs a root branch, and {where.branch.name} is a child branch "
            "(Neon snapshots only root branches).",
            "Use --checkpoint branch (the default).",
        )
    if where.pooled:
        warnings.append(
            f"{where.variable} is the POOLED URL; migrations need the direct one (Prisma's directUrl): "
            "the checkpoint is of the same branch either way."
        )
    return kind, warnings


def confirmation(options: GuardOptions, where: Where | None, reason: str | None) -> tuple[str, str] | None:
    """(why, what to type) when the person must confirm by typing the branch name; None when not."""
    branch = where.branch if where is not None else None
    why = []
    if reason:
        why.append(f"this command can destroy data: {reason}")
    if branch is not None and (branch.default or branch.protected):
        flags = " and ".join(
            f for f, on in (("default", branch.default), ("protected", branch.protected)) if on
        )
        why.append(f"{branch.name} is the project's {flags} branch")
    if not why:
        return None
    expected = (
        branch.name if branch is not None else (where.host if where is not None and where.host else "yes")
    )
    return "; ".join(why), expected


def confirm(options: GuardOptions, where: Where | None, reason: str | None, say: Say, ask: AskTyped) -> None:
    needed = confirmation(options, where, reason)
    if needed is None:
        return
    why, expected = needed
    say(f"guard: {why}.")
    if options.yes:
        if options.allow_default:
            say("guard: --yes --allow-default: going ahead without asking.")
            return
        raise _refused(
            f"Refused under --yes: {why}.",
            "Run it at a terminal to confirm by typing the branch name, or pass --allow-default as well "
            "(for CI, where the checkpoint is the way back).",
        )
    typed = ask(f"Type the branch name ({expected}) to run it there: ")
    if typed is None:
        raise _refused(
            f"Cannot ask for confirmation (no terminal): {why}.",
            "Run it at a terminal, or pass --yes --allow-default (for CI).",
        )
    if typed.strip() != expected:
        raise CancelledError(
            f"Cancelled: {typed.strip()!r} is not {expected!r}. The command did not run; nothing was written."
        )


def describe(where: Where | None, target: AppUrl, api_error: str | None) -> str:
    if where is None:
        return f"{target.variable} ({target.source}) → {mask_url(target.url.reveal())}: not resolved ({api_error})"
    return where.summary()


async def prepare(client: NeonClient | None, options: GuardOptions, say: Say, ask: AskTyped) -> Prepared:
    """Phase 1: where the command goes, the confirmation, the journal, the counts and the checkpoint."""
    if options.expires > MAX_EXPIRY or options.expires <= timedelta(0):
        raise UsageError(
            "--expires must be more than zero and at most 30 days (Neon's limit).",
            hint="For example --expires 7d.",
        )
    if not options.argv:
        raise UsageError("No command to guard.", hint="recovery-wizard guard -- npx prisma migrate deploy")
    reason = guardcmd.destructive_reason(options.argv)
    target = pick_target(options)
    where, api_error = await resolve(client, options, target)
    say(f"guard: {describe(where, target, api_error)}")
    kind, warnings = plan_checkpoint(options, where, api_error, reason)
    for warning in warnings:
        say(f"guard: warning: {warning}")
    confirm(options, where, reason, say, ask)

    prepared = Prepared(target, where, reason, warnings=warnings)
    lock = AppLock(options.workdir, command="guard").acquire()
    try:
        journal = Journal.create(options.workdir)
        lock.set_run(journal.run_id)
        prepared.journal = journal
        branch = where.branch if where is not None else None
        journal.append(
            "run",
            "start",
            command=cp.COMMAND,
            guarded=guardcmd.echo(options.argv),
            variable=target.variable,
            source=target.source,
            url=mask_url(target.url.reveal()),
            project_id=where.project.id if where is not None and where.project else None,
            branch_id=branch.id if branch else None,
            branch_name=branch.name if branch else None,
            checkpoint=kind,
            destructive=reason,
            threshold=options.threshold,
        )
        counting = asyncio.ensure_future(_count(target.url, say, "before"))
        try:
            if kind != "none":
                assert client is not None and where is not None and where.project is not None
                prepared.checkpoint = await _take(client, journal, kind, where, options, say)
        except BaseException:
            counting.cancel()
            raise
        prepared.before = await counting
    finally:
        lock.release()
    return prepared


async def _take(
    client: NeonClient, journal: Journal, kind: str, where: Where, options: GuardOptions, say: Say
) -> cp.Checkpoint:
    assert where.project is not None and where.branch is not None
    make = cp.make_snapshot_checkpoint if kind == "snapshot" else cp.make_branch_checkpoint
    expires_at = datetime.now(UTC) + options.expires
    try:
        made = await make(
            client,
            journal,
            project_id=where.project.id,
            branch_id=where.branch.id,
            branch_name=where.branch.name,
            expires_at=expires_at,
        )
    except asyncio.CancelledError as exc:
        # A signal while Neon made it: the checkpoint may exist. Not "nothing was changed" (what an
        # interrupt before any write says): name it, and say it expires on its own.
        journal.append("run", "end", status="interrupted")
        raise InterruptedRunError(
            f"Interrupted ({exc.args[0] if exc.args else 'cancelled'}) while making the checkpoint "
            f"{cp.checkpoint_name(journal.run_id)}; the command did not run. If Neon made the checkpoint, "
            f"it expires by itself on {expires_at:%Y-%m-%d %H:%M} UTC.",
            hint="Run the guard again when ready; `recovery-wizard branches` shows whether the checkpoint exists.",
        ) from None
    except NeonError as exc:
        journal.append("step", "failed", cp.STEP, error=str(exc))
        journal.append("run", "end", status="failed")
        raise StepFailedError(
            cp.STEP,
            f"the checkpoint of {where.branch.name} could not be made: {exc}. The command did not run.",
            hint=exc.hint
            or "Try again in a minute; or pass --no-checkpoint to run it with nothing to come back to.",
        ) from None
    when = made.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if made.at else "now"
    say(f"guard: checkpoint {made.name} ({made.kind} {made.id}, LSN {made.lsn or '?'}, {when}).")
    return made


async def _count(url: Secret, say: Say, when: str) -> TableSize | None:
    try:
        return await table_sizes(url, seconds=COUNT_TIMEOUT, exact=True)
    except Exception as exc:  # a comparison we cannot make is said, never fatal
        from recovery_wizard.redact import redact

        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        say(f"guard: warning: could not count rows {when} the command ({redact(first)}); no comparison.")
        return None


# --- phase 2 -------------------------------------------------------------------------------------------

# Ctrl-C and Ctrl-\ at the terminal reach the command's process group (ours too): the guard ignores them
# while it waits, as a shell does for its foreground job, and lets the command decide. SIGTERM and SIGHUP
# sent to the guard alone are passed on to the command.
_IGNORED: Final = (signal.SIGINT, signal.SIGQUIT)
_FORWARDED: Final = (signal.SIGTERM, signal.SIGHUP)


def run_command(argv: list[str], *, cwd: Path | None = None) -> Completed:
    """Run ``argv`` with the guard's own stdin, stdout and stderr; exit code (128+N after signal N)."""
    started = datetime.now(UTC)
    try:
        proc = subprocess.Popen(argv, cwd=cwd)  # inherits fds 0-2: the command's output is never ours
    except FileNotFoundError:
        return Completed(127, None, started)
    except PermissionError:
        return Completed(126, None, started)
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in _IGNORED:
        previous[sig] = signal.signal(sig, signal.SIG_IGN)
    for sig in _FORWARDED:
        previous[sig] = signal.signal(sig, forward)
    try:
        code = proc.wait()
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    if code < 0:
        return Completed(128 - code, signal.Signals(-code).name, started)
    return Completed(code, None, started)


# --- phase 3 -------------------------------------------------------------------------------------------


def losses(before: TableSize, after: TableSize, threshold: float) -> list[Loss]:
    now = dict(after.largest)
    found = []
    for table, rows in before.largest:
        if rows <= 0:
            continue
        left = now.get(table)
        loss = Loss(table, rows, left)
        if loss.percent > threshold:
            found.append(loss)
    return sorted(found, key=lambda item: -item.percent)


async def finish(prepared: Prepared, done: Completed, options: GuardOptions, say: Say) -> list[Loss]:
    """Phase 3: journal the command's end, compare the counts, warn loudly on a loss."""
    journal = prepared.journal
    assert journal is not None
    echoed = guardcmd.echo(options.argv)
    journal.append(
        "step", "done", "command", exit_code=done.exit_code, signal=done.signal, started_at=done.started_at
    )
    after = await _count(prepared.target.url, say, "after") if prepared.before is not None else None
    found = losses(prepared.before, after, options.threshold) if prepared.before and after else []
    journal.append(
        "step",
        "done",
        "counts",
        before=dict(prepared.before.largest) if prepared.before else None,
        after=dict(after.largest) if after else None,
        lost=[item.table for item in found],
    )
    made = prepared.checkpoint
    if done.signal:
        say(f"guard: `{echoed}` was ended by {done.signal} (exit {done.exit_code}).")
    elif done.exit_code in (126, 127):
        say(
            f"guard: `{echoed}` could not be started (exit {done.exit_code}: {'not found' if done.exit_code == 127 else 'not executable'})."
        )
    if found:
        say("")
        say("!" * 78)
        say(f"!!! DATA LOSS while `{echoed}` ran:")
        for item in found:
            say(f"!!!   {item.line()}")
        if made is not None:
            say(f"!!! Bring it back as it was at the checkpoint {made.name}:")
            say(f"!!!   {made.restore_command}")
        else:
            say(
                "!!! There is no checkpoint to bring it back from: see `recovery-wizard timeline` and `restore --at`."
            )
        say("!" * 78)
    elif made is not None and (done.signal or done.exit_code != 0):
        say(f"guard: the checkpoint {made.name} is kept: {made.restore_command}")
    elif made is not None:
        say(
            f"guard: no table lost more than {options.threshold:g} % of its rows; checkpoint {made.name} kept until it expires."
        )
    status = (
        "data-loss"
        if found
        else ("interrupted" if done.signal else ("done" if done.exit_code == 0 else "command-failed"))
    )
    journal.append("run", "end", status=status, exit_code=done.exit_code)
    return found


def default_ask(prompt: str) -> str | None:
    """Read a line from the controlling terminal, not stdin: stdin belongs to the guarded command."""
    try:
        with open("/dev/tty", "r+b", buffering=0) as tty:
            tty.write(prompt.encode())
            line = b""
            while not line.endswith(b"\n"):
                chunk = tty.read(1)
                if not chunk:
                    break
                line += chunk
            return line.decode(errors="replace").rstrip("\r\n")
    except OSError:
        return None
