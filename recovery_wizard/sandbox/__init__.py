"""A local Neon API v2 (the part recovery uses) over a real PostgreSQL: for the demo, drills and tests.

Never imported by ``recovery_wizard.neon`` or ``recovery_wizard.recovery``: it is a stand-in for Neon.
"""
