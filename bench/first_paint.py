"""Child process for the start-up benchmark: open the wizard headless, print a line at the first paint, exit.

Run as ``python -m bench.first_paint WORKDIR``. It imports the CLI module first, as ``recovery-wizard`` does,
then the wizard, so the time the parent measures (spawn to the printed line) covers the interpreter, every
import the real command pays for, building the app, mounting the first screen and painting it once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import recovery_wizard.cli  # noqa: F401  (imported for its cost: the real command loads it first)
from recovery_wizard.tui.app import WizardApp, WizardConfig


class FirstPaint(WizardApp):
    async def on_mount(self) -> None:
        # Textual calls WizardApp.on_mount itself (handlers run up the MRO): calling it too would push a
        # second first screen.
        # After the next refresh the first screen (Connect) has been composed, laid out and painted.
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        print("painted", flush=True)
        self.exit(0)


def main() -> int:
    # No API key: the Connect screen asks for one and touches no network, so nothing but start-up is timed.
    app = FirstPaint(WizardConfig(workdir=Path(sys.argv[1])))
    return int(app.run(headless=True) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
