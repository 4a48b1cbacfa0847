"""What is done with the data a source brought back: an apply strategy.

A strategy has two moments in the runbook, both journalled and resumable:

- ``restore(run)`` (step ``restore``): before the verification. New branch: the source materializes a
  branch the app will use. In place: a previewing source (a snapshot) materializes a preview; otherwise
  (history) Neon overwrites the damaged branch directly, after measuring it.
- ``finish(run)`` (step ``finalize``, when there is one): after the verification and before the env and
  Prisma steps. In place with a preview: put it in the damaged branch's place (typed confirmation).

The verify, env, Prisma, clean-up and record steps are the runner's and shared by every strategy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from recovery_wizard.recovery.apply.in_place import InPlace
from recovery_wizard.recovery.apply.merge_back import MergeBack
from recovery_wizard.recovery.apply.new_branch import NewBranch

if TYPE_CHECKING:
    from recovery_wizard.recovery.plan import Plan
    from recovery_wizard.recovery.runner import Runner


class Strategy(Protocol):
    name: str

    async def restore(self, run: Runner) -> None: ...

    async def finish(self, run: Runner) -> None: ...


def strategy_for(plan: Plan) -> Strategy:
    """The strategy of ``plan.strategy`` (a drill is always a new branch)."""
    if plan.merge_back:
        return MergeBack()
    return InPlace() if plan.in_place else NewBranch()


__all__ = ["InPlace", "MergeBack", "NewBranch", "Strategy", "strategy_for"]
