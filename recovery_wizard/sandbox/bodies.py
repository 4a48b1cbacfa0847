"""Request bodies as the sandbox's routes read them: one JSON object, or a 400 that says what is wrong."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from recovery_wizard.sandbox.engine import ApiError


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object, as Neon reads it."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body
