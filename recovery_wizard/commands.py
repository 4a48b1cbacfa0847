"""The headless commands (`restore`, `drill`, `branches`, `env rollback`): build the services, run the
runbook with plain-terminal prompts, print the result (human text, or one JSON object under --json) and
return the documented exit code. Imported by cli.py only when such a command runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from recovery_wizard import __version__
from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import DEFAULT_API_URL, NeonClient, NeonError, RetryNotice
from recovery_wizard.neon.errors import ForbiddenError, NotFoundError, UnauthorizedError
from recovery_wizard.plain.prompts import ScriptPrompter, TerminalPrompter
from recovery_wizard.plain.reporter import StderrReporter
from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import Journal, JournalError, find_run, latest_resumable, list_runs
from recovery_wizard.recovery.outcome import (
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    CancelledError,
    UsageError,
)
from recovery_wizard.recovery.plan import RunOptions
from recovery_wizard.recovery.ui import Prompter
from recovery_wizard.redact import Secret, redact

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
        sys.stdout.write(redact(json.dumps(payload, default=str, sort_keys=True)) + "\n")
    elif human:
        sys.stdout.write(redact(human) + "\n")
    sys.stdout.flush()


def _fail(g: GlobalOptions, error: RecoveryError, code: int, status: str) -> int:
    print(f"error: {error}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
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
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        client = NeonClient(http, key, base_url=base_url, on_retry=retrying)
        return await body(client)


def _run_async(coro: Awaitable[int]) -> int:
    # envfile reports unparseable lines itself (by line number, never the value): silence dotenv's own log.
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print(
            "\ninterrupted: run `recovery-wizard restore --resume` to continue where it stopped.",
            file=sys.stderr,
        )
        return 130


# --- restore and drill ----------------------------------------------------------------------------------


def restore(g: GlobalOptions, options: RunOptions, resume: str | None) -> int:
    return _run_async(_restore(g, options, resume))


async def _restore(g: GlobalOptions, options: RunOptions, resume: str | None) -> int:
    from recovery_wizard.recovery.runner import run

    reporter = StderrReporter()
    prompter = make_prompter(g)
    journal: Journal | None = None
    try:
        if resume is not None:
            journal = (
                latest_resumable(g.workdir, options.command)
                if resume == "latest"
                else find_run(g.workdir, resume)
            )
            if journal is None:
                raise UsageError(
                    f"There is no unfinished or failed {options.command} run in {g.workdir} to resume."
                )
            if not journal.resumable:
                raise UsageError(f"Run {journal.run_id} already ended ({journal.status}); nothing to resume.")
        result = await with_client(
            g, reporter, prompter, lambda client: run(client, options, prompter, reporter, resume=journal)
        )
    except UsageError as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except CancelledError as exc:
        return _fail(g, exc, exc.exit_code, "cancelled")
    except (UnauthorizedError, ForbiddenError, NotFoundError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except JournalError as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    except (NeonError, RecoveryError) as exc:
        return _fail(g, exc, EXIT_STEP_FAILED, "failed")
    payload = result.to_dict()
    if result.status == "dry-run":
        _emit(g, payload, "Dry run: nothing was written.")
        return EXIT_OK
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        if result.error.hint:
            print(f"hint: {result.error.hint}", file=sys.stderr)
        if result.error.exit_code == EXIT_STEP_FAILED:
            print(
                f"hint: the run is resumable: recovery-wizard {options.command} --resume {result.journal.run_id}",
                file=sys.stderr,
            )
        _emit(g, payload, f"Incident record: {result.report_path}")
        return result.error.exit_code
    _emit(g, payload, _summary(result))
    return EXIT_OK


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
    return "\n".join(lines)


# --- branches ---------------------------------------------------------------------------------------------


def branches(g: GlobalOptions) -> int:
    return _run_async(_branches(g))


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
    table = [header] + [
        (
            r["name"],
            r["id"],
            r["flags"],
            r["state"],
            "" if r["size_mb"] is None else f"{r['size_mb']} MB",
            (r["created_at"] or "")[:16].replace("T", " "),
            (r["last_reset_at"] or "")[:16].replace("T", " "),
        )
        for r in rows
    ]
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
    reporter = StderrReporter()
    try:
        journal = find_run(g.workdir, run_id) if run_id else _last_env_run(g.workdir)
        restored = _rollback(journal, reporter, yes=g.yes)
    except (UsageError, JournalError, envfile.EnvFileError) as exc:
        return _fail(g, exc, EXIT_USAGE, "refused")
    _emit(
        g,
        {"status": "done", "run_id": journal.run_id, "env_files": restored},
        "\n".join(f"Restored {r['path']} from {r['backup']}." for r in restored),
    )
    return EXIT_OK


def _last_env_run(workdir: Path) -> Journal:
    for run_dir in reversed(list_runs(workdir)):
        journal = Journal.open(run_dir)
        written = [r for r in journal.records if r.step and r.step.startswith("env:") and r.event == "done"]
        rolled = any(r.step == "rollback" and r.event == "done" for r in journal.records)
        if written and not rolled:
            return journal
    raise UsageError(f"No run in {workdir} changed an env file that has not been rolled back already.")


def _rollback(journal: Journal, reporter: StderrReporter, *, yes: bool) -> list[dict[str, str]]:
    written = [r for r in journal.records if r.step and r.step.startswith("env:") and r.event == "done"]
    if not written:
        raise UsageError(f"Run {journal.run_id} changed no env file.")
    if any(r.step == "rollback" and r.event == "done" for r in journal.records):
        raise UsageError(f"The env files of run {journal.run_id} were already rolled back.")
    # Check every file first: roll back all or nothing.
    for record in written:
        target = Path(str(record.data["path"]))
        if target.exists() and envfile.EnvFile.read(target).digest != record.data.get("written"):
            raise UsageError(
                f"{target} changed after run {journal.run_id} wrote it; it was not rolled back.",
                hint=f"Compare it with the backup {record.data.get('backup')} and restore by hand.",
            )
    journal.append("step", "begin", "rollback", files=[str(r.data["path"]) for r in written])
    restored = []
    for record in reversed(written):
        target, backup = Path(str(record.data["path"])), Path(str(record.data["backup"]))
        envfile.restore_backup(backup, target, expected_digest=str(record.data.get("written")))
        restored.append({"path": str(target), "backup": str(backup)})
        reporter.info(f"Restored {target} from {backup}.")
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
        except (UsageError, UnauthorizedError, ForbiddenError, NotFoundError) as exc:
            return _fail(g, exc, EXIT_USAGE, "refused")
        except CancelledError as exc:
            return _fail(g, exc, exc.exit_code, "cancelled")
        except RecoveryError as exc:
            return _fail(g, exc, EXIT_STEP_FAILED, "failed")

    return _run_async(main())


def timeline(g: GlobalOptions, past: PastOptions, incident: str | None) -> int:
    from recovery_wizard.recovery.timeline import build_timeline, render_timeline
    from recovery_wizard.recovery.timepoint import resolve_zone

    async def body(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
        project, window, _ = await _lens(client, g, past, prompter)
        stated = _parse_time(incident, past.tz, window).utc if incident else None
        events = await build_timeline(client, project, window, incident=stated)
        payload = {
            "project": {"id": project.id, "name": project.name},
            "window": {"earliest": window.earliest, "now": window.now},
            "events": [e.to_dict() for e in events],
        }
        _emit(
            g,
            payload,
            f"{project.name}: restore window {window.describe(resolve_zone(past.tz))}\n"
            + render_timeline(events, resolve_zone(past.tz)),
        )
        return EXIT_OK

    return _past_command(g, body)


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
        journal = Journal.create(g.workdir)
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
            journal.append("run", "end", status="failed", error=str(exc))
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

    return _past_command(g, body)
