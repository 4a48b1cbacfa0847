"""TLS for the sandbox's endpoints: a certificate authority made per sandbox, and the server's certificate.

Neon accepts TLS only, and every connection string it gives out says ``sslmode=require&channel_binding=require``.
So each sandbox makes its own CA (with ``trustme``, a library made for exactly this: throwaway certificates
for tests) and one server certificate for ``127.0.0.1``, ``::1`` and ``localhost``, the hosts its endpoints
listen on. The CA's PEM is written to a file, so a client can check the server for real
(``sslmode=verify-full&sslrootcert=<that file>``); ``sslmode=require`` works without it, as on Neon.

The CA's private key never leaves memory: the file holds only its certificate. The server's key reaches
disk only for the instant :mod:`ssl` loads it (``SSLContext.load_cert_chain`` reads files; trustme writes a
private temporary file and deletes it at once).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

CA_FILE_NAME: Final = "ca.pem"
# The names the endpoints answer on: they listen on loopback and advertise 127.0.0.1:PORT.
SERVER_NAMES: Final = ("127.0.0.1", "::1", "localhost")
# Channel binding type of SCRAM-SHA-256-PLUS, the only one PostgreSQL (and so libpq) implements.
CHANNEL_BINDING: Final = "tls-server-end-point"


@dataclass(frozen=True)
class SandboxTls:
    """One sandbox's TLS material: the server context for its endpoints and the CA that signed it."""

    context: ssl.SSLContext = field(repr=False)
    ca_pem: bytes  # the CA certificate (public): what a client trusts for verify-ca / verify-full
    server_cert_pem: str  # the certificate the endpoints present, for tls-server-end-point binding
    ca_path: Path | None = None  # where ca_pem was written, if anywhere

    @classmethod
    def create(cls, directory: Path | None = None) -> SandboxTls:
        """A new CA and server certificate; the CA's PEM written to ``directory/ca.pem`` when given."""
        import trustme  # lazy: pulls in cryptography, which only a running sandbox needs

        ca = trustme.CA(organization_name="recovery-wizard sandbox", organization_unit_name="sandbox CA")
        server = ca.issue_cert(*SERVER_NAMES)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        server.configure_cert(context)
        ca_pem = ca.cert_pem.bytes()
        ca_path = None
        if directory is not None:
            ca_path = directory / CA_FILE_NAME
            ca.cert_pem.write_to_path(str(ca_path))
        return cls(context, ca_pem, server.cert_chain_pems[0].bytes().decode("ascii"), ca_path)

    @property
    def channel_binding(self) -> tuple[str, str]:
        """What :meth:`scramp.ScramMechanism.make_server` takes to check a client's channel binding."""
        return CHANNEL_BINDING, self.server_cert_pem
