"""What a guarded command is: can it destroy data, and how to show it without its secrets.

Judged from the words of the command line, not by running it: `prisma migrate dev` (resets the database
when it finds drift), `prisma migrate reset`, `prisma db push --accept-data-loss|--force-reset`, `prisma db
execute` (any SQL), and `psql -f FILE` (any SQL). The Prisma CLI is found behind the launchers people use
(`npx`, `pnpm`, `yarn`, `bunx`, `node_modules/.bin/prisma`), and a `sh -c '…'` string is read too. A command
not on this list is not called safe: on the default or a protected branch every command asks first.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePath

from recovery_wizard.redact import MASK, redact

_SECRET_FLAGS = ("--password", "--api-key", "--token", "--secret")
# `env PGPASSWORD=… psql`, `NEON_API_KEY=… npm run x`: the value of an assignment whose name says secret.
_SECRET_ASSIGNMENT = re.compile(
    r"^(?P<name>[A-Za-z_]\w*(?:PASSWORD|PASSWD|SECRET|TOKEN|_KEY|APIKEY))=.+$", re.I
)
# A Neon API key (napi_…) anywhere in a word.
_NEON_KEY = re.compile(r"napi_[A-Za-z0-9]{8,}")


def _name(word: str) -> str:
    return PurePath(word).name.lower()


def _words(argv: list[str]) -> list[str]:
    """The plain words (no options) after the program: what `migrate dev` is made of."""
    return [w for w in argv if not w.startswith("-")]


def _prisma_reason(args: list[str]) -> str | None:
    words = _words(args)
    options = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    if words[:2] == ["migrate", "dev"]:
        return "`prisma migrate dev` resets the database when it finds drift (all data deleted)"
    if words[:2] == ["migrate", "reset"]:
        return "`prisma migrate reset` drops the database and re-creates it (all data deleted)"
    if words[:2] == ["db", "push"] and options & {"--accept-data-loss", "--force-reset"}:
        flag = "--force-reset" if "--force-reset" in options else "--accept-data-loss"
        return f"`prisma db push {flag}` drops what the schema no longer has (data deleted)"
    if words[:2] == ["db", "execute"]:
        return "`prisma db execute` runs any SQL it is given"
    return None


def _psql_reason(args: list[str]) -> str | None:
    for arg in args:
        if arg in ("-f", "--file") or arg.startswith("--file=") or (arg.startswith("-f") and len(arg) > 2):
            return "`psql -f` runs every statement of a SQL file"
    return None


def destructive_reason(argv: list[str], *, depth: int = 0) -> str | None:
    """Why the command can destroy data, or None when it is not one we know to."""
    for index, word in enumerate(argv):
        name = _name(word)
        if name in ("prisma", "prisma.cmd"):
            return _prisma_reason(argv[index + 1 :])
        if name == "psql":
            return _psql_reason(argv[index + 1 :])
    if depth < 2:
        # `sh -c "prisma migrate reset --force"`, `bash -lc '…'`: read the string as a command line.
        for word in argv:
            if " " in word.strip():
                try:
                    inner = shlex.split(word)
                except ValueError:
                    continue
                reason = destructive_reason(inner, depth=depth + 1)
                if reason:
                    return reason
    return None


def url_in(argv: list[str]) -> str | None:
    """A connection URL given on the command line (`psql "postgresql://…" -f x.sql`), if any."""
    for word in argv:
        value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        if value.lower().startswith(("postgres://", "postgresql://")):
            return value
    return None


def echo(argv: list[str]) -> str:
    """The command line as it can be shown and journalled: passwords and secret options masked."""
    shown: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        lowered = word.lower()
        flag = next((f for f in _SECRET_FLAGS if lowered.startswith(f)), None)
        if flag and lowered == flag:
            shown.append(word)
            hide_next = True
        elif flag and "=" in word:
            shown.append(word.split("=", 1)[0] + "=" + MASK)
        elif match := _SECRET_ASSIGNMENT.match(word):
            shown.append(f"{match['name']}={MASK}")
        else:
            shown.append(_NEON_KEY.sub(MASK, redact(word)))
    return shlex.join(shown)
