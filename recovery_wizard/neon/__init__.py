"""Async Neon API v2 client: one httpx.AsyncClient, typed models, an error tree, retries, an operation waiter.

Never imports ``recovery_wizard.recovery`` or any UI.
"""

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
