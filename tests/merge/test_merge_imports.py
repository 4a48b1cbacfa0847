"""The merge package is cheap to import: psycopg comes only when a merge runs, and no UI library ever."""

from __future__ import annotations

import json
import subprocess
import sys


def test_importing_the_merge_package_loads_no_driver_or_ui() -> None:
    probe = (
        "import sys, json\nimport recovery_wizard.recovery.merge\n"
        # A None entry is an import blocked on purpose (recovery_wizard blocks httpx's CLI), not a module loaded.
        "print(json.dumps(sorted({m.split('.')[0] for m, mod in sys.modules.items() if mod is not None})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"psycopg", "textual", "questionary", "rich", "httpx"}, loaded
