"""What a step is, for the plan, the learn panel and the incident record.

Its own module, free of imports: the wizard's first screen describes itself with it, and must not load the
runner (and with it httpx, msgspec and every source) to do so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepInfo:
    """What a step is, for the plan, the learn panel and the incident record."""

    key: str
    title: str
    what: str
    why: str
    console: str  # the Neon Console or psql way to do it by hand
