"""The team's own backup files: found, recognised by content, checked, and loaded into a new branch.

What a "file" restore source calls, in order (``detect.detect`` and ``load.load``: the functions share their
modules' names, so they are imported from the modules, not re-exported here)::

    from recovery_wizard.recovery.files.detect import detect
    from recovery_wizard.recovery.files.load import load

    info = detect(path)                       # BackupFileError (exit 2) before any branch is made
    # … create the branch from the damaged one, get its DIRECT url …
    result = await load(path, info, Secret(direct_url), on_progress=report)   # LoadError: nothing committed
    # verify: result.tables (rows loaded where known) against info.tables (manifest / TOC / JSON stats)

``find_backups(dirs, incident=…)`` lists candidates for the "Where from? → a backup file" step.
Modules import lazily (psycopg and pglast only when loading or checking SQL).
"""

from __future__ import annotations

from recovery_wizard.recovery.files.detect import BackupFileError, BackupInfo, examine
from recovery_wizard.recovery.files.find import FindResult, Found, default_dirs, find_backups
from recovery_wizard.recovery.files.load import LoadError, LoadProgress, LoadResult

__all__ = [
    "BackupFileError",
    "BackupInfo",
    "FindResult",
    "Found",
    "LoadError",
    "LoadProgress",
    "LoadResult",
    "default_dirs",
    "examine",
    "find_backups",
]
