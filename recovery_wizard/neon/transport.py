"""The one choke point every Neon request goes through: auth, retries, error mapping, decoding.

What is safe to send again (Neon's spec, "General Error"):

- GET: always, after a 5xx or a transport error: reading twice changes nothing.
- Any method after 423, 429 or 503: Neon did not accept the request.
- Any method after a connection that never opened (DNS failure, refused, connect timeout): the request bytes
  never left this machine, so Neon cannot have acted on them.
- A write (POST/PATCH/DELETE) after any other 5xx, a read timeout or a dropped connection: NOT safe. Neon may
  have acted; resending could create a second restore branch. We raise :class:`OutcomeUnknownError` and let
  the caller reconcile (find the branch by name) before deciding.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

import httpx
import msgspec

from recovery_wizard.neon.apiurl import API_PATH, display_url, missing_api_v2
from recovery_wizard.neon.errors import (
    BadResponseError,
    NeonError,
    NeonHTTPError,
    OutcomeUnknownError,
    TransportError,
    UnauthorizedError,
    error_class_for,
)
from recovery_wizard.neon.retry import RETRY_ANY_METHOD, RetryPolicy, parse_retry_after
from recovery_wizard.redact import Secret, redact

log = logging.getLogger("recovery_wizard.neon")

# httpcore asks which async library runs it (`import sniffio`, optional: without it, asyncio) each time it sets
# up a lock or an event, some 80 times in one restore. Without sniffio installed, each is a failed import that
# searches sys.path again: 0.1-0.4 ms apiece on the requests' path. A None entry fails it at once, as it would
# fail anyway; set only when sniffio is not installed.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

DEFAULT_API_URL = "https://console.neon.tech/api/v2"

T = TypeVar("T")
Params = Mapping[str, str | int | bool | None]

# Failures where the request never reached Neon: safe to resend whatever the method.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class BearerAuth(httpx.Auth):
    """Adds the API key at send time, so it lives in no dict we build and no default header we share.

    httpx masks ``Authorization`` in its ``Headers`` repr, so a request in a traceback shows no key.
    """

    def __init__(self, api_key: Secret) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(****)"


def http_client(base_url: str, *, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """The httpx client for the API at ``base_url``, with the timeouts every command uses.

    httpx builds its TLS context when the client is made: certifi's ~150 root certificates parsed, 20-70 ms
    before the first request, for nothing when the API is the sandbox's plain ``http://`` on loopback (the
    only plain URL :func:`~recovery_wizard.neon.apiurl.check_api_url` lets through). There the client gets
    an empty context instead: it trusts no certificate, so an https connection through it fails rather than
    going unverified. With a proxy in the environment (which may be https) it keeps httpx's own.
    """
    import ssl
    from urllib.parse import urlsplit
    from urllib.request import getproxies

    timeout = httpx.Timeout(30.0, connect=10.0)
    proxied = any(getproxies().get(scheme) for scheme in ("http", "https", "all"))
    if urlsplit(base_url).scheme == "http" and not proxied:
        trusts_nothing = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
        return httpx.AsyncClient(headers=headers, timeout=timeout, verify=trusts_nothing)
    return httpx.AsyncClient(headers=headers, timeout=timeout)


def clean_api_key(api_key: str | Secret) -> Secret:
    """The key without the whitespace around it (a pasted or ``$(cat key)`` newline); refused if unusable.

    A trailing newline in an ``Authorization`` header is refused by httpx before anything is sent, which
    used to look like a network error and was retried for half a minute. Whitespace inside a key cannot be
    part of a Neon key: refused at once, by name, never echoing the value.
    """
    raw = api_key.reveal() if isinstance(api_key, Secret) else str(api_key)
    key = raw.strip()
    if not key:
        raise UnauthorizedError("No Neon API key was given.", hint=UnauthorizedError.default_hint)
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise UnauthorizedError(
            "The Neon API key holds a space or a control character, so it cannot be a Neon key.",
            hint="Copy the key again from the Neon Console (Account settings → API keys), as one word.",
        )
    return api_key if key == raw and isinstance(api_key, Secret) else Secret(key)


@dataclass(frozen=True)
class RetryNotice:
    """Told to ``on_retry`` before each wait, so a UI can say "Neon is busy, retrying in 4 s"."""

    method: str
    path: str
    attempt: int
    delay: float
    reason: str


def _describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "the request timed out"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect (DNS failure or connection refused)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was dropped"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "the connection was reset"
    return "a network error"


class Transport:
    """Sends one logical request, retrying where it is safe, and returns decoded JSON or raises NeonError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str | Secret,
        *,
        base_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.http = http
        self._auth = BearerAuth(clean_api_key(api_key))
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.on_retry = on_retry
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"Transport(base_url={display_url(self.base_url)!r})"

    @overload
    async def request(
        self, method: str, path: str, model: type[T], *, params: Params | None = ..., json: Any = ...
    ) -> T: ...

    @overload
    async def request(
        self, method: str, path: str, model: None = ..., *, params: Params | None = ..., json: Any = ...
    ) -> None: ...

    async def request(
        self,
        method: str,
        path: str,
        model: type[T] | None = None,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> T | None:
        """Send ``method path``; decode a 2xx body into ``model`` (None for an empty body)."""
        method = method.upper()
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        request_id = str(uuid.uuid4())
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                self.requests_sent += 1
                response = await self.http.request(
                    method,
                    self.base_url + path,
                    params=query,
                    json=json,
                    headers={"Accept": "application/json", "X-Request-ID": request_id},
                    auth=self._auth,
                    timeout=self.timeout,
                )
            except httpx.TransportError as exc:
                error: NeonError = TransportError(
                    f"No answer from Neon for {method} {path}: {_describe_transport_error(exc)}.",
                    method=method,
                    path=path,
                    request_id=request_id,
                    attempts=attempt,
                )
                if method != "GET" and not isinstance(exc, _NEVER_SENT):
                    raise self._outcome_unknown(error) from None
                reason = _describe_transport_error(exc)
                retry_after = None
            else:
                if response.is_success:
                    return self._decode(response, model, method, path)
                error = self._http_error(response, method, path, attempt)
                status = response.status_code
                if status in RETRY_ANY_METHOD or (status >= 500 and method == "GET"):
                    reason = f"HTTP {status}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), self.wall_clock())
                elif status >= 500:
                    raise self._outcome_unknown(error) from None
                else:
                    raise error from None

            delay = self.retry.delay(attempt, retry_after, self.rng)
            elapsed = self.clock() - started
            if attempt >= self.retry.max_attempts or elapsed + delay > self.retry.deadline:
                error.attempts = attempt
                raise error from None
            log.info("%s %s: %s; retry %d in %.1f s", method, path, reason, attempt, delay)
            if self.on_retry is not None:
                self.on_retry(RetryNotice(method, path, attempt, delay, reason))
            await self.sleep(delay)

    def _outcome_unknown(self, cause: NeonError) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"The outcome of {cause.request} is unknown ({cause}); it may or may not have taken effect, "
            "so it was not sent again.",
            method=cause.method,
            path=cause.path,
            status=cause.status,
            neon_message=cause.neon_message,
            code=cause.code,
            request_id="",  # already part of the cause's message
            attempts=cause.attempts,
        )

    def _http_error(self, response: httpx.Response, method: str, path: str, attempt: int) -> NeonHTTPError:
        status = response.status_code
        neon_message, code, request_id = "", "", ""
        neon_shaped = False
        try:
            body = response.json()
        except ValueError:
            # Not JSON (a proxy's HTML page): keep a short, scrubbed excerpt as the message.
            neon_message = " ".join(response.text.split())[:200]
        else:
            neon_shaped = isinstance(body, dict) and "message" in body
            if isinstance(body, dict):
                neon_message = str(body.get("message") or "")
                code = str(body.get("code") or "")
                request_id = str(body.get("request_id") or "")
        request_id = request_id or response.headers.get("X-Request-ID", "")
        neon_message = redact(neon_message)
        cls = error_class_for(status)
        if cls is UnauthorizedError:
            text = "The API key was refused (HTTP 401)"
        else:
            text = f"Neon refused {method} {path} with HTTP {status}"
        if neon_message:
            text += f": {neon_message}"
        hint = ""
        if status == 404 and (missing_api_v2(self.base_url) or not neon_shaped):
            # Every path 404s when the base URL lacks /api/v2 (or is not Neon's API at all); Neon's own
            # 404 for a missing project or branch is JSON with a message. Blame the URL, not the ids.
            hint = (
                f"The API URL {display_url(self.base_url)!r} is probably missing {API_PATH}: Neon's API is "
                f"https://console.neon.tech{API_PATH}. Fix NEON_API_URL (or --api-url) and try again."
                if missing_api_v2(self.base_url)
                else f"The API URL {display_url(self.base_url)!r} does not look like Neon's API (its 404 is "
                "not Neon's): check NEON_API_URL (or --api-url)."
            )
        return cls(
            text,
            hint=hint,
            method=method,
            path=path,
            status=status,
            neon_message=neon_message,
            code=code,
            request_id=request_id,
            attempts=attempt,
        )

    def _decode(self, response: httpx.Response, model: type[T] | None, method: str, path: str) -> T | None:
        if model is None or response.status_code == 204:
            return None
        if not response.content:
            # An empty 200 where a body was promised would crash the caller later: say what happened now.
            raise BadResponseError(
                f"Neon sent an empty answer to {method} {path} (HTTP {response.status_code}).",
                method=method,
                path=path,
                status=response.status_code,
                request_id=response.headers.get("X-Request-ID", ""),
            )
        try:
            return msgspec.json.decode(response.content, type=model)
        except msgspec.ValidationError as exc:
            problem = f"an answer of the wrong shape ({exc})"
        except msgspec.DecodeError:
            problem = "an answer that is not JSON"
        raise BadResponseError(
            f"Neon sent {problem} to {method} {path} (HTTP {response.status_code}).",
            method=method,
            path=path,
            status=response.status_code,
            request_id=response.headers.get("X-Request-ID", ""),
            hint="Check that NEON_API_URL is the Neon API (…/api/v2); if so, report it with the request id.",
        )


def _query_value(value: str | int | bool) -> str | int:
    # httpx would send True as "true" anyway; be explicit because Neon parses lowercase booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
