"""recovery-wizard: get a team's Postgres data back after an incident on Neon.

Kept empty of imports on purpose: ``recovery-wizard --help`` must not pay for httpx, Textual or psycopg.
"""

import sys

__version__ = "0.1.0"

# httpx imports its own command-line client when it is imported (``httpx._main``), and with it rich and
# pygments when they are installed (Textual brings both): ~30-70 ms before a restore's first request, for a
# CLI we never run. A None entry makes that import fail, which httpx handles (its ``main`` then only says
# the CLI's extras are missing). Set only while httpx is not loaded yet: never change a loaded module.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
