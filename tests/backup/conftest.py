"""Backup tests reuse the end-to-end world: a homecheff sandbox served on a socket and an app directory."""

from tests.recovery.conftest import world as world
