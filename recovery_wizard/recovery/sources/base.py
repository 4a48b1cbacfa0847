"""What every restore source is: a way to make a Neon branch that holds the data to bring back.

A source has one job, ``materialize``: make (or, after a crash, find and prove) a branch with the data, and
describe itself for the plan, the why panel and the incident record. What is done with that branch (point
the app at it, put it in the damaged branch's place, merge rows back) is an apply strategy's business
(``recovery/apply/``); the runner sequences both without knowing which kind it drives.

The journal keeps ``to_dict()`` in the plan, resolved (a snapshot's id, name and time, never "latest"), so
``--resume`` rebuilds exactly the source the run began with (:func:`recovery.sources.source_from_dict`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from recovery_wizard.neon.errors import BadResponseError, OutcomeUnknownError
from recovery_wizard.neon.models import Branch, Endpoint, EndpointType, Operation
from recovery_wizard.recovery.outcome import StepFailedError

if TYPE_CHECKING:
    from pathlib import Path

    from recovery_wizard.recovery.plan import Plan
    from recovery_wizard.recovery.runner import Runner, RunResult
    from recovery_wizard.redact import Secret

# How many times to ask for the restore branch when each answer is lost and the branch never appears.
CREATE_ATTEMPTS = 2


@dataclass(frozen=True)
class Materialized:
    """The branch a source made: where the data to bring back now lives."""

    branch: Branch
    endpoint_id: str | None
    # True while the branch is an un-finalized preview (a snapshot restore not yet put in place).
    preview: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # more for the journal's ``done`` record


@dataclass(frozen=True)
class Made:
    """What Neon answered to a request that makes a branch: the branch, its computes, what to wait for."""

    branch: Branch
    endpoints: list[Endpoint]
    operations: list[Operation]


class Source(ABC):
    """A restore source. Subclasses: ``history`` (Neon history at a moment), ``snapshot`` (a Neon snapshot)."""

    kind: ClassVar[str]
    # In place, the data first becomes a branch of its own, verified beside the damaged one and only then
    # put in its place (True: a snapshot, finalized); or Neon overwrites the damaged branch directly, so
    # the damaged data is measured first (False: history).
    previews_in_place: ClassVar[bool]

    # --- describing itself ---------------------------------------------------------------------------

    @abstractmethod
    def describe(self, plan: Plan) -> str:
        """Where the data comes from, in words: ``'main' as it was at …`` / ``the snapshot 'x' of …``."""

    @abstractmethod
    def why(self) -> str:
        """For the why panel: why this source holds the data, and what it cannot do."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """For the journal's plan (``kind`` plus everything resolved) and the ``--json`` result."""

    def record_lines(self, plan: Plan) -> list[str]:
        """The incident record's lines about the source (Markdown list items)."""
        return [f"- **Source**: {self.describe(plan)}"]

    @abstractmethod
    def restore_lines(self, plan: Plan) -> list[str]:
        """The plan's lines for the restore step, for ``plan.strategy`` (and a drill)."""

    def apply_lines(self, plan: Plan) -> list[str]:
        """The plan's lines for what happens after the verification (a finalize), if anything."""
        return []

    @abstractmethod
    def undo_in_place(self, result: RunResult) -> str:
        """How to go back after an in-place restore from this source (one Markdown list item)."""

    # --- doing its job -------------------------------------------------------------------------------

    @abstractmethod
    def begin_data(self, plan: Plan, name: str) -> dict[str, Any]:
        """The journal's ``begin`` record of the restore step: what a resumed run looks for."""

    @abstractmethod
    async def make(self, run: Runner, name: str) -> Made:
        """Ask Neon once for the branch ``name`` holding the data (no retry, no reconcile: the caller's)."""

    @abstractmethod
    async def why_not_ours(self, run: Runner, branch_id: str) -> tuple[Branch, list[str]]:
        """The branch as Neon has it now, and every reason it is not provably this run's (none: it is)."""

    async def check_restored(self, run: Runner, restored_url: Secret) -> dict[str, Any] | None:
        """More to verify on the restored branch than the side-by-side (a file's own counts); None: nothing.

        The answer's ``ok`` counts in the verification's verdict; it is kept in the verification's
        ``source_counts``."""
        return None

    def proof(self, workdir: Path) -> tuple[Path, dict[str, Any]] | None:
        """Where a drill of this source records its proof (``backup list`` shows it), and what identifies
        the backup there (``file``/``sha256`` or ``snapshot_id``); None: nothing to prove."""
        return None

    async def put_in_place(self, run: Runner) -> None:
        """In place: make the damaged branch hold the data (history: Neon's restore; snapshot: finalize)."""
        raise StepFailedError("restore", f"A {self.kind} source cannot be restored in place.")

    async def materialize(
        self, run: Runner, name: str, *, read_write: bool, adopted: Branch | None = None
    ) -> Materialized:
        """Make the branch ``name`` (or adopt the one a lost answer made), wait for it, and find a compute.

        ``read_write``: the app will use the branch (a new-branch restore, a drill); otherwise a read-only
        compute is enough to verify it (a preview that will be finalized). ``adopted``: the branch a resumed
        run already proved its own (nothing is asked of Neon again).
        """
        made = Made(adopted, [], []) if adopted is not None else await self._make_or_adopt(run, name)
        endpoint_id = await ensure_endpoint(run, made, read_write=read_write)
        return Materialized(made.branch, endpoint_id, preview=not read_write and self.previews_in_place)

    async def _make_or_adopt(self, run: Runner, name: str) -> Made:
        """``make``, asking again when the answer is lost, but only after checking it did not happen."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                made = await self.make(run, name)
                break
            except (OutcomeUnknownError, BadResponseError) as exc:
                # Lost or unreadable, the answer may hide a branch that exists: look first.
                run.reporter.warn(f"Neon's answer was lost; checking whether {name!r} was created…")
                found = await run.reconcile(name)
                if found is not None:
                    return Made(await run.adopt(found), [], [])
                if attempt == CREATE_ATTEMPTS:
                    raise StepFailedError(
                        "restore",
                        f"Neon's answers to creating {name!r} were lost {attempt} times and the branch "
                        f"does not exist. The last answer: {exc}",
                        hint="Check the project's operations in the Neon Console (or Neon's status page), "
                        f"then run `recovery-wizard {run.plan.command} --resume`.",
                    ) from None
                run.reporter.info(f"{name!r} was not created; asking again.")
        run.reporter.info(f"Creating {name} ({made.branch.id}) from {self.describe(run.plan)}…")
        await run.wait(made.operations, "restore")
        return made


def expiry_clause(plan: Plan, around: str = ", {}") -> str:
    """When the plan's branch expires, for a restore line (``around`` places it), or "" if it does not."""
    return around.format(f"expiring at {plan.expires_at:%Y-%m-%d %H:%M} UTC") if plan.expires_at else ""


def children_clause(plan: Plan) -> str:
    """An in-place restore line's note that the damaged branch's children move to the backup, or ""."""
    if not plan.children:
        return ""
    return f"; its child branches ({', '.join(c.name for c in plan.children)}) move to the backup"


async def ensure_endpoint(run: Runner, made: Made, *, read_write: bool) -> str:
    """A compute of the branch: the one the answer named, one it has, or a new one (read-write if asked)."""
    wanted = [EndpointType.READ_WRITE] if read_write else [EndpointType.READ_WRITE, EndpointType.READ_ONLY]
    named = [e for e in made.endpoints if e.type in wanted]
    if named:
        return sorted(named, key=lambda e: wanted.index(EndpointType(e.type)))[0].id
    endpoints = await run.client.endpoints(run.project_id, made.branch.id)
    usable = [e for e in endpoints if e.type in wanted]
    if usable:
        return sorted(usable, key=lambda e: wanted.index(EndpointType(e.type)))[0].id
    kind = EndpointType.READ_WRITE if read_write else EndpointType.READ_ONLY
    created = await run.client.create_endpoint(run.project_id, made.branch.id, type=kind)
    await run.wait(created.operations, "compute")
    return created.endpoint.id
