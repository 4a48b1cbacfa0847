"""Child process for the start-up benchmark: ``recovery-wizard demo`` timed to its first paint and to Begin.

Run as ``python -m bench.demo_paint``. It imports the CLI module first, as the command does, then runs the
demo's own ``run_demo`` with the wizard subclassed to print ``painted`` when the story screen is first painted
and ``ready`` when Begin is enabled (the sandbox started, the demo app written), then quit. The parent times
spawn to each line. PostgreSQL: ``$RECOVERY_WIZARD_PG_DSN`` if set (as the demo), else the embedded one.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import recovery_wizard.cli  # noqa: F401  (imported for its cost: the real command loads it first)
from recovery_wizard.tui import demo
from recovery_wizard.tui.app import WizardApp, WizardConfig


class DemoPaint(WizardApp):
    async def run_async(self, **kwargs: Any) -> int | None:
        return await super().run_async(**{**kwargs, "headless": True})  # as first_paint: no terminal drawn

    async def on_mount(self) -> None:
        # Textual calls WizardApp.on_mount itself (handlers run up the MRO): calling it too would push a
        # second first screen.
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        print("painted", flush=True)
        self.set_interval(0.02, self._check_ready)

    def _check_ready(self) -> None:
        if self.config.starting is None and self.config.api_url is not None:
            print("ready", flush=True)
            self.exit(0)


def main() -> int:
    def make(config: WizardConfig) -> WizardApp:
        return DemoPaint(config)

    demo.make_app = make  # the bench's hook; the demo itself is unchanged
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (the closing summary: not timed, not wanted)
    return asyncio.run(
        demo.run_demo(pg_dsn=os.environ.get("RECOVERY_WIZARD_PG_DSN"), scenario="homecheff", keep_app=False)
    )


if __name__ == "__main__":
    raise SystemExit(main())
