"""The restore step around ``Source.materialize``: journalled, resumable, adopting only what it proves.

``done`` → reload the branch it made; ``begin`` without ``done`` (a crash during the request) → look for the
branch by name and adopt it only if the source proves this run made it; otherwise ask the source to make it.
The ``done`` record's shape (``branch_id``, ``branch_name``, ``endpoint_id``) is the one journals have always
had, so runs journalled before sources existed resume through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recovery_wizard.neon.errors import NotFoundError
from recovery_wizard.neon.models import Branch
from recovery_wizard.recovery.outcome import StepFailedError

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import Runner


async def materialize_step(run: Runner, name: str, *, read_write: bool) -> None:
    run.result.step = "restore"
    plan, journal, result = run.plan, run.journal, run.result
    source = plan.source
    done = journal.done("restore")
    if done is not None:
        result.endpoint_id = done.data.get("endpoint_id")
        try:
            result.restore_branch = await run.client.branch(run.project_id, str(done.data["branch_id"]))
        except NotFoundError:
            if plan.command != "drill" or journal.last("cleanup") is None:
                raise StepFailedError(
                    "restore",
                    f"The branch {done.data.get('branch_name')} ({done.data['branch_id']}) this run "
                    "restored to no longer exists.",
                    hint="Someone deleted it (or it expired): start a new restore.",
                ) from None
            # The drill's own cleanup deleted it before the crash: remember what it was.
            result.restore_branch = Branch(
                id=str(done.data["branch_id"]),
                project_id=run.project_id,
                name=str(done.data.get("branch_name") or done.data["branch_id"]),
                current_state="deleted",
            )
            result.deleted = True
        return
    run.reporter.step("restore", run.step_title("restore"))
    adopted: Branch | None = None
    if journal.begun_not_done("restore") is not None:
        run.reporter.info(f"Resuming: looking for the branch {name!r} the interrupted run asked for.")
        found = await run.reconcile(name)
        if found is not None:
            adopted = await run.adopt(found)
    else:
        journal.append("step", "begin", "restore", **source.begin_data(plan, name))
    made = await source.materialize(run, name, read_write=read_write, adopted=adopted)
    result.restore_branch = made.branch
    result.endpoint_id = made.endpoint_id
    journal.append(
        "step",
        "done",
        "restore",
        branch_id=made.branch.id,
        branch_name=made.branch.name,
        endpoint_id=made.endpoint_id,
        preview=made.preview,
        **made.extra,
    )
    run.reporter.info(f"Branch {made.branch.name} ({made.branch.id}) is ready.")
