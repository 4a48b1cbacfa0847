"""The ``backup`` commands: take a backup now (a local ``pg_dump -Fc`` file and/or a Neon snapshot), list
the backups there are, and set the schedule that takes them. Imported by cli.py only when one runs.

They share the restore's plumbing (commands.py): the API key from the environment or the hidden prompt, one
NeonClient, the app directory's lock, masked output, one JSON object under --json and the documented exit
codes (0 done; 1 a step failed, nothing half-written left; 2 refused before any write; 3 interrupted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery_wizard.commands import (
    GlobalOptions,
    PastOptions,
    _emit,
    _fail,
    _lens,
    _run_async,
    _say,
    make_prompter,
    with_client,
)
from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.errors import (
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    SnapshotRefusedError,
    UnauthorizedError,
)
from recovery_wizard.plain.reporter import StderrReporter
from recovery_wizard.recovery.backup.backupdir import check_dir, resolve_dir
from recovery_wizard.recovery.backup.errors import BackupDirError, CorruptBackupError
from recovery_wizard.recovery.backup.retention import Keep, apply_retention, parse_keep
from recovery_wizard.recovery.lock import AppLock, LockedError
from recovery_wizard.recovery.outcome import (
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    CancelledError,
    UsageError,
)
from recovery_wizard.recovery.ui import Prompter

REFUSED = (
    UsageError,
    LockedError,
    BackupDirError,
    CorruptBackupError,
    SnapshotRefusedError,
    UnauthorizedError,
    ForbiddenError,
    NotFoundError,
)


def _guard(g: GlobalOptions, body: Callable[[], Awaitable[int]]) -> int:
    async def main() -> int:
        try:
            return await body()
        except REFUSED as exc:
            return _fail(g, exc, EXIT_USAGE, "refused")
        except CancelledError as exc:
            return _fail(g, exc, exc.exit_code, "cancelled")
        except RecoveryError as exc:
            return _fail(g, exc, EXIT_STEP_FAILED, "failed")

    return _run_async(main(), g)


def _client_run(
    g: GlobalOptions, body: Callable[[NeonClient, StderrReporter, Prompter], Awaitable[int]]
) -> Awaitable[int]:
    reporter = StderrReporter(quiet=g.json)
    prompter = make_prompter(g)
    return with_client(g, reporter, prompter, lambda client: body(client, reporter, prompter))


# --- backup (take one now) ------------------------------------------------------------------------------


@dataclass
class BackupOptions:
    branch: str | None
    database: str | None
    role: str | None
    to: str  # snapshot, file, both
    dir: str | None
    keep: str | None


def backup(g: GlobalOptions, options: BackupOptions) -> int:
    async def body() -> int:
        keep = parse_keep(options.keep) if options.keep else None  # refused before anything else
        if keep is not None and options.to == "snapshot":
            raise UsageError(
                "--keep applies to local backup files; --to snapshot takes none.",
                hint="Neon deletes scheduled snapshots by their retention: `recovery-wizard backup schedule`.",
            )
        directory = resolve_dir(g.workdir, options.dir)
        with AppLock(g.workdir, command="backup"):
            if options.to != "snapshot":
                check_dir(directory, create=True)
            return await _client_run(
                g,
                lambda client, reporter, prompter: _take(
                    g, options, keep, directory, client, reporter, prompter
                ),
            )

    return _guard(g, body)


async def _take(
    g: GlobalOptions,
    options: BackupOptions,
    keep: Keep | None,
    directory: Path,
    client: NeonClient,
    reporter: StderrReporter,
    prompter: Prompter,
) -> int:
    from recovery_wizard.recovery.backup.dump import take_file_backup

    past = PastOptions(options.branch, options.database, options.role, None)
    project, _window, lens = await _lens(client, g, past, prompter)
    branch = lens.branch
    payload: dict[str, Any] = {
        "status": "done",
        "project": {"id": project.id, "name": project.name},
        "branch": {"id": branch.id, "name": branch.name, "root": branch.is_root},
        "file": None,
        "snapshot": None,
        "deleted": [],
    }
    lines: list[str] = []
    want_snapshot = options.to in ("snapshot", "both")
    if want_snapshot and not branch.is_root and options.to == "both":
        why = (
            f"No snapshot: {branch.name} is a child branch of {branch.parent_id}, and Neon takes snapshots of "
            "root branches only. The file backup was taken."
        )
        payload["snapshot_skipped"] = why
        want_snapshot = False
    if options.to in ("file", "both"):
        uri = await client.connection_uri(
            project.id, branch_id=branch.id, database_name=lens.database, role_name=lens.role, pooled=False
        )
        taken = await take_file_backup(
            uri,
            directory,
            project={"id": project.id, "name": project.name},
            branch={"id": branch.id, "name": branch.name},
            database=lens.database,
            on_progress=reporter.progress,
        )
        m = taken.manifest
        rows = sum(m.tables.values())
        payload["file"] = {"path": str(taken.path), "seconds": round(taken.seconds, 3), **m.to_dict()}
        lines.append(
            f"Backup file {taken.path} ({m.size} bytes, {len(m.tables)} tables, {rows} rows, sha256 "
            f"{m.sha256[:12]}…) in {taken.seconds:.1f} s."
        )
        if keep is not None:
            removed = apply_retention(directory, keep, datetime.now(UTC))
            payload["deleted"] = [str(p) for p in removed]
            lines.append(
                f"Kept {keep.describe()} (never the newest); deleted {len(removed)} older backup(s)"
                + (": " + ", ".join(p.name for p in removed) if removed else ".")
            )
    if "snapshot_skipped" in payload:
        lines.append(payload["snapshot_skipped"])
    if want_snapshot:
        try:
            snapshot = await _snapshot(client, project.id, branch.id, branch.name)
        except RecoveryError as exc:
            if payload["file"] is None:
                raise
            # The file is taken and kept; the run still fails, so a schedule notices.
            payload["status"] = "failed"
            payload["error"] = {"message": str(exc), "hint": exc.hint}
            _say(f"error: {exc}")
            if exc.hint:
                _say(f"hint: {exc.hint}")
            _emit(g, payload, "\n".join(lines))
            return EXIT_STEP_FAILED
        payload["snapshot"] = snapshot
        lines.append(f"Neon snapshot {snapshot['name']} ({snapshot['id']}).")
    _emit(g, payload, "\n".join(lines))
    return EXIT_OK


async def _snapshot(client: NeonClient, project_id: str, branch_id: str, branch_name: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    name = f"{branch_name} backup {now:%Y-%m-%dT%H:%M:%SZ}"
    try:
        created = await client.create_snapshot(project_id, branch_id, name=name)
        snapshot, operations = created.snapshot, created.operations
    except OutcomeUnknownError:
        # The answer was lost: the snapshot may exist. Its name holds the second it was asked for.
        found = [s for s in await client.snapshots(project_id) if s.name == name]
        if not found:
            raise
        snapshot, operations = found[0], []
    if operations:
        await client.wait_for_operations(project_id, operations)
    return {
        "id": snapshot.id,
        "name": snapshot.name,
        "at": snapshot.timestamp or snapshot.created_at,
        "lsn": snapshot.lsn,
        "source": f"snapshot:{snapshot.id}",
    }


# --- backup list -------------------------------------------------------------------------------------------


def backup_list(g: GlobalOptions, directory_option: str | None, local_only: bool) -> int:
    from recovery_wizard.recovery.backup import listing

    async def body() -> int:
        directory = resolve_dir(g.workdir, directory_option)
        check_dir(directory, create=False)
        snapshots: list[Any] = []
        project: dict[str, str] = {}

        async def read(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
            from recovery_wizard.recovery.plan import RunOptions, choose_project

            options = RunOptions(command="backup", workdir=g.workdir, project_id=g.project_id)
            found = await choose_project(client, options, prompter)
            project.update(id=found.id, name=found.name)
            snapshots.extend(await client.snapshots(found.id))
            return EXIT_OK

        if not local_only:
            await _client_run(g, read)
        now = datetime.now(UTC)
        entries = listing.all_backups(directory if directory.is_dir() else None, snapshots)
        payload = {
            "project": project or None,
            "dir": str(directory),
            "backups": [e.to_dict(now) for e in entries],
        }
        text = (
            listing.render(entries, now) if entries else "No backups yet: `recovery-wizard backup` takes one."
        )
        _emit(g, payload, text)
        return EXIT_OK

    return _guard(g, body)


# --- backup schedule -----------------------------------------------------------------------------------------


@dataclass
class ScheduleOptions:
    branch: str | None
    frequencies: dict[str, str | None]  # hourly/daily/weekly/monthly -> retention text
    hour: int
    weekday: int
    monthday: int
    off: bool
    file_every: str
    file_keep: str
    dir: str | None


def backup_schedule(g: GlobalOptions, options: ScheduleOptions) -> int:
    from recovery_wizard.recovery.backup import schedule

    async def body() -> int:
        file_keep = parse_keep(options.file_keep)
        choices = [
            schedule.FrequencyChoice(freq, keep)
            for freq, keep in options.frequencies.items()
            if keep is not None
        ]
        if choices and options.off:
            raise UsageError("--off turns the schedule off; it cannot be given with frequencies.")
        items = schedule.schedule_items(
            choices, hour=options.hour, weekday=options.weekday, monthday=options.monthday
        )

        async def run(client: NeonClient, reporter: StderrReporter, prompter: Prompter) -> int:
            from recovery_wizard.neon.errors import ChildBranchSnapshotError

            past = PastOptions(options.branch, None, None, None)
            project, branch = await _branch_only(client, g, past, prompter)
            if not branch.is_root:
                raise ChildBranchSnapshotError(
                    f"Branch {branch.name!r} is a child of {branch.parent_id}: Neon keeps backup schedules of "
                    "root branches only."
                )
            changed = bool(choices) or options.off
            if changed:
                await client.set_backup_schedule(project.id, branch.id, items)
            current = await client.backup_schedule(project.id, branch.id)
            command = schedule.file_command(options.branch, file_keep, options.dir)
            cron = schedule.cron_line(g.workdir, command, options.file_every)
            job = schedule.github_actions_job(command, options.file_every)
            described = schedule.describe_items(current) or ["none: Neon takes no scheduled snapshots"]
            import msgspec

            payload = {
                "status": "done",
                "changed": changed,
                "project": {"id": project.id, "name": project.name},
                "branch": {"id": branch.id, "name": branch.name},
                "schedule": [msgspec.to_builtins(i) for i in current],
                "file_layer": {"command": command, "cron": cron, "github_actions": job},
            }
            human = "\n".join(
                [
                    f"Neon snapshot schedule of {branch.name} ({'set' if changed else 'unchanged'}):",
                    *(f"  {line}" for line in described),
                    "",
                    f"Local file backups ({options.file_every}, keep {file_keep.option}): add this line to "
                    "`crontab -e` (NEON_API_KEY and NEON_PROJECT_ID set in the crontab's environment):",
                    f"  {cron}",
                    "",
                    "Or as a GitHub Actions workflow (.github/workflows/backup.yml; NEON_API_KEY as a secret):",
                    job,
                ]
            )
            _emit(g, payload, human)
            return EXIT_OK

        if choices or options.off:
            with AppLock(g.workdir, command="backup schedule"):
                return await _client_run(g, run)
        return await _client_run(g, run)

    return _guard(g, body)


async def _branch_only(
    client: NeonClient, g: GlobalOptions, past: PastOptions, prompter: Prompter
) -> tuple[Any, Any]:
    """The project and the chosen branch (no database or role needed)."""
    from recovery_wizard.recovery.plan import RunOptions, choose_project_and_branches, pick_branch

    options = RunOptions(command="backup", workdir=g.workdir, project_id=g.project_id, branch=past.branch)
    project, branches = await choose_project_and_branches(client, options, prompter)
    return project, pick_branch(project, branches, options)
