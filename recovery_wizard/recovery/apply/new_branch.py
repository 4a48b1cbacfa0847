"""Point the app at a new branch: the source's branch is the restored data (the env and Prisma steps,
shared, repoint the app at it). Nothing existing is overwritten."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recovery_wizard.recovery.apply.materialize import materialize_step

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import Runner


class NewBranch:
    name = "new-branch"

    async def restore(self, run: Runner) -> None:
        await materialize_step(run, run.plan.name, read_write=True)

    async def finish(self, run: Runner) -> None:
        return None
