"""Deterministic fault injection for the sandbox's API: ``--fault SPEC`` and ``--latency-ms``.

SPEC is ``[METHOD ]PATH[?QUERY][#WHICH]=ACTION[:OPTION[,OPTION]]``:

- METHOD: GET, POST, PATCH, DELETE or ``*`` (the default: any).
- PATH: a glob over the path after ``/api/v2`` (``*`` matches anything, ``/`` included), e.g.
  ``/projects/*/branches`` or ``*/operations/*``.
- QUERY: ``NAME=GLOB[&NAME=GLOB]``: only requests whose query string has each of these parameters, with a
  value the glob matches (other parameters, and their order, do not matter). It names a request by what it
  asks rather than by when it comes: ``GET /projects/*/connection_uri?pooled=true`` is the pooled URI's read
  whichever of several concurrent reads reaches the server first.
- WHICH: which matching requests fail, counted per spec from 1: ``N`` (the Nth only; the default is 1),
  ``N-M`` (the Nth to the Mth), ``N+`` (the Nth and every later one), ``*`` (all).
- ACTION: ``423``, ``429``, ``500``, ``503`` (Neon's error body), ``stall`` (answer only after a long
  wait, past any client timeout), ``drop`` (close the connection mid-answer) or ``malformed`` (200 with a
  body that is not JSON).
- OPTIONs: ``retry-after=S`` (send a ``Retry-After`` header), ``seconds=S`` (how long ``stall`` waits,
  default 120), ``when=before|after``: whether the request is handled before the fault answers. 423, 429
  and 503 default to ``before`` (Neon did not accept it); 500, ``stall``, ``drop`` and ``malformed`` to
  ``after`` (the write happened and its answer was lost, the case a client must reconcile).

Examples: ``POST /projects/*/branches=423``, ``GET */operations/*#2+=503:retry-after=1``,
``POST /projects/*/branches=500`` (the branch is created, the client hears 500),
``GET /projects/*/connection_uri?pooled=false#*=malformed`` (every direct URI read answers garbage).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from recovery_wizard.errors import RecoveryError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACTIONS = ("423", "429", "500", "503", "stall", "drop", "malformed")
_BEFORE_BY_DEFAULT = {"423", "429", "503"}
_SPEC_RE = re.compile(
    r"^\s*(?:(?P<method>GET|POST|PATCH|DELETE|PUT|\*)\s+)?(?P<path>[^#=?\s]+)(?:\?(?P<query>[^#\s]*?))?"
    r"(?:#(?P<which>[^=\s]+))?"
    r"\s*=\s*(?P<action>[a-z0-9]+)(?::(?P<options>\S+))?\s*$",
    re.IGNORECASE,
)


class FaultSpecError(RecoveryError):
    """A ``--fault`` value that does not parse."""


@dataclass
class Fault:
    method: str
    path: str
    first: int
    last: int | None  # None: no end
    action: str
    retry_after: str | None = None
    stall_seconds: float = 120.0
    before: bool = True
    seen: int = field(default=0, compare=False)
    query: dict[str, str] = field(default_factory=dict)  # parameter -> glob its value must match

    def matches(self, method: str, path: str, query: str = "") -> bool:
        return (
            (self.method == "*" or self.method == method)
            and fnmatch.fnmatchcase(path, self.path)
            and self.query_matches(query)
        )

    def query_matches(self, query: str) -> bool:
        """Every parameter the spec names is in the request's query string, with a value its glob matches."""
        if not self.query:
            return True
        asked = parse_qs(query, keep_blank_values=True)
        return all(
            any(fnmatch.fnmatchcase(value, glob) for value in asked.get(name, ()))
            for name, glob in self.query.items()
        )

    def fires(self) -> bool:
        """Count one matching request; True if this one is to fail."""
        self.seen += 1
        return self.seen >= self.first and (self.last is None or self.seen <= self.last)


def parse_fault(spec: str) -> Fault:
    match = _SPEC_RE.match(spec)
    if not match:
        raise FaultSpecError(
            f"--fault {spec!r} does not parse.",
            hint="Write [METHOD ]PATH[?QUERY][#WHICH]=ACTION[:OPTIONS], e.g. 'POST /projects/*/branches#2=503'.",
        )
    action = match["action"].lower()
    if action not in ACTIONS:
        raise FaultSpecError(f"--fault {spec!r}: unknown action {action!r}; use one of {', '.join(ACTIONS)}.")
    first, last = _parse_which(match["which"] or "1", spec)
    fault = Fault((match["method"] or "*").upper(), match["path"], first, last, action)
    fault.query = _parse_query(match["query"], spec)
    fault.before = action in _BEFORE_BY_DEFAULT
    for option in filter(None, (match["options"] or "").split(",")):
        key, _, value = option.partition("=")
        if key == "retry-after" and value:
            fault.retry_after = value
        elif key == "seconds" and _is_number(value):
            fault.stall_seconds = float(value)
        elif key == "when" and value in ("before", "after"):
            fault.before = value == "before"
        else:
            raise FaultSpecError(
                f"--fault {spec!r}: unknown option {option!r}; "
                "use retry-after=S, seconds=S or when=before|after."
            )
    return fault


def _parse_query(query: str | None, spec: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in filter(None, (query or "").split("&")):
        name, sep, glob = pair.partition("=")
        if not name or not sep:
            raise FaultSpecError(f"--fault {spec!r}: the query part {pair!r} is not NAME=GLOB.")
        parsed[name] = glob
    return parsed


def _is_number(value: str) -> bool:
    try:
        return float(value) >= 0
    except ValueError:
        return False


def _parse_which(which: str, spec: str) -> tuple[int, int | None]:
    if which == "*":
        return 1, None
    if which.endswith("+") and which[:-1].isdigit():
        return int(which[:-1]), None
    if "-" in which:
        low, _, high = which.partition("-")
        if low.isdigit() and high.isdigit() and int(low) <= int(high):
            return int(low), int(high)
    elif which.isdigit() and int(which) >= 1:
        return int(which), int(which)
    raise FaultSpecError(f"--fault {spec!r}: #{which} is not N, N-M, N+ or *.")


def _error_body(status: int, request_id: str) -> bytes:
    messages = {
        423: "project already has running conflicting operations, scheduling of new ones is prohibited",
        429: "rate limit exceeded",
        500: "internal server error",
        503: "service temporarily unavailable",
    }
    return json.dumps({"code": "", "message": messages[status], "request_id": request_id}).encode()


class FaultMiddleware:
    """Adds latency to every answer and applies the first fault whose spec fires."""

    def __init__(
        self, app: ASGIApp, faults: list[Fault], latency_ms: float = 0.0, prefix: str = "/api/v2"
    ) -> None:
        self.app = app
        self.faults = faults
        self.latency = latency_ms / 1000
        self.prefix = prefix
        self.injected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.latency:
            await asyncio.sleep(self.latency)
        path = scope["path"].removeprefix(self.prefix)
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        fault = next((f for f in self.faults if f.matches(scope["method"], path, query) and f.fires()), None)
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.injected += 1
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"fault-injected").decode(errors="replace")
        if not fault.before:
            await self.app(scope, receive, _discard)
        if fault.action == "stall":
            await asyncio.sleep(fault.stall_seconds)
            if fault.before:
                await self.app(scope, receive, send)
            else:
                await _respond(send, 200, b"{}", [])
            return
        if fault.action == "drop":
            # Promise a body and send none: the server closes the connection mid-answer.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            raise ConnectionAbortedError("fault injection: connection dropped")
        if fault.action == "malformed":
            await _respond(send, 200, b'{"branch": {"id": "br-', [])
            return
        status = int(fault.action)
        extra = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
        await _respond(send, status, _error_body(status, request_id), extra)


async def _discard(message: Message) -> None:
    """The real answer of a request whose fault is injected after handling: it never reaches the client."""


async def _respond(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
