"""TLS and SCRAM-SHA-256-PLUS on the sandbox's endpoints, as Neon's connection strings expect them.

Real clients (psycopg's libpq, psql) connect with the URIs the API gives out, unchanged; the raw-protocol tests
prove what no libpq option shows: the mechanisms offered, and that a wrong channel binding is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import ssl
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import scramp
import trustme

from recovery_wizard.neon import NeonClient
from recovery_wizard.sandbox import wire
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.sandbox.tls import SandboxTls
from tests.sandbox.conftest import SpecChecker, in_process_http, until_running
from tests.sandbox.test_sandbox_api import DB, ROLE, branch_uri, default_branch, query

NEON_PARAMS = "?sslmode=require&channel_binding=require"
PSQL = "/usr/bin/psql"


async def main_uri(client: NeonClient, sandbox: Sandbox, *, pooled: bool = False) -> str:
    main = await default_branch(client, sandbox.project_id)
    return await branch_uri(client, sandbox.project_id, main.id, pooled=pooled)


def with_params(uri: str, params: str) -> str:
    """``uri`` with its query string replaced by ``params``."""
    return uri.partition("?")[0] + "?" + params


async def ssl_facts(uri: str, **kwargs: str) -> tuple[bool, int]:
    """Whether the session is encrypted, and a query's answer."""
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True, **kwargs) as conn:  # type: ignore[arg-type]
        cur = await conn.execute('SELECT count(*) FROM "User"')
        row = await cur.fetchone()
        assert row is not None
        return bool(conn.pgconn.ssl_in_use), int(str(row[0]))


# --- what the API gives out, as real clients use it --------------------------------------------------


@pytest.mark.parametrize("pooled", [False, True])
async def test_connection_uri_carries_neons_parameters_and_connects_over_tls(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, pooled: bool
) -> None:
    client, _ = checked
    uri = await main_uri(client, sandbox, pooled=pooled)
    assert uri.endswith(NEON_PARAMS)
    # channel_binding=require: libpq itself refuses a session that did not bind SCRAM to this TLS channel.
    encrypted, users = await ssl_facts(uri)
    assert encrypted
    assert users < 10  # the damaged main branch


async def test_a_created_branchs_connection_uris_carry_neons_parameters(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    main = await default_branch(client, sandbox.project_id)
    # The raw answer: NeonClient deliberately does not decode connection_uris.
    async with in_process_http(sandbox, SpecChecker()) as http:
        response = await http.post(
            f"{sandbox.api_url}/projects/{sandbox.project_id}/branches",
            headers={"Authorization": f"Bearer {sandbox.api_key.reveal()}"},
            json={
                "branch": {"parent_id": main.id, "name": "tls-uris"},
                "endpoints": [{"type": "read_write"}],
            },
        )
    assert response.status_code == 201, response.text
    (entry,) = response.json()["connection_uris"]
    assert entry["connection_uri"].endswith(NEON_PARAMS)
    await asyncio.sleep(0.2)  # its operations take 0.05 s here
    assert (await ssl_facts(entry["connection_uri"]))[0]


async def test_verify_full_against_the_sandbox_ca(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, tmp_path: Path
) -> None:
    client, _ = checked
    uri = await main_uri(client, sandbox)
    assert sandbox.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" not in sandbox.ca_path.read_bytes()
    verified = with_params(uri, f"sslmode=verify-full&channel_binding=require&sslrootcert={sandbox.ca_path}")
    assert (await ssl_facts(verified))[0]
    # The check is real: another CA's certificate does not vouch for the sandbox's server.
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        await ssl_facts(with_params(uri, f"sslmode=verify-full&sslrootcert={stranger}"))


async def test_sslmode_disable_still_connects_in_plain_tcp(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox
) -> None:
    client, _ = checked
    uri = await main_uri(client, sandbox)
    encrypted, users = await ssl_facts(with_params(uri, "sslmode=disable"))
    assert not encrypted and users < 10
    pooled = await main_uri(client, sandbox, pooled=True)
    assert not (await ssl_facts(with_params(pooled, "sslmode=disable")))[0]
    # libpq, not the sandbox, refuses channel binding without TLS, as against Neon.
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        await ssl_facts(with_params(uri, "sslmode=disable&channel_binding=require"))


@pytest.mark.parametrize("pooled", [False, True])
async def test_a_wrong_password_over_tls_is_refused_without_leaking_it(
    checked: tuple[NeonClient, SpecChecker],
    sandbox: Sandbox,
    pooled: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "recovery_wizard")
    client, _ = checked
    uri = with_params(await main_uri(client, sandbox, pooled=pooled), NEON_PARAMS[1:])
    wrong = "npg_WrongPassw0rd77"
    head, _, tail = uri.partition("@")
    bad = head.rpartition(":")[0] + ":" + wrong + "@" + tail
    with pytest.raises(psycopg.OperationalError, match=f'password authentication failed for user "{ROLE}"'):
        await ssl_facts(bad)
    # An unknown role gets the very same answer: the refusal does not tell which roles exist.
    nobody = bad.replace(f"//{ROLE}:", "//nobody:")
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "nobody"'):
        await ssl_facts(nobody)
    assert wrong not in caplog.text
    assert head.rpartition(":")[2] not in caplog.text  # nor the right password


@pytest.mark.parametrize("pooled", [False, True])
async def test_time_travel_over_tls(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, pooled: bool
) -> None:
    client, _ = checked
    assert sandbox.project is not None and sandbox.project.scenario is not None
    before = sandbox.project.scenario.incident_at - timedelta(seconds=1)
    then = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    uri = await main_uri(client, sandbox, pooled=pooled)
    encrypted, users = await ssl_facts(uri, options=f"neon_timestamp:{then}")
    assert encrypted and users >= 10  # the data as it was before the incident
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await query(uri, 'DELETE FROM "User"', options=f"neon_timestamp:{then}")


async def test_a_cancel_request_over_tls_reaches_the_server(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, pg_server: PgServer
) -> None:
    # libpq 17+ sends its cancel request on a connection of its own, encrypted like the session's.
    client, _ = checked
    uri = await main_uri(client, sandbox)
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        statement = "SELECT pg_sleep(600)"  # never ends by itself: only the cancel can end it

        async def cancel_once_running() -> None:
            await until_running(pg_server, conn.info.backend_pid, statement)
            await conn.cancel_safe(timeout=30)

        cancelling = asyncio.create_task(cancel_once_running())
        with pytest.raises(psycopg.errors.QueryCanceled):
            await asyncio.wait_for(conn.execute(statement), 120)
        await cancelling
        cur = await conn.execute("SELECT 1")
        assert await cur.fetchone() == (1,)


@pytest.mark.skipif(not os.path.exists(PSQL), reason=f"{PSQL} is not installed")
@pytest.mark.parametrize("mode", ["neon", "verify-full", "disable", "pooled"])
async def test_psql_with_neons_uri(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, mode: str
) -> None:
    client, _ = checked
    uri = await main_uri(client, sandbox, pooled=mode == "pooled")
    if mode == "verify-full":
        uri = with_params(uri, f"sslmode=verify-full&channel_binding=require&sslrootcert={sandbox.ca_path}")
    elif mode == "disable":
        uri = with_params(uri, "sslmode=disable")
    proc = await asyncio.create_subprocess_exec(
        PSQL,
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        'SELECT count(*) < 10 FROM "User"',
        "-c",
        "\\conninfo",
        uri,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    first, info = out.decode().split("\n", 1)
    assert first == "t"
    assert ("SSL connection (protocol: TLSv1." in info) == (mode != "disable")


# node-postgres, the driver under Prisma's pg adapter, Drizzle and most Next.js apps: a client of Neon's
# connection strings that libpq does not cover.
NODE_PG_SCRIPT = """
const { Client } = require('pg');
(async () => {
  const client = new Client({ connectionString: process.argv[2], enableChannelBinding: process.argv[3] === 'bind' });
  await client.connect();
  const result = await client.query('SELECT count(*)::int AS n FROM "User"');
  console.log(JSON.stringify({ n: result.rows[0].n, tls: client.connection.stream.constructor.name === 'TLSSocket' }));
  await client.end();
})().catch((error) => { console.log(JSON.stringify({ error: error.message })); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_pg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with node-postgres installed from npm and a script that runs one query through it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    directory = tmp_path_factory.mktemp("node-pg")
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "pg@8"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if installed.returncode != 0:
        pytest.skip(f"npm could not install pg (registry out of reach?): {installed.stderr.strip()[-300:]}")
    (directory / "query.js").write_text(NODE_PG_SCRIPT)
    return directory


@pytest.mark.parametrize("case", ["ca", "ca-bind", "no-ca", "disable"])
async def test_node_postgres_with_neons_uri(
    checked: tuple[NeonClient, SpecChecker], sandbox: Sandbox, node_pg: Path, case: str
) -> None:
    client, _ = checked
    uri = await main_uri(client, sandbox)
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    if case.startswith("ca"):
        # node-postgres reads sslmode=require as verify-full: Neon's public certificates pass, the
        # sandbox's need its CA, given the usual Node way.
        env["NODE_EXTRA_CA_CERTS"] = str(sandbox.ca_path)
    if case == "disable":
        uri = with_params(uri, "sslmode=disable")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(node_pg / "query.js"),
        uri,
        "bind" if case == "ca-bind" else "",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    answer = json.loads(out.decode().strip().splitlines()[-1])
    if case == "no-ca":
        assert proc.returncode == 1 and "certificate" in answer["error"]
        return
    assert proc.returncode == 0, err.decode()
    assert answer["tls"] == (case != "disable")
    assert answer["n"] < 10


# --- the protocol itself -------------------------------------------------------------------------------


async def open_session(
    port: int, *, tls: SandboxTls | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to an endpoint, upgraded to TLS (checking the server against ``tls``'s CA) when given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if tls is not None:
        writer.write(struct.pack("!ii", 8, wire.SSL_REQUEST_CODE))
        await writer.drain()
        assert await reader.readexactly(1) == b"S"
        context = ssl.create_default_context(cadata=tls.ca_pem.decode())
        await writer.start_tls(context, server_hostname="127.0.0.1")
    return reader, writer


async def read_message(reader: asyncio.StreamReader) -> wire.Message:
    header = await reader.readexactly(wire.HEADER_LENGTH)
    return wire.Message(chr(header[0]), await reader.readexactly(wire.read_int32(header, 1) - 4))


async def scram_login(
    sandbox: Sandbox, *, tls: bool, mechanism: str, binding: bytes | None = None, password: str | None = None
) -> tuple[list[str], wire.Message]:
    """Log in by hand with ``scramp``'s client; the mechanisms offered and the server's last answer."""
    assert sandbox.engine is not None and sandbox.project is not None
    endpoint = next(iter(sandbox.project.endpoints.values()))
    branch = sandbox.project.branches[endpoint.branch_id]
    reader, writer = await open_session(endpoint.proxy.port, tls=sandbox.tls if tls else None)
    try:
        writer.write(wire.startup_message({"user": ROLE, "database": DB}))
        await writer.drain()
        msg = await read_message(reader)
        code, data = wire.parse_authentication(msg.payload)
        assert (msg.type, code) == ("R", wire.AUTH_SASL)
        offered = wire.parse_sasl_mechanisms(data)
        if binding is None and mechanism.endswith("-PLUS"):
            cb: tuple[str, object] | None = ("tls-server-end-point", writer.get_extra_info("ssl_object"))
        elif binding is not None:
            cb = ("tls-server-end-point", binding)
        else:
            cb = None
        secret = password if password is not None else branch.roles[ROLE].password.reveal()
        scram = scramp.ScramClient([mechanism], ROLE, secret, channel_binding=cb)
        writer.write(wire.sasl_initial_response(scram.mechanism_name, scram.get_client_first().encode()))
        await writer.drain()
        msg = await read_message(reader)
        if msg.type == "E":
            return offered, msg
        scram.set_server_first(wire.parse_authentication(msg.payload)[1].decode())
        writer.write(wire.sasl_response(scram.get_client_final().encode()))
        await writer.drain()
        msg = await read_message(reader)
        if msg.type == "R":
            code, data = wire.parse_authentication(msg.payload)
            assert code == wire.AUTH_SASL_FINAL
            scram.set_server_final(data.decode())  # the server proves it knows the password too
            msg = await read_message(reader)
        return offered, msg
    finally:
        writer.close()


async def test_scram_with_channel_binding_by_hand(sandbox: Sandbox) -> None:
    offered, last = await scram_login(sandbox, tls=True, mechanism="SCRAM-SHA-256-PLUS")
    assert offered == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    assert (last.type, wire.parse_authentication(last.payload)[0]) == ("R", wire.AUTH_OK)


async def test_plain_tcp_offers_scram_without_binding_and_never_cleartext(sandbox: Sandbox) -> None:
    offered, last = await scram_login(sandbox, tls=False, mechanism="SCRAM-SHA-256")
    assert offered == ["SCRAM-SHA-256"]
    assert (last.type, wire.parse_authentication(last.payload)[0]) == ("R", wire.AUTH_OK)


async def test_a_wrong_channel_binding_is_refused(sandbox: Sandbox) -> None:
    # What a client talking through a man in the middle computes: the hash of some other certificate.
    _, last = await scram_login(sandbox, tls=True, mechanism="SCRAM-SHA-256-PLUS", binding=b"\x01" * 32)
    fields = wire.parse_error_fields(last.payload)
    assert (last.type, fields["C"], fields["M"]) == ("E", "28000", "SCRAM channel binding check failed")


async def test_a_downgraded_channel_binding_is_refused(sandbox: Sandbox) -> None:
    # A client that could bind but was told the server cannot ("y"): someone stripped -PLUS on the way.
    _, last = await scram_login(sandbox, tls=True, mechanism="SCRAM-SHA-256", binding=b"\x01" * 32)
    fields = wire.parse_error_fields(last.payload)
    assert (last.type, fields["C"], fields["M"]) == ("E", "28000", "SCRAM channel binding negotiation error")


async def test_a_wrong_password_by_hand_gets_28p01(sandbox: Sandbox) -> None:
    _, last = await scram_login(sandbox, tls=True, mechanism="SCRAM-SHA-256-PLUS", password="not-it")
    fields = wire.parse_error_fields(last.payload)
    assert (last.type, fields["C"]) == ("E", "28P01")


def test_sasl_initial_response_round_trips() -> None:
    packet = wire.sasl_initial_response("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=abc")
    assert wire.parse_sasl_initial_response(packet[5:]) == (
        "SCRAM-SHA-256-PLUS",
        b"p=tls-server-end-point,,n=,r=abc",
    )
    assert wire.parse_sasl_initial_response(b"SCRAM-SHA-256\0\xff\xff\xff\xff") == ("SCRAM-SHA-256", b"")
    with pytest.raises(wire.ProtocolViolation):
        wire.parse_sasl_initial_response(b"SCRAM-SHA-256\0\0\0\0\x09short")
    assert wire.authentication_sasl(["SCRAM-SHA-256"]) == b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"


async def test_a_client_that_does_not_speak_tls_after_s_is_dropped(sandbox: Sandbox) -> None:
    assert sandbox.project is not None
    endpoint = next(iter(sandbox.project.endpoints.values()))
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.proxy.port)
    writer.write(struct.pack("!ii", 8, wire.SSL_REQUEST_CODE))
    await writer.drain()
    assert await reader.readexactly(1) == b"S"
    writer.write(wire.startup_message({"user": ROLE, "database": DB}))  # plain text where TLS was agreed
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing sent in the clear
    writer.close()
    await asyncio.sleep(0.1)
    assert endpoint.proxy.session_count == 0
    _, last = await scram_login(sandbox, tls=True, mechanism="SCRAM-SHA-256-PLUS")
    assert last.type == "R"  # the endpoint still serves
