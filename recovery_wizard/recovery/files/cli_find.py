"""``recovery-wizard backups find``: parse the options, search, print (text, or one JSON object)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from recovery_wizard.recovery.outcome import EXIT_OK, EXIT_USAGE
from recovery_wizard.redact import redact
from recovery_wizard.textsafe import printable


def run(dirs: tuple[str, ...], *, incident: str | None, tz: str | None, depth: int, as_json: bool) -> int:
    from recovery_wizard.recovery.files.find import default_dirs, find_backups, render
    from recovery_wizard.recovery.timepoint import TimePointError, parse_moment, resolve_zone

    try:
        zone = resolve_zone(tz)
        moment = parse_moment(incident, zone=zone, now=datetime.now(UTC)).utc if incident else None
    except TimePointError as exc:
        if as_json:
            payload = {"status": "refused", "error": str(exc), "hint": exc.hint}
            sys.stdout.write(json.dumps(payload) + "\n")
        else:
            sys.stderr.write(f"{exc}\n{exc.hint}\n".replace("\n\n", "\n"))
        return EXIT_USAGE
    app_dir = Path.cwd()
    searched = [*default_dirs(app_dir), *(Path(d) for d in dirs)]
    result = find_backups(searched, incident=moment, depth=depth)
    if as_json:
        payload = {"status": "ok", **result.to_json()}
        sys.stdout.write(redact(json.dumps(payload, default=str)) + "\n")
    else:
        sys.stdout.write(printable(redact(render(result, zone=zone, base=app_dir)), multiline=True) + "\n")
    return EXIT_OK
