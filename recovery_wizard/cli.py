"""The ``recovery-wizard`` command.

Imports only click at module level: each subcommand imports what it needs when it runs, so ``--help``
stays fast (no httpx, Textual or psycopg).
"""

from __future__ import annotations

import re
import sys
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
def demo(scenario: str, pg_dsn: str | None, keep_app: bool) -> None:
    """Rehearse the whole runbook on a local incident: no Neon account, no setup.

    Starts a sandbox (a local Neon over a real PostgreSQL) whose production database lost its users to a
    migration about 30 minutes ago, writes a throwaway app directory whose .env points at it, and opens the
    wizard there with the 'why' panel on. One step is shown but skipped: the demo app has no node_modules,
    so there is no Prisma CLI to run `prisma db pull`/`generate` with (the Prisma screen says so).
    """
    from recovery_wizard.tui.demo import demo as run_demo

    raise SystemExit(run_demo(pg_dsn=pg_dsn, scenario=scenario, keep_app=keep_app))


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
            "snapshot:latest (a Neon snapshot, also past the restore window).",
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

    from recovery_wizard.recovery.plan import RunOptions

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
    )


@cli.command(epilog=EXIT_CODES_HELP)
@global_options
@runbook_options
@click.option(
    "--strategy",
    type=click.Choice(["new-branch", "in-place"]),
    default="new-branch",
    show_default=True,
    help="new-branch: a branch at the moment (nothing overwritten). in-place: overwrite the branch, keep a backup.",
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


FAULT_HELP = """Make matching API requests fail, deterministically (repeatable).

\b
SPEC is [METHOD ]PATH[#WHICH]=ACTION[:OPTIONS]
  METHOD   GET, POST, PATCH, DELETE or * (default: any)
  PATH     glob over the path after /api/v2, e.g. /projects/*/branches
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
    except click.ClickException as exc:
        import io

        shown = io.StringIO()
        exc.show(file=shown)
        sys.stderr.write(scrub_usage_error(shown.getvalue()))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
