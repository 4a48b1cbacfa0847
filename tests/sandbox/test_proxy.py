"""The endpoint proxy: wire helpers in isolation, then real clients through it to the real server.

Clients run in the test's event loop beside the proxy, so they are all asynchronous (psycopg's
``AsyncConnection``, psql as a subprocess, raw asyncio sockets): a blocking client would stall the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import scramp
from psycopg import sql

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox import wire
from recovery_wizard.sandbox.pgserver import BackendConfig, PgServer
from recovery_wizard.sandbox.proxy import ClientStartup, PgProxy, Route, RouteRefused, WriteDetector
from tests.sandbox.conftest import until_running

USER = "alex"
PASSWORD = "s3cret-pw"
PSQL = "/usr/bin/psql"


# --- wire.py --------------------------------------------------------------------------------------------


def test_startup_message_round_trips() -> None:
    params = {"user": "alex", "database": "neondb", "application_name": "café"}
    packet = wire.startup_message(params)
    assert wire.startup_packet_length(packet[:4]) == len(packet)
    parsed = wire.parse_startup_packet(packet[4:])
    assert parsed.version == (3, 0)
    assert parsed.params == params
    assert not (parsed.is_ssl_request or parsed.is_gssenc_request or parsed.is_cancel_request)


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        (wire.SSL_REQUEST_CODE, "is_ssl_request"),
        (wire.GSSENC_REQUEST_CODE, "is_gssenc_request"),
        (wire.CANCEL_REQUEST_CODE, "is_cancel_request"),
    ],
)
def test_special_requests_are_recognised(code: int, flag: str) -> None:
    body = (
        struct.pack("!iii", code, 4242, 99) if code == wire.CANCEL_REQUEST_CODE else struct.pack("!i", code)
    )
    packet = wire.parse_startup_packet(body)
    assert getattr(packet, flag)
    assert packet.raw() == struct.pack("!i", len(body) + 4) + body


@pytest.mark.parametrize(
    "body",
    [
        struct.pack("!i", wire.PROTOCOL_3_0) + b"user\0alex\0",  # no final NUL
        struct.pack("!i", wire.PROTOCOL_3_0) + b"user\0alex",  # unterminated value
        struct.pack("!i", wire.PROTOCOL_3_0) + b"user\0",  # a name without a value
        struct.pack("!ii", wire.CANCEL_REQUEST_CODE, 1),  # a cancel without its key
        b"\0\0",
    ],
)
def test_malformed_startup_packets_are_rejected(body: bytes) -> None:
    with pytest.raises(wire.ProtocolViolation):
        wire.parse_startup_packet(body)


@pytest.mark.parametrize("length", [0, 7, wire.MAX_STARTUP_PACKET_LENGTH + 1, -1])
def test_startup_length_limits(length: int) -> None:
    with pytest.raises(wire.ProtocolViolation):
        wire.startup_packet_length(struct.pack("!i", length))


def test_error_response_fields() -> None:
    msg = wire.error_response("28P01", 'password authentication failed for user "alex"', detail="d", hint="h")
    assert msg[:1] == b"E"
    assert struct.unpack("!i", msg[1:5])[0] == len(msg) - 1
    fields = wire.parse_error_fields(msg[5:])
    assert fields == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "28P01",
        "M": 'password authentication failed for user "alex"',
        "D": "d",
        "H": "h",
    }


def test_small_messages() -> None:
    assert wire.authentication_ok() == b"R\0\0\0\x08\0\0\0\0"
    assert wire.authentication_cleartext_password() == b"R\0\0\0\x08\0\0\0\x03"
    assert wire.ready_for_query("T") == b"Z\0\0\0\x05T"
    assert wire.parameter_status("TimeZone", "UTC") == b"S\0\0\0\x11TimeZone\0UTC\0"
    assert wire.negotiate_protocol_version(0, ["_pq_.x"]) == b"v\0\0\0\x13\0\0\0\0\0\0\0\x01_pq_.x\0"
    assert wire.parse_parameter_status(wire.parameter_status("a", "b")[5:]) == ("a", "b")
    assert wire.parse_sasl_mechanisms(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0") == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
    ]


def _stream() -> tuple[bytes, list[wire.Message]]:
    messages = [
        wire.Message("T", b"row description"),
        wire.Message("D", b"x" * 300),
        wire.Message("C", b"SELECT 1\0"),
        wire.Message("D", b""),
        wire.Message("Z", b"I"),
        wire.Message("E", b"SERROR\0\0"),
        wire.Message("D", b"y" * 70_000),
        wire.Message("Z", b"T"),
    ]
    return b"".join(wire.message(m.type, m.payload) for m in messages), messages


def _feed_in_chunks(splitter: wire.MessageSplitter, data: bytes, cuts: list[int]) -> list[wire.Message]:
    out: list[wire.Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        out += splitter.feed(data[start:end])
    return out


@pytest.mark.parametrize("wanted", [None, ("C", "Z", "E")])
def test_splitter_finds_messages_across_every_split(wanted: tuple[str, ...] | None) -> None:
    data, messages = _stream()
    expected = [m for m in messages if wanted is None or m.type in wanted]
    # Every two-way split near the small messages, plus byte-by-byte through the start.
    for cut in [*range(1, 400), *range(len(data) - 20, len(data))]:
        splitter = wire.MessageSplitter(wanted)
        assert _feed_in_chunks(splitter, data, [cut]) == expected
        assert splitter.at_boundary
    splitter = wire.MessageSplitter(wanted)
    assert _feed_in_chunks(splitter, data, list(range(1, 400))) == expected


def test_splitter_with_random_chunks() -> None:
    data, messages = _stream()
    rng = random.Random(5)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 30)))
        assert _feed_in_chunks(wire.MessageSplitter(), data, cuts) == messages
        assert _feed_in_chunks(wire.MessageSplitter({"Z"}), data, cuts) == [
            m for m in messages if m.type == "Z"
        ]


def test_splitter_knows_when_it_is_mid_message() -> None:
    splitter = wire.MessageSplitter({"Z"})
    assert splitter.feed(wire.message("D", b"abc")[:4]) == []
    assert not splitter.at_boundary
    splitter.feed(b"\x07abc")
    assert splitter.at_boundary
    with pytest.raises(wire.ProtocolViolation):
        splitter.feed(b"D\0\0\0\x02")


# --- write detection, message by message --------------------------------------------------------------


def _c(tag: str) -> wire.Message:
    return wire.Message("C", tag.encode() + b"\0")


def _z(status: str) -> wire.Message:
    return wire.Message("Z", status.encode())


ERR = wire.Message("E", b"SERROR\0\0")
COPY_OUT = wire.Message("H", b"\0\0\0")


@pytest.mark.parametrize(
    ("messages", "reports"),
    [
        pytest.param([_c("INSERT 0 1"), _z("I")], 1, id="autocommit-insert"),
        pytest.param([_c("SELECT 3"), _z("I"), _c("SHOW"), _z("I")], 0, id="reads"),
        pytest.param([_c("BEGIN"), _z("T"), _c("UPDATE 2"), _z("T"), _c("COMMIT"), _z("I")], 1, id="txn"),
        pytest.param(
            [_c("BEGIN"), _z("T"), _c("DELETE 1"), _z("T"), _c("ROLLBACK"), _z("I")], 0, id="rollback"
        ),
        pytest.param([_c("BEGIN"), _c("INSERT 0 1"), ERR, _z("E"), _c("ROLLBACK"), _z("I")], 0, id="failed"),
        pytest.param([_c("INSERT 0 1"), ERR, _z("I")], 0, id="implicit-txn-error"),
        pytest.param([_c("INSERT 0 1"), _c("COMMIT"), ERR, _z("I")], 1, id="committed-before-error"),
        pytest.param(
            [
                _c("BEGIN"),
                _c("INSERT 0 1"),
                _c("SAVEPOINT"),
                ERR,
                _z("E"),
                _c("ROLLBACK"),
                _z("T"),
                _c("COMMIT"),
                _z("I"),
            ],
            1,
            id="rollback-to-savepoint",
        ),
        pytest.param([_c("COMMIT"), _c("INSERT 0 1"), _c("COMMIT"), _z("T")], 1, id="commit-and-chain"),
        pytest.param([COPY_OUT, _c("COPY 10"), _z("I")], 0, id="copy-to-stdout"),
        pytest.param([_c("COPY 10"), _z("I")], 1, id="copy-from"),
        pytest.param([_c("CREATE TABLE"), _z("I"), _c("MERGE 1"), _z("I")], 2, id="ddl-and-merge"),
        pytest.param(
            [_c("BEGIN"), _c("INSERT 0 1"), _c("PREPARE TRANSACTION"), _z("I")], 0, id="2pc-prepare"
        ),
        pytest.param([_c("COMMIT PREPARED"), _z("I")], 1, id="2pc-commit"),
    ],
)
def test_write_detector(messages: list[wire.Message], reports: int) -> None:
    detector = WriteDetector()
    assert sum(detector.observe(m) for m in messages) == reports


# --- the proxy against the real server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_db(pg_server: PgServer) -> Iterator[str]:
    """A database of our own on the real server, with a table ``t``; dropped at the end of the module."""
    name = f"rw_proxy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
    yield name
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def real_db(pg_server: PgServer, module_db: str) -> str:
    """The module's database as new: no other session, ``t`` empty, no table a test created.

    One database reset per test rather than one created per test: a CREATE/DROP DATABASE pair costs 0.1 to
    0.25 s depending on the server, which would be most of this module's run time.
    """
    with psycopg.connect(pg_server.dsn(module_db), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.execute("DROP TABLE IF EXISTS u")
        conn.execute("DELETE FROM t")
    return module_db


@dataclass
class Endpoint:
    """A proxy with a resolver that knows one role and one database, recording what it is told."""

    database: str
    read_only: bool = False
    options: str = ""
    resolver_error: Exception | None = None
    startups: list[ClientStartup] = field(default_factory=list)
    writes: list[Route] = field(default_factory=list)
    closes: int = 0  # on_close calls that finished
    close_delay: float = 0.0  # how long on_close takes (it may drop a database in the sandbox)
    closes_started: int = 0
    proxy: PgProxy | None = None

    @property
    def port(self) -> int:
        assert self.proxy is not None
        return self.proxy.port

    def url(self, password: str = PASSWORD, database: str = "neondb", user: str = USER) -> str:
        return (
            f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"
            "?sslmode=disable&application_name=proxy-test&connect_timeout=5"
        )

    async def connect(self, prepare_threshold: int | None = 5) -> psycopg.AsyncConnection[tuple[object, ...]]:
        return await psycopg.AsyncConnection.connect(
            self.url(), autocommit=True, prepare_threshold=prepare_threshold
        )

    async def resolve(self, startup: ClientStartup) -> Route:
        self.startups.append(startup)
        if self.resolver_error is not None:
            raise self.resolver_error
        if startup.user != USER or startup.password != PASSWORD:
            raise RouteRefused("28P01", f'password authentication failed for user "{startup.user}"')
        if startup.database != "neondb":
            raise RouteRefused("3D000", f'database "{startup.database}" does not exist')
        return Route(self.database, self.read_only, self.options, on_close=self._closed, tag="ep-test")

    async def _closed(self) -> None:
        self.closes_started += 1
        await asyncio.sleep(self.close_delay)
        self.closes += 1


@pytest.fixture
async def endpoint(pg_server: PgServer, real_db: str) -> AsyncIterator[Endpoint]:
    ep = Endpoint(real_db)
    ep.proxy = PgProxy(pg_server.backend, ep.resolve, ep.writes.append, name="ep-test")
    await ep.proxy.start()
    yield ep
    await ep.proxy.stop()
    assert ep.proxy.session_count == 0


async def eventually(condition: Callable[[], bool], within: float = 60.0) -> None:
    # A generous budget: the condition is met in milliseconds, but a loaded machine may take seconds.
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def real_rows(pg_server: PgServer, database: str, query: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(pg_server.dsn(database)) as conn:
        cur = await conn.execute(query)
        return await cur.fetchall()


async def test_psycopg_reads_and_writes_real_data(endpoint: Endpoint, pg_server: PgServer) -> None:
    async with await endpoint.connect() as conn:
        await conn.execute("INSERT INTO t VALUES (1, 'through the proxy')")
        cur = await conn.execute(
            "SELECT current_database(), current_setting('application_name'), note FROM t"
        )
        assert await cur.fetchall() == [(endpoint.database, "proxy-test", "through the proxy")]
    assert await real_rows(pg_server, endpoint.database, "SELECT id, note FROM t") == [
        (1, "through the proxy")
    ]
    startup = endpoint.startups[0]
    assert (startup.user, startup.database, startup.params["application_name"]) == (
        USER,
        "neondb",
        "proxy-test",
    )
    assert PASSWORD not in repr(startup)


@pytest.mark.skipif(not os.path.exists(PSQL), reason=f"{PSQL} is not installed")
async def test_psql_with_sslmode_prefer(endpoint: Endpoint) -> None:
    conninfo = f"host=127.0.0.1 port={endpoint.port} user={USER} dbname=neondb sslmode=prefer"
    proc = await asyncio.create_subprocess_exec(
        PSQL,
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "INSERT INTO t VALUES (7, 'psql')",
        "-c",
        "SELECT current_database(), note FROM t",
        conninfo,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "5"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["INSERT 0 1", f"{endpoint.database}|psql"]
    assert len(endpoint.writes) == 1


async def test_wrong_password_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "recovery_wizard.sandbox.proxy")
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "alex"'):
        await psycopg.AsyncConnection.connect(endpoint.url(password="wrong-pw-123"))
    assert "wrong-pw-123" not in caplog.text
    await eventually(lambda: endpoint.proxy is not None and endpoint.proxy.session_count == 0)
    assert endpoint.closes == 0  # no route, no on_close


async def test_unknown_database_is_refused_with_3d000(endpoint: Endpoint) -> None:
    fields = await login_error(endpoint.port, {"user": USER, "database": "nope"}, PASSWORD)
    assert (fields["S"], fields["C"], fields["M"]) == ("FATAL", "3D000", 'database "nope" does not exist')
    with pytest.raises(psycopg.OperationalError, match='database "nope" does not exist'):
        await psycopg.AsyncConnection.connect(endpoint.url(database="nope"))


async def test_read_only_route_refuses_writes(endpoint: Endpoint) -> None:
    endpoint.read_only = True
    async with await endpoint.connect() as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only transaction"):
            await conn.execute("INSERT INTO t VALUES (1, 'no')")
        cur = await conn.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (0,)
    assert endpoint.writes == []


async def test_route_options_and_client_params_reach_the_backend(endpoint: Endpoint) -> None:
    endpoint.options = "-c statement_timeout=4321"
    async with await endpoint.connect() as conn:
        cur = await conn.execute("SELECT current_setting('statement_timeout'), current_setting('TimeZone')")
        assert await cur.fetchone() == ("4321ms", conn.info.parameter_status("TimeZone"))


# Run on an autocommit connection one after the other; a statement that fails is expected to.
WRITE_SCENARIOS = [
    pytest.param(["INSERT INTO t VALUES (1)"], 1, id="autocommit-insert"),
    pytest.param(["BEGIN", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)", "COMMIT"], 1, id="txn"),
    pytest.param(
        ["SELECT * FROM t", "SELECT 1", "BEGIN", "SELECT 2", "COMMIT", "SHOW TimeZone"], 0, id="reads"
    ),
    pytest.param(["BEGIN", "INSERT INTO t VALUES (1)", "ROLLBACK"], 0, id="rolled-back"),
    pytest.param(["BEGIN", "INSERT INTO t VALUES (1)", "SELECT 1/0", "ROLLBACK"], 0, id="failed-rolled-back"),
    pytest.param(["BEGIN", "INSERT INTO t VALUES (1)", "SELECT 1/0", "COMMIT"], 0, id="failed-commit"),
    pytest.param(["INSERT INTO t VALUES (1); SELECT 1/0"], 0, id="implicit-txn-error"),
    pytest.param(["CREATE TABLE u (x int)"], 1, id="create-table"),
    pytest.param(
        [
            "BEGIN",
            "INSERT INTO t VALUES (1)",
            "SAVEPOINT s",
            "SELECT 1/0",
            "ROLLBACK TO SAVEPOINT s",
            "COMMIT",
        ],
        1,
        id="savepoint",
    ),
    pytest.param(["UPDATE t SET note = 'x'", "DELETE FROM t"], 2, id="update-delete-no-rows"),
]


@pytest.mark.parametrize(("statements", "writes"), WRITE_SCENARIOS)
async def test_write_detection(endpoint: Endpoint, statements: list[str], writes: int) -> None:
    async with await endpoint.connect() as conn:
        for statement in statements:
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                await conn.execute(statement.encode())
    assert len(endpoint.writes) == writes
    assert all(route.tag == "ep-test" for route in endpoint.writes)


async def test_copy_from_stdin_is_a_write(endpoint: Endpoint, pg_server: PgServer) -> None:
    async with await endpoint.connect() as conn:
        async with conn.cursor() as cur, cur.copy("COPY t (id, note) FROM STDIN") as copy:
            await copy.write_row((1, "a"))
            await copy.write_row((2, "b"))
        assert len(endpoint.writes) == 1
    assert await real_rows(pg_server, endpoint.database, "SELECT count(*) FROM t") == [(2,)]


async def test_copy_to_stdout_is_a_read(endpoint: Endpoint) -> None:
    async with await endpoint.connect() as conn:
        async with (
            conn.cursor() as cur,
            cur.copy("COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT") as copy,
        ):
            data = b"".join([bytes(chunk) async for chunk in copy])
        assert data.splitlines()[-1] == b"1000"
    assert endpoint.writes == []


async def test_extended_protocol_and_prepared_statements(endpoint: Endpoint) -> None:
    async with await endpoint.connect(prepare_threshold=0) as conn:
        for i in range(3):
            await conn.execute("INSERT INTO t VALUES (%s, %s)", (i, f"row {i}"), prepare=True)
        cur = await conn.execute("SELECT note FROM t WHERE id >= %s ORDER BY id", (1,), prepare=True)
        assert await cur.fetchall() == [("row 1",), ("row 2",)]
        async with conn.transaction():
            await conn.execute("UPDATE t SET note = %s WHERE id = %s", ("changed", 0))
            await conn.execute("SELECT %s::int", (5,))
    assert len(endpoint.writes) == 4


async def test_pipeline_mode(endpoint: Endpoint) -> None:
    async with await endpoint.connect() as conn:
        async with conn.pipeline():
            for i in range(5):
                await conn.execute("INSERT INTO t VALUES (%s, 'p')", (i,))
        cur = await conn.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (5,)
    assert 1 <= len(endpoint.writes) <= 5


class SlowListener:
    """An async on_write that takes a while (as a snapshot does) and notes what it saw and when."""

    def __init__(self, pg_server: PgServer, database: str) -> None:
        self.pg_server = pg_server
        self.database = database
        self.events: list[str] = []

    async def __call__(self, route: Route) -> None:
        self.events.append("started")
        await asyncio.sleep(0.1)
        (count,) = (await real_rows(self.pg_server, self.database, "SELECT count(*) FROM t"))[0]
        self.events.append(f"saw {count}")


async def test_an_async_on_write_runs_before_the_client_moves_on(
    endpoint: Endpoint, pg_server: PgServer
) -> None:
    assert endpoint.proxy is not None
    listener = endpoint.proxy.on_write = SlowListener(pg_server, endpoint.database)
    async with await endpoint.connect() as conn:
        for i in (1, 2):
            await conn.execute("INSERT INTO t VALUES (%s)", (i,))
            listener.events.append(f"client done {i}")
        await conn.execute("SELECT 1")
    assert listener.events == ["started", "saw 1", "client done 1", "started", "saw 2", "client done 2"]


async def test_an_async_on_write_outlives_the_client(endpoint: Endpoint, pg_server: PgServer) -> None:
    assert endpoint.proxy is not None
    listener = endpoint.proxy.on_write = SlowListener(pg_server, endpoint.database)
    reader, writer, _ = await raw_login(endpoint.port, {"user": USER, "database": "neondb"}, PASSWORD)
    await read_until(reader, "Z")
    writer.write(wire.message("Q", wire.cstring("INSERT INTO t VALUES (1)")))
    await eventually(lambda: listener.events == ["started"])
    writer.close()  # hangs up while the listener runs: it must still finish, before on_close
    await eventually(lambda: endpoint.closes == 1)
    assert listener.events == ["started", "saw 1"]


async def test_stop_waits_for_an_async_on_write(endpoint: Endpoint, pg_server: PgServer) -> None:
    assert endpoint.proxy is not None
    listener = endpoint.proxy.on_write = SlowListener(pg_server, endpoint.database)
    async with await endpoint.connect() as conn:
        insert = asyncio.create_task(conn.execute("INSERT INTO t VALUES (1)"))
        await eventually(lambda: listener.events == ["started"])
        await endpoint.proxy.stop()
        assert listener.events == ["started", "saw 1"]
        assert endpoint.closes == 1
        with pytest.raises(psycopg.OperationalError, match="administrator command"):
            await insert


async def test_client_sees_its_own_role(endpoint: Endpoint) -> None:
    async with await endpoint.connect() as conn:
        assert conn.info.parameter_status("session_authorization") == USER
        assert conn.info.parameter_status("is_superuser") == "off"
        assert conn.info.parameter_status("server_version")  # the rest passes through


async def test_on_write_failure_does_not_break_the_session(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(route: Route) -> None:
        raise RuntimeError("snapshot failed")

    assert endpoint.proxy is not None
    endpoint.proxy.on_write = broken
    async with await endpoint.connect() as conn:
        await conn.execute("INSERT INTO t VALUES (1)")
        cur = await conn.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (1,)
    assert "snapshot failed" in caplog.text


async def test_on_close_once_when_the_client_closes(endpoint: Endpoint) -> None:
    conn = await endpoint.connect()
    assert endpoint.closes == 0
    await conn.close()  # Terminate
    await eventually(lambda: endpoint.closes == 1)
    # A client that just drops the socket.
    reader, writer, _ = await raw_login(endpoint.port, {"user": USER, "database": "neondb"}, PASSWORD)
    assert (await read_until(reader, "Z"))[-1] == wire.Message("Z", b"I")
    writer.close()
    await writer.wait_closed()
    await eventually(lambda: endpoint.closes == 2)
    await asyncio.sleep(0.05)
    assert endpoint.closes == 2
    assert endpoint.proxy is not None and endpoint.proxy.session_count == 0


async def test_on_close_when_the_backend_dies(endpoint: Endpoint, pg_server: PgServer) -> None:
    async with await endpoint.connect() as conn:
        pid = conn.info.backend_pid  # the real backend's: BackendKeyData passes through
        async with await psycopg.AsyncConnection.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await eventually(lambda: endpoint.closes == 1)
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT 1")
    assert endpoint.proxy is not None and endpoint.proxy.session_count == 0


async def test_stop_ends_open_sessions(endpoint: Endpoint) -> None:
    assert endpoint.proxy is not None
    conn = await endpoint.connect()
    idle = await endpoint.connect()
    await idle.execute("BEGIN")
    assert endpoint.proxy.session_count == 2
    # Stop ends them without waiting for their clients (the idle transaction would never end by itself).
    await asyncio.wait_for(endpoint.proxy.stop(), 60)
    assert endpoint.closes == 2
    assert endpoint.proxy.session_count == 0
    for c in (conn, idle):
        with pytest.raises(psycopg.OperationalError):
            await c.execute("SELECT 1")
        await c.close()
    with pytest.raises(psycopg.OperationalError):
        await endpoint.connect()


async def test_stop_lets_a_closing_session_finish_its_on_close(endpoint: Endpoint) -> None:
    assert endpoint.proxy is not None
    endpoint.close_delay = 0.2
    conn = await endpoint.connect()
    await conn.close()
    await eventually(lambda: endpoint.closes_started == 1)
    await endpoint.proxy.stop()
    assert endpoint.closes == 1


async def test_stop_tells_the_client_why(endpoint: Endpoint) -> None:
    assert endpoint.proxy is not None
    reader, writer, _ = await raw_login(endpoint.port, {"user": USER, "database": "neondb"}, PASSWORD)
    await read_until(reader, "Z")
    await endpoint.proxy.stop()
    fields = wire.parse_error_fields((await read_until(reader, "E"))[-1].payload)
    assert fields["C"] == "57P01"
    assert await reader.read() == b""
    writer.close()


async def test_cancel_reaches_the_real_backend(endpoint: Endpoint, pg_server: PgServer) -> None:
    async with await endpoint.connect() as conn:
        statement = "SELECT pg_sleep(600)"  # never ends by itself: only the cancel can end it
        running = asyncio.create_task(conn.execute(statement))
        await until_running(pg_server, conn.info.backend_pid, statement)
        await conn.cancel_safe(timeout=30)
        with pytest.raises(psycopg.errors.QueryCanceled):
            await asyncio.wait_for(running, 60)
        cur = await conn.execute("SELECT 1")
        assert await cur.fetchone() == (1,)


async def test_two_concurrent_sessions(endpoint: Endpoint) -> None:
    assert endpoint.proxy is not None
    async with await endpoint.connect() as a, await endpoint.connect() as b:
        assert endpoint.proxy.session_count == 2
        assert a.info.backend_pid != b.info.backend_pid
        await a.execute("BEGIN")
        await a.execute("INSERT INTO t VALUES (1, 'a')")
        cur = await b.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (0,)  # a's transaction is not committed yet
        await asyncio.gather(a.execute("SELECT pg_sleep(0.2)"), b.execute("SELECT pg_sleep(0.2)"))
        await a.execute("COMMIT")
        cur = await b.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (1,)
    assert len(endpoint.writes) == 1


async def test_large_result_relays_intact(endpoint: Endpoint) -> None:
    async with await endpoint.connect() as conn:
        cur = await conn.execute(
            "SELECT g, md5(g::text) || repeat('x', 20) FROM generate_series(1, 200000) g ORDER BY g"
        )
        rows = await cur.fetchall()
    assert len(rows) == 200_000
    assert rows[0] == (1, "c4ca4238a0b923820dcc509a6f75849b" + "x" * 20)
    assert [r[0] for r in rows] == list(range(1, 200_001))
    assert endpoint.writes == []


async def test_large_upload_relays_intact(endpoint: Endpoint) -> None:
    blob = os.urandom(3 << 20).hex()  # one 6 MB Bind message, split across many reads
    async with await endpoint.connect() as conn:
        cur = await conn.execute("SELECT md5(%s), length(%s)", (blob, blob))
        assert await cur.fetchone() == (hashlib.md5(blob.encode()).hexdigest(), len(blob))


# --- the protocol at the byte level -----------------------------------------------------------------------


async def read_until(reader: asyncio.StreamReader, *types: str) -> list[wire.Message]:
    """Messages up to and including the first of one of ``types`` (or up to EOF)."""
    splitter = wire.MessageSplitter()
    out: list[wire.Message] = []
    while data := await asyncio.wait_for(reader.read(65536), 60):
        for msg in splitter.feed(data):
            out.append(msg)
            if msg.type in types:
                return out
    return out


async def raw_login(
    port: int,
    params: dict[str, str],
    password: str,
    *,
    code: int = wire.PROTOCOL_3_0,
    ssl_first: bool = False,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, list[wire.Message]]:
    """Log in over a raw socket; returns the streams and the messages read so far (ending in R or E)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if ssl_first:
        writer.write(struct.pack("!ii", 8, wire.SSL_REQUEST_CODE))
        assert await reader.readexactly(1) == b"N"
    writer.write(wire.startup_message(params, code))
    messages = await read_until(reader, "R", "E")
    if messages[-1].type == "R":
        assert wire.parse_authentication(messages[-1].payload)[0] == wire.AUTH_CLEARTEXT_PASSWORD
        writer.write(wire.password_message(password))
    return reader, writer, messages


async def login_error(
    port: int, params: dict[str, str], password: str, code: int = wire.PROTOCOL_3_0
) -> dict[str, str]:
    """The ErrorResponse a login gets, after checking that the proxy then hangs up."""
    reader, writer, messages = await raw_login(port, params, password, code=code)
    try:
        if messages[-1].type != "E":
            messages = await read_until(reader, "E")
        assert messages and messages[-1].type == "E", messages
        assert await reader.read() == b""
        return wire.parse_error_fields(messages[-1].payload)
    finally:
        writer.close()


async def test_ssl_request_is_answered_n(endpoint: Endpoint) -> None:
    params = {"user": USER, "database": "neondb"}
    reader, writer, _ = await raw_login(endpoint.port, params, PASSWORD, ssl_first=True)
    messages = await read_until(reader, "Z")
    assert messages[0].type == "R" and messages[-1] == wire.Message("Z", b"I")
    writer.write(wire.terminate())
    assert await reader.read() == b""
    writer.close()
    await eventually(lambda: endpoint.closes == 1)


async def test_newer_protocol_gets_negotiate_protocol_version(endpoint: Endpoint) -> None:
    params = {"user": USER, "database": "neondb", "_pq_.fancy": "yes"}
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    writer.write(wire.startup_message(params, wire.protocol_code(3, 2)))
    messages = await read_until(reader, "R")
    assert messages == [
        wire.Message("v", struct.pack("!ii", 0, 1) + b"_pq_.fancy\0"),
        wire.Message("R", struct.pack("!i", wire.AUTH_CLEARTEXT_PASSWORD)),
    ]
    writer.write(wire.password_message(PASSWORD))
    assert (await read_until(reader, "Z"))[-1].type == "Z"
    assert "_pq_.fancy" in endpoint.startups[0].params
    writer.close()


@pytest.mark.parametrize(
    ("params", "code", "sqlstate"),
    [
        pytest.param({"user": USER}, wire.protocol_code(2, 0), "0A000", id="protocol-2"),
        pytest.param({"database": "neondb"}, wire.PROTOCOL_3_0, "28000", id="no-user"),
        pytest.param({"user": USER, "replication": "database"}, wire.PROTOCOL_3_0, "0A000", id="replication"),
        pytest.param({"user": "bob", "database": "neondb"}, wire.PROTOCOL_3_0, "28P01", id="unknown-user"),
    ],
)
async def test_refusals(endpoint: Endpoint, params: dict[str, str], code: int, sqlstate: str) -> None:
    fields = await login_error(endpoint.port, params, PASSWORD, code=code)
    assert fields["C"] == sqlstate


async def test_database_missing_on_the_server_is_relayed(endpoint: Endpoint) -> None:
    endpoint.database = "rw_proxy_missing_db"
    fields = await login_error(endpoint.port, {"user": USER, "database": "neondb"}, PASSWORD)
    assert fields["C"] == "3D000"
    await eventually(lambda: endpoint.closes == 1)


async def test_resolver_crash_is_a_generic_error(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "recovery_wizard.sandbox.proxy")
    endpoint.resolver_error = RuntimeError(f"bug while checking {PASSWORD}")
    fields = await login_error(endpoint.port, {"user": USER, "database": "neondb"}, PASSWORD)
    assert (fields["C"], fields["M"]) == ("XX000", "internal error in the sandbox's endpoint proxy")
    assert "bug while checking" in caplog.text
    assert PASSWORD not in caplog.text


async def test_unreachable_backend(unused_tcp_port: int) -> None:
    proxy = PgProxy(BackendConfig("127.0.0.1", unused_tcp_port, "postgres"), Endpoint("x").resolve)
    port = await proxy.start()
    try:
        fields = await login_error(port, {"user": USER, "database": "neondb"}, PASSWORD)
        assert (fields["C"], fields["M"]) == ("08006", "could not connect to the sandbox's PostgreSQL server")
    finally:
        await proxy.stop()


# --- backend authentication, against a stand-in server that only logs in ---------------------------------


class LoginOnlyServer:
    """Asks for a password the way ``method`` says, then reports a session and waits for the end."""

    def __init__(self, method: str, password: str) -> None:
        self.method = method
        self.password = password
        self.params: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self, password: str | None) -> BackendConfig:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return BackendConfig("127.0.0.1", port, "admin", Secret(password) if password else None)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            length = wire.startup_packet_length(await reader.readexactly(4))
            self.params = wire.parse_startup_packet(await reader.readexactly(length - 4)).params
            if await self._login(reader, writer):
                writer.write(
                    wire.authentication_ok()
                    + wire.parameter_status("session_authorization", "admin")
                    + wire.parameter_status("is_superuser", "on")
                    + wire.backend_key_data(1234, 5678)
                    + wire.ready_for_query("I")
                )
                await reader.read()
            else:
                writer.write(wire.error_response("28P01", 'password authentication failed for user "admin"'))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # The proxy hung up, or the test is over. Not re-raised: Python 3.11's start_server logs an
            # error for a handler task that ends in an exception, cancellation included.
            pass
        finally:
            writer.close()

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if self.method == "trust":
            return True
        if self.method == "password":
            writer.write(wire.authentication_cleartext_password())
            return wire.read_cstring(await read_message(reader))[0] == self.password
        if self.method == "md5":
            writer.write(wire.message("R", struct.pack("!i", wire.AUTH_MD5_PASSWORD) + b"salt"))
            answer = wire.read_cstring(await read_message(reader))[0]
            return answer == wire.md5_password("admin", self.password, b"salt")
        return await self._scram(reader, writer)

    async def _scram(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        mechanism = scramp.ScramMechanism()
        auth_info = mechanism.make_auth_info(self.password)
        server = mechanism.make_server(lambda _user: auth_info)
        writer.write(wire.message("R", struct.pack("!i", wire.AUTH_SASL) + b"SCRAM-SHA-256\0\0"))
        payload = await read_message(reader)
        name, offset = wire.read_cstring(payload)
        assert name == "SCRAM-SHA-256"
        server.set_client_first(payload[offset + 4 :].decode())
        writer.write(
            wire.message("R", struct.pack("!i", wire.AUTH_SASL_CONTINUE) + server.get_server_first().encode())
        )
        try:
            server.set_client_final((await read_message(reader)).decode())
        except scramp.ScramException:
            return False
        writer.write(
            wire.message("R", struct.pack("!i", wire.AUTH_SASL_FINAL) + server.get_server_final().encode())
        )
        return True


async def read_message(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(5)
    assert header[:1] == b"p"
    return await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)


@pytest.mark.parametrize("method", ["trust", "password", "md5", "scram"])
async def test_backend_authentication(method: str) -> None:
    backend = LoginOnlyServer(method, "adm1n-pw")
    endpoint = Endpoint("realdb", options="-c work_mem=8MB")
    endpoint.read_only = True
    proxy = PgProxy(await backend.start("adm1n-pw"), endpoint.resolve)
    await proxy.start()
    try:
        params = {"user": USER, "database": "neondb", "TimeZone": "UTC", "options": "neon_x"}
        reader, writer, _ = await raw_login(proxy.port, params, PASSWORD)
        messages = await read_until(reader, "Z")
        assert messages == [
            wire.Message("R", struct.pack("!i", wire.AUTH_OK)),
            wire.Message("S", b"session_authorization\0alex\0"),
            wire.Message("S", b"is_superuser\0off\0"),
            wire.Message("K", struct.pack("!ii", 1234, 5678)),
            wire.Message("Z", b"I"),
        ]
        assert backend.params == {
            "user": "admin",
            "database": "realdb",
            "TimeZone": "UTC",
            "options": "-c work_mem=8MB -c default_transaction_read_only=on",
        }
        writer.close()
    finally:
        await proxy.stop()
        await backend.stop()
    assert endpoint.closes == 1


@pytest.mark.parametrize("method", ["password", "md5", "scram"])
async def test_backend_login_failure_is_the_sandboxs(method: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "recovery_wizard.sandbox.proxy")
    backend = LoginOnlyServer(method, "adm1n-pw")
    proxy = PgProxy(await backend.start("not-the-pw"), Endpoint("realdb").resolve)
    await proxy.start()
    try:
        fields = await login_error(proxy.port, {"user": USER, "database": "neondb"}, PASSWORD)
    finally:
        await proxy.stop()
        await backend.stop()
    assert fields["C"] == "08004"
    assert "not-the-pw" not in caplog.text and "adm1n-pw" not in caplog.text


async def test_backend_asks_for_a_password_the_sandbox_lacks() -> None:
    backend = LoginOnlyServer("scram", "adm1n-pw")
    proxy = PgProxy(await backend.start(None), Endpoint("realdb").resolve)
    await proxy.start()
    try:
        fields = await login_error(proxy.port, {"user": USER, "database": "neondb"}, PASSWORD)
    finally:
        await proxy.stop()
        await backend.stop()
    assert fields["C"] == "08004"
