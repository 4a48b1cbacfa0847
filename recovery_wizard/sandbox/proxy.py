"""A sandbox endpoint: a loopback PostgreSQL wire-protocol proxy in front of the sandbox's real server.

Each Neon endpoint (compute) of the sandbox is one :class:`PgProxy` listening on ``127.0.0.1:PORT``. A client
(psql, psycopg, Prisma, node-pg) connects with the role, password and database name the sandbox advertises;
the proxy authenticates it, asks a resolver which real database that means, logs in to the real server as
the sandbox's admin and from then on relays bytes both ways.

Design:

- **TLS and SCRAM, as on Neon; plain TCP too.** Given a :class:`~recovery_wizard.sandbox.tls.SandboxTls`,
  the proxy answers SSLRequest with ``S`` and upgrades the connection (``sslmode=require`` and the
  ``verify-*`` modes work); a client that starts in plain TCP (``sslmode=disable``) is served as before, since
  the tests and the demo need no certificates. GSSENCRequest is answered ``N``. Given a password lookup, the
  proxy authenticates the client itself with SASL: ``SCRAM-SHA-256-PLUS`` with ``tls-server-end-point``
  channel binding over TLS (so ``channel_binding=require`` works) and ``SCRAM-SHA-256``, via ``scramp``. The
  password never crosses the wire; an unknown role gets a mock exchange that fails like a wrong password,
  as PostgreSQL does, so the answer does not reveal which roles exist. Without a lookup (unit tests of the
  relay) the proxy asks for the password in cleartext and leaves the check to the resolver. Either way
  the resolver sees the (verified) password. Direct TLS (PostgreSQL 17's ``sslnegotiation=direct``) is
  not spoken: such a connection is just closed.
- **The backend speaks 3.0** whatever the client asked for; a client asking for a newer minor version or
  ``_pq_.`` options gets NegotiateProtocolVersion first, as from a 3.0 server. Backend authentication
  (trust, cleartext, MD5, SCRAM-SHA-256 via ``scramp``) is the proxy's business and invisible to the client.
- **Real cancel keys.** BackendKeyData is passed through untouched, so a CancelRequest arriving here is
  simply forwarded to the real server, which knows the pid and key.
- **The client sees its own role.** The ``session_authorization`` ParameterStatus reported at startup is
  rewritten to the client's user and ``is_superuser`` to ``off``, as on Neon. Only at startup: the relay
  does not rewrite later messages, so ``SHOW session_authorization`` or ``current_user`` still name the
  sandbox's admin.
- **Write detection lives here** because the proxy is the one place that sees every statement's outcome for
  every client, whatever its driver, without touching the database (no triggers, no polling, no logical
  decoding, which would need server configuration the sandbox does not own). The sandbox snapshots a
  database for point-in-time restore after each transaction that wrote. The backend→client stream is
  split into messages; a CommandComplete whose tag is not in :data:`READ_ONLY_COMMANDS` marks the current
  transaction as having written, and the write is reported at the ReadyForQuery that follows its commit.
  A write is counted as committed when the transaction ends (ReadyForQuery ``I``) and the last outcome
  before that was a successful command other than ``ROLLBACK``, or at once on a ``COMMIT`` tag (which an
  aborted transaction reports as ``ROLLBACK``). Errors in an implicit (multi-statement or pipelined)
  transaction therefore count as rolled back, while ``ROLLBACK TO SAVEPOINT`` followed by ``COMMIT``
  still reports the earlier writes.

  Limits. Writes hidden behind a read-only tag are missed: ``CREATE TABLE AS`` and ``SELECT INTO`` report
  ``SELECT n``, as does a ``SELECT`` over a data-modifying CTE (``WITH d AS (DELETE ... RETURNING *)``);
  a function called from a ``SELECT`` (or a ``FETCH`` from a cursor over one) may write; ``EXPLAIN
  ANALYZE`` runs its statement. Some reads count as writes (an extra snapshot, which is harmless):
  ``VACUUM``/``ANALYZE``, and a whole-transaction ``ROLLBACK`` followed by another statement in the same
  simple-query string. ``COPY ... TO STDOUT`` is recognised as a read by its CopyOutResponse.
- **The write listener** (``on_write``) may be a plain function or a coroutine function. A coroutine
  function is awaited *before* the ReadyForQuery that ended the transaction reaches the client, so a
  client that waits for its results (they all do, outside pipeline mode) cannot run its next statement
  until the listener is done: the sandbox snapshots the database as that transaction left it (plus what
  other sessions committed meanwhile).
  Statements a client has already pipelined still run on the server meanwhile. The listener runs in a
  task of its own, so a client that hangs up meanwhile (or ``stop()``) does not cut it short; the session
  waits for it before ``on_close``.
- **Read-only routes** start the backend session with ``default_transaction_read_only=on``. A client can
  still ``SET`` it off: it is a guard against mistakes, not a security boundary (neither is the sandbox).

Relaying forwards raw chunks as read (no re-framing); only the backend→client direction is parsed, by a
splitter that looks only at the few message types write detection needs. Every session ends by closing
both sockets and awaiting the route's ``on_close`` exactly once; ``stop()`` first tells each client
``57P01 terminating connection due to administrator command`` (when between two messages), as PostgreSQL
does on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import scramp

from recovery_wizard.redact import Secret, redact
from recovery_wizard.sandbox import wire
from recovery_wizard.sandbox.pgserver import BackendConfig
from recovery_wizard.sandbox.tls import SandboxTls

log = logging.getLogger("recovery_wizard.sandbox.proxy")

# First words of CommandComplete tags that never change data. Anything else counts as a write.
READ_ONLY_COMMANDS: Final = frozenset(
    {
        "SELECT", "SHOW", "BEGIN", "START", "COMMIT", "ROLLBACK", "SET", "RESET", "FETCH", "MOVE",
        "DECLARE", "CLOSE", "PREPARE", "DEALLOCATE", "DISCARD", "LISTEN", "UNLISTEN", "NOTIFY",
        "EXPLAIN", "SAVEPOINT", "RELEASE", "CHECKPOINT", "LOCK",
    }
)  # fmt: skip

# PostgreSQL's authentication_timeout default: a client (or resolver, or backend) that has not finished
# logging in by then is dropped, so a stuck connection cannot hold a session forever.
AUTH_TIMEOUT: Final = 60.0
CONNECT_TIMEOUT: Final = 10.0
_CANCEL_TIMEOUT: Final = 5.0
_CLOSE_TIMEOUT: Final = 2.0
# The size of one read when relaying: the selector transport's own read size, so one read drains it.
_CHUNK: Final = 256 * 1024
# Bounds for messages read whole during authentication (PostgreSQL caps auth responses at 64 kB).
_MAX_PASSWORD_MESSAGE: Final = 65_535
_MAX_BACKEND_STARTUP_MESSAGE: Final = 1 << 20
# Message types write detection needs: CommandComplete, ReadyForQuery, ErrorResponse, CopyOutResponse.
_WATCHED: Final = ("C", "Z", "E", "H")
_NOT_FORWARDED: Final = frozenset({"user", "database", "options", "replication"})
_NOT_REPLICATION: Final = frozenset({"", "0", "false", "off", "no"})
_SCRAM: Final = "SCRAM-SHA-256"
_SCRAM_PLUS: Final = "SCRAM-SHA-256-PLUS"
# PostgreSQL's wording for SASL failures, by scramp's ServerError value; anything else is a malformed message.
_SCRAM_REFUSALS: Final = {
    "channel-bindings-dont-match": ("28000", "SCRAM channel binding check failed"),
    "server-does-support-channel-binding": ("28000", "SCRAM channel binding negotiation error"),
    "channel-binding-not-supported": ("28000", "SCRAM channel binding negotiation error"),
    "unsupported-channel-binding-type": ("08P01", "unsupported SCRAM channel-binding type"),
}
_SHUTDOWN_NOTICE: Final = wire.error_response("57P01", "terminating connection due to administrator command")


@dataclass(frozen=True)
class ClientStartup:
    """Who a client says it is: its startup parameters and the password it answered with."""

    user: str
    database: str  # defaults to user when the client sent none, as PostgreSQL does
    options: str  # the raw "options" startup parameter, "" if absent
    params: dict[str, str]  # every startup parameter as sent
    password: str = field(repr=False)  # the cleartext password the client answered with


@dataclass
class Route:
    """Where an authenticated client goes, decided by the resolver."""

    database: str  # real database name on the server
    read_only: bool = False  # backend session gets default_transaction_read_only=on
    options: str = ""  # the "options" sent to the backend (e.g. the client's, minus neon_* parts)
    # Awaited exactly once when the session ends, however it ends (after both sockets are closed).
    on_close: Callable[[], Awaitable[None]] | None = None
    tag: object = None  # opaque to the proxy, handed back to on_write


class RouteRefused(Exception):
    """Raised by a resolver to refuse a client: the proxy sends it this error and closes."""

    def __init__(self, sqlstate: str, message: str, severity: str = "FATAL") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.severity = severity


Resolver = Callable[[ClientStartup], Awaitable[Route]]
# The password a role logs in with (None: no such role); may raise RouteRefused (e.g. the endpoint is gone).
PasswordLookup = Callable[[str], Secret | None]
# Synchronous, or a coroutine function: then the ReadyForQuery that ended the transaction reaches the client
# only once it has returned (see _Session._report_write).
WriteListener = Callable[[Route], Awaitable[None] | None]


def is_write_command(tag: str) -> bool:
    """Whether a CommandComplete tag reports a command that may have changed data."""
    if tag.startswith("COMMIT PREPARED"):
        # Makes a prepared transaction's writes visible, though its first word reads like a plain COMMIT.
        return True
    return tag.split(" ", 1)[0] not in READ_ONLY_COMMANDS


class WriteDetector:
    """Follows the backend's messages and says when a transaction that wrote has been committed."""

    def __init__(self) -> None:
        self._wrote = False  # the current transaction has written, not yet known to be committed
        self._committed = False  # a committed write not reported yet
        self._last_ok = True  # the last outcome was a successful command other than ROLLBACK
        self._copy_out = False  # a COPY ... TO STDOUT is running (its "COPY n" tag is a read)

    def observe(self, msg: wire.Message) -> bool:
        """Feed one backend message; True at the ReadyForQuery that follows a committed write."""
        if msg.type == "C":
            self._command_complete(wire.parse_command_tag(msg.payload))
        elif msg.type == "E":
            self._last_ok = False
            self._copy_out = False
        elif msg.type == "H":
            self._copy_out = True
        elif msg.type == "Z":
            return self._ready_for_query(msg.payload[:1])
        return False

    def _command_complete(self, tag: str) -> None:
        copy_out, self._copy_out = self._copy_out, False
        if tag.startswith("PREPARE TRANSACTION"):
            # The writes now wait for COMMIT PREPARED, which reports them (from whichever session runs it).
            self._wrote = False
        elif not (copy_out and tag.startswith("COPY")) and is_write_command(tag):
            self._wrote = True
        if tag == "COMMIT" and self._wrote:
            # Right away, because a later error in the same query string must not un-commit it.
            self._committed = True
            self._wrote = False
        self._last_ok = tag != "ROLLBACK"

    def _ready_for_query(self, status: bytes) -> bool:
        if status == b"I":
            if self._wrote and self._last_ok:
                self._committed = True
            self._wrote = False
            self._last_ok = True
        committed, self._committed = self._committed, False
        return committed


class _EndSession(Exception):
    """End the session here, after sending the client ``reply`` (an ErrorResponse) if there is one."""

    def __init__(self, reply: bytes = b"") -> None:
        super().__init__()
        self.reply = reply


def _refuse(sqlstate: str, message: str) -> _EndSession:
    return _EndSession(wire.error_response(sqlstate, message))


def _backend_failure(what: str) -> _EndSession:
    return _refuse("08006", f"{what} the sandbox's PostgreSQL server")


def _login_failure() -> _EndSession:
    # The admin login is the sandbox's configuration, not the client's fault: say so, without details.
    return _refuse("08004", "the sandbox could not log in to its PostgreSQL server as its admin role")


def _format_exception(exc: BaseException, secrets: list[str]) -> str:
    return redact("".join(traceback.format_exception(exc)), extra=secrets)


class PgProxy:
    """One sandbox endpoint: a loopback listener whose sessions are relayed to the real server."""

    def __init__(
        self,
        backend: BackendConfig,
        resolve: Resolver,
        on_write: WriteListener | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "",
        tls: SandboxTls | None = None,
        passwords: PasswordLookup | None = None,
    ) -> None:
        self.backend = backend
        self.resolve = resolve
        self.on_write = on_write
        self.tls = tls  # None: SSLRequest is answered N
        self.passwords = passwords  # None: cleartext password, checked by the resolver
        self.name = name or "endpoint"
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._stopped = False
        self._last_id = 0

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    @property
    def session_count(self) -> int:
        """Client connections being served now (including those still logging in)."""
        return len(self._sessions)

    async def start(self) -> int:
        """Start listening; returns the port."""
        if self._server is not None or self._stopped:
            raise RuntimeError(f"proxy {self.name} was already started")
        self._server = await asyncio.start_server(self._on_client, self._host, self._port, limit=_CHUNK)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("%s: listening on %s:%d", self.name, self._host, self._port)
        return self._port

    async def stop(self) -> None:
        """Stop listening and end every session (both sides), awaiting their ``on_close``."""
        self._stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sessions = list(self._sessions)
        for session in sessions:
            session.stop()
        await asyncio.gather(*(s.task for s in sessions), return_exceptions=True)
        if server is not None:
            await server.wait_closed()
            log.info("%s: stopped (%d sessions ended)", self.name, len(sessions))

    async def end_sessions(self) -> None:
        """End every session (both sides), awaiting their ``on_close``, and keep listening (a suspend)."""
        sessions = list(self._sessions)
        for session in sessions:
            session.stop()
        await asyncio.gather(*(s.task for s in sessions), return_exceptions=True)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopped:
            # Accepted in the instant before stop() closed the listener.
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._last_id += 1
        session = _Session(self, self._last_id, reader, writer, task)
        self._sessions.add(session)
        try:
            await session.run()
        except asyncio.CancelledError:
            # stop() (or the loop shutting down) ended the session, which has cleaned up after itself. Not
            # re-raised: Python 3.11's start_server calls task.exception() on this task when it is done,
            # which raises (and gets logged as an error) if the task ends cancelled.
            pass
        finally:
            self._sessions.discard(session)

    def backend_address(self) -> str:
        if self.backend.is_unix_socket:
            return self.backend.socket_path
        return f"{self.backend.host}:{self.backend.port}"

    async def open_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.backend.is_unix_socket:
            connect = asyncio.open_unix_connection(self.backend.socket_path, limit=_CHUNK)
        else:
            connect = asyncio.open_connection(self.backend.host, self.backend.port, limit=_CHUNK)
        return await asyncio.wait_for(connect, CONNECT_TIMEOUT)


class _Session:
    """One client connection, from its first byte to both sockets closed."""

    def __init__(
        self,
        proxy: PgProxy,
        session_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[None],
    ) -> None:
        self.proxy = proxy
        self.id = session_id
        self.task = task
        self.client_reader = reader
        self.client_writer = writer
        self.backend_reader: asyncio.StreamReader | None = None
        self.backend_writer: asyncio.StreamWriter | None = None
        self.route: Route | None = None
        self.label = f"{proxy.name} session {session_id}"
        self._password = ""
        self._tls = False  # the client connection has been upgraded to TLS
        self._splitter: wire.MessageSplitter | None = None  # set once relaying
        self._stopping = False
        self._closing = False
        # While an async on_write holds back a ReadyForQuery: whether what the client got ends between
        # messages. None otherwise.
        self._held_at_boundary: bool | None = None
        self._listener: asyncio.Future[None] | None = None  # that async on_write

    def stop(self) -> None:
        self._stopping = True
        if not self._closing:
            # A session already closing is left to finish: cancelling it could cut its on_close short.
            self.task.cancel()

    async def run(self) -> None:
        try:
            await self._serve()
        except _EndSession as end:
            self._reply(end.reply)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("%s: connection lost: %s", self.label, type(exc).__name__)
        except TimeoutError:
            log.info("%s: did not finish logging in within %.0f s", self.label, AUTH_TIMEOUT)
        except Exception as exc:  # a bug of ours: log it, but never let it escape into the server's task
            log.error("%s: unexpected error\n%s", self.label, _format_exception(exc, [self._password]))
        finally:
            await self._close()

    async def _serve(self) -> None:
        async with asyncio.timeout(AUTH_TIMEOUT):
            startup = await self._handshake()
            if startup is None:
                return
            self.route = await self._resolve(startup)
            await self._connect_backend(startup, self.route)
        await self._relay()

    # --- client side ----------------------------------------------------------------------------------

    async def _handshake(self) -> ClientStartup | None:
        """Read the client's startup and password; None when the connection was only a CancelRequest."""
        packet = await self._read_startup()
        if packet.is_cancel_request:
            await self._forward_cancel(packet)
            return None
        major, minor = packet.version
        if major != 3:
            message = f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
            raise _refuse("0A000", message)
        params = packet.params
        unrecognised = [name for name in params if name.startswith("_pq_.")]
        if minor > 0 or unrecognised:
            self.client_writer.write(wire.negotiate_protocol_version(0, unrecognised))
        user = params.get("user", "")
        if not user:
            raise _refuse("28000", "no PostgreSQL user name specified in startup packet")
        if params.get("replication", "").lower() not in _NOT_REPLICATION:
            raise _refuse("0A000", "replication connections are not supported by the sandbox")
        if self.proxy.passwords is None:
            self.client_writer.write(wire.authentication_cleartext_password())
            await self.client_writer.drain()
            self._password = wire.read_cstring(await self._read_auth_response("password"))[0]
        else:
            self._password = await self._scram_auth(user)
        database = params.get("database") or user
        log.debug(
            "%s: user %r, database %r, application %r, %s",
            self.label,
            user,
            database,
            params.get("application_name", ""),
            "TLS" if self._tls else "plain TCP",
        )
        return ClientStartup(user, database, params.get("options", ""), dict(params), self._password)

    async def _read_startup(self) -> wire.StartupPacket:
        # Up to one SSLRequest and one GSSENCRequest (in either order) may precede the real packet.
        for _ in range(3):
            packet = await self._read_startup_packet()
            if not (packet.is_ssl_request or packet.is_gssenc_request):
                return packet
            if self._tls:
                # PostgreSQL too refuses a second negotiation inside TLS.
                raise _refuse("08P01", "unexpected encryption request inside an encrypted connection")
            tls = self.proxy.tls
            if packet.is_gssenc_request or tls is None:
                # 'N': no such encryption here; the client goes on unencrypted or gives up.
                self.client_writer.write(b"N")
                await self.client_writer.drain()
                continue
            self.client_writer.write(b"S")
            await self.client_writer.drain()
            try:
                await self.client_writer.start_tls(tls.context)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                log.info("%s: TLS handshake failed: %s", self.label, exc)
                raise _EndSession() from None
            self._tls = True
        raise _refuse("08P01", "too many encryption requests")

    async def _read_startup_packet(self) -> wire.StartupPacket:
        header = await self.client_reader.readexactly(4)
        if header[0] == 0x16:
            # A TLS ClientHello (direct SSL negotiation): we cannot even send an error it would read.
            log.info("%s: closed a direct-TLS connection (only SSLRequest negotiation is spoken)", self.label)
            raise _EndSession()
        try:
            length = wire.startup_packet_length(header)
            return wire.parse_startup_packet(await self.client_reader.readexactly(length - 4))
        except wire.ProtocolViolation as exc:
            raise _refuse("08P01", str(exc)) from None

    async def _read_auth_response(self, what: str) -> bytes:
        """The payload of the client's next authentication message (``p``): a password or SASL data."""
        header = await self.client_reader.readexactly(wire.HEADER_LENGTH)
        kind, length = chr(header[0]), wire.read_int32(header, 1)
        if kind == "X":
            # The client had no password to give (libpq then prompts and reconnects).
            raise _EndSession()
        if kind != "p":
            raise _refuse("08P01", f"expected {what} response, got message type {kind!r}")
        if not 5 <= length <= _MAX_PASSWORD_MESSAGE:
            raise _refuse("08P01", f"invalid {what} packet size {length}")
        payload = await self.client_reader.readexactly(length - 4)
        if what == "password" and b"\0" not in payload:
            raise _refuse("08P01", "invalid password packet")
        return payload

    async def _scram_auth(self, user: str) -> str:
        """Authenticate the client with SCRAM (with channel binding over TLS); returns its password.

        Hand-written framing around ``scramp``'s server, because no library speaks PostgreSQL's SASL messages.
        """
        assert self.proxy.passwords is not None
        try:
            known = self.proxy.passwords(user)
        except RouteRefused as exc:
            raise _EndSession(wire.error_response(exc.sqlstate, exc.message, exc.severity)) from None
        mechanisms = [_SCRAM_PLUS, _SCRAM] if self._tls else [_SCRAM]
        self.client_writer.write(wire.authentication_sasl(mechanisms))
        await self.client_writer.drain()
        try:
            mechanism, first = wire.parse_sasl_initial_response(await self._read_auth_response("SASL"))
        except wire.ProtocolViolation:
            raise _refuse("08P01", "malformed SASL initial response") from None
        if mechanism not in mechanisms:
            raise _refuse("08P01", "client selected an invalid SASL authentication mechanism")
        if mechanism == _SCRAM and first.startswith(b"p"):
            raise _refuse("08P01", "malformed SCRAM message")  # binding data under the unbound mechanism
        # An unknown role still gets a whole exchange, against a password nobody has (PostgreSQL's mock
        # authentication): the answer is the same "password authentication failed" as for a wrong password.
        password = known.reveal() if known is not None else secrets.token_urlsafe(24)
        self._password = password  # for redaction in logs
        auth_info = scramp.ScramMechanism(_SCRAM).make_auth_info(password)
        binding = self.proxy.tls.channel_binding if self._tls and self.proxy.tls is not None else None
        server = scramp.ScramMechanism(mechanism).make_server(
            lambda _name: auth_info, channel_binding=binding
        )
        try:
            _set_client_first(server, first.decode("utf-8"))
            self.client_writer.write(wire.authentication_sasl_continue(server.get_server_first().encode()))
            await self.client_writer.drain()
            server.set_client_final((await self._read_auth_response("SASL")).decode("utf-8"))
            final = server.get_server_final()
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise self._scram_refusal(user, exc) from None
        if known is None:
            raise _refuse("28P01", f'password authentication failed for user "{user}"')
        self.client_writer.write(wire.authentication_sasl_final(final.encode()))
        return password

    def _scram_refusal(self, user: str, exc: Exception) -> _EndSession:
        error = getattr(exc, "server_error", None)
        reason = getattr(error, "value", "")
        log.info("%s: SCRAM authentication of %r failed: %s", self.label, user, exc)
        if reason == "invalid-proof":
            return _refuse("28P01", f'password authentication failed for user "{user}"')
        sqlstate, message = _SCRAM_REFUSALS.get(reason, ("08P01", "malformed SCRAM message"))
        return _refuse(sqlstate, message)

    async def _resolve(self, startup: ClientStartup) -> Route:
        try:
            route = await self.proxy.resolve(startup)
        except RouteRefused as exc:
            log.info("%s: refused %r: %s %s", self.label, startup.user, exc.sqlstate, exc.message)
            raise _EndSession(wire.error_response(exc.sqlstate, exc.message, exc.severity)) from None
        except Exception as exc:
            log.error("%s: the resolver failed\n%s", self.label, _format_exception(exc, [self._password]))
            raise _refuse("XX000", "internal error in the sandbox's endpoint proxy") from None
        log.debug("%s: routed to database %r (read_only=%s)", self.label, route.database, route.read_only)
        return route

    async def _forward_cancel(self, packet: wire.StartupPacket) -> None:
        """Pass a CancelRequest to the real server, which knows the pid and key we passed through."""
        try:
            reader, writer = await self.proxy.open_backend()
        except (OSError, TimeoutError) as exc:
            log.info("%s: could not forward a cancel request: %s", self.label, exc)
            return
        try:
            writer.write(packet.raw())
            await writer.drain()
            # The server closes once it has acted: waiting for that keeps "cancel sent" meaning "done".
            await asyncio.wait_for(reader.read(), _CANCEL_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.debug("%s: cancel request: %s", self.label, exc)
        finally:
            await _close_writer(writer)
        log.debug("%s: forwarded a cancel request", self.label)

    # --- backend side ---------------------------------------------------------------------------------

    async def _connect_backend(self, startup: ClientStartup, route: Route) -> None:
        try:
            self.backend_reader, self.backend_writer = await self.proxy.open_backend()
        except (OSError, TimeoutError) as exc:
            log.warning("%s: could not connect to %s: %s", self.label, self.proxy.backend_address(), exc)
            raise _backend_failure("could not connect to") from None
        self.backend_writer.write(wire.startup_message(self._backend_params(startup, route)))
        try:
            await self.backend_writer.drain()
            await self._backend_auth()
            self.client_writer.write(wire.authentication_ok())
            await self._relay_backend_startup(startup.user)
        except (asyncio.IncompleteReadError, ConnectionError, wire.ProtocolViolation) as exc:
            log.warning("%s: lost the backend during startup: %s", self.label, exc)
            raise _backend_failure("lost the connection to") from None

    def _backend_params(self, startup: ClientStartup, route: Route) -> dict[str, str]:
        params = {"user": self.proxy.backend.user, "database": route.database}
        params.update(
            (name, value)
            for name, value in startup.params.items()
            if name not in _NOT_FORWARDED and not name.startswith("_pq_.")
        )
        options = route.options.strip()
        if route.read_only:
            options = f"{options} -c default_transaction_read_only=on".strip()
        if options:
            params["options"] = options
        return params

    async def _read_backend_message(self) -> wire.Message:
        assert self.backend_reader is not None
        header = await self.backend_reader.readexactly(wire.HEADER_LENGTH)
        length = wire.read_int32(header, 1)
        if not 4 <= length <= _MAX_BACKEND_STARTUP_MESSAGE:
            raise wire.ProtocolViolation(f"invalid message length {length}")
        return wire.Message(chr(header[0]), await self.backend_reader.readexactly(length - 4))

    def _send_backend(self, data: bytes) -> None:
        assert self.backend_writer is not None
        self.backend_writer.write(data)

    async def _backend_auth(self) -> None:
        """Answer the backend's authentication requests until AuthenticationOk."""
        scram: scramp.ScramClient | None = None
        while True:
            msg = await self._read_backend_message()
            if msg.type == "E":
                raise self._backend_startup_error(msg.payload)
            if msg.type != "R":
                # A NoticeResponse, or something only a newer server sends: nothing the login needs.
                continue
            code, data = wire.parse_authentication(msg.payload)
            if code == wire.AUTH_OK:
                return
            try:
                scram = self._answer_auth(code, data, scram)
            except scramp.ScramException as exc:
                log.error("%s: SCRAM login to the backend failed: %s", self.label, exc)
                raise _login_failure() from None
            assert self.backend_writer is not None
            await self.backend_writer.drain()

    def _answer_auth(
        self, code: int, data: bytes, scram: scramp.ScramClient | None
    ) -> scramp.ScramClient | None:
        user = self.proxy.backend.user
        if code == wire.AUTH_CLEARTEXT_PASSWORD:
            self._send_backend(wire.password_message(self._backend_password()))
        elif code == wire.AUTH_MD5_PASSWORD:
            answer = wire.md5_password(user, self._backend_password(), salt=data[:4])
            self._send_backend(wire.password_message(answer))
        elif code == wire.AUTH_SASL:
            mechanisms = wire.parse_sasl_mechanisms(data)
            if _SCRAM not in mechanisms:
                log.error("%s: the backend offers no usable SASL mechanism: %s", self.label, mechanisms)
                raise _login_failure()
            # PostgreSQL ignores the SCRAM user name (it uses the startup packet's); scramp wants one.
            scram = scramp.ScramClient([_SCRAM], user, self._backend_password())
            self._send_backend(wire.sasl_initial_response(_SCRAM, scram.get_client_first().encode()))
        elif code == wire.AUTH_SASL_CONTINUE and scram is not None:
            scram.set_server_first(data.decode())
            self._send_backend(wire.sasl_response(scram.get_client_final().encode()))
        elif code == wire.AUTH_SASL_FINAL and scram is not None:
            # Checks the server's signature: a server that does not know the password cannot pass.
            scram.set_server_final(data.decode())
        else:
            log.error("%s: the backend asks for an unsupported authentication (code %d)", self.label, code)
            raise _login_failure()
        return scram

    def _backend_password(self) -> str:
        password = self.proxy.backend.password
        if password is None:
            log.error("%s: the backend asks for a password but the sandbox has none", self.label)
            raise _login_failure()
        return password.reveal()

    def _backend_startup_error(self, payload: bytes) -> _EndSession:
        fields = wire.parse_error_fields(payload)
        sqlstate = fields.get("C", "")
        log.warning("%s: the backend refused the session: %s %s", self.label, sqlstate, fields.get("M", ""))
        if sqlstate.startswith("28"):
            return _login_failure()
        # "too many connections", "the database system is starting up"...: the client's to know as they are.
        return _EndSession(wire.message("E", payload))

    async def _relay_backend_startup(self, client_user: str) -> None:
        """Pass the backend's startup messages on, up to its first ReadyForQuery."""
        while True:
            msg = await self._read_backend_message()
            if msg.type == "S":
                name, value = wire.parse_parameter_status(msg.payload)
                self.client_writer.write(wire.parameter_status(name, _client_view(name, value, client_user)))
            else:
                self.client_writer.write(wire.message(msg.type, msg.payload))
            if msg.type == "E":
                fields = wire.parse_error_fields(msg.payload)
                log.warning("%s: the backend failed at startup: %s", self.label, fields.get("M", ""))
                raise _EndSession()
            if msg.type == "Z":
                await self.client_writer.drain()
                return

    # --- relaying -------------------------------------------------------------------------------------

    async def _relay(self) -> None:
        self._splitter = wire.MessageSplitter(_WATCHED)
        pumps = [
            asyncio.create_task(self._pump_to_backend(), name=f"{self.label} client->backend"),
            asyncio.create_task(self._pump_to_client(self._splitter), name=f"{self.label} backend->client"),
        ]
        try:
            # Either side closing ends the session: the other is closed with it.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            results = await asyncio.gather(*pumps, return_exceptions=True)
        for result in results:
            if isinstance(result, ConnectionError | asyncio.IncompleteReadError):
                log.debug("%s: connection lost: %s", self.label, type(result).__name__)
            elif isinstance(result, Exception):
                log.warning("%s: relay failed: %s", self.label, _format_exception(result, [self._password]))

    async def _pump_to_backend(self) -> None:
        assert self.backend_writer is not None
        reader, writer = self.client_reader, self.backend_writer
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()

    async def _pump_to_client(self, splitter: wire.MessageSplitter) -> None:
        assert self.backend_reader is not None
        reader, writer = self.backend_reader, self.client_writer
        detector = WriteDetector()
        while data := await reader.read(_CHUNK):
            sent = 0  # how much of this chunk the client has been given already
            for msg in splitter.feed(data):
                if detector.observe(msg):
                    sent = await self._report_write(data, sent, msg)
            writer.write(data[sent:] if sent else data)
            await writer.drain()

    async def _report_write(self, data: bytes, sent: int, ready: wire.Message) -> int:
        """Call on_write for the transaction ``ready`` ended; returns how much of ``data`` the client has."""
        on_write, route = self.proxy.on_write, self.route
        if on_write is None or route is None:
            return sent
        log.debug("%s: a transaction wrote to %r", self.label, route.database)
        try:
            pending = on_write(route)
        except Exception as exc:
            self._listener_failed(exc)
            return sent
        if pending is None:
            return sent
        # An asynchronous listener holds back this ReadyForQuery until it is done: the client cannot send its
        # next statement before then, so the sandbox gets to see the database as this transaction left it.
        start = ready.end - wire.HEADER_LENGTH - len(ready.payload)  # < 0: it began in an earlier chunk
        self.client_writer.write(data[sent : max(start, sent)])
        self._held_at_boundary = start >= 0
        # A task of its own, shielded: a client hanging up (or stop()) must not cut a snapshot short. If this
        # pump is cancelled, _close waits for the listener instead.
        self._listener = asyncio.ensure_future(pending)
        try:
            await asyncio.shield(self._listener)
        except Exception as exc:
            self._listener_failed(exc)
        # Not in a finally: when cancelled, _close must still know where the client's stream stands.
        self._held_at_boundary = None
        self._listener = None
        return max(start, sent)

    def _listener_failed(self, exc: Exception) -> None:
        log.error("%s: on_write failed\n%s", self.label, _format_exception(exc, [self._password]))

    # --- ending ---------------------------------------------------------------------------------------

    def _reply(self, data: bytes) -> None:
        if data and not self.client_writer.is_closing():
            self.client_writer.write(data)

    async def _close(self) -> None:
        self._closing = True
        try:
            if self._stopping and self._client_at_boundary():
                # What PostgreSQL says on shutdown; only between messages, or the client would misread it.
                self._reply(_SHUTDOWN_NOTICE)
            for writer in (self.backend_writer, self.client_writer):
                if writer is not None:
                    await _close_writer(writer)
        finally:
            await self._finish_listener()
            await self._run_on_close()
        log.debug("%s: closed", self.label)

    def _client_at_boundary(self) -> bool:
        """Whether the bytes given to the client so far end between two messages."""
        if self._held_at_boundary is not None:
            return self._held_at_boundary
        # Before relaying, the proxy writes whole messages only.
        return self._splitter is None or self._splitter.at_boundary

    async def _finish_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        (result,) = await asyncio.gather(listener, return_exceptions=True)
        if isinstance(result, Exception):
            self._listener_failed(result)

    async def _run_on_close(self) -> None:
        route, self.route = self.route, None  # once, even if _close ran twice
        if route is None or route.on_close is None:
            return
        try:
            await route.on_close()
        except Exception as exc:
            log.error("%s: on_close failed\n%s", self.label, _format_exception(exc, [self._password]))


def _set_client_first(server: scramp.core.ScramServer, client_first: str) -> None:
    """Give ``scramp``'s server a client-first message whose user name may be empty, as libpq sends it.

    PostgreSQL ignores the SCRAM user name (the startup packet's counts) and libpq sends ``n=,``, which
    scramp refuses as malformed. So scramp parses a copy naming ``*`` (what pgjdbc sends), and the bare
    message the proof is computed over is then set back to exactly what the client sent.
    """
    gs2_end = client_first.find(",", client_first.find(",") + 1) + 1
    bare = client_first[gs2_end:]
    if gs2_end > 0 and bare.startswith("n=,"):
        server.set_client_first(client_first[:gs2_end] + "n=*," + bare[3:])
        server.client_first_bare = bare
    else:
        server.set_client_first(client_first)


def _client_view(name: str, value: str, client_user: str) -> str:
    """A startup ParameterStatus as the client should see it: its own role, not the sandbox's admin."""
    if name == "session_authorization":
        return client_user
    if name == "is_superuser":
        return "off"
    return value


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a stream, flushing what is queued; abort it if the peer does not let that finish."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
    except (OSError, TimeoutError):
        writer.transport.abort()
