"""The Neon client's error tree.

Every failure of a Neon request becomes one of these, built in one place (``transport.py``). Each keeps the
HTTP status, Neon's ``message``, ``code`` and ``request_id`` (quote it to Neon support), and the request's
method and path, so a UI can say what failed, why, and what to try next.

    NeonError
    ├── NeonHTTPError            any error status; subclasses by status:
    │   ├── UnauthorizedError    401  the API key was refused
    │   ├── ForbiddenError       403
    │   ├── NotFoundError        404
    │   ├── ConflictError        409
    │   ├── PreconditionFailedError 412 (e.g. reveal_password when the project stores no passwords)
    │   ├── LockedError          423  another operation runs on the project
    │   ├── RateLimitedError     429
    │   └── ServerError          5xx
    ├── TransportError           no HTTP answer: timeout, reset, DNS, refused
    ├── BadResponseError         an answer that is not JSON or not the expected shape
    ├── OutcomeUnknownError      a write may or may not have happened: reconcile before resending
    ├── OperationFailedError     an operation ended failed/error/cancelled
    ├── OperationTimeoutError    operations did not finish before the waiter's deadline
    ├── BadAPIURLError           the API URL is refused before any request (plain http:// off this machine)
    └── SnapshotRefusedError     a snapshot request Neon refuses, or we refuse before sending it:
        ├── ChildBranchSnapshotError  snapshots (and schedules) are for root branches only
        └── SnapshotQuotaError        the project holds as many snapshots as its plan allows
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from recovery_wizard.errors import RecoveryError

if TYPE_CHECKING:
    from recovery_wizard.neon.models import Operation


class NeonError(RecoveryError):
    """A Neon API call failed. ``status`` is None when no HTTP answer arrived."""

    status: int | None = None
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        neon_message: str = "",
        code: str = "",
        request_id: str = "",
        attempts: int = 1,
        hint: str = "",
    ) -> None:
        self.method = method
        self.path = path
        if status is not None:
            self.status = status
        self.neon_message = neon_message
        self.code = code
        self.request_id = request_id
        self.attempts = attempts
        full = message
        if request_id:
            full += f" (request id {request_id})"
        super().__init__(full, hint=hint or self.default_hint)

    @property
    def request(self) -> str:
        """``"POST /projects/p/branches"``: which call failed, for messages and journals."""
        return f"{self.method} {self.path}".strip()


class NeonHTTPError(NeonError):
    """Neon answered with an error status."""


class UnauthorizedError(NeonHTTPError):
    status = 401
    default_hint = (
        "Check NEON_API_KEY (or --api-key): create a key in the Neon Console under Account → API keys."
    )


class ForbiddenError(NeonHTTPError):
    status = 403
    default_hint = (
        "The key has no access to this resource: use a key of the organization that owns the project."
    )


class NotFoundError(NeonHTTPError):
    status = 404
    default_hint = "Check the project and branch ids (`recovery-wizard branches` lists them)."


class ConflictError(NeonHTTPError):
    status = 409


class PreconditionFailedError(NeonHTTPError):
    status = 412


class LockedError(NeonHTTPError):
    status = 423
    default_hint = "Another operation is running on the project; wait for it to finish, then try again."


class RateLimitedError(NeonHTTPError):
    status = 429
    default_hint = "Neon's rate limit was reached; wait a minute, then try again."


class ServerError(NeonHTTPError):
    status = 500
    default_hint = "Neon had a server error; check https://neonstatus.com and try again."


class TransportError(NeonError):
    """No HTTP answer: timeout, connection reset or refused, DNS failure."""

    default_hint = "Check the network and NEON_API_URL, then try again."


class BadResponseError(NeonError):
    """The answer was not JSON, or not the shape the API promises."""


class BadAPIURLError(NeonError):
    """The API URL is unusable or unsafe for the key (``http://`` to another host); nothing was sent."""


class OutcomeUnknownError(NeonError):
    """A write was sent and its answer lost (5xx or transport error): it may or may not have happened.

    Resending could do it twice (two restore branches). The caller reconciles first: e.g. list branches and
    look for the name it asked for.
    """

    default_hint = "Check whether the change happened (e.g. list branches by name) before trying again."


class OperationFailedError(NeonError):
    """A Neon operation ended ``failed``, ``error`` or ``cancelled``."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        reason = operation.error or "no reason given"
        super().__init__(
            f"Neon operation {operation.action} ({operation.id}) ended {operation.status}: {reason}",
            hint="See the project's operations in the Neon Console; retry the step once the cause is clear.",
        )


class OperationTimeoutError(NeonError):
    """Operations were still in progress when the waiter's deadline passed."""

    def __init__(self, pending: list[Operation], waited: float) -> None:
        self.pending = pending
        names = ", ".join(f"{op.action} ({op.id}, {op.status})" for op in pending)
        super().__init__(
            f"Neon operations still running after {waited:.0f} s: {names}",
            hint="They may still finish: check the Neon Console, then resume the run.",
        )


class SnapshotRefusedError(NeonError):
    """A snapshot or backup schedule request was refused (by Neon, or by the client before sending it)."""


class ChildBranchSnapshotError(SnapshotRefusedError):
    """Neon takes snapshots, and keeps backup schedules, of root branches only."""

    default_hint = (
        "Snapshot the root branch it was made from (`recovery-wizard branches` marks roots), or take a local "
        "file backup of this branch: `recovery-wizard backup --to file --branch …`."
    )


class SnapshotQuotaError(SnapshotRefusedError):
    """The project holds as many snapshots as its plan allows."""

    default_hint = (
        "Delete snapshots you no longer need (`recovery-wizard backup list` shows them, oldest last), give "
        "scheduled ones a shorter retention, or take a local file backup instead: `backup --to file`."
    )


_BY_STATUS: dict[int, type[NeonHTTPError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    423: LockedError,
    429: RateLimitedError,
}


def error_class_for(status: int) -> type[NeonHTTPError]:
    """The error class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, NeonHTTPError)
