"""A merge run in its own process, for the kill test: ``python -m tests.merge.merge_child PAST LIVE RUN_ID``.

The connection strings come from the environment (MERGE_PAST, MERGE_LIVE), never argv. With
MERGE_HOLD=1 it prints READY inside the transaction, just before COMMIT, and waits there to be killed.
"""

from __future__ import annotations

import asyncio
import os
import sys

from recovery_wizard.recovery import merge
from recovery_wizard.redact import Secret


async def main(run_id: str) -> int:
    past, live = Secret(os.environ["MERGE_PAST"]), Secret(os.environ["MERGE_LIVE"])
    plan = await merge.plan_merge(past, live)

    async def hold() -> None:
        print("READY", flush=True)
        await asyncio.sleep(120)

    result = await merge.apply_merge(
        live, plan, run_id, before_commit=hold if os.environ.get("MERGE_HOLD") else None
    )
    print("DONE", sum(result.inserted.values()), result.already_applied, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
