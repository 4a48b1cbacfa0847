"""Import, while a restore's operation runs, what the steps after it need.

After Neon's last answer the run still verifies against PostgreSQL, records the timeline and writes the
incident record; importing psycopg and those modules then would put ~60-130 ms of imports on the critical
path, after the last request. The operation itself takes a second or more, during which the process only
waits: importing them in a worker thread then costs the run nothing. Best effort: a module that fails to
import here is imported (and its error reported) again by the step that needs it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

log = logging.getLogger("recovery_wizard.preload")

# What verify (psycopg), the record's timeline and the incident record import lazily.
AFTER_RESTORE = ("psycopg", "recovery_wizard.recovery.timeline", "recovery_wizard.recovery.report")


def preload(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the step that needs it imports it again and owns the error
            log.debug("preloading %s failed: %s", name, exc)


def preload_soon(names: tuple[str, ...] = AFTER_RESTORE) -> asyncio.Future[None]:
    """Start importing ``names`` in a worker thread; the future is done when they are (or failed)."""
    return asyncio.ensure_future(asyncio.to_thread(preload, names))
