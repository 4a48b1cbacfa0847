"""The headless commands (`restore`, `drill`, `branches`, `env rollback`): build the services, run the
runbook with plain-terminal prompts, print the result (human text, or one JSON object under --json) and
return the documented exit code. Imported by cli.py only when such a command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from recovery_wizard import __version__
from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import DEFAULT_API_URL, NeonClient, NeonError, RetryNotice
from recovery_wizard.neon.errors import ForbiddenError, NotFoundError, UnauthorizedError
from recovery_wizard.plain.prompts import ScriptPrompter, TerminalPrompter
from recovery_wizard.plain.reporter import StderrReporter
from recovery_wizard.recovery.journal import (
    Journal,
    JournalError,
    find_run,
    journals,
    latest_resumable,
)
from recovery_wizard.recovery.lock import AppLock, LockedError
from recovery_wizard.recovery.options import RunOptions
from recovery_wizard.recovery.outcome import (
    EXIT_CANCELLED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    CancelledError,
    UsageError,
    resume_command,
)
from recovery_wizard.recovery.ui import Prompter
from recovery_wizard.recovery.unfinished import describe_run, superseded_by, unfinished_runs
from recovery_wizard.redact import Secret, redact
from recovery_wizard.textsafe import printable

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import RunResult

T = TypeVar("T")


@dataclass
class GlobalOptions:
    api_key: str | None
    api_url: str | None
    project_id: str | None
    json: bool
    yes: bool
    workdir: Path


def make_prompter(g: GlobalOptions) -> Prompter:
    if g.yes:
        return ScriptPrompter(assume_yes=True)
    if sys.stdin.isatty() and sys.stderr.isatty():
        return TerminalPrompter()
    return ScriptPrompter(assume_yes=False)


def _emit(g: GlobalOptions, payload: dict[str, Any], human: str) -> None:
    if g.json:
        # json.dumps escapes every control character (and, with ensure_ascii, every non-ASCII one) itself.
        sys.stdout.write(redact(json.dumps(payload, default=str, sort_keys=True)) + "\n")
    elif human:
        sys.stdout.write(printable(redact(human), multiline=True) + "\n")
    sys.stdout.flush()


def _say(text: str) -> None:
    """A line on stderr: messages name branches and quote Neon, so they are redacted and made printable."""
    with contextlib.suppress(OSError):  # a terminal that hung up (SIGHUP after an SSH drop)
        print(printable(redact(text), multiline=True), file=sys.stderr, flush=True)


def _fail(g: GlobalOptions, error: RecoveryError, code: int, status: str) -> int:
    """An error before a run started writing (or a read-only command's): message, hint, JSON, exit code."""
    _say(f"error: {error}")
    if error.hint:
        _say(f"hint: {error.hint}")
    if g.json:
        _emit(g, {"status": status, "error": {"message": str(error), "hint": error.hint}}, "")
    return code


async def _api_key(g: GlobalOptions, prompter: Prompter) -> Secret:
    if g.api_key:
        return Secret(g.api_key)
    if isinstance(prompter, TerminalPrompter):
        import questionary

        from recovery_wizard.plain.prompts import _fresh_input, _output

        typed = await questionary.password(
            "Neon API key (not echoed):", input=_fresh_input(), output=_output()
        ).unsafe_ask_async()
        if typed:
            return Secret(str(typed).strip())
    raise UsageError(
        "No Neon API key was given.",
        hint="Set NEON_API_KEY or pass --api-key (create one in the Neon Console: Account settings → API keys).",
    )


async def with_client(
    g: GlobalOptions, reporter: StderrReporter, prompter: Prompter, body: Callable[[NeonClient], Awaitable[T]]
) -> T:
    from recovery_wizard.neon.apiurl import check_api_url
    from recovery_wizard.neon.errors import BadAPIURLError
    from recovery_wizard.neon.transport import http_client

    try:  # before the key is asked for: nothing is sent to a URL that would expose it
        base_url = check_api_url(g.api_url or DEFAULT_API_URL)
    except BadAPIURLError as exc:
        raise UsageError(str(exc), hint=exc.hint) from None
    key = await _api_key(g, prompter)

    def retrying(notice: RetryNotice) -> None:
        reporter.progress(
            f"Neon answered {notice.reason} to {notice.method} {notice.path}; retrying in {notice.delay:.1f} s"
        )

    headers = {"User-Agent": f"recovery-wizard/{__version__}"}
    async with http_client(base_url, headers=headers) as http:
        client = NeonClient(http, key, base_url=base_url, on_retry=retrying)
        return await body(client)


# The one interrupt path: each of these cancels the running command's task, naming the signal. A run that
# has started writing then stops its children (Prisma's process group), journals `end interrupted`, writes
# its incident record and prints the command that resumes it; the process exits 3 (EXIT_CANCELLED).
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Set once a run has ended (its record written): a signal after that has nothing left to stop, and a
# cancellation then would only lose the result that is about to be printed.
_settled: list[bool] = []


def _run_ended(result: T) -> T:
    _settled.append(True)
    return result


def _run_async(coro: Awaitable[int], g: GlobalOptions | None = None) -> int:
    # envfile reports unparseable lines itself (by line number, never the value): silence dotenv's own log.
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)
    try:
        return asyncio.run(_interruptible(coro, g))
    except KeyboardInterrupt:
        # Ctrl-C at a questionary prompt before anything was written (prompt_toolkit raises it itself).
        print("\ninterrupted: nothing was written.", file=sys.stderr)
        return EXIT_CANCELLED


async def _interruptible(coro: Awaitable[int], g: GlobalOptions | None) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[str] = []
    _settled.clear()

    def on_signal(sig: signal.Signals) -> None:
        if received or _settled:
            _say(f"\n{sig.name}: already stopping (writing the record); one moment.")
            return
        received.append(sig.name)
        task.cancel(msg=sig.name)  # first: after an SSH drop (SIGHUP) the terminal may be gone already
        _say(f"\n{sig.name}: stopping…")

    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(on_signal, signal.Signals(signum))

    # Plain signal handlers, not loop.add_signal_handler: a questionary prompt (prompt_toolkit) takes SIGINT
    # over while it asks and afterwards removes the loop's SIGINT handler, but puts a plain one back. This is
    # what asyncio.run itself does for SIGINT.
    previous: dict[signal.Signals, Any] = {}
    for sig in INTERRUPT_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not POSIX
            previous[sig] = signal.signal(sig, handler)
    try:
        return await coro
    except asyncio.CancelledError:
        if not received:
            raise
        # Interrupted before any run started writing (planning, a prompt, a read-only command).
        task.uncancel()
        error = CancelledError(f"Interrupted by {received[0]}; nothing was changed.")
        return _fail(g, error, EXIT_CANCELLED, "cancelled") if g else _print_error(error, EXIT_CANCELLED)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_error(error: RecoveryError, code: int) -> int:
    _say(f"error: {error}")
    return code


# --- restore and drill ----------------------------------------------------------------------------------


def restore(g: GlobalOptions, options: RunOptions, resume: str | None, new: bool = False) -> int:
    return _run_async(_restore(g, options, resume, new), g)


async def _restore(g: GlobalOptions, options: RunOptions, resume: str | None, new: bool = False) -> int:
    reporter = StderrReporter()
    prompter = make_prompter(g)
    journal: Journal | None = None
    lock = AppLock(g.workdir, command=options.command)
    abandon: list[Journal] = []
    try:
        if resume is not None and new:
            raise UsageError("--resume and --new contradict each other.", hint="Pass one of them.")
        if not options.dry_run:
            lock.acquire()  # before reading the journals: nobody else may be writing them
        if resume is not None:
            damaged: list[str] = []
            journal = (
                latest_resumable(g.workdir, options.command, warn=damaged.append)
                if resume == "latest"
                else find_run(g.workdir, resume)
            )
            if damaged:
                # A newer run than the one found cannot be read: "the latest" is not known, so do not guess.
                older = f" To continue {journal.run_id} (older), pass its id." if journal else ""
                which = "a newer run's journal" if journal else "a run's journal"
                raise UsageError(
                    f"Not resuming: {which} cannot be read, so the latest run is not known. {' '.join(damaged)}",
                    hint=f"Pass the run id to resume: `recovery-wizard {options.command} --resume RUN_ID`.{older}"
                    f" Or start a new {options.command} with --new.",
                )
            if journal is None:
                raise UsageError(
                    f"There is no unfinished or failed {options.command} run in {g.workdir} to resume."
                )
            if journal.command != options.command:
                raise UsageError(
                    f"Run {journal.run_id} is a {journal.command or 'unknown'} run, not a {options.command};"
                    f" `{options.command} --resume` cannot continue it.",
                    hint=f"Run `recovery-wizard {journal.command} --resume {journal.run_id}`."
                    if journal.command in ("restore", "drill")
                    else f"Pass the id of a {options.command} run, or start one with --new.",
                )
            if not journal.resumable:
                raise UsageError(f"Run {journal.run_id} already ended ({journal.status}); nothing to resume.")
            later = superseded_by(g.workdir, journal) if resume == "latest" else None
            if later is not None:
                raise UsageError(
                    f"Not resuming {journal.run_id}: the later {options.command} {later.run_id} finished after it"
                    " stopped, and continuing the older one would repoint .env back at its branch.",
                    hint=f"Start a new {options.command} with --new (it marks {journal.run_id} abandoned), or pass"
                    f" its id if you do mean to continue it: {resume_command(options.command, journal.run_id)}.",
                )
            lock.set_run(journal.run_id)
        elif not options.dry_run:
            runs = unfinished_runs(g.workdir, options.command, warn=reporter.warn)
            # A restore superseded by a later finished one is not offered (continuing it would undo that
            # repair); it is marked abandoned like the runs a new one replaces.
            pending = [run.journal for run in runs if run.superseded_by is None]
            abandon = [run.journal for run in runs if run.superseded_by is not None]
            if pending and not new:
                journal = await _resume_or_new(g, options, prompter, pending)
                if journal is None:
                    abandon += pending
                else:
                    lock.set_run(journal.run_id)
            elif pending:
                abandon += pending

        def started(started_journal: Journal) -> None:
            lock.set_run(started_journal.run_id)
            for old in abandon:
                if old.run_id != started_journal.run_id:
                    # So that `--resume` (the latest) never picks it up again, e.g. after a find-moment.
                    old.append("run", "end", status="abandoned", superseded_by=started_journal.run_id)

        result = await with_client(
            g,
            reporter,
            prompter,
            lambda client: _after(_run(client, options, prompter, reporter, journal, started)),
        )
    except (UsageError, LockedError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except CancelledError as exc:
        return _fail(g, exc, exc.exit_code, "cancelled")
    except (UnauthorizedError, ForbiddenError, NotFoundError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except JournalError as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except (NeonError, RecoveryError) as exc:
        return _fail(g, exc, EXIT_STEP_FAILED, "failed")
    finally:
        lock.release()
    payload = result.to_dict()
    if result.status == "dry-run":
        _emit(g, payload, "Dry run: nothing was written.")
        return EXIT_OK
    # The run's record is written; a terminal that hung up (SIGHUP after an SSH drop) must not turn its
    # outcome into a traceback and another exit code.
    with contextlib.suppress(OSError):
        if result.error is not None:
            _say(f"error: {result.error}")
            if result.error.hint:
                _say(f"hint: {result.error.hint}")
            _emit(g, payload, "\n".join([f"Incident record: {result.report_path}", *_by_hand(result)]))
        else:
            _emit(g, payload, _summary(result))
    return EXIT_OK if result.error is None else result.error.exit_code


# What planning and the steps import (the plan, the sources, env files, Prisma, the runner and its steps):
# none of it is needed to ask Neon for the project and its branches.
RUNBOOK_MODULES = ("recovery_wizard.recovery.runner",)
# Event-loop steps to let the first reads start in before importing those (a bound, not a wait: each read
# starts within two or three).
FIRST_READS_START_STEPS = 8


async def _run(
    client: NeonClient,
    options: RunOptions,
    prompter: Prompter,
    reporter: StderrReporter,
    resume: Journal | None,
    on_journal: Callable[[Journal], None],
) -> RunResult:
    """The runbook, its first reads sent before its modules are imported.

    Importing them takes 20-50 ms; a new run's first reads (the project and its branches) need none of
    them, so they go out first and the imports run in a worker thread while Neon answers (one round trip,
    50 ms and more), instead of before they are sent. The reads never outlive the run: if planning does not
    take them (it refused the options first, or a guard checkpoint names another project), they are
    cancelled.
    """
    from recovery_wizard.recovery.alongside import alongside
    from recovery_wizard.recovery.options import FirstReads
    from recovery_wizard.recovery.preload import preload

    sent = client.requests_sent
    first = FirstReads.start(client, options.project_id) if resume is None and options.project_id else None
    async with alongside(first.answers if first else asyncio.sleep(0)) as answers:
        # Let both reads start first: the first request's own imports (httpx's network backend) run on
        # this thread, and an import thread started beside them would take the GIL from them.
        for _ in range(FIRST_READS_START_STEPS):
            if first is None or answers.done() or client.requests_sent >= sent + 2:
                break
            await asyncio.sleep(0)
        await asyncio.to_thread(preload, RUNBOOK_MODULES)
        from recovery_wizard.recovery.runner import run

        result = await run(
            client, options, prompter, reporter, resume=resume, on_journal=on_journal, first=first
        )
        answers.cancel()  # taken by the plan already, or not needed
        await asyncio.gather(answers, return_exceptions=True)
    return result


async def _after(running: Awaitable[T]) -> T:
    return _run_ended(await running)


async def _resume_or_new(
    g: GlobalOptions, options: RunOptions, prompter: Prompter, pending: list[Journal]
) -> Journal | None:
    """An unfinished run of the same command exists: resume it (returned) or start anew (None).

    Never guessed: a second restore next to an unfinished one would make another branch and repoint .env
    again, and resuming an old one would apply a plan the user may have given up on.
    """
    latest = pending[0]
    what = describe_run(latest)
    command = options.command
    if isinstance(prompter, TerminalPrompter):
        answer = await prompter.choose(
            f"Run {what} did not finish. Resume it, or start a new {command}?",
            [
                (f"Resume {latest.run_id} (nothing it did is repeated)", "resume"),
                (f"Start a new {command} (the unfinished run is marked abandoned)", "new"),
                ("Cancel", "cancel"),
            ],
            option="--resume or --new",
        )
        if answer == "cancel":
            raise CancelledError("Cancelled before any change.")
        if answer == "resume":
            print(
                f"Resuming {latest.run_id} with the plan it was started with (this command's --at, --name"
                " and the like are not used).",
                file=sys.stderr,
            )
            return latest
        return None
    others = f" ({len(pending) - 1} older unfinished run(s) too)" if len(pending) > 1 else ""
    raise UsageError(
        f"Run {what} did not finish{others}. Say whether to continue it or start another.",
        hint=f"Continue it: {resume_command(command, latest.run_id)}. Or start a new {command} with --new"
        " (the unfinished run is then marked abandoned; its branch stays until you delete it).",
    )


def _summary(result: Any) -> str:
    plan = result.plan
    lines = []
    if plan.command == "drill":
        verdict = "passed" if (result.verification or {}).get("ok", True) else "FAILED"
        fate = "deleted" if result.deleted else "kept"
        lines.append(
            f"Drill {verdict}: {plan.branch.name} restored to {plan.moment.describe()} as "
            f"{result.restore_branch.name} ({fate})."
        )
    elif plan.merge_back:
        merge = result.merge or {}
        done = merge.get("result") or {}
        rows = sum(int(v) for v in (done.get("inserted") or {}).values())
        left_out = (merge.get("plan") or {}).get("conflicts", 0)
        checkpoint = merge.get("checkpoint")
        lines.append(
            f"Merged back into {plan.branch.name} from {plan.moment.describe()}: {rows} lost row(s) re-inserted, "
            f"{left_out} conflict(s) left out (listed in the record); every write made since is kept."
            + (
                f" Undo: reset {plan.branch.name} to the checkpoint {checkpoint['name']}."
                if checkpoint
                else ""
            )
        )
    elif plan.in_place:
        lines.append(
            f"Restored {plan.branch.name} in place to {plan.moment.describe()}; the damaged state is kept as "
            f"{result.backup_branch['name']}."
        )
    else:
        lines.append(
            f"Restored {plan.branch.name} to {plan.moment.describe()} as {result.restore_branch.name} "
            f"({result.restore_branch.id})."
        )
    for env in result.env_files:
        lines.append(
            f"{env['path']}: {', '.join(env['variables'])} now point at {result.restore_branch.name}."
        )
    lines.append(f"Incident record: {result.report_path}")
    lines += _by_hand(result)
    return "\n".join(lines)


def _by_hand(result: Any) -> list[str]:
    from recovery_wizard.recovery.handoff import left_by_hand

    todo = left_by_hand(result)
    return ["Left to do by hand:", *(f"- {line}" for line in todo)] if todo else []


# --- branches ---------------------------------------------------------------------------------------------


def branches(g: GlobalOptions) -> int:
    return _run_async(_branches(g), g)


async def _guarded(
    g: GlobalOptions,
    body: Callable[[GlobalOptions, NeonClient, StderrReporter, Prompter], Awaitable[int]],
    *,
    quiet: bool = False,
) -> int:
    """Run a read-only command with a client; map its failures to the documented exit codes."""
    reporter = StderrReporter(quiet=quiet)
    prompter = make_prompter(g)
    try:
        return await with_client(g, reporter, prompter, lambda client: body(g, client, reporter, prompter))
    except (UsageError, UnauthorizedError, ForbiddenError, NotFoundError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except CancelledError as exc:
        return _fail(g, exc, exc.exit_code, "cancelled")
    except RecoveryError as exc:
        return _fail(g, exc, EXIT_STEP_FAILED, "failed")


async def _branches(g: GlobalOptions) -> int:
    return await _guarded(g, _list_branches, quiet=True)


async def _list_branches(
    g: GlobalOptions, client: NeonClient, reporter: StderrReporter, prompter: Prompter
) -> int:
    from recovery_wizard.recovery.plan import choose_project

    options = RunOptions(command="branches", workdir=g.workdir, project_id=g.project_id)
    project = await choose_project(client, options, prompter)
    found = await client.branches(project.id)
    found.sort(key=lambda b: (not b.default, b.name))
    rows: list[dict[str, Any]] = []
    for b in found:
        flags = ",".join(
            f for f, on in (("default", b.default), ("protected", b.protected), ("root", b.is_root)) if on
        )
        rows.append(
            {
                "id": b.id,
                "name": b.name,
                "flags": flags,
                "state": b.current_state,
                "size_mb": None if b.logical_size is None else round(b.logical_size / 1_048_576, 1),
                "created_at": b.created_at.isoformat() if b.created_at else None,
                "last_reset_at": b.last_reset_at.isoformat() if b.last_reset_at else None,
                "parent_id": b.parent_id,
            }
        )
    header = ("NAME", "ID", "FLAGS", "STATE", "SIZE", "CREATED (UTC)", "LAST RESET (UTC)")
    table = (
        [header]
        + [
            (
                printable(
                    r["name"]
                ),  # one line, controls shown: the columns stay aligned and the terminal safe
                r["id"],
                r["flags"],
                r["state"],
                "" if r["size_mb"] is None else f"{r['size_mb']} MB",
                (r["created_at"] or "")[:16].replace("T", " "),
                (r["last_reset_at"] or "")[:16].replace("T", " "),
            )
            for r in rows
        ]
    )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    text = "\n".join("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)
    _emit(
        g,
        {"project": {"id": project.id, "name": project.name}, "branches": rows},
        f"{project.name} ({project.id})\n{text}",
    )
    return EXIT_OK


# --- env rollback -----------------------------------------------------------------------------------------


def env_rollback(g: GlobalOptions, run_id: str | None) -> int:
    from recovery_wizard.recovery import envfile

    reporter = StderrReporter()
    try:
        with AppLock(g.workdir, command="env rollback", run_id=run_id):
            journal = find_run(g.workdir, run_id) if run_id else _last_env_run(g.workdir, reporter)
            restored = _rollback(journal, reporter, yes=g.yes)
    except (UsageError, JournalError, LockedError, envfile.EnvFileError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    _emit(
        g,
        {"status": "done", "run_id": journal.run_id, "env_files": restored},
        "\n".join(f"Restored {r['path']} from {r['backup']}." for r in restored),
    )
    return EXIT_OK


def _last_env_run(workdir: Path, reporter: StderrReporter) -> Journal:
    for journal in journals(workdir, warn=reporter.warn):
        rolled = any(r.step == "rollback" and r.event == "done" for r in journal.records)
        if not rolled and _env_writes(journal):
            return journal
    raise UsageError(f"No run in {workdir} changed an env file that has not been rolled back already.")


@dataclass(frozen=True)
class _EnvWrite:
    """One env file a run wrote: where, the backup of what it held before, and the digest written."""

    path: Path
    backup: Path
    written: str | None


def _env_writes(journal: Journal) -> list[_EnvWrite]:
    """The env files the run wrote, in the order written, read from each file's last begin/done records.

    A ``done`` record names the file and the digest written (older journals' resume path left them out: the
    ``begin`` record has them). A ``begin`` without ``done`` (killed around the swap) counts as written only
    when the file holds exactly what the run was about to write.
    """
    from recovery_wizard.recovery import envfile

    writes: dict[str, _EnvWrite] = {}
    for key in dict.fromkeys(r.step for r in journal.records if r.step and r.step.startswith("env:")):
        last, begin = journal.last(key), journal.last(key, "begin")
        if last is None or begin is None or last.event not in ("begin", "done"):
            continue
        path_text = last.data.get("path") or begin.data.get("path")
        backup_text = last.data.get("backup") or begin.data.get("backup")
        if not path_text or not backup_text:
            raise UsageError(
                f"The journal of run {journal.run_id} does not say which file or backup {key} was.",
                hint=f"Put the file back by hand from {journal.run_dir / 'env-backups'}.",
            )
        path, backup = Path(str(path_text)), Path(str(backup_text))
        written = last.data.get("written") or begin.data.get("after")
        if last.event == "begin" and (not path.exists() or envfile.EnvFile.read(path).digest != written):
            continue  # the swap never happened: the file is as it was
        writes[key] = _EnvWrite(path, backup, None if written is None else str(written))
    return list(writes.values())


def _rollback(journal: Journal, reporter: StderrReporter, *, yes: bool) -> list[dict[str, str]]:
    from recovery_wizard.recovery import envfile

    written = _env_writes(journal)
    if not written:
        raise UsageError(f"Run {journal.run_id} changed no env file.")
    if any(r.step == "rollback" and r.event == "done" for r in journal.records):
        raise UsageError(f"The env files of run {journal.run_id} were already rolled back.")
    # Check every file first: roll back all or nothing. A file already holding its backup (a rollback
    # interrupted half-way) is left as it is.
    pending: list[_EnvWrite] = []
    for write in written:
        current = envfile.EnvFile.read(write.path).digest if write.path.exists() else None
        if current is not None and current == envfile.EnvFile.read(write.backup).digest:
            continue
        if current is not None and current != write.written:
            raise UsageError(
                f"{write.path} changed after run {journal.run_id} wrote it; it was not rolled back.",
                hint=f"Compare it with the backup {write.backup} and restore by hand.",
            )
        pending.append(write)
    journal.append("step", "begin", "rollback", files=[str(w.path) for w in written])
    for write in reversed(pending):
        envfile.restore_backup(write.backup, write.path, expected_digest=write.written)
        reporter.info(f"Restored {write.path} from {write.backup}.")
    restored = [{"path": str(w.path), "backup": str(w.backup)} for w in reversed(written)]
    journal.append("step", "done", "rollback", files=[r["path"] for r in restored])
    return restored


def workdir() -> Path:
    return Path(os.getcwd())


# --- looking at the past: timeline, peek, find-moment ----------------------------------------------------


@dataclass
class PastOptions:
    branch: str | None
    database: str | None
    role: str | None
    tz: str | None


async def _lens(
    client: NeonClient, g: GlobalOptions, past: PastOptions, prompter: Prompter
) -> tuple[Any, Any, Any]:
    """The project, its restore window and a Lens on the chosen branch (database/role as `restore` picks them)."""
    from datetime import UTC, datetime

    from recovery_wizard.recovery.peek import Lens
    from recovery_wizard.recovery.plan import _only_or_ask, choose_project_and_branches, pick_branch
    from recovery_wizard.recovery.timepoint import RestoreWindow

    options = RunOptions(command="peek", workdir=g.workdir, project_id=g.project_id, branch=past.branch)
    project, branches = await choose_project_and_branches(client, options, prompter)
    branch = pick_branch(project, branches, options)
    found_databases, found_roles = await asyncio.gather(
        client.databases(project.id, branch.id), client.roles(project.id, branch.id)
    )
    databases, roles = [d.name for d in found_databases], [r.name for r in found_roles]
    database = past.database or await _only_or_ask(prompter, "database", databases, "--database", branch.name)
    role = past.role or await _only_or_ask(prompter, "role", roles, "--role", branch.name)
    if database not in databases:
        raise UsageError(
            f"Branch {branch.name!r} has no database {database!r}; it has: {', '.join(databases)}."
        )
    if role not in roles:
        raise UsageError(f"Branch {branch.name!r} has no role {role!r}; it has: {', '.join(roles)}.")
    window = RestoreWindow.from_retention(project.history_retention_seconds, datetime.now(UTC))
    return project, window, Lens(client, project.id, branch, database, role)


def _parse_time(text: str, tz: str | None, window: Any) -> Any:
    from datetime import UTC, datetime

    from recovery_wizard.recovery.plan import read_moment
    from recovery_wizard.recovery.timepoint import TimePointError, resolve_zone

    try:
        zone = resolve_zone(tz)
    except TimePointError as exc:
        raise UsageError(str(exc), hint=exc.hint) from None
    return read_moment(text, zone, window, now=datetime.now(UTC))


def _past_command(
    g: GlobalOptions, body: Callable[[NeonClient, StderrReporter, Prompter], Awaitable[int]]
) -> int:
    async def main() -> int:
        reporter = StderrReporter()
        prompter = make_prompter(g)
        try:
            return await with_client(g, reporter, prompter, lambda client: body(client, reporter, prompter))
        except (UsageError, LockedError, UnauthorizedError, ForbiddenError, NotFoundError) as exc:
            return _fail(g, exc, EXIT_USAGE, "refused")
        except CancelledError as exc:
            return _fail(g, exc, exc.exit_code, "cancelled")
        except RecoveryError as exc:
            return _fail(g, exc, EXIT_STEP_FAILED, "failed")

    return _run_async(main(), g)


def timeline(g: GlobalOptions, past: PastOptions, incident: str | None) -> int:
    from recovery_wizard.recovery.timeline import build_timeline, render_timeline
    from recovery_wizard.recovery.timepoint import resolve_zone

    async def body(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        from recovery_wizard.recovery.backup.backupdir import resolve_dir
        from recovery_wizard.recovery.timeline import backups_before, describe_offer, project_backups

        project, window, _ = await _lens(client, g, past, prompter)
        from recovery_wizard.recovery.checkpoint import checkpoints

        # An incident before the window is shown (with the backups from before it), not refused.
        stated = _parse_incident(incident, past.tz, window) if incident else None
        made = checkpoints(g.workdir, warn=reporter.warn)
        backups = await project_backups(client, project.id, resolve_dir(g.workdir, None))
        events = await build_timeline(
            client, project, window, incident=stated, backups=backups, checkpoints=made
        )
        offer = ""
        candidates: list[Any] = []
        if stated is not None and stated < window.earliest:
            candidates = backups_before(stated, backups)
            offer = describe_offer(stated, candidates) or (
                f"The incident is before the restore window ({window.earliest:%Y-%m-%d %H:%M} UTC) and no "
                "snapshot or backup file from before it was found."
            )
        payload = {
            "project": {"id": project.id, "name": project.name},
            "window": {"earliest": window.earliest, "now": window.now},
            "events": [e.to_dict() for e in events],
            "backups_before_incident": [c.to_dict(window.now) for c in candidates],
        }
        _emit(
            g,
            payload,
            f"{project.name}: restore window {window.describe(resolve_zone(past.tz))}\n"
            + render_timeline(events, resolve_zone(past.tz))
            + (f"\n{offer}" if offer else ""),
        )
        return EXIT_OK

    return _past_command(g, body)


def _parse_incident(text: str, tz: str | None, window: Any) -> Any:
    """A stated incident time: any moment before now (the window is not required: it is what is asked)."""
    from recovery_wizard.recovery.timepoint import TimePointError, parse_moment, resolve_zone

    try:
        return parse_moment(text, zone=resolve_zone(tz), now=window.now).utc
    except TimePointError as exc:
        raise UsageError(str(exc), hint=exc.hint) from None


def peek(g: GlobalOptions, past: PastOptions, at: str, sql: str) -> int:
    from recovery_wizard.recovery.peek import peek as peek_at
    from recovery_wizard.recovery.sqlguard import require_read_only

    async def body(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        require_read_only(sql, what="query")
        _, window, lens = await _lens(client, g, past, prompter)
        moment = _parse_time(at, past.tz, window)
        reporter.info(f"Looking at {lens.branch.name} as it was at {moment.describe()}…")
        result = await peek_at(lens, moment.utc, sql)
        table = "\n".join(
            ["\t".join(result.columns)]
            + ["\t".join("" if v is None else str(v) for v in row) for row in result.rows]
        )
        _emit(
            g,
            {"status": "done", "at": moment.rfc3339(), "branch": lens.branch.name, **result.to_dict()},
            f"{lens.branch.name} at {moment.describe()} ({result.lens}):\n{table}",
        )
        return EXIT_OK

    return _past_command(g, body)


def find_moment(
    g: GlobalOptions, past: PastOptions, canary: str, good: str | None, bad: str | None, precision: str
) -> int:
    from datetime import UTC, datetime

    from recovery_wizard.recovery.findmoment import EDGE_MARGIN, Probe
    from recovery_wizard.recovery.findmoment import find_moment as search
    from recovery_wizard.recovery.timepoint import TimePointError, parse_duration, resolve_zone

    async def body(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        from recovery_wizard.recovery.sqlguard import require_read_only

        # Refused before anything is written, the run directory included.
        require_read_only(canary, what="canary")
        try:
            step = parse_duration(precision)
        except TimePointError as exc:
            raise UsageError(str(exc), hint=exc.hint) from None
        project, window, lens = await _lens(client, g, past, prompter)
        low = _parse_time(good, past.tz, window).utc if good else window.earliest + EDGE_MARGIN
        high = _parse_time(bad, past.tz, window).utc if bad else datetime.now(UTC)
        lock.acquire()  # its journal is a write: one run at a time in this directory
        journal = Journal.create(g.workdir)
        lock.set_run(journal.run_id)
        journal.append(
            "run",
            "start",
            command="find-moment",
            canary=canary,
            good=low,
            bad=high,
            branch={"id": lens.branch.id, "name": lens.branch.name},
            project={"id": project.id},
        )
        zone = resolve_zone(past.tz)

        def on_probe(p: Probe) -> None:
            journal.append("step", "done", "probe", **p.to_dict())
            verdict = "holds" if p.holds else ("fails" if p.holds is False else f"error: {p.error}")
            reporter.info(
                f"probe {p.at.astimezone(zone):%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f": canary {verdict} ({p.seconds:.2f} s)"
            )

        try:
            found = await search(lens, canary, good=low, bad=high, precision=step, on_probe=on_probe)
        except BaseException as exc:
            stopped = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            journal.append("run", "end", status="interrupted" if stopped else "failed", error=str(exc))
            # A search is not resumed: it is run again, narrowed by the probes it already made. Never
            # `restore --resume`: that would continue an older restore and repoint .env.
            again = _search_again(journal, canary)
            if isinstance(exc, RecoveryError):
                exc.hint = f"{exc.hint} {again}".strip()
            else:
                reporter.warn(f"find-moment stopped (run {journal.run_id}). {again}")
            raise
        journal.append("run", "end", status="done", last_good=found.last_good, first_bad=found.first_bad)
        payload = {"status": "done", "run_id": journal.run_id, "canary": canary, **found.to_dict()}
        human = (
            f"last good: {found.last_good:%Y-%m-%d %H:%M:%S.%f}"[:-3]
            + " UTC\n"
            + f"first bad: {found.first_bad:%Y-%m-%d %H:%M:%S.%f}"[:-3]
            + " UTC\n"
            + f"{len(found.probes)} probes (budget {found.budget}) in {found.seconds:.1f} s. Restore with:\n"
            + f"  recovery-wizard restore --at {found.last_good.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
        )
        _emit(g, payload, human)
        return EXIT_OK

    lock = AppLock(g.workdir, command="find-moment")
    try:
        return _past_command(g, body)
    finally:
        lock.release()


def _search_again(journal: Journal, canary: str) -> str:
    """The find-moment command that continues a stopped search from its probes (never a restore)."""
    import shlex

    probes = [r.data for r in journal.records if r.step == "probe" and r.event == "done"]
    holds = [str(p["at"]) for p in probes if p.get("holds") is True and p.get("at")]
    fails = [str(p["at"]) for p in probes if p.get("holds") is False and p.get("at")]
    narrowed = (f" --good {max(holds)}" if holds else "") + (f" --bad {min(fails)}" if fails else "")
    return (
        f"Its {len(probes)} probe(s) are in run {journal.run_id}; search again with: "
        f"recovery-wizard find-moment --check {shlex.quote(canary)}{narrowed}"
    )
