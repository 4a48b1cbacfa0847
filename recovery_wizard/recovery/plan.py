"""Resolve what a run will do, check it can, and say it in order — all before the first write.

``resolve_plan`` turns options (some missing) into a :class:`Plan`: the project, the damaged branch, the
moment (inside the restore window), database and role, env files and variables, checks and Prisma. Missing
choices are asked through the prompter (or refused, with the option that answers them, under ``--yes``).
The pre-flight checks of docs/neon-api.md run here: in-place needs a root branch without a ``restore``
restriction or an unfinished snapshot restore; running operations are reported; names must be free.
Anything wrong raises :class:`UsageError` (exit 2): nothing has been written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from recovery_wizard.neon.models import Branch, Project, Snapshot
from recovery_wizard.recovery import envfile, prisma
from recovery_wizard.recovery.alongside import alongside
from recovery_wizard.recovery.options import FirstReads
from recovery_wizard.recovery.options import RunOptions as RunOptions  # its home before options.py
from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.sources import (
    HistorySource,
    Source,
    SourceSpec,
    check_with_at,
    parse_source,
    resolve_source,
)
from recovery_wizard.recovery.sqlguard import require_read_only
from recovery_wizard.recovery.timepoint import (
    Moment,
    RestoreWindow,
    TimePointError,
    parse_moment,
    resolve_zone,
)
from recovery_wizard.redact import split_url

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.recovery.ui import Prompter, Reporter

STRATEGIES = ("new-branch", "in-place", "merge-back")
# Variable pairs projects really use (pooled, direct), most common first: see docs/prisma.md.
KNOWN_PAIRS = (
    ("DATABASE_URL", "DIRECT_URL"),
    ("DATABASE_URL", "DATABASE_URL_UNPOOLED"),
    ("POSTGRES_PRISMA_URL", "POSTGRES_URL_NON_POOLING"),
)
DRILL_TTL = timedelta(hours=24)


@dataclass
class EnvTarget:
    """One env file and the variables of it that will point at the restored branch."""

    path: Path
    pooled_var: str | None
    direct_var: str | None
    tracked: bool
    warnings: list[str]

    @property
    def variables(self) -> list[str]:
        return [v for v in (self.pooled_var, self.direct_var) if v]


@dataclass
class Plan:
    command: str
    strategy: str
    project: Project
    branch: Branch
    moment: Moment
    window: RestoreWindow
    database: str
    role: str
    name: str  # the restore (or drill) branch's name, or the backup's name for in-place
    env_targets: list[EnvTarget]
    checks: list[str]
    prisma: prisma.PrismaProject | None
    children: list[Branch]
    warnings: list[str]
    keep: bool = False
    expires_at: datetime | None = None
    # Where the data comes from (Neon history at ``moment`` unless told otherwise).
    source: Source = field(default_factory=HistorySource)
    # In place from a previewing source (a snapshot): the preview branch's name (``name`` is the backup's).
    preview_name: str | None = None
    # Merge back: tables, revert_changed, rules and the checkpoint branch's name (see apply/merge_back.py).
    merge: dict[str, Any] | None = None

    @property
    def in_place(self) -> bool:
        return self.strategy == "in-place"

    @property
    def merge_back(self) -> bool:
        return self.strategy == "merge-back"

    def actions(self) -> list[str]:
        """Everything that will happen, in order, in words."""
        lines: list[str] = list(self.source.restore_lines(self))
        if self.merge_back:
            from recovery_wizard.recovery.apply.merge_back import merge_actions

            return lines + merge_actions(self)
        checks = f" and run {len(self.checks)} check(s) on both" if self.checks else ""
        restored = (
            (self.preview_name or self.name)
            if self.source.previews_in_place and self.in_place
            else self.branch.name
            if self.in_place
            else self.name
        )
        lines.append(
            f"Verify: count the rows of every table on the damaged {self.branch.name!r} and the restored "
            f"{restored!r}{checks}, read-only. A failing check stops the run before any env file changes."
            + (
                " The restored branch is also counted against the backup file's own row counts."
                if self.source.kind == "file"
                else ""
            )
        )
        lines += self.source.apply_lines(self)
        if self.command == "restore":
            if self.in_place:
                lines.append(
                    "Env files: nothing to change (an in-place restore keeps the connection strings)."
                )
            elif not self.env_targets:
                lines.append(
                    "Env files: NONE will be repointed (see the warning below): the app keeps using "
                    f"{self.branch.name!r} until its connection strings are changed by hand."
                )
            for target in self.env_targets:
                lines.append(
                    f"Rewrite {', '.join(target.variables)} in {target.path} to point at {self.name!r} "
                    "(pooled URL for the app, direct URL for tools), after a backup and a masked diff."
                )
            if self.prisma is not None:
                version = self.prisma.version or "unknown version"
                lines.append(
                    f"Prisma {version}: back up {self.prisma.schema_path}, `prisma db pull` over the direct URL, "
                    "show the schema diff, then `prisma generate`."
                )
        lines.append(
            "Write the incident record (report.md) with ids, times, the verification and how to undo."
        )
        if self.command == "drill":
            lines.append(
                f"Keep {self.name!r} (--keep)."
                if self.keep
                else f"Delete the throwaway branch {self.name!r}."
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "strategy": self.strategy,
            "project": {"id": self.project.id, "name": self.project.name},
            "branch": {"id": self.branch.id, "name": self.branch.name},
            "restore_point": self.moment.rfc3339(),
            "restore_point_input": self.moment.text,
            "window": {"earliest": self.window.earliest, "now": self.window.now},
            "database": self.database,
            "role": self.role,
            "name": self.name,
            "env_files": [
                {
                    "path": str(t.path),
                    "pooled_var": t.pooled_var,
                    "direct_var": t.direct_var,
                    "warnings": t.warnings,
                }
                for t in self.env_targets
            ],
            "checks": self.checks,
            "prisma": None
            if self.prisma is None
            else {"version": self.prisma.version, "root": str(self.prisma.root)},
            "children": [c.name for c in self.children],
            "warnings": self.warnings,
            "actions": self.actions(),
            "expires_at": self.expires_at,
            "source": self.source.to_dict(),
            "preview_name": self.preview_name,
            "merge": self.merge,
        }


# Neon's BranchCreateRequest: a name of 1 to 256 characters.
BRANCH_NAME_MAX: Final = 256


def check_branch_name(name: str, *, option: str = "--name") -> str:
    """``name`` if Neon would take it as a branch name and it is safe to print; else a usage error (exit 2).

    Beyond Neon's 1-256 characters: no control or invisible format characters (a newline wrote Markdown
    into the incident record; an escape sequence would redraw the terminal) and no space at either end
    (two branches that look the same in every list).
    """
    if not name:
        raise UsageError(f"{option} is empty.", hint="Give the branch a name, e.g. main-restore-incident-42.")
    if len(name) > BRANCH_NAME_MAX:
        raise UsageError(
            f"{option} is {len(name)} characters long; Neon takes at most {BRANCH_NAME_MAX}.",
            hint="Give a shorter name.",
        )
    # Not printable: control and format characters, line and paragraph separators, spaces other than
    # ' ' (a no-break space looks like one), unassigned code points.
    bad = next((ch for ch in name if not ch.isprintable()), None)
    if bad is not None:
        raise UsageError(
            f"{option} {ascii(name)[:80]} holds a control or invisible character (U+{ord(bad):04X}), "
            "which would garble the branch lists and the incident record.",
            hint="Use letters, digits, '-', '_', '.' and '/'.",
        )
    if name != name.strip():
        raise UsageError(
            f"{option} {name!r} starts or ends with a space.", hint=f"Use {name.strip()!r} instead."
        )
    return name


def default_name(
    plan_command: str,
    strategy: str,
    branch: Branch,
    moment: Moment,
    now: datetime,
    *,
    source: Source | None = None,
) -> str:
    """Names that say what they are and when, unique per moment (and per run for backups/drills)."""
    if plan_command == "drill":
        return f"drill-{branch.name}-{now:%Y%m%dT%H%M%SZ}"
    if strategy == "in-place":
        return f"{branch.name}_old_{now:%Y-%m-%dT%H-%M-%SZ}"  # Neon's own backup naming
    if strategy == "merge-back":
        # The past the rows come back from; one per run (a second merge diffs against a fresh one).
        return f"{branch.name}-merge-past-{now:%Y-%m-%dT%H-%M-%SZ}"
    if source is not None and source.kind == "file":
        # The same file may be loaded more than once: the name carries when, not the file's moment.
        return f"{branch.name}-from-file-{now:%Y-%m-%dT%H-%M-%SZ}"
    if source is not None and source.previews_in_place:
        # A snapshot may be restored more than once: the name carries when, not which moment.
        return f"{branch.name}-from-snapshot-{now:%Y-%m-%dT%H-%M-%SZ}"
    return f"{branch.name}-restore-{moment.utc:%Y-%m-%dT%H-%M-%SZ}"


async def list_projects(client: NeonClient) -> list[Project]:
    """Every project the key sees, once each, by name. A personal key must name its organizations."""
    auth = await client.auth_details()
    if auth.is_personal_key:
        projects = []
        for org in await client.organizations():
            projects += await client.projects(org_id=org.id)
        projects += await client.projects()
    else:
        projects = await client.projects()
    return sorted({p.id: p for p in projects}.values(), key=lambda p: p.name)


async def _project_id(client: NeonClient, options: RunOptions, prompter: Prompter) -> str:
    """Which project: ``--project-id``, the only one the key sees, or the user's choice."""
    if options.project_id:
        return options.project_id
    unique = {p.id: p for p in await list_projects(client)}
    if not unique:
        raise UsageError(
            "The API key sees no Neon project.", hint="Check that the key belongs to the right account."
        )
    if len(unique) == 1:
        return next(iter(unique))
    return await prompter.choose(
        "Which project lost data?",
        [(f"{p.name} ({p.id})", p.id) for p in sorted(unique.values(), key=lambda p: p.name)],
        option="--project-id",
    )


async def choose_project(client: NeonClient, options: RunOptions, prompter: Prompter) -> Project:
    return await client.project(await _project_id(client, options, prompter))


async def choose_project_and_branches(
    client: NeonClient, options: RunOptions, prompter: Prompter
) -> tuple[Project, list[Branch]]:
    """The project and all its branches, read at once: one round trip, not two, on the restore's path."""
    return await project_and_branches(client, await _project_id(client, options, prompter))


async def project_and_branches(client: NeonClient, project_id: str) -> tuple[Project, list[Branch]]:
    """One project and all its branches, read at once (the CLI's plan and the wizard both need both)."""
    project, branches = await asyncio.gather(client.project(project_id), client.branches(project_id))
    return project, branches


def pick_branch(project: Project, branches: list[Branch], options: RunOptions) -> Branch:
    """The damaged branch: ``--branch`` (a name or an id), or the project's default branch."""
    if options.branch:
        wanted = options.branch
        matches = [b for b in branches if b.id == wanted] or [b for b in branches if b.name == wanted]
        if not matches:
            names = ", ".join(sorted(b.name for b in branches)[:10])
            raise UsageError(
                f"There is no branch {wanted!r} in project {project.name}.",
                hint=f"Pass --branch with a name or id; branches include: {names}.",
            )
        if len(matches) > 1:
            raise UsageError(
                f"Several branches are named {wanted!r}: pass its id (br-…) to --branch instead."
            )
        return matches[0]
    defaults = [b for b in branches if b.default]
    if not defaults:
        raise UsageError("The project has no default branch: pass --branch.")
    return defaults[0]


async def choose_moment(options: RunOptions, prompter: Prompter, window: RestoreWindow) -> Moment:
    try:
        zone = resolve_zone(options.tz)
    except TimePointError as exc:
        raise UsageError(
            str(exc), hint=exc.hint or "Pass an IANA zone name to --tz, e.g. Europe/Amsterdam."
        ) from None
    text = options.at or await prompter.text(
        f"Restore to which moment? (the restore window is {window.describe(zone)}; e.g. '35 minutes ago', "
        "'2026-11-21 01:29', 'yesterday 23:59')",
        option="--at",
    )
    return read_moment(text, zone, window, now=window.now)


async def _with_backups_offer(
    exc: UsageError, client: NeonClient, project_id: str, options: RunOptions, window: RestoreWindow
) -> UsageError:
    """A moment before the window is refused; the refusal names the newest backups from before it."""
    from recovery_wizard.recovery.backup.backupdir import resolve_dir
    from recovery_wizard.recovery.timeline import offer_backups

    if not options.at:
        return exc
    try:
        moment = parse_moment(options.at, zone=resolve_zone(options.tz), now=window.now)
    except TimePointError:
        return exc
    if moment.utc >= window.earliest:
        return exc
    offer = await offer_backups(client, project_id, moment.utc, resolve_dir(options.workdir, None))
    if offer:
        exc.hint = f"{offer} {exc.hint}".strip()
    return exc


def read_moment(text: str, zone: tzinfo, window: RestoreWindow, *, now: datetime) -> Moment:
    """``text`` as a moment inside ``window``; anything else is a usage error (exit 2), before any write."""
    try:
        moment = parse_moment(text, zone=zone, now=now)
        window.check(moment)
    except TimePointError as exc:
        raise UsageError(str(exc), hint=exc.hint) from None
    return moment


def _url_identity(url: str | None) -> tuple[str | None, str | None]:
    """(role, database) named by a connection URL, if it is one.

    Not urlsplit: a password that is not percent-encoded (a raw '/', '#' or '@', seen in hand-written files)
    would make it read part of the password as the host or the database, and that would end up in messages.
    The URL is split as redact.mask_url splits it.
    """
    if not url or "://" not in url:
        return None, None
    _, userinfo, location = split_url(url.strip(), query_at_signs=True)
    path = location.partition("?")[0].partition("#")[0]
    user = unquote((userinfo or "").partition(":")[0]) or None
    return user, unquote(path.partition("/")[2]) or None


def _current_identity(
    targets: list[EnvTarget], options: RunOptions
) -> tuple[dict[str, str], dict[str, str], Path | None]:
    """The roles and databases the variables to be rewritten use now, by "VARIABLE in PATH"; the first file.

    Every variable is rewritten with one role and one database, so variables that differ would silently
    move some of them to another role: refused (exit 2) unless --role/--database say which.
    """
    roles: dict[str, str] = {}  # "DATABASE_URL in /app/.env" -> role
    databases: dict[str, str] = {}
    source: Path | None = None
    for target in targets:
        env = envfile.EnvFile.read(target.path)
        for variable in (target.direct_var, target.pooled_var):
            role, database = _url_identity(env.get(variable) if variable else None)
            where = f"{variable} in {target.path}"
            if role:
                roles[where] = role
            if database:
                databases[where] = database
            if (role or database) and source is None:
                source = target.path
    for what, option, given, named in (
        ("role", "--role", options.role, roles),
        ("database", "--database", options.database, databases),
    ):
        if given is None and len(set(named.values())) > 1:
            uses = "; ".join(f"{where} uses {name!r}" for where, name in named.items())
            raise UsageError(
                f"The connection strings to rewrite use different {what}s ({uses}), and recovery-wizard "
                f"writes one {what} into all of them.",
                hint=f"Pass {option} with the {what} they should all use, or rewrite them by hand.",
            )
    return roles, databases, source


def _strategy_of(options: RunOptions) -> str:
    return "new-branch" if options.command == "drill" else options.strategy


# Env files that may hold the app's connection strings when there is no .env to rewrite (docs/prisma.md,
# Next.js's load order): named in the warning so the person knows which one to pass.
_OTHER_ENV_FILES = (
    "prisma/.env",
    ".env.local",
    ".env.production",
    ".env.production.local",
    ".env.development",
)


def _nothing_repointed(options: RunOptions) -> str:
    """The loud warning for a new-branch restore that will rewrite no env file."""
    found = [name for name in _OTHER_ENV_FILES if (options.workdir / name).is_file()]
    where = (
        f"there is no .env in {options.workdir} (only {', '.join(found)}, which is not rewritten unless "
        "passed with --env-file)"
        if found
        else f"there is no .env in {options.workdir} and no --env-file was given"
    )
    return (
        f"NOTHING WILL BE REPOINTED: {where}. The restore creates a new branch, and the app keeps using the "
        "damaged branch until its connection strings point at it: pass --env-file "
        f"{found[0] if found else 'PATH'}, or set them by hand where the app runs, then redeploy."
    )


def env_targets(options: RunOptions, detected: prisma.PrismaProject | None) -> list[EnvTarget]:
    paths = list(options.env_files)
    if not paths:
        default = options.workdir / ".env"
        if default.is_file():
            paths = [default]
    targets = []
    for path in paths:
        path = path if path.is_absolute() else options.workdir / path
        try:
            env = envfile.EnvFile.read(path)
        except envfile.EnvFileError as exc:
            raise UsageError(str(exc), hint="Pass --env-file with the path of your app's env file.") from None
        present = {b.key for b in env.bindings}
        pooled, direct = _pick_variables(options, detected, present)
        if pooled is None and direct is None:
            raise UsageError(
                f"{path} defines none of the connection variables "
                f"({', '.join(sorted({v for pair in KNOWN_PAIRS for v in pair}))}).",
                hint="Name them with --pooled-var and --direct-var.",
            )
        warnings = envfile.reading_warnings(
            path,
            options.workdir,
            prisma_major=detected.major if detected else None,
            has_prisma_config=bool(detected and detected.config_path),
        )
        targets.append(EnvTarget(path, pooled, direct, envfile.git_tracked(path), warnings))
    return targets


def _pick_variables(
    options: RunOptions, detected: prisma.PrismaProject | None, present: set[str]
) -> tuple[str | None, str | None]:
    if options.pooled_var or options.direct_var:
        return options.pooled_var, options.direct_var
    if detected and detected.url_var and detected.url_var in present:
        direct = detected.direct_var if detected.direct_var in present else None
        return detected.url_var, direct
    for pooled, direct in KNOWN_PAIRS:
        if pooled in present:
            return pooled, direct if direct in present else None
    return None, None


async def resolve_plan(
    client: NeonClient,
    options: RunOptions,
    prompter: Prompter,
    reporter: Reporter,
    *,
    now: datetime | None = None,
    first: FirstReads | None = None,
) -> Plan:
    if options.strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {options.strategy!r}.")
    if options.name is not None:
        check_branch_name(options.name)
    _check_merge_options(options)
    for sql in options.checks:
        require_read_only(sql, what="check")
    spec = parse_source(options.source)
    check_with_at(spec, options.at)
    checkpoint = None
    if spec.kind == "checkpoint":
        from recovery_wizard.recovery.sources.checkpoint import read_checkpoint, scoped_options

        # The guard's journal names the project and the branch: nothing to ask, and nothing else to pick.
        checkpoint = read_checkpoint(options.workdir, spec.ref)
        options = scoped_options(options, checkpoint)
    project_id = await _project_id(client, options, prompter)
    # A snapshot source needs the project's snapshots: read with the project and its branches, one round
    # trip, not one of its own after them.
    async with alongside(
        client.snapshots(project_id) if spec.kind == "snapshot" else asyncio.sleep(0, None)
    ) as listed:
        if first is not None and first.project_id == project_id:
            project, branches = await first.answers  # asked for before this module was imported
        else:
            project, branches = await project_and_branches(client, project_id)
        snapshots = await listed
    now = now or datetime.now(UTC)
    window = RestoreWindow.from_retention(project.history_retention_seconds, now)
    branch = pick_branch(project, branches, options)
    warnings: list[str] = []
    source: Source
    if checkpoint is not None:
        from recovery_wizard.recovery.sources.checkpoint import resolve_checkpoint

        source, noted = await resolve_checkpoint(
            client, project.id, branch, checkpoint, window, asked_as=spec.ref
        )
        warnings += noted
        moment = Moment(checkpoint.at or now, spec.text, resolve_zone_or_refuse(options.tz), read_at=now)
    else:
        source, moment = await _source_and_moment(
            client, options, prompter, spec, project, branch, window, snapshots
        )
    if source.previews_in_place:
        warnings += source_warnings(source, branch)
    if spec.is_history:
        from recovery_wizard.recovery.sources.checkpoint import nearby_note

        # A guard checkpoint near the moment is the exact way back to "just before the migration".
        note = nearby_note(options.workdir, project.id, branch.id, moment.utc)
        if note:
            warnings.append(note)

    detected = prisma.detect(options.workdir) if options.command == "restore" else None
    use_prisma: prisma.PrismaProject | None = None
    if options.command == "restore" and options.prisma is not False and detected is not None:
        if detected.binary is None:
            message = f"Prisma is used in {options.workdir} but its CLI is not installed (node_modules/.bin/prisma)."
            if options.prisma:
                raise UsageError(message, hint="Run `npm install` first, or pass --no-prisma.")
            warnings.append(
                message + " The Prisma step will be skipped: run `npm install`, then `prisma db pull`."
            )
        else:
            use_prisma = detected
    elif options.prisma and detected is None:
        raise UsageError(f"--prisma was given but no Prisma schema or config was found in {options.workdir}.")

    targets = (
        env_targets(options, detected)
        if options.command == "restore" and options.strategy == "new-branch"
        else []
    )
    for target in targets:
        warnings += target.warnings

    if options.command == "restore" and _strategy_of(options) == "new-branch" and not targets:
        warnings.append(_nothing_repointed(options))

    url_roles, url_dbs, url_source = _current_identity(targets, options)
    url_role, url_db = next(iter(url_roles.values()), None), next(iter(url_dbs.values()), None)
    # Independent reads, at once: each round trip is on the critical path of a 2 a.m. restore.
    found_databases, found_roles, recent = await asyncio.gather(
        client.databases(project.id, branch.id),
        client.roles(project.id, branch.id),
        _recent_operations(client, project.id),
    )
    databases = [d.name for d in found_databases]
    roles = [r.name for r in found_roles]
    # The app keeps connecting as it does now, or the run stops: a role or database the API does not list
    # must not silently become the owner role or another database in the app's connection strings.
    if options.role is None and url_role is not None and url_role not in roles:
        raise UsageError(
            f"{url_source} connects as the role {url_role!r}, which Neon does not list on {branch.name!r} "
            f"(it lists: {', '.join(roles) or 'none'}). recovery-wizard can only write connection strings "
            "for a role Neon lists, and will not switch the app to another role without being told.",
            hint=f"Pass --role with the role the app should use from now on, or add {url_role!r} as a role "
            "in the Neon Console (Branches → Roles) and re-run.",
        )
    if options.database is None and url_db is not None and url_db not in databases:
        raise UsageError(
            f"{url_source} uses the database {url_db!r}, which branch {branch.name!r} does not have "
            f"(it has: {', '.join(databases) or 'none'}).",
            hint="Pass --database with the database the app should use from now on.",
        )
    database = options.database or (url_db if url_db in databases else None)
    if database is None:
        database = await _only_or_ask(prompter, "database", databases, "--database", branch.name)
    elif database not in databases:
        raise UsageError(
            f"Branch {branch.name!r} has no database {database!r}; it has: {', '.join(databases)}."
        )
    role = options.role or (url_role if url_role in roles else None)
    if role is None:
        role = await _only_or_ask(prompter, "role", roles, "--role", branch.name)
    elif role not in roles:
        raise UsageError(f"Branch {branch.name!r} has no role {role!r}; it has: {', '.join(roles)}.")
    for what, today, then in (("role", url_roles, role), ("database", url_dbs, database)):
        for where, name in today.items():
            if name != then:
                warnings.append(
                    f"{where} uses the {what} {name!r} today; after the rewrite it uses the {what} "
                    f"{then!r}, as --{what} asked."
                )

    strategy = "new-branch" if options.command == "drill" else options.strategy
    children = [b for b in branches if b.parent_id == branch.id]
    if source.kind == "file" and strategy == "in-place":
        raise UsageError(
            "A backup file is not restored in place: it is loaded into a new branch made from the damaged "
            "one, and the app is pointed at that.",
            hint=f"Use --strategy new-branch (the default) with --from {spec.text}.",
        )
    if not source.previews_in_place and strategy == "in-place":
        _check_in_place(branch)
    if source.previews_in_place:
        _check_snapshot_target(branch)
    name = options.name or default_name(options.command, strategy, branch, moment, now, source=source)
    preview_name = (
        f"{branch.name}-snapshot-preview-{now:%Y-%m-%dT%H-%M-%SZ}"
        if source.previews_in_place and strategy == "in-place"
        else None
    )
    merge: dict[str, Any] | None = None
    expires_at = (now + DRILL_TTL).replace(microsecond=0) if options.command == "drill" else None
    if strategy == "merge-back":
        from recovery_wizard.recovery.apply.merge_back import KEEP_PAST, checkpoint_name

        merge = {
            "tables": options.merge_tables,
            "revert_changed": list(options.revert_changed),
            "rules": dict(options.merge_rules),
            "checkpoint_name": checkpoint_name(branch.name, now),
        }
        # The past is kept as proof of what was merged, and expires by itself.
        expires_at = (now + KEEP_PAST).replace(microsecond=0)
    if options.name is None and len(name) > BRANCH_NAME_MAX:
        raise UsageError(
            f"The default name for the new branch would be {len(name)} characters; Neon takes at most "
            f"{BRANCH_NAME_MAX}.",
            hint="Pass --name with a shorter name.",
        )
    for taken in (name, preview_name, (merge or {}).get("checkpoint_name")):
        if taken is not None and any(b.name == taken for b in branches):
            raise UsageError(
                f"A branch named {taken!r} already exists.",
                hint="Pass --name with a new name, or resume the run that created it (restore --resume).",
            )
    running = [op for op in recent if not op.terminal]
    if running:
        warnings.append(
            f"{len(running)} Neon operation(s) are still running on the project ({running[0].action}…): "
            "the restore will wait for them (Neon answers 423 until they finish)."
        )
    return Plan(
        command=options.command,
        strategy=strategy,
        project=project,
        branch=branch,
        moment=moment,
        window=window,
        database=database,
        role=role,
        name=name,
        env_targets=targets,
        checks=list(options.checks),
        prisma=use_prisma,
        children=children,
        warnings=warnings,
        keep=options.keep,
        expires_at=expires_at,
        source=source,
        preview_name=preview_name,
        merge=merge,
    )


async def _source_and_moment(
    client: NeonClient,
    options: RunOptions,
    prompter: Prompter,
    spec: SourceSpec,
    project: Project,
    branch: Branch,
    window: RestoreWindow,
    snapshots: list[Snapshot] | None = None,
) -> tuple[Source, Moment]:
    """The source, resolved, and the moment its data is from (``snapshots``: the project's, already read).

    History: the moment asked for (``--at`` or a prompt), inside the restore window. A snapshot: its own
    moment, which may be long before the window begins: that is what snapshots are for, not an error.
    """
    source = await resolve_source(
        client, project.id, branch, spec, workdir=options.workdir, snapshots=snapshots
    )
    if spec.is_history:
        try:
            moment = await choose_moment(options, prompter, window)
        except UsageError as exc:
            raise await _with_backups_offer(exc, client, project.id, options, window) from None
        try:
            window.check_clear_of_old_edge(moment)
        except TimePointError as exc:
            raise UsageError(str(exc), hint=exc.hint) from None
        return source, moment
    try:
        zone = resolve_zone(options.tz)
    except TimePointError as exc:
        raise UsageError(str(exc), hint=exc.hint or "Pass an IANA zone name to --tz.") from None
    taken_at = getattr(source, "taken_at", None)
    assert isinstance(taken_at, datetime)
    return source, Moment(taken_at, f"{spec.kind}:{spec.ref}", zone, read_at=window.now)


def resolve_zone_or_refuse(tz: str | None) -> tzinfo:
    try:
        return resolve_zone(tz)
    except TimePointError as exc:
        raise UsageError(str(exc), hint=exc.hint or "Pass an IANA zone name to --tz.") from None


def source_warnings(source: Source, branch: Branch) -> list[str]:
    """What the plan should say about a snapshot of another branch."""
    of = getattr(source, "source_branch_id", None)
    if of and of != branch.id:
        return [
            f"The snapshot {getattr(source, 'name', '')!r} was taken of the branch {of}, not of "
            f"{branch.name!r}: its data is restored for {branch.name!r} all the same."
        ]
    return []


def _check_merge_options(options: RunOptions) -> None:
    """--tables, --revert-changed and --rule belong to a merge-back restore; a rule must be one we know."""
    given = [
        flag
        for flag, value in (
            ("--tables", options.merge_tables),
            ("--revert-changed", options.revert_changed),
            ("--rule", options.merge_rules),
        )
        if value
    ]
    if given and (options.command != "restore" or options.strategy != "merge-back"):
        raise UsageError(
            f"{', '.join(given)} only apply to a merge: `restore --strategy merge-back`.",
            hint="Add --strategy merge-back, or leave those options out.",
        )
    if not options.merge_rules:
        return
    # Only when there are rules to check: the merge package is ~10-20 ms of imports before a plain
    # restore's first request.
    from recovery_wizard.recovery.merge.plan import RULES

    for table, rule in options.merge_rules.items():
        if rule not in RULES:
            raise UsageError(
                f"--rule {table}={rule}: the rule must be one of {', '.join(RULES)}.",
                hint="skip leaves the past row out, keep-live keeps the live row, take-past reverts changed rows.",
            )


def _check_snapshot_target(branch: Branch) -> None:
    """Neon restores a snapshot for a root branch with no unfinished snapshot restore (either strategy)."""
    if not branch.is_root:
        raise UsageError(
            f"Branch {branch.name!r} is not a root branch: Neon restores snapshots only for root branches.",
            hint="Pick the root branch the snapshot belongs to with --branch, or restore from history (--at).",
        )
    if branch.restore_status == "restored":
        raise UsageError(
            f"Branch {branch.name!r} came from a snapshot restore that is not finalized yet.",
            hint="Finalize or delete that restore in the Neon Console first (Backup & Restore).",
        )


async def _recent_operations(client: NeonClient, project_id: str) -> list[Any]:
    found = []
    async for op in client.iter_operations(project_id, page_size=50):
        found.append(op)
        if len(found) >= 50:
            break
    return found


async def _only_or_ask(prompter: Prompter, what: str, names: list[str], option: str, branch: str) -> str:
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError(f"Branch {branch!r} has no {what}.")
    return await prompter.choose(f"Which {what} on {branch!r}?", [(n, n) for n in names], option=option)


def _check_in_place(branch: Branch) -> None:
    if not branch.is_root:
        raise UsageError(
            f"Branch {branch.name!r} is not a root branch: Neon restores only root branches in place to a moment.",
            hint="Use --strategy new-branch (the default): it creates a branch at that moment instead.",
        )
    restriction = branch.restriction("restore")
    if restriction is not None:
        raise UsageError(
            f"Neon does not allow restoring {branch.name!r} right now: {restriction.reason or 'restricted'}.",
            hint="Use --strategy new-branch, or resolve the restriction in the Neon Console first.",
        )
    if branch.restore_status and branch.restore_status not in ("finalized", "completed"):
        raise UsageError(
            f"Branch {branch.name!r} came from a snapshot restore that is not finalized ({branch.restore_status}).",
            hint="Finalize or cancel that restore in the Neon Console first, or use --strategy new-branch.",
        )
