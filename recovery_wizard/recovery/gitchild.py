"""The environment a git child runs in: the repository found from its working directory, and nothing asked.

recovery-wizard asks git only about the app's own files (is this ``.env`` tracked?). Run with the user's
whole environment, the answer would depend on what the shell happened to export: ``GIT_DIR`` /
``GIT_WORK_TREE`` (a dotfiles alias, a hook's environment) point git at another repository, ``GIT_INDEX_FILE``
at another index, ``GIT_CONFIG_*`` add config; a translated locale changes its messages; a credential or
pager setting can make it wait for a person who is looking at the wizard. And our own environment holds
``NEON_API_KEY``, which git has no use for.

So the child gets an allowlist (finding git and the user's own config: PATH, HOME, XDG_CONFIG_HOME; Windows'
system variables) and fixed values: the C locale, no pager, no terminal prompt, no optional index lock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

# Kept from the user's environment: enough to find git and the user's global config (safe.directory lives
# there), nothing that picks a repository, an index or extra config.
_KEPT: Final = frozenset(
    "PATH HOME XDG_CONFIG_HOME USER LOGNAME TMPDIR "
    "SYSTEMROOT SYSTEMDRIVE COMSPEC PATHEXT WINDIR APPDATA LOCALAPPDATA USERPROFILE HOMEDRIVE HOMEPATH".split()
)

FIXED: Final[Mapping[str, str]] = {
    "LC_ALL": "C",  # untranslated messages, byte-wise paths: what a caller parses is what git printed
    "LANG": "C",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",  # never wait for a username or password on the terminal
    "GIT_ASKPASS": "",  # nor for one in a pop-up (empty: no helper)
    "SSH_ASKPASS": "",
    "GIT_OPTIONAL_LOCKS": "0",  # a status-like read must not take the index lock the user's git may want
}


def git_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a git child: the allowlist from ``environ`` (default: ours) plus :data:`FIXED`."""
    source = os.environ if environ is None else environ
    env = {name: value for name, value in source.items() if name in _KEPT or name.upper() in _KEPT}
    env.update(FIXED)
    return env


def git_argv(*args: str) -> list[str]:
    """``git`` with options no repository config can override into running a program or a pager."""
    # fsmonitor off: a repository's config must not make us start a program.
    return ["git", "--no-pager", "-c", "core.fsmonitor=false", *args]
