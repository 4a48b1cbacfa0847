"""End the process without the interpreter's teardown, once everything that matters is done.

Tearing down a process that loaded httpx and psycopg (clearing every module, collecting every cycle) takes
50-100 ms after the last line is printed: the user, or the script that ran the restore, waits for it. Here
the exit handlers still run (logging's flush, temporary directories' cleanup, coverage) and the standard
streams are flushed; only the module teardown is skipped, which frees nothing the OS does not free anyway.
The journal, the env files and the record are fsynced by the steps that write them, never left to exit.
"""

from __future__ import annotations

import atexit
import os
import sys


def exit_now(code: int) -> None:
    """``sys.exit(code)``, minus the teardown; falls back to ``sys.exit`` where that would change anything."""
    threading = sys.modules.get("threading")
    if threading is not None and any(
        t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()
    ):
        sys.exit(code)  # the interpreter joins non-daemon threads before exiting: keep that
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # a closed pipe: let the interpreter report it as it always does
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
