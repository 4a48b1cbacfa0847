"""Keys that answer a question or press a button, and how long a new screen waits before taking one.

A confirmation, and a screen whose button ends or moves the run, takes one only when it is a new press: at
least ARM_SECONDS after the screen was ready AND after the previous such key. Enter held down or mashed
from an earlier screen then never answers a question it did not see.
"""

from __future__ import annotations

ACTIVATION_KEYS = frozenset({"enter", "space"})
ARM_SECONDS = 0.5
