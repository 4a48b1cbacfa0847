"""Overwrite the damaged branch in place, keeping its current state as a backup branch.

Two shapes, chosen by what the source can do (``Source.previews_in_place``), never by its kind:
- history: Neon's restore of the branch to a moment (``preserve_under_name``), after measuring the damaged
  data (it is gone afterwards); the verification then compares the measure with the restored branch.
- snapshot: restore un-finalized to a preview branch (read-only compute), verify it beside the live damaged
  branch, then (typed confirmation) finalize it into the damaged branch's place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recovery_wizard.recovery.apply.materialize import materialize_step

if TYPE_CHECKING:
    from recovery_wizard.recovery.runner import Runner


class InPlace:
    name = "in-place"

    async def restore(self, run: Runner) -> None:
        source = run.plan.source
        if source.previews_in_place:
            await materialize_step(run, run.plan.preview_name or run.plan.name, read_write=False)
        else:
            await source.put_in_place(run)

    async def finish(self, run: Runner) -> None:
        source = run.plan.source
        if source.previews_in_place:
            await source.put_in_place(run)
