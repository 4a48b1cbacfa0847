"""recovery-wizard: get a team's Postgres data back after an incident on Neon.

Kept empty of imports on purpose: ``recovery-wizard --help`` must not pay for httpx, Textual or psycopg.
"""

__version__ = "0.1.0"
