"""Look at a branch's data as it was at a moment, without restoring anything.

Two lenses, tried in this order:

1. **Time travel** (Neon's Time Travel Assist): connect to the BRANCH host — the endpoint host with its
   ``ep-…`` id replaced by the branch's ``br-…`` id — with ``options=neon_timestamp:<RFC 3339>``. Neon starts
   a throwaway read-only compute at that moment; nothing to create or clean up. (The sandbox's endpoint
   proxy honours the same option.)
2. **A short-lived branch**, when time travel is not available (an IP-restricted project, a refused
   connection): create a branch at the moment with a read-only compute and an ``expires_at`` an hour out,
   query it, delete it — in a ``finally`` that also runs on Ctrl-C and finishes the deletion before the
   cancellation goes on. Probes running at once take turns to create and delete (Neon answers 423 to a
   second mutation while one runs). The expiry is the safety net if even that fails.

Queries run in a read-only transaction with a statement timeout: a look cannot change the past.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon.client import format_timestamp
from recovery_wizard.neon.errors import BadResponseError, NeonError, OutcomeUnknownError
from recovery_wizard.neon.models import Branch, EndpointType
from recovery_wizard.recovery import ownership
from recovery_wizard.redact import Secret, mask_url, redact

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient

log = logging.getLogger("recovery_wizard.peek")

LENS_TIME_TRAVEL = "time-travel"
LENS_BRANCH = "branch"
PEEK_BRANCH_TTL = timedelta(hours=1)


class PeekError(RecoveryError):
    """The data at that moment could not be read."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    lens: str

    def first_value(self) -> Any:
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": [[_jsonable(v) for v in r] for r in self.rows],
            "lens": self.lens,
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def time_travel_url(direct_uri: str, endpoint_id: str, branch_id: str, at: datetime) -> Secret:
    """The branch-host URI of a time-travel connection at ``at`` (see the module docstring)."""
    parts = urlsplit(direct_uri)
    netloc = parts.netloc.replace(endpoint_id, branch_id, 1)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    query.append(("options", f"neon_timestamp:{format_timestamp(at)}"))
    return Secret(urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote), "")))


@dataclass
class Lens:
    """How to reach one branch's past: its direct URI and endpoint, and the fallback's bookkeeping."""

    client: NeonClient
    project_id: str
    branch: Branch
    database: str
    role: str
    time_travel: bool = True
    created: list[str] = field(default_factory=list)  # ids of peek branches made (all deleted again)
    _cached: tuple[str, str] | None = field(default=None, repr=False)
    # Neon runs one branch mutation per project at a time and answers 423 to the next. Probes that run at
    # once (find-moment checks its two ends and the midpoint together) take turns to create and delete
    # their branches, and only the queries overlap; the 423 retry stays a backstop, not the plan.
    _mutations: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def _direct(self, branch_id: str) -> tuple[str, str]:
        # The branch's URI does not change between probes: two API calls per search, not per probe.
        if branch_id == self.branch.id and self._cached is not None:
            return self._cached
        endpoints = await self.client.endpoints(self.project_id, branch_id)
        if not endpoints:
            raise PeekError(f"Branch {branch_id} has no compute to connect through.")
        endpoint = next((e for e in endpoints if e.type == EndpointType.READ_WRITE), endpoints[0])
        uri = await self.client.connection_uri(
            self.project_id,
            branch_id=branch_id,
            endpoint_id=endpoint.id,
            database_name=self.database,
            role_name=self.role,
            pooled=False,
        )
        if branch_id == self.branch.id:
            self._cached = (uri.reveal(), endpoint.id)
        return uri.reveal(), endpoint.id

    @contextlib.asynccontextmanager
    async def at(self, moment: datetime) -> AsyncIterator[tuple[Secret, str]]:
        """A read-only connection URI for the branch as it was at ``moment``, and which lens gave it."""
        if self.time_travel:
            direct, endpoint_id = await self._direct(self.branch.id)
            yield time_travel_url(direct, endpoint_id, self.branch.id, moment), LENS_TIME_TRAVEL
            return
        async with self._short_lived_branch(moment) as url:
            yield url, LENS_BRANCH

    @contextlib.asynccontextmanager
    async def _short_lived_branch(self, moment: datetime) -> AsyncIterator[Secret]:
        name = f"peek-{self.branch.name}-{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
        # Kept by Neon with the branch: after a lost answer, what proves a branch of this name is ours.
        mark = ownership.marker(f"peek-{secrets.token_hex(8)}")
        branch_id: str | None = None
        unsure = False  # the create may have happened without us learning the branch's id
        try:
            # The lock spans the create and its operations: the next mutation may start only once they end.
            async with self._mutations:
                try:
                    created = await self.client.create_branch(
                        self.project_id,
                        parent_id=self.branch.id,
                        name=name,
                        parent_timestamp=moment,
                        endpoints=[EndpointType.READ_ONLY],
                        expires_at=datetime.now(UTC) + PEEK_BRANCH_TTL,
                        annotation=mark,
                    )
                except (asyncio.CancelledError, OutcomeUnknownError, BadResponseError):
                    unsure = True
                    raise
                branch_id = created.branch.id
                self.created.append(branch_id)
                await self.client.wait_for_operations(self.project_id, created.operations)
            direct, _ = await self._direct(branch_id)
            yield Secret(direct)
        finally:
            if branch_id is not None:
                await _finish_even_if_cancelled(self._delete(branch_id))
            elif unsure:
                await _finish_even_if_cancelled(self._delete_named(name, mark))

    async def _delete_named(self, name: str, mark: dict[str, str]) -> None:
        """After a create whose answer was lost or cut off: find the branch by its (unique) name and delete
        it, only if it carries this peek's marker and parent (a name alone proves nothing)."""
        try:
            found = [b for b in await self.client.branches(self.project_id, search=name) if b.name == name]
            for branch in found:
                fresh, annotation = await self.client.branch_annotated(self.project_id, branch.id)
                if any(annotation.get(k) != v for k, v in mark.items()) or fresh.parent_id != self.branch.id:
                    log.warning("a branch named %s (%s) is not this peek's: left alone", name, fresh.id)
                    continue
                await self._delete(fresh.id)
        except NeonError as exc:
            log.warning("could not look for the peek branch %s (it expires by itself): %s", name, exc)

    async def _delete(self, branch_id: str) -> None:
        try:
            async with self._mutations:
                deleted = await self.client.delete_branch(self.project_id, branch_id)
                if deleted is not None:
                    await self.client.wait_for_operations(self.project_id, deleted.operations)
        except NeonError as exc:
            log.warning("could not delete the peek branch %s (it expires by itself): %s", branch_id, exc)


async def _finish_even_if_cancelled(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` to its end even when the caller is cancelled (Ctrl-C) meanwhile, then pass the
    cancellation on. A second cancellation while it finishes abandons it: the branch's expiry is the net."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def query(
    url: Secret, sql: str, *, lens: str, statement_timeout_ms: int = 30_000, connect_timeout: float = 30.0
) -> QueryResult:
    """Run ``sql`` read-only at ``url`` and return its rows."""
    import psycopg
    from psycopg import sql as pgsql

    deadline = asyncio.get_running_loop().time() + connect_timeout
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url.reveal(), autocommit=True, connect_timeout=10)
            break
        except psycopg.OperationalError as exc:
            message = redact(str(exc))
            # A refusal (bad moment, no time travel) will not change by waiting; a cold start will.
            if (
                "password authentication" in message
                or asyncio.get_running_loop().time() > deadline
                or any(
                    word in message for word in ("timestamp", "retention", "future", "time travel", "options")
                )
            ):
                raise PeekError(f"Could not connect to {mask_url(url.reveal())}: {message}") from None
            await asyncio.sleep(0.5)
    async with conn:
        await conn.execute(
            pgsql.SQL("SET statement_timeout = {}").format(pgsql.Literal(statement_timeout_ms))
        )
        async with conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            try:
                cur = await conn.execute(sql.encode())
            except psycopg.Error as exc:
                raise PeekError(f"The query failed: {redact(str(exc)).strip()}") from None
            columns = [c.name for c in cur.description or []]
            rows = [tuple(r) for r in await cur.fetchall()] if cur.description else []
    return QueryResult(columns, rows, lens)


async def peek(lens: Lens, moment: datetime, sql: str) -> QueryResult:
    """``sql`` against the branch as it was at ``moment``; falls back to a short-lived branch."""
    if lens.time_travel:
        try:
            async with lens.at(moment) as (url, kind):
                return await query(url, sql, lens=kind)
        except PeekError as exc:
            if "The query failed" in str(exc):
                raise
            log.info("time travel unavailable, using a short-lived branch: %s", exc)
            lens.time_travel = False
    async with lens.at(moment) as (url, kind):
        return await query(url, sql, lens=kind)
