"""Async Neon API v2 client: one httpx.AsyncClient, typed models, an error tree, retries, an operation waiter.

Never imports ``recovery_wizard.recovery`` or any UI.

Its names load on first use (PEP 562): ``from recovery_wizard.neon.errors import NeonError`` must not pay for
httpx and msgspec, which the client needs and a first screen does not.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recovery_wizard.neon.client import UNSET, NeonClient, format_timestamp
    from recovery_wizard.neon.errors import (
        BadResponseError,
        ChildBranchSnapshotError,
        ConflictError,
        ForbiddenError,
        LockedError,
        NeonError,
        NeonHTTPError,
        NotFoundError,
        OperationFailedError,
        OperationTimeoutError,
        OutcomeUnknownError,
        PreconditionFailedError,
        RateLimitedError,
        ServerError,
        SnapshotQuotaError,
        SnapshotRefusedError,
        TransportError,
        UnauthorizedError,
    )
    from recovery_wizard.neon.retry import RetryPolicy
    from recovery_wizard.neon.transport import DEFAULT_API_URL, RetryNotice
    from recovery_wizard.neon.waiter import WaitPolicy, WaitProgress

__all__ = [
    "DEFAULT_API_URL",
    "UNSET",
    "BadResponseError",
    "ChildBranchSnapshotError",
    "ConflictError",
    "ForbiddenError",
    "LockedError",
    "NeonClient",
    "NeonError",
    "NeonHTTPError",
    "NotFoundError",
    "OperationFailedError",
    "OperationTimeoutError",
    "OutcomeUnknownError",
    "PreconditionFailedError",
    "RateLimitedError",
    "RetryNotice",
    "RetryPolicy",
    "ServerError",
    "SnapshotQuotaError",
    "SnapshotRefusedError",
    "TransportError",
    "UnauthorizedError",
    "WaitPolicy",
    "WaitProgress",
    "format_timestamp",
]

_HOME = {
    "UNSET": "client",
    "NeonClient": "client",
    "format_timestamp": "client",
    "RetryPolicy": "retry",
    "DEFAULT_API_URL": "transport",
    "RetryNotice": "transport",
    "WaitPolicy": "waiter",
    "WaitProgress": "waiter",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME.get(name, 'errors')}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
