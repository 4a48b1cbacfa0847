"""PostgreSQL frontend/backend protocol v3 framing: the few messages the endpoint proxy builds or reads.

Pure functions over ``bytes``, no I/O, so they are unit-tested without a server. Only what
:mod:`recovery_wizard.sandbox.proxy` needs is here: the proxy relays everything else as raw bytes.

Layout reminders (all integers big-endian):

- the first packet a client sends has no type byte: ``int32 length`` (including itself), ``int32 code``,
  then for a StartupMessage ``key\\0value\\0...\\0``. The code is the protocol version (``3 << 16 | minor``)
  or one of the magic request codes (SSLRequest, GSSENCRequest, CancelRequest);
- every later message is ``type byte``, ``int32 length`` (including itself, not the type byte), payload.

Text is encoded as UTF-8 with ``surrogateescape``: a client's bytes that are not UTF-8 survive a round
trip through ``str`` unchanged, so the proxy never mangles (or chokes on) what it passes on.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

PROTOCOL_3_0: Final = 3 << 16
SSL_REQUEST_CODE: Final = 80877103
GSSENC_REQUEST_CODE: Final = 80877104
CANCEL_REQUEST_CODE: Final = 80877102

# PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH): anything longer is garbage or an attack.
MAX_STARTUP_PACKET_LENGTH: Final = 10_000
HEADER_LENGTH: Final = 5  # type byte + int32 length

# Authentication request codes (the int32 at the start of an 'R' message).
AUTH_OK: Final = 0
AUTH_CLEARTEXT_PASSWORD: Final = 3
AUTH_MD5_PASSWORD: Final = 5
AUTH_SASL: Final = 10
AUTH_SASL_CONTINUE: Final = 11
AUTH_SASL_FINAL: Final = 12

_INT32: Final = struct.Struct("!i")
_ENCODING: Final = "utf-8"
_ERRORS: Final = "surrogateescape"


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid protocol v3 message."""


# --- encoding -----------------------------------------------------------------------------------------


def cstring(text: str) -> bytes:
    """``text`` as a NUL-terminated string."""
    return text.encode(_ENCODING, _ERRORS) + b"\0"


def message(type_: str, payload: bytes = b"") -> bytes:
    """A typed message: type byte, int32 length (counting itself), payload."""
    return type_.encode("ascii") + _INT32.pack(len(payload) + 4) + payload


def protocol_code(major: int, minor: int) -> int:
    return (major << 16) | minor


def split_protocol_code(code: int) -> tuple[int, int]:
    """``(major, minor)`` of a startup packet's protocol version code."""
    return code >> 16, code & 0xFFFF


def startup_message(params: Mapping[str, str], code: int = PROTOCOL_3_0) -> bytes:
    """A StartupMessage (untyped: length, protocol code, ``key\\0value\\0`` pairs, final NUL)."""
    body = _INT32.pack(code) + b"".join(cstring(k) + cstring(v) for k, v in params.items()) + b"\0"
    return _INT32.pack(len(body) + 4) + body


def error_response(
    sqlstate: str,
    text: str,
    severity: str = "FATAL",
    *,
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    """An ErrorResponse; ``V`` (the non-localized severity) is what libpq 9.6+ keys its behaviour on."""
    fields = [("S", severity), ("V", severity), ("C", sqlstate), ("M", text)]
    if detail:
        fields.append(("D", detail))
    if hint:
        fields.append(("H", hint))
    payload = b"".join(code.encode("ascii") + cstring(value) for code, value in fields) + b"\0"
    return message("E", payload)


def authentication_ok() -> bytes:
    return message("R", _INT32.pack(AUTH_OK))


def authentication_cleartext_password() -> bytes:
    return message("R", _INT32.pack(AUTH_CLEARTEXT_PASSWORD))


def authentication_sasl(mechanisms: Sequence[str]) -> bytes:
    """AuthenticationSASL: the mechanisms offered, most preferred first, ended by an empty name."""
    return message("R", _INT32.pack(AUTH_SASL) + b"".join(cstring(m) for m in mechanisms) + b"\0")


def authentication_sasl_continue(data: bytes) -> bytes:
    return message("R", _INT32.pack(AUTH_SASL_CONTINUE) + data)


def authentication_sasl_final(data: bytes) -> bytes:
    return message("R", _INT32.pack(AUTH_SASL_FINAL) + data)


def parameter_status(name: str, value: str) -> bytes:
    return message("S", cstring(name) + cstring(value))


def negotiate_protocol_version(newest_minor: int, unrecognised: Sequence[str]) -> bytes:
    """NegotiateProtocolVersion: the newest minor version we speak and the ``_pq_.`` options we ignored."""
    payload = _INT32.pack(newest_minor) + _INT32.pack(len(unrecognised))
    return message("v", payload + b"".join(cstring(name) for name in unrecognised))


def ready_for_query(status: str = "I") -> bytes:
    return message("Z", status.encode("ascii"))


def backend_key_data(pid: int, key: int) -> bytes:
    return message("K", _INT32.pack(pid) + _INT32.pack(key))


def command_complete(tag: str) -> bytes:
    return message("C", cstring(tag))


def password_message(password: str) -> bytes:
    return message("p", cstring(password))


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return message("p", cstring(mechanism) + _INT32.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return message("p", data)


def terminate() -> bytes:
    return message("X")


def md5_password(user: str, password: str, salt: bytes) -> str:
    """The answer to AuthenticationMD5Password: ``"md5" + md5(md5(password + user) + salt)``."""
    inner = hashlib.md5((password + user).encode(_ENCODING, _ERRORS)).hexdigest()
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()


# --- decoding -----------------------------------------------------------------------------------------


def read_cstring(data: bytes, offset: int = 0) -> tuple[str, int]:
    """The NUL-terminated string at ``offset`` and the offset just past its NUL."""
    end = data.find(b"\0", offset)
    if end < 0:
        raise ProtocolViolation("unterminated string")
    return data[offset:end].decode(_ENCODING, _ERRORS), end + 1


def read_int32(data: bytes, offset: int = 0) -> int:
    if len(data) < offset + 4:
        raise ProtocolViolation("message too short")
    value: int = _INT32.unpack_from(data, offset)[0]
    return value


@dataclass(frozen=True)
class StartupPacket:
    """A client's first (untyped) packet: a StartupMessage or one of the special requests."""

    code: int
    params: dict[str, str] = field(default_factory=dict)
    # Everything after the code: a CancelRequest's pid and key (which the proxy forwards as they are).
    body: bytes = b""

    @property
    def is_ssl_request(self) -> bool:
        return self.code == SSL_REQUEST_CODE

    @property
    def is_gssenc_request(self) -> bool:
        return self.code == GSSENC_REQUEST_CODE

    @property
    def is_cancel_request(self) -> bool:
        return self.code == CANCEL_REQUEST_CODE

    @property
    def version(self) -> tuple[int, int]:
        return split_protocol_code(self.code)

    def raw(self) -> bytes:
        """The packet exactly as it travels: length, code, body."""
        return _INT32.pack(len(self.body) + 8) + _INT32.pack(self.code) + self.body


def startup_packet_length(header: bytes) -> int:
    """The total length announced by a startup packet's first 4 bytes, checked against PostgreSQL's limits."""
    length = read_int32(header)
    if length < 8 or length > MAX_STARTUP_PACKET_LENGTH:
        raise ProtocolViolation(f"invalid length of startup packet: {length}")
    return length


def parse_startup_packet(body: bytes) -> StartupPacket:
    """Parse what follows a startup packet's length: the code, and for a StartupMessage its parameters."""
    code = read_int32(body)
    rest = body[4:]
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE):
        if code == CANCEL_REQUEST_CODE and len(rest) < 8:
            raise ProtocolViolation("CancelRequest too short")
        return StartupPacket(code, {}, rest)
    return StartupPacket(code, _parse_startup_params(rest), rest)


def _parse_startup_params(data: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    offset = 0
    while offset < len(data) and data[offset] != 0:
        name, offset = read_cstring(data, offset)
        if offset >= len(data):
            raise ProtocolViolation(f"startup parameter {name!r} has no value")
        params[name], offset = read_cstring(data, offset)
    if offset >= len(data):
        # PostgreSQL requires the list's final NUL.
        raise ProtocolViolation("startup packet is missing its terminator")
    return params


def parse_authentication(payload: bytes) -> tuple[int, bytes]:
    """An 'R' message: the request code and what follows it (MD5 salt, SASL data...)."""
    return read_int32(payload), payload[4:]


def parse_sasl_mechanisms(data: bytes) -> list[str]:
    """The mechanism list of AuthenticationSASL: strings ended by an empty one."""
    names: list[str] = []
    offset = 0
    while offset < len(data) and data[offset] != 0:
        name, offset = read_cstring(data, offset)
        names.append(name)
    return names


def parse_sasl_initial_response(payload: bytes) -> tuple[str, bytes]:
    """A SASLInitialResponse's mechanism and its initial data (``int32`` length, -1 for none)."""
    mechanism, offset = read_cstring(payload)
    length = read_int32(payload, offset)
    data = payload[offset + 4 :]
    if length == -1 and not data:
        return mechanism, b""
    if length != len(data):
        raise ProtocolViolation(f"SASL initial response length {length} does not match its {len(data)} bytes")
    return mechanism, data


def parse_error_fields(payload: bytes) -> dict[str, str]:
    """ErrorResponse/NoticeResponse fields by code: ``S`` severity, ``C`` SQLSTATE, ``M`` message..."""
    fields: dict[str, str] = {}
    offset = 0
    while offset < len(payload) and payload[offset] != 0:
        code = chr(payload[offset])
        fields[code], offset = read_cstring(payload, offset + 1)
    return fields


def parse_parameter_status(payload: bytes) -> tuple[str, str]:
    name, offset = read_cstring(payload)
    value, _ = read_cstring(payload, offset)
    return name, value


def parse_command_tag(payload: bytes) -> str:
    return read_cstring(payload)[0]


# --- stream splitting ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    payload: bytes
    # Where the message ends in the chunk that completed it (MessageSplitter.feed): lets a relay write a
    # chunk up to a given message. Not part of the message's value.
    end: int = field(default=0, compare=False, repr=False)


class MessageSplitter:
    """Find typed messages in a byte stream fed in arbitrary chunks.

    Only messages whose type is in ``wanted`` (all of them when ``None``) are returned, and only those are
    ever buffered: the others are skipped by length, so a multi-megabyte DataRow that is not wanted costs
    nothing but a counter however it is split. A wanted message split across chunks is assembled in a
    ``bytearray`` (amortised linear, however small the chunks).
    """

    def __init__(self, wanted: Iterable[str] | None = None) -> None:
        self._wanted: frozenset[int] | None = (
            None if wanted is None else frozenset(t.encode("ascii")[0] for t in wanted)
        )
        self._skip = 0  # bytes left of an unwanted message that straddles chunks
        self._pending = bytearray()  # a partial header, or a partial wanted message
        self._pending_total = 0  # full length of the pending wanted message, once its header is known

    @property
    def at_boundary(self) -> bool:
        """Whether everything fed so far ends exactly at a message boundary."""
        return not self._skip and not self._pending

    def feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        pos = self._take_skip(data, 0)
        if self._pending:
            pos = self._fill_pending(data, pos, out)
        n = len(data)
        wanted = self._wanted
        while pos < n:
            if n - pos < HEADER_LENGTH:
                self._pending += data[pos:]
                break
            type_byte = data[pos]
            end = pos + 1 + self._length_at(data, pos + 1)
            if wanted is not None and type_byte not in wanted:
                if end > n:
                    self._skip = end - n
                    break
            elif end > n:
                self._pending += data[pos:]
                self._pending_total = end - pos
                break
            else:
                out.append(Message(chr(type_byte), data[pos + HEADER_LENGTH : end], end))
            pos = end
        return out

    def _take_skip(self, data: bytes, pos: int) -> int:
        step = min(self._skip, len(data) - pos)
        self._skip -= step
        return pos + step

    def _fill_pending(self, data: bytes, pos: int, out: list[Message]) -> int:
        """Complete the pending header/message from ``data``; returns where the rest of ``data`` starts."""
        if len(self._pending) < HEADER_LENGTH:
            take = min(HEADER_LENGTH - len(self._pending), len(data) - pos)
            self._pending += data[pos : pos + take]
            pos += take
            if len(self._pending) < HEADER_LENGTH:
                return pos
            type_byte = self._pending[0]
            total = 1 + self._length_at(bytes(self._pending), 1)
            if self._wanted is not None and type_byte not in self._wanted:
                self._skip = total - HEADER_LENGTH
                self._pending.clear()
                return self._take_skip(data, pos)
            self._pending_total = total
        take = min(self._pending_total - len(self._pending), len(data) - pos)
        self._pending += data[pos : pos + take]
        pos += take
        if len(self._pending) == self._pending_total:
            out.append(Message(chr(self._pending[0]), bytes(self._pending[HEADER_LENGTH:]), pos))
            self._pending.clear()
            self._pending_total = 0
        return pos

    @staticmethod
    def _length_at(data: bytes, offset: int) -> int:
        length: int = _INT32.unpack_from(data, offset)[0]
        if length < 4:
            raise ProtocolViolation(f"invalid message length {length}")
        return length
