"""The ``recovery-wizard`` command.

Imports only click at module level: each subcommand imports what it needs when it runs, so ``--help``
stays fast (no httpx, Textual or psycopg).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from recovery_wizard import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.version_option(__version__, prog_name="recovery-wizard")
@click.option(
    "--drill", is_flag=True, help="Open the wizard in drill mode: a throwaway branch, verified, deleted."
)
@click.option(
    "--learn/--no-learn", default=None, help="Show the 'why' panel beside each step (F1 toggles it)."
)
@click.pass_context
def cli(ctx: click.Context, drill: bool, learn: bool | None) -> None:
    """Get your Postgres data back after an incident on Neon.

    Without a command, opens the wizard: pick the moment before the incident, restore it (to a new branch,
    or in place with a backup), verify the data is back, point the app's .env and Prisma at it, and write
    down what happened. It reads NEON_API_KEY, NEON_API_URL and NEON_PROJECT_ID. New here? Run
    `recovery-wizard demo`.
    """
    if ctx.invoked_subcommand is None:
        raise SystemExit(_open_wizard(drill=drill, learn=learn))


def _open_wizard(*, drill: bool, learn: bool | None, tz: str | None = None, checks: Any = ()) -> int:
    import os
    from pathlib import Path

    from recovery_wizard.tui.app import Mode, WizardConfig, run_wizard

    config = WizardConfig(
        workdir=Path.cwd(),
        mode=Mode.DRILL if drill else Mode.NORMAL,
        api_key=os.environ.get("NEON_API_KEY") or None,
        api_url=os.environ.get("NEON_API_URL") or None,
        project_id=os.environ.get("NEON_PROJECT_ID") or None,
        tz=tz,
        checks=list(checks),
        learn=learn,
    )
    return run_wizard(config)


def _history_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--history 10m`` as whole seconds, within the spec's 0..30 days."""
    if value is None:
        return None
    if value.strip() == "0":
        return 0
    from recovery_wizard.recovery.timepoint import TimePointError, parse_duration

    try:
        seconds = round(parse_duration(value).total_seconds())
    except TimePointError as exc:
        raise click.BadParameter(f"{exc} {exc.hint}".strip()) from None
    if not 0 <= seconds <= 30 * 24 * 3600:
        raise click.BadParameter("Neon keeps at most 30 days of history (2592000 seconds).")
    return seconds


@cli.command()
@click.option("--scenario", default="homecheff", show_default=True, help="The built-in incident to play.")
@click.option(
    "--pg-dsn",
    envvar="RECOVERY_WIZARD_PG_DSN",
    help="Admin DSN of a PostgreSQL to use (env RECOVERY_WIZARD_PG_DSN); default: an embedded one.",
)
@click.option(
    "--keep-app", is_flag=True, help="Keep the demo app directory (and its incident record) afterwards."
)
@click.option(
    "--history",
    "history_seconds",
    metavar="DURATION",
    callback=_history_seconds,
    help="The demo project's restore window, e.g. 10m, 6h; below 30m the incident is outside it (then the "
    "backups in the demo app's backups/ folder are the way back). Default: 7 days.",
)
def demo(scenario: str, pg_dsn: str | None, keep_app: bool, history_seconds: int | None) -> None:
    """Rehearse the whole runbook on a local incident: no Neon account, no setup.

    Starts a sandbox (a local Neon over a real PostgreSQL) whose production database lost its users to a
    migration about 30 minutes ago, writes a throwaway app directory whose .env points at it, and opens the
    wizard there with the 'why' panel on. One step is shown but skipped: the demo app has no node_modules,
    so there is no Prisma CLI to run `prisma db pull`/`generate` with (the Prisma screen says so).
    """
    from recovery_wizard.tui.demo import demo as run_demo

    raise SystemExit(
        run_demo(pg_dsn=pg_dsn, scenario=scenario, keep_app=keep_app, history_seconds=history_seconds)
    )


DRILL_DEFAULT_AT = "1 hour ago"

EXIT_CODES_HELP = """\b
Exit codes: 0 done; 1 a step failed (the message names the step and how to
resume); 2 bad input or usage, refused before any write (also: another run
holds this directory); 3 cancelled at a prompt or interrupted by SIGINT,
SIGTERM or SIGHUP (resumable); 4 verification failed (no env file touched)."""


def global_options(func: Any) -> Any:
    """The options every runbook command accepts after its name (`recovery-wizard restore --json …`)."""
    decorators = [
        click.option(
            "--api-key",
            envvar="NEON_API_KEY",
            show_envvar=True,
            metavar="KEY",
            help="Neon API key (never echoed). Prefer NEON_API_KEY or the hidden prompt (asked on a "
            "terminal when missing): an option's value is visible to other users in the process list.",
        ),
        click.option(
            "--api-url",
            envvar="NEON_API_URL",
            show_envvar=True,
            metavar="URL",
            help="Neon API base URL (default: Neon's; the sandbox prints its own).",
        ),
        click.option(
            "--project-id",
            envvar="NEON_PROJECT_ID",
            show_envvar=True,
            metavar="ID",
            help="The project; if absent and the key sees one project, that one.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="One JSON object on stdout at the end; progress on stderr.",
        ),
        click.option(
            "--yes", "-y", is_flag=True, help="Never prompt: anything missing is a usage error (exit 2)."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _globals(options: dict[str, Any]) -> Any:
    from recovery_wizard.commands import GlobalOptions, workdir

    return GlobalOptions(
        api_key=options.pop("api_key"),
        api_url=options.pop("api_url"),
        project_id=options.pop("project_id"),
        json=options.pop("as_json"),
        yes=options.pop("yes"),
        workdir=workdir(),
    )


def runbook_options(func: Any) -> Any:
    decorators = [
        click.option(
            "--branch", metavar="NAME|ID", help="The damaged branch (default: the project's default branch)."
        ),
        click.option(
            "--at",
            metavar="TIME",
            help="The restore point: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' (read in --tz), '90m ago', "
            "'yesterday 23:59', 'gisteren 23:59', 'kemarin 23:59'.",
        ),
        click.option(
            "--from",
            "source",
            metavar="SOURCE",
            help="Where the data comes from: history (default; the moment is --at), snapshot:<id or name>, "
            "snapshot:latest (a Neon snapshot, also past the restore window), checkpoint:<run id>, "
            "checkpoint:latest (a guard checkpoint, to the byte; see `guard list`).",
        ),
        click.option(
            "--tz",
            metavar="ZONE",
            help="How to read a time without offset, e.g. Europe/Amsterdam (default: local).",
        ),
        click.option(
            "--name", metavar="NAME", help="Name of the restore branch (default: branch name and UTC time)."
        ),
        click.option(
            "--check",
            "checks",
            multiple=True,
            metavar="SQL",
            help="A read-only query that is true while the data is healthy (repeatable), run on both sides.",
        ),
        click.option(
            "--database", metavar="NAME", help="Database (default: from the current URL, else the only one)."
        ),
        click.option(
            "--role", metavar="NAME", help="Role (default: from the current URL, else the only one)."
        ),
        click.option(
            "--dry-run", is_flag=True, help="Print the plan and pre-flight results; write nothing anywhere."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _run_options(command: str, options: dict[str, Any], g: Any) -> Any:
    from pathlib import Path

    from recovery_wizard.recovery.options import RunOptions

    source = options.get("source") or "history"
    # Only history has a moment to default: a snapshot brings its own (and --at with it is refused).
    from_history = source.strip().lower().partition(":")[0] == "history"
    return RunOptions(
        command=command,
        workdir=g.workdir,
        source=source,
        api_url=g.api_url,
        project_id=g.project_id,
        branch=options.get("branch"),
        # A drill rehearses a recent restore: an hour back is inside every plan's window (Free keeps 6 h).
        at=options.get("at") or (DRILL_DEFAULT_AT if command == "drill" and from_history else None),
        tz=options.get("tz"),
        strategy=options.get("strategy") or "new-branch",
        name=options.get("name"),
        env_files=[Path(p) for p in options.get("env_files") or ()],
        pooled_var=options.get("pooled_var"),
        direct_var=options.get("direct_var"),
        database=options.get("database"),
        role=options.get("role"),
        checks=list(options.get("checks") or ()),
        prisma=options.get("prisma"),
        dry_run=bool(options.get("dry_run")),
        yes=g.yes,
        keep=bool(options.get("keep")),
        merge_tables=_names(options.get("tables")) or None,
        revert_changed=_names(options.get("revert_changed")),
        merge_rules=_rules(options.get("rules") or ()),
    )


def _names(given: tuple[str, ...] | None) -> list[str]:
    """``--tables a,b --tables c`` → ["a", "b", "c"]."""
    return [n.strip() for part in given or () for n in part.split(",") if n.strip()]


def _rules(given: tuple[str, ...]) -> dict[str, str]:
    """``--rule User=keep-live`` (``*=take-past`` for every table) → {"User": "keep-live"}."""
    rules: dict[str, str] = {}
    for text in given:
        table, eq, rule = text.partition("=")
        if not eq or not table.strip() or not rule.strip():
            raise click.BadParameter(
                f"{text!r}: write TABLE=RULE, e.g. User=keep-live (* for every table).", param_hint="--rule"
            )
        rules[table.strip()] = rule.strip()
    return rules


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@runbook_options
@click.option(
    "--strategy",
    type=click.Choice(["new-branch", "in-place", "merge-back"]),
    default="new-branch",
    show_default=True,
    help="new-branch: a branch at the moment (nothing overwritten). in-place: overwrite the branch, keep a backup. "
    "merge-back: put only the lost rows back into the branch, keeping every write made since.",
)
@click.option(
    "--tables",
    multiple=True,
    metavar="A,B",
    help="merge-back: only these tables (schema.table or table; default every table with a key).",
)
@click.option(
    "--revert-changed",
    "revert_changed",
    multiple=True,
    metavar="A,B",
    help="merge-back: also put rows changed since back to their past values in these tables.",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="TABLE=RULE",
    help="merge-back: how a conflict in TABLE (* for all) is resolved: skip (default), keep-live, take-past.",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    metavar="PATH",
    help="Env file to rewrite (repeatable; default ./.env).",
)
@click.option(
    "--pooled-var", metavar="NAME", help="Variable for the pooled URL (default: detected, else DATABASE_URL)."
)
@click.option(
    "--direct-var", metavar="NAME", help="Variable for the direct URL (default: detected, else DIRECT_URL)."
)
@click.option(
    "--prisma/--no-prisma",
    default=None,
    help="Run prisma db pull and generate (default: when a schema is found).",
)
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[RUN_ID]",
    help="Continue an interrupted run (the latest, or RUN_ID) without repeating what it did.",
)
@click.option(
    "--new",
    is_flag=True,
    help="Start a new run although an earlier one did not finish (that one is marked abandoned).",
)
def restore(resume: str | None, new: bool, **options: Any) -> None:
    """Run the recovery runbook without the TUI.

    Pick the moment, restore, verify, point the env files at the restored data, run Prisma, and write the
    incident record to .recovery-wizard/runs/<run id>/report.md.
    """
    from recovery_wizard import commands

    g = _globals(options)
    raise SystemExit(commands.restore(g, _run_options("restore", options, g), resume, new))


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@runbook_options
@click.option("--keep", is_flag=True, help="Keep the throwaway branch instead of deleting it.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[RUN_ID]",
    help="Continue an interrupted drill.",
)
@click.option(
    "--new",
    is_flag=True,
    help="Start a new drill although an earlier one did not finish (that one is marked abandoned).",
)
def drill(resume: str | None, new: bool, **options: Any) -> None:
    """Rehearse a restore: a throwaway branch at the moment, verified, reported, then deleted.

    Touches no env file and no Prisma schema. The branch expires after 24 h even if the drill is killed.
    Without --at, the moment is an hour ago.
    """
    from recovery_wizard import commands

    g = _globals(options)
    if (
        not g.yes
        and not g.json
        and resume is None
        and options.get("source") is None
        and sys.stdin.isatty()
        and sys.stdout.isatty()
    ):
        # A person at a terminal: the drill as a guided walk-through.
        raise SystemExit(
            _open_wizard(drill=True, learn=None, tz=options.get("tz"), checks=options.get("checks") or ())
        )
    raise SystemExit(commands.restore(g, _run_options("drill", options, g), resume, new))


def past_options(func: Any) -> Any:
    decorators = [
        click.option(
            "--branch", metavar="NAME|ID", help="The branch (default: the project's default branch)."
        ),
        click.option("--database", metavar="NAME", help="Database (default: the branch's only one)."),
        click.option("--role", metavar="NAME", help="Role (default: the branch's only one)."),
        click.option("--tz", metavar="ZONE", help="How to read a time without offset (default: local)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _past(options: dict[str, Any]) -> Any:
    from recovery_wizard.commands import PastOptions

    return PastOptions(options.pop("branch"), options.pop("database"), options.pop("role"), options.pop("tz"))


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@past_options
@click.option(
    "--incident", metavar="TIME", help="When you believe the incident happened, marked on the axis."
)
def timeline(incident: str | None, **options: Any) -> None:
    """The restore window, the project's operations and branch events on one time axis (newest first)."""
    from recovery_wizard import commands

    past = _past(options)
    raise SystemExit(commands.timeline(_globals(options), past, incident))


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@past_options
@click.option("--at", required=True, metavar="TIME", help="The moment to look at (every form --at accepts).")
@click.option(
    "--sql", required=True, metavar="SQL", help="A read-only query to run on the data as it was then."
)
def peek(at: str, sql: str, **options: Any) -> None:
    """Run a read-only query on a branch as it was at a moment, without restoring anything.

    Uses Neon's time travel (a throwaway read-only compute at that moment); where that is refused, a
    short-lived branch at the moment, deleted afterwards.
    """
    from recovery_wizard import commands

    past = _past(options)
    raise SystemExit(commands.peek(_globals(options), past, at, sql))


@cli.command("find-moment", epilog=EXIT_CODES_HELP)
@global_options
@past_options
@click.option(
    "--check",
    "canary",
    required=True,
    metavar="SQL",
    help="The canary: a read-only query that is true while the data is healthy, e.g. 'SELECT count(*) >= 10 FROM \"User\"'.",
)
@click.option(
    "--good", metavar="TIME", help="A moment the canary holds (default: the oldest restorable moment)."
)
@click.option("--bad", metavar="TIME", help="A moment it fails (default: now).")
@click.option(
    "--precision",
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="How close to bisect: 1s, 500ms, 1m…",
)
def find_moment(canary: str, good: str | None, bad: str | None, precision: str, **options: Any) -> None:
    """Find the last moment the data was healthy: bisect a canary query over the branch's history.

    Prints last_good (the restore point) and first_bad, using at most log2(window / precision) + 2 probes;
    each probe looks at the past without restoring, and is recorded in .recovery-wizard/runs/.
    """
    from recovery_wizard import commands

    past = _past(options)
    raise SystemExit(commands.find_moment(_globals(options), past, canary, good, bad, precision))


@cli.command()
@global_options
def branches(**options: Any) -> None:
    """List the project's branches (a table; --json for scripts)."""
    from recovery_wizard import commands

    raise SystemExit(commands.branches(_globals(options)))


BACKUP_EXIT_HELP = """\b
Exit codes: 0 done; 1 a step failed (pg_dump, a full disk, Neon): nothing
half-written is left and older backups are untouched; 2 refused before any
write (bad option, a symlinked or unwritable --dir, a snapshot of a child
branch, a full snapshot quota, another run holds this directory); 3
interrupted by SIGINT, SIGTERM or SIGHUP (the partial file is removed)."""


def backup_dir_option(func: Any) -> Any:
    return click.option(
        "--dir",
        "directory",
        metavar="DIR",
        help="The backups directory (default ./backups in the app directory; made 0700 if missing).",
    )(func)


@cli.group(invoke_without_command=True, epilog=BACKUP_EXIT_HELP)
@global_options
@click.option("--branch", metavar="NAME|ID", help="The branch (default: the project's default branch).")
@click.option("--database", metavar="NAME", help="Database (default: the branch's only one).")
@click.option("--role", metavar="NAME", help="Role (default: the branch's only one).")
@click.option(
    "--to",
    type=click.Choice(["file", "snapshot", "both"]),
    default="file",
    show_default=True,
    help="file: a pg_dump -Fc file with a manifest; snapshot: a Neon snapshot (root branches only); both.",
)
@backup_dir_option
@click.option(
    "--keep",
    metavar="N|AGE",
    help="Then delete older backup files: keep the newest N (7) or those younger than AGE (24h, 7d). "
    "Never the newest, never a file without our manifest.",
)
@click.pass_context
def backup(ctx: click.Context, /, directory: str | None, **options: Any) -> None:
    """Take a backup of a branch now: a local pg_dump file, a Neon snapshot, or both.

    The file is written through the branch's direct URL with a pg_dump at least as new as the server,
    atomically and mode 0600, with <file>.manifest.json beside it (time, LSN, versions, sha256, size, row
    count of every table). `backup list` shows what there is; `backup schedule` takes them regularly.
    """
    if ctx.invoked_subcommand is not None:
        return
    from recovery_wizard import backup_commands

    g = _globals(options)
    chosen = backup_commands.BackupOptions(
        branch=options["branch"],
        database=options["database"],
        role=options["role"],
        to=options["to"],
        dir=directory,
        keep=options["keep"],
    )
    raise SystemExit(backup_commands.backup(g, chosen))


@backup.command("list", epilog=BACKUP_EXIT_HELP)
@global_options
@backup_dir_option
@click.option("--local", "local_only", is_flag=True, help="Only the local files (no Neon API call).")
def backup_list(directory: str | None, local_only: bool, **options: Any) -> None:
    """Neon snapshots and local backup files together, newest first: age, size, and when each was last
    proven by a drill."""
    from recovery_wizard import backup_commands

    raise SystemExit(backup_commands.backup_list(_globals(options), directory, local_only))


@backup.command("schedule", epilog=BACKUP_EXIT_HELP)
@global_options
@click.option("--branch", metavar="NAME|ID", help="The root branch (default: the project's default branch).")
@click.option("--hourly", metavar="KEEP", help="Neon snapshots every hour, kept KEEP (e.g. 1d, or forever).")
@click.option("--daily", metavar="KEEP", help="Neon snapshots every day at --hour, kept KEEP (e.g. 7d).")
@click.option("--weekly", metavar="KEEP", help="Neon snapshots every week on --weekday, kept KEEP (e.g. 4w).")
@click.option("--monthly", metavar="KEEP", help="Neon snapshots every month on --monthday, kept KEEP.")
@click.option(
    "--hour", default=3, show_default=True, type=int, help="Hour of day (UTC) for scheduled snapshots."
)
@click.option("--weekday", default=7, show_default=True, type=int, help="Day of week, 1 (Mon) to 7 (Sun).")
@click.option("--monthday", default=1, show_default=True, type=int, help="Day of month, 1 to 31.")
@click.option("--off", is_flag=True, help="Turn Neon's snapshot schedule off.")
@click.option(
    "--file-every",
    type=click.Choice(["hourly", "daily"]),
    default="hourly",
    show_default=True,
    help="How often the printed cron line / GitHub Actions job takes a local file backup.",
)
@click.option(
    "--file-keep", default="24h", show_default=True, metavar="N|AGE", help="--keep for those file backups."
)
@backup_dir_option
def backup_schedule(**options: Any) -> None:
    """Set Neon's snapshot schedule, and print the cron line and GitHub Actions job for local files.

    Without a frequency (or --off) it only shows the schedule and prints the lines.
    """
    from recovery_wizard import backup_commands

    g = _globals(options)
    chosen = backup_commands.ScheduleOptions(
        branch=options["branch"],
        frequencies={f: options[f] for f in ("hourly", "daily", "weekly", "monthly")},
        hour=options["hour"],
        weekday=options["weekday"],
        monthday=options["monthday"],
        off=options["off"],
        file_every=options["file_every"],
        file_keep=options["file_keep"],
        dir=options["directory"],
    )
    raise SystemExit(backup_commands.backup_schedule(g, chosen))


@cli.group()
def env() -> None:
    """The env files a run changed."""


@env.command("rollback", epilog=EXIT_CODES_HELP)
@global_options
@click.option(
    "--run", "run_id", metavar="RUN_ID", help="The run whose changes to undo (default: the last one)."
)
def env_rollback(run_id: str | None, **options: Any) -> None:
    """Put back the env files that the last run changed, byte for byte.

    Refuses (exit 2, nothing written) if a file was edited after the run wrote it.
    """
    from recovery_wizard import commands

    raise SystemExit(commands.env_rollback(_globals(options), run_id))


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@click.option("--no-size", is_flag=True, help="Do not connect to count tables and rows.")
def whereis(no_size: bool, **options: Any) -> None:
    """Where the app's database URLs point: Neon project, branch (default, protected, root), pooled or
    direct, role, and a one-line size.

    Reads the URLs as the restore does (the environment, .env, .env.local, prisma/.env, the variables the
    Prisma schema names) and resolves each host through the API. Passwords are never shown.
    """
    from recovery_wizard import guard_commands

    raise SystemExit(guard_commands.whereis(_globals(options), sizes=not no_size))


GUARD_EXIT_HELP = """\b
Exit codes: the command's own; 128+N when signal N ended it. Before the
command runs: 2 refused (nothing ran, nothing written: no URL, a refused
confirmation, --yes without --allow-default, no checkpoint possible for a
destructive command), 1 the checkpoint could not be made, 3 cancelled."""


class GuardGroup(click.Group):
    """`guard [OPTIONS] -- COMMAND…` runs COMMAND; `guard list` and `guard prune` manage checkpoints.

    Everything after the first `--` is the command, never parsed as options or subcommands here.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["guarded"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            raise click.UsageError(
                f"{args[0]!r} is not a guard subcommand (list, prune). Put the command to run after --: "
                f"recovery-wizard guard -- {args[0]} …"
            )
        return super().resolve_command(ctx, args)


def _duration(text: str, option: str) -> Any:
    from recovery_wizard.recovery.timepoint import TimePointError, parse_duration

    try:
        return parse_duration(text)
    except TimePointError as exc:
        raise click.BadParameter(f"{exc} {exc.hint}".strip(), param_hint=option) from None


@cli.group(cls=GuardGroup, invoke_without_command=True, epilog=GUARD_EXIT_HELP)
@click.option(
    "--api-key", envvar="NEON_API_KEY", show_envvar=True, metavar="KEY", help="Neon API key (never echoed)."
)
@click.option("--api-url", envvar="NEON_API_URL", show_envvar=True, metavar="URL", help="Neon API base URL.")
@click.option("--project-id", envvar="NEON_PROJECT_ID", show_envvar=True, metavar="ID", help="The project.")
@click.option(
    "--checkpoint",
    type=click.Choice(["branch", "snapshot", "none"]),
    default="branch",
    show_default=True,
    help="branch: a branch at head (no compute); snapshot: a Neon snapshot (root branches); none.",
)
@click.option(
    "--no-checkpoint", is_flag=True, help="Same as --checkpoint none: run with nothing to come back to."
)
@click.option(
    "--allow-default",
    is_flag=True,
    help="With --yes: allow a destructive command, or any command on the default or a protected branch.",
)
@click.option("--yes", "-y", is_flag=True, help="Never prompt (refuses what needs a typed confirmation).")
@click.option(
    "--threshold",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    metavar="PERCENT",
    help="Warn when a table loses more than this share of its rows.",
)
@click.option(
    "--expires",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="The checkpoint's lifetime (at most 30d).",
)
@click.pass_context
def guard(ctx: click.Context, /, **options: Any) -> None:
    """Run a command that may touch the database, with a checkpoint to come back to.

    `recovery-wizard guard -- npx prisma migrate deploy`: says which Neon branch the command's URL reaches,
    asks for the branch name typed when the command can destroy data (migrate dev/reset, db push
    --accept-data-loss/--force-reset, db execute, psql -f) or the branch is the default or a protected one,
    takes a checkpoint, runs the command untouched (stdin, stdout, stderr, exit code), then compares row
    counts and prints `recovery-wizard restore --from checkpoint:<run id>` when a table lost rows.
    """
    if ctx.invoked_subcommand is not None:
        return
    argv = list(ctx.meta.get("guarded") or [])
    if not argv:
        raise click.UsageError(
            "Give the command after --, e.g. recovery-wizard guard -- npx prisma migrate deploy"
        )
    import os

    from recovery_wizard import guard_commands
    from recovery_wizard.commands import GlobalOptions, workdir
    from recovery_wizard.recovery.guard import GuardOptions

    g = GlobalOptions(
        api_key=options["api_key"],
        api_url=options["api_url"],
        project_id=options["project_id"],
        json=False,
        yes=options["yes"],
        workdir=workdir(),
    )
    guard_options = GuardOptions(
        argv=argv,
        workdir=g.workdir,
        environ=dict(os.environ),
        project_id=g.project_id,
        checkpoint="none" if options["no_checkpoint"] else options["checkpoint"],
        allow_default=options["allow_default"],
        yes=options["yes"],
        threshold=options["threshold"],
        expires=_duration(options["expires"], "--expires"),
    )
    raise SystemExit(guard_commands.guard(g, guard_options))


@guard.command("list")
@global_options
def guard_list(**options: Any) -> None:
    """The checkpoints the guard made here, newest first, with the command that followed each."""
    from recovery_wizard import guard_commands

    raise SystemExit(guard_commands.guard_list(_globals(options)))


@guard.command("prune", epilog=EXIT_CODES_HELP)
@global_options
@click.option(
    "--older-than", metavar="DURATION", help="Also delete checkpoints made longer ago than this (e.g. 3d)."
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def guard_prune(older_than: str | None, dry_run: bool, **options: Any) -> None:
    """Delete expired checkpoints (or older ones), only those provably made by this app's guard runs."""
    from recovery_wizard import guard_commands

    age = _duration(older_than, "--older-than") if older_than else None
    raise SystemExit(guard_commands.guard_prune(_globals(options), age, dry_run))


@cli.group()
def backups() -> None:
    """The team's own backup files: pg_dump archives, SQL dumps, JSON backups."""


@backups.command("find")
@click.argument("dirs", nargs=-1, type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option(
    "--before",
    "--incident",
    "incident",
    metavar="TIME",
    help="The incident's moment (every form --at accepts): backups after it are marked likely damaged.",
)
@click.option("--tz", metavar="ZONE", help="How to read and show times without offset (default: local).")
@click.option(
    "--depth",
    default=4,
    show_default=True,
    type=click.IntRange(0, 20),
    help="How many folders deep to look under each directory.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def backups_find(
    dirs: tuple[str, ...], incident: str | None, tz: str | None, depth: int, as_json: bool
) -> None:
    """Find backups by their content, newest first: in this app directory, ./backups, ./prisma,
    ~/Downloads, ~/Desktop and the DIRs given.

    For each: when it was taken (from the file itself; the file's mtime only as a fallback, and said so),
    its kind, size, server version, database, tables (with row counts where the file says) and its age
    relative to the incident. Exit codes: 0 listed (also when none is found); 2 bad input (--before, --tz).
    """
    from recovery_wizard.recovery.files.cli_find import run

    raise SystemExit(run(dirs, incident=incident, tz=tz, depth=depth, as_json=as_json))


FAULT_HELP = """Make matching API requests fail, deterministically (repeatable).

\b
SPEC is [METHOD ]PATH[?QUERY][#WHICH]=ACTION[:OPTIONS]
  METHOD   GET, POST, PATCH, DELETE or * (default: any)
  PATH     glob over the path after /api/v2, e.g. /projects/*/branches
  QUERY    NAME=GLOB[&NAME=GLOB]: only requests asking that, whatever
           order they arrive in, e.g. /projects/*/connection_uri?pooled=true
  WHICH    N (the Nth match, default 1), N-M, N+ (Nth and later) or * (all)
  ACTION   423, 429, 500, 503, stall, drop (connection closed mid-answer),
           malformed (200 with a body that is not JSON)
  OPTIONS  retry-after=S, seconds=S (stall), when=before|after (is the
           request handled before the fault answers? 423/429/503: before;
           500/stall/drop/malformed: after, i.e. the write happened)
\b
Examples: 'POST /projects/*/branches=423'
          'GET */operations/*#2+=503:retry-after=1'"""


@cli.group()
def sandbox() -> None:
    """A local Neon API backed by real PostgreSQL, for the demo, drills and tests."""


@sandbox.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only by default)."
)
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option("--api-key", help="The key clients must send (default: a random one, printed).")
@click.option("--scenario", default="homecheff", show_default=True, help="The built-in incident to play.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), help="Delay added to every API answer.")
@click.option("--fault", "faults", multiple=True, metavar="SPEC", help=FAULT_HELP)
@click.option(
    "--operation-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How long each Neon operation takes to finish.",
)
@click.option(
    "--pg-dsn",
    envvar="RECOVERY_WIZARD_PG_DSN",
    help="Admin DSN of a PostgreSQL to use (env RECOVERY_WIZARD_PG_DSN); default: an embedded one.",
)
@click.option(
    "--history",
    "history_seconds",
    metavar="DURATION",
    callback=_history_seconds,
    help="The project's restore window (history_retention_seconds), e.g. 10m, 6h, 7d; 0 turns "
    "point-in-time restore off. Default: the scenario's (7 days). Below 30m the incident is outside it.",
)
@click.option(
    "--backups-into",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write the scenario's backups folder into DIR first: hourly pg_dump files with manifests, a "
    "downloaded .sql and the app's JSON backups, each as the data was when it was taken.",
)
def sandbox_serve(**options: object) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM, then drop its databases.

    Prints exactly four lines first, NEON_API_URL=, NEON_API_KEY=, NEON_PROJECT_ID= and
    NEON_SANDBOX_CA=, so `eval "$(recovery-wizard sandbox serve | head -4)"` style scripts can use it.
    Endpoints speak TLS and their connection strings say sslmode=require&channel_binding=require, as
    Neon's do; NEON_SANDBOX_CA is the sandbox's own CA for sslmode=verify-full&sslrootcert=.
    """
    from recovery_wizard.sandbox.faults import FaultSpecError, parse_fault

    for spec in options["faults"]:  # type: ignore[attr-defined]
        try:
            parse_fault(spec)
        except FaultSpecError as exc:
            raise click.BadParameter(f"{exc} {exc.hint}".strip(), param_hint="--fault") from None
    from recovery_wizard.sandbox.serve import run

    raise SystemExit(run(**options))


# What a stray argument that is really a credential looks like: a Neon key (napi_…), another service's
# token, or any long run of letters and digits with both in it. Such a token is masked in click's usage
# errors ("Got unexpected extra argument (napi_…)"), which would otherwise print it whole to the terminal
# and any CI log. A long word masked by mistake costs a re-read; a key printed costs a rotation.
_KEYLIKE_RE = re.compile(
    r"\b(?:napi|sk|pk|ghp|gho|ghs|glpat|xox[abp])[_-][A-Za-z0-9_\-]{8,}"
    r"|(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{24,}"
)


def scrub_usage_error(message: str) -> str:
    """A click usage message with key-like tokens and Postgres passwords masked."""
    from recovery_wizard.redact import MASK, redact

    return _KEYLIKE_RE.sub(MASK, redact(message))


def main() -> None:
    # Click's standalone mode prints usage errors itself, echoing the offending arguments; run it
    # non-standalone and print them here, scrubbed. Everything else ends as standalone mode would.
    try:
        rv = cli.main(prog_name="recovery-wizard", standalone_mode=False)
    except SystemExit as exc:
        # Every command ends with `raise SystemExit(code)`, which click lets through: without this the
        # quick exit below never ran for them, and a restore paid the module teardown (50-100 ms) after
        # its last line. A message instead of a code is printed and ended by the interpreter, as before.
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        rv = exc.code
    except click.ClickException as exc:
        import io

        shown = io.StringIO()
        exc.show(file=shown)
        sys.stderr.write(scrub_usage_error(shown.getvalue()))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    from recovery_wizard.quickexit import exit_now

    exit_now(rv if isinstance(rv, int) else 0)
