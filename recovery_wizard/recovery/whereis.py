"""Where the app's database URLs point: which Neon project, branch and compute, and how much data is there.

``recovery-wizard whereis`` and the guard both start here. The URLs are found as the restore finds them
(the app's ``.env`` files, the variables its Prisma schema or config names, the process environment, which
wins over the files as it does for the app). A URL's host is resolved through the API, never guessed:

- on Neon the endpoint id is the first label of the host (``ep-…``, ``ep-…-pooler`` for the pooled one);
- otherwise the host is matched against the endpoints' ``host`` field (how the sandbox's ``127.0.0.1:PORT``
  hosts resolve), and a pooled host that is no endpoint's own is asked of ``connection_uri`` (same machine
  only: a cheap check, not a scan).

A host that looks like Neon but that no endpoint the key can see has is "a different account": said, never
guessed at. A host that is not Neon says so. Passwords never leave this module unmasked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from recovery_wizard.neon import NeonClient, NeonError
from recovery_wizard.neon.models import Branch, Endpoint, Project
from recovery_wizard.recovery import envfile, prisma
from recovery_wizard.recovery.plan import KNOWN_PAIRS
from recovery_wizard.redact import Secret, mask_url, split_url

# The env files an app reads its connection strings from, in the order Next.js and Prisma read them.
ENV_FILES: Final = (".env", ".env.local", "prisma/.env")
# Beyond the pairs the restore rewrites: Vercel's Postgres integration also sets these.
_OTHER_VARS: Final = ("POSTGRES_URL", "POSTGRES_URL_NO_SSL", "DATABASE_URL_POOLED")
# Query parameters Prisma reads itself and libpq refuses ("invalid URI query parameter").
_PRISMA_ONLY: Final = frozenset(
    {"pgbouncer", "schema", "connection_limit", "pool_timeout", "socket_timeout", "statement_cache_size"}
)
_NEON_HOST: Final = re.compile(r"^(?P<id>ep-[a-z0-9-]+?)(?P<pooler>-pooler)?$")
_NEON_DOMAINS: Final = (".neon.tech", ".neon.build", ".neon.com")
SIZE_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class AppUrl:
    """One database URL the app would use: the variable, where it is set, and the URL (a secret)."""

    variable: str
    source: str  # ".env", "prisma/.env" or "environment"
    url: Secret


@dataclass(frozen=True)
class UrlParts:
    host: str  # host[:port], lower case
    hostname: str
    role: str | None
    database: str | None

    @property
    def neon_id(self) -> str | None:
        match = _NEON_HOST.match(self.hostname.partition(".")[0])
        return match["id"] if match else None

    @property
    def neon_pooled(self) -> bool:
        match = _NEON_HOST.match(self.hostname.partition(".")[0])
        return bool(match and match["pooler"])

    @property
    def looks_like_neon(self) -> bool:
        return self.neon_id is not None or self.hostname.endswith(_NEON_DOMAINS)


def url_parts(url: str) -> UrlParts | None:
    """Host, role and database of a connection URL, split as redact splits it (a raw '@' or '/' in the
    password never becomes the host). None for text that is not a URL."""
    if "://" not in url:
        return None
    _, userinfo, rest = split_url(url.strip(), query_at_signs=True)
    location, _, path = rest.partition("?")[0].partition("#")[0].partition("/")
    host = location.lower()
    if not host:
        return None
    hostname = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if ":" in host and not host.startswith("[") and not host.rpartition(":")[2].isdigit():
        hostname = host
    role = unquote((userinfo or "").partition(":")[0]) or None
    return UrlParts(host, hostname, role, unquote(path) or None)


def libpq_url(url: str) -> str:
    """The URL without the query parameters only Prisma understands (libpq refuses them)."""
    head, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [p for p in query.split("&") if p and p.partition("=")[0].lower() not in _PRISMA_ONLY]
    return head + ("?" + "&".join(kept) if kept else "")


def app_urls(workdir: Path, environ: Mapping[str, str]) -> list[AppUrl]:
    """Every database URL the app in ``workdir`` would use, the process environment's first."""
    detected = prisma.detect(workdir)
    names: list[str] = []
    for name in (
        detected.url_var if detected else None,
        detected.direct_var if detected else None,
        *(v for pair in KNOWN_PAIRS for v in pair),
        *_OTHER_VARS,
    ):
        if name and name not in names:
            names.append(name)
    found: list[AppUrl] = []
    for name in names:
        value = environ.get(name)
        if value and "://" in value:
            found.append(AppUrl(name, "environment", Secret(value)))
    for relative in ENV_FILES:
        path = workdir / relative
        if not path.is_file():
            continue
        try:
            env = envfile.EnvFile.read(path)
        except envfile.EnvFileError:
            continue  # whereis reports what it can read; the restore names the bad line when it needs it
        for name in names:
            value = env.get(name)
            if value and "://" in value:
                found.append(AppUrl(name, relative, Secret(value)))
    return found


@dataclass
class TableSize:
    tables: int
    largest: list[tuple[str, int]]  # (table, rows), most rows first
    exact: bool

    def line(self) -> str:
        if not self.tables:
            return "no tables"
        approx = "" if self.exact else "~"
        rows = ", ".join(f"{name} {approx}{count:,}" for name, count in self.largest[:3])
        return f"{self.tables} table{'s' if self.tables != 1 else ''}; largest: {rows}"


@dataclass
class Where:
    """Where one URL points, as far as the key can tell."""

    variable: str
    source: str
    url: str  # masked
    kind: str  # "neon", "not-neon", "foreign", "invalid"
    host: str = ""
    pooled: bool | None = None
    role: str | None = None
    database: str | None = None
    project: Project | None = None
    branch: Branch | None = None
    endpoint: Endpoint | None = None
    size: TableSize | None = None
    size_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        b = self.branch
        if b is None:
            return []
        return [
            f for f, on in (("default", b.default), ("protected", b.protected), ("root", b.is_root)) if on
        ]

    def summary(self) -> str:
        """One line: what a person must know before running a migration against it."""
        head = f"{self.variable} ({self.source})"
        if self.kind == "invalid":
            return f"{head}: not a connection URL this tool can read"
        if self.kind == "not-neon":
            return (
                f"{head}: {self.host} is not a Neon endpoint (not Neon, or not one this key's projects have)"
            )
        if self.kind == "foreign":
            return (
                f"{head}: {self.host} looks like Neon, but no endpoint the API key can see has it: "
                "a different account or project (not guessed)"
            )
        assert self.project is not None and self.branch is not None
        flags = ", ".join(self.flags) or "not default"
        how = "pooled" if self.pooled else "direct"
        return (
            f"{head}: project {self.project.name} ({self.project.id}), branch {self.branch.name} "
            f"({self.branch.id}; {flags}), {how}, role {self.role or '?'}, database {self.database or '?'}"
        )

    def to_dict(self) -> dict[str, Any]:
        b, p, e = self.branch, self.project, self.endpoint
        return {
            "variable": self.variable,
            "source": self.source,
            "url": self.url,
            "kind": self.kind,
            "host": self.host,
            "pooled": self.pooled,
            "role": self.role,
            "database": self.database,
            "project": None if p is None else {"id": p.id, "name": p.name},
            "branch": None
            if b is None
            else {
                "id": b.id,
                "name": b.name,
                "default": b.default,
                "protected": b.protected,
                "root": b.is_root,
            },
            "endpoint": None if e is None else {"id": e.id, "type": e.type, "state": e.current_state},
            "size": None
            if self.size is None
            else {
                "tables": self.size.tables,
                "exact": self.size.exact,
                "largest": [{"table": t, "rows": n} for t, n in self.size.largest],
            },
            "size_error": self.size_error,
            "summary": self.summary(),
        }


class Resolver:
    """Finds the endpoint behind a host, loading each project's endpoints once (one request per project)."""

    def __init__(self, client: NeonClient, project_id: str | None = None) -> None:
        self.client = client
        self.project_id = project_id
        self._projects: list[Project] | None = None
        self._others: list[Project] | None = None
        self._endpoints: dict[str, list[Endpoint]] = {}
        self._branches: dict[tuple[str, str], Branch] = {}
        self.notes: list[str] = []

    async def projects(self) -> list[Project]:
        """The given project (or every project the key sees when none is given)."""
        if self._projects is None:
            from recovery_wizard.recovery.plan import list_projects

            if self.project_id:
                self._projects = [await self.client.project(self.project_id)]
            else:
                self._projects = await list_projects(self.client)
        return self._projects

    async def other_projects(self) -> list[Project]:
        """The key's other projects, when one was given: a URL may well be another project's."""
        if not self.project_id:
            return []
        from recovery_wizard.recovery.plan import list_projects

        try:
            return [p for p in await list_projects(self.client) if p.id != self.project_id]
        except NeonError as exc:  # a project-scoped key cannot list projects: not a failure
            self.notes.append(
                f"Only project {self.project_id} was searched: listing projects failed ({exc})."
            )
            return []

    async def endpoints(self, project_id: str) -> list[Endpoint]:
        if project_id not in self._endpoints:
            self._endpoints[project_id] = await self.client.project_endpoints(project_id)
        return self._endpoints[project_id]

    async def branch(self, project_id: str, branch_id: str) -> Branch:
        key = (project_id, branch_id)
        if key not in self._branches:
            self._branches[key] = await self.client.branch(project_id, branch_id)
        return self._branches[key]

    async def find(self, parts: UrlParts) -> tuple[Project, Endpoint, bool] | None:
        """(project, endpoint, pooled) for a host, or None when no endpoint the key sees has it."""
        found = await self._find_in(await self.projects(), parts)
        if found is None:
            others = await self.other_projects()
            found = await self._find_in(others, parts) if others else None
        return found

    async def _find_in(
        self, projects: list[Project], parts: UrlParts
    ) -> tuple[Project, Endpoint, bool] | None:
        lists = await asyncio.gather(*(self.endpoints(p.id) for p in projects))
        neon_id = parts.neon_id
        for project, endpoints in zip(projects, lists, strict=True):
            for endpoint in endpoints:
                if neon_id is not None and endpoint.id == neon_id:
                    return project, endpoint, parts.neon_pooled
                if endpoint.host.lower() == parts.host:
                    return project, endpoint, False
        if neon_id is not None or parts.role is None or parts.database is None:
            return None
        # Not Neon's naming: the pooled host is no endpoint's own (the sandbox serves it on a second port).
        # Ask for the pooled URI of endpoints on the same machine only.
        for project, endpoints in zip(projects, lists, strict=True):
            for endpoint in endpoints:
                if endpoint.host.lower().rpartition(":")[0] != parts.hostname:
                    continue
                try:
                    pooled = await self.client.connection_uri(
                        project.id,
                        branch_id=endpoint.branch_id,
                        endpoint_id=endpoint.id,
                        database_name=parts.database,
                        role_name=parts.role,
                        pooled=True,
                    )
                except NeonError:
                    continue  # that branch has no such role or database: not this one
                other = url_parts(pooled.reveal())
                if other is not None and other.host == parts.host:
                    return project, endpoint, True
        return None


async def locate(resolver: Resolver, app_url: AppUrl) -> Where:
    """Where one URL points (no size yet)."""
    raw = app_url.url.reveal()
    parts = url_parts(raw)
    where = Where(app_url.variable, app_url.source, mask_url(raw), "invalid")
    if parts is None:
        return where
    where.host, where.role, where.database = parts.host, parts.role, parts.database
    found = await resolver.find(parts)
    if found is None:
        where.kind = "foreign" if parts.looks_like_neon else "not-neon"
        return where
    project, endpoint, pooled = found
    where.kind, where.project, where.endpoint, where.pooled = "neon", project, endpoint, pooled
    where.branch = await resolver.branch(project.id, endpoint.branch_id)
    return where


async def table_sizes(url: Secret, *, seconds: float = SIZE_TIMEOUT, exact: bool = False) -> TableSize:
    """Tables and the rows of the largest, read-only, bounded by ``seconds``.

    ``exact`` counts every table (the guard's before/after comparison); otherwise the planner's estimate
    (``reltuples``, refreshed by ANALYZE/autovacuum) is enough for a one-line size.
    """
    import psycopg
    from psycopg import sql

    async with asyncio.timeout(seconds):
        conn = await psycopg.AsyncConnection.connect(
            libpq_url(url.reveal()),
            connect_timeout=max(2, int(seconds)),
            application_name="recovery-wizard whereis",
            prepare_threshold=None,  # safe behind a transaction-mode pooler
        )
        async with conn, conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(int(seconds * 1000)))
            )
            rows = await (
                await conn.execute(
                    "SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
                    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                    " AND n.nspname NOT LIKE 'pg\\_%'"
                )
            ).fetchall()
            counts: list[tuple[str, int]] = []
            for schema, table, estimate in rows:
                name = table if schema == "public" else f"{schema}.{table}"
                if exact:
                    query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                    row = await (await conn.execute(query)).fetchone()
                    counts.append((name, int(row[0]) if row else 0))
                else:
                    counts.append((name, int(estimate)))
        counts.sort(key=lambda item: (-item[1], item[0]))
        return TableSize(len(counts), counts, exact)


async def whereis(
    client: NeonClient,
    urls: list[AppUrl],
    *,
    project_id: str | None = None,
    sizes: bool = True,
) -> tuple[list[Where], list[str]]:
    """Where each URL points, with a one-line size for those that resolve; and notes for the reader."""
    resolver = Resolver(client, project_id)
    found = [await locate(resolver, u) for u in urls]

    async def size(where: Where, url: Secret) -> None:
        try:
            where.size = await table_sizes(url)
        except Exception as exc:  # a size is a nicety: say why it is missing, go on
            from recovery_wizard.redact import redact

            where.size_error = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    if sizes:
        await asyncio.gather(*(size(w, u.url) for w, u in zip(found, urls, strict=True) if w.kind == "neon"))
    return found, resolver.notes
