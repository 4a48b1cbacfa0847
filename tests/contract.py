"""Validate real httpx requests and responses against Neon's OpenAPI spec (``shared/neon-api/openapi.yaml``).

openapi-core has adapters for requests, aiohttp, starlette… but none for httpx, so this module supplies the
two small protocol classes it needs. Requests are matched as if sent to Neon's own server URL, so traffic to
the sandbox (any host, any port) is checked against the same paths.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

SPEC_ENV = "RECOVERY_WIZARD_NEON_SPEC"
NEON_HOST = "https://console.neon.tech"
NEON_PREFIX = "/api/v2"


def spec_path() -> Path | None:
    """The spec: ``$RECOVERY_WIZARD_NEON_SPEC``, else ``../shared/neon-api/openapi.yaml`` beside the repo."""
    override = os.environ.get(SPEC_ENV)
    candidates = [Path(override)] if override else []
    repo = Path(__file__).resolve().parent.parent
    candidates.append(repo.parent / "shared" / "neon-api" / "openapi.yaml")
    return next((p for p in candidates if p.is_file()), None)


SKIP_REASON = (
    "Neon's OpenAPI spec is not here (expected ../shared/neon-api/openapi.yaml beside the repository, "
    f"or ${SPEC_ENV}); contract checks need it"
)


@functools.cache
def spec_dict() -> dict[str, Any]:
    """The spec as plain data; skips the calling test when the file is absent."""
    path = spec_path()
    if path is None:
        pytest.skip(SKIP_REASON)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        data: dict[str, Any] = _string_keys(yaml.load(fh, Loader=loader))
    return data


def operation_ids() -> set[str]:
    return {
        op["operationId"]
        for item in spec_dict()["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }


@functools.cache
def load_spec() -> Any:
    """The spec as an ``openapi_core.OpenAPI``; skips the calling test when the file is absent."""
    from openapi_core import Config, OpenAPI

    # The spec is Neon's published file, used unmodified; checking the spec itself costs seconds per run.
    return OpenAPI.from_dict(spec_dict(), config=Config(spec_validator_cls=None))


def _string_keys(node: Any) -> Any:
    """YAML reads response codes (``200:``) as ints; the OpenAPI tooling expects JSON's string keys."""
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


def _neon_path(url: httpx.URL, base_path: str) -> str:
    # The raw (still percent-encoded) path: a role named "app/ro" is one segment, "app%2Fro".
    path = url.raw_path.decode("ascii").split("?", 1)[0]
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    return NEON_PREFIX + path


class HttpxOpenAPIRequest:
    """openapi-core's ``Request`` protocol over an ``httpx.Request``."""

    def __init__(self, request: httpx.Request, base_path: str = NEON_PREFIX) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.request = request
        query = parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )
        self._path = _neon_path(request.url, base_path)

    @property
    def host_url(self) -> str:
        return NEON_HOST

    @property
    def path(self) -> str:
        return self._path

    @property
    def full_url_pattern(self) -> str:
        return NEON_HOST + self._path

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        content = self.request.content
        return content or None

    @property
    def content_type(self) -> str:
        return str(self.request.headers.get("Content-Type", "application/json"))


class HttpxOpenAPIResponse:
    """openapi-core's ``Response`` protocol over an ``httpx.Response``."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @property
    def data(self) -> bytes:
        return self.response.content

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return str(self.response.headers.get("Content-Type", "application/json"))

    @property
    def headers(self) -> Any:
        from werkzeug.datastructures import Headers

        return Headers(dict(self.response.headers))


class ContractError(AssertionError):
    """A request or response that Neon's spec does not allow."""


def _explain(exc: Exception) -> str:
    """openapi-core's messages repeat the whole value; keep the schema errors, which say what is wrong."""
    seen: list[str] = []
    node: BaseException | None = exc
    while node is not None:
        for error in getattr(node, "schema_errors", ()) or ():
            path = "/".join(str(p) for p in getattr(error, "absolute_path", ()))
            seen.append(f"{path or '<root>'}: {error.message}")
        node = node.__cause__
    return "; ".join(seen) or f"{type(exc).__name__}: {exc}"[:500]


def validate_request(request: httpx.Request, base_path: str = NEON_PREFIX) -> None:
    """Raise ContractError if the request (path, method, query, body, auth) does not match the spec."""
    try:
        load_spec().validate_request(HttpxOpenAPIRequest(request, base_path))
    except Exception as exc:
        if isinstance(exc, pytest.skip.Exception):
            raise
        raise ContractError(f"request {request.method} {request.url.path}: {_explain(exc)}") from None


def validate_response(request: httpx.Request, response: httpx.Response, base_path: str = NEON_PREFIX) -> None:
    """Raise ContractError if the response (status, body) is not what the spec says for that request."""
    try:
        load_spec().validate_response(HttpxOpenAPIRequest(request, base_path), HttpxOpenAPIResponse(response))
    except Exception as exc:
        if isinstance(exc, pytest.skip.Exception):
            raise
        raise ContractError(
            f"response {response.status_code} to {request.method} {request.url.path}: {_explain(exc)}"
        ) from None
