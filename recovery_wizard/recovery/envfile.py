"""Surgical, reversible rewrites of the connection strings in a project's ``.env`` files.

The person running this is restoring production at 2 a.m.; the file they point us at also holds every other
secret of their app. So the rules are: change only the value tokens asked for, keep every other byte, show a
diff with the passwords masked, back the original up first, write atomically, and never put a value from the
file into a message.

How a rewrite stays surgical:

- **Locating.** python-dotenv's parser (the one Python apps use, and close to what Node's dotenv and Next.js
  accept) splits the text into chunks whose ``original.string`` concatenate back to exactly the input, and
  gives each binding's key and parsed value. Within one binding's chunk we find the span of the value token
  with a small regex for what precedes it (``export``, the key, ``=``) and cross-check that span against the
  value dotenv parsed. We do not tokenize the file ourselves: a second tokenizer would sooner or later
  disagree with dotenv about a line, and then we would rewrite a different place than the one apps read.
  Where the two could disagree, we refuse instead.
- **Replacing.** Only value tokens change (every binding of a key, so a duplicated key stays consistent),
  re-quoted in the token's own quote style. The result is then re-parsed: every key must read back with the
  new value (changed keys) or exactly its old value (all others), or nothing is returned. That catches the
  corner cases where new text would change how its neighbours read.
- **Lines dotenv cannot parse** are kept byte for byte, unless one mentions a key we must change: then we
  refuse (``EnvFileParseError``) rather than guess what the app makes of it.

Writes are guarded by the digest of the bytes we read (``EnvFileChangedError`` if someone edited the file
meanwhile), go through a temporary file created with the final mode, owner, extended attributes and ACL in
the same directory (named so that ``.env*`` and ``*.tmp`` ignore it; a stale one is removed by the next
write), and are swapped in with ``os.replace``. Backups are created 0600 with ``O_EXCL``, so they are never
readable by others, not even for a moment.

The diff shown before a write masks every value; only variable names and the public parts of the URLs being
changed remain (``masked_diff``).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import functools
import hashlib
import io
import os
import re
import secrets
import stat
import subprocess
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple
from urllib.parse import unquote

from dotenv.parser import parse_stream

from recovery_wizard.errors import RecoveryError
from recovery_wizard.recovery.gitchild import git_argv, git_env
from recovery_wizard.redact import MASK, mask_url, redact, split_url

__all__ = [
    "Binding",
    "EnvFile",
    "EnvFileChangedError",
    "EnvFileError",
    "EnvFileParseError",
    "Unparsed",
    "backup",
    "git_tracked",
    "masked_diff",
    "merge_url",
    "reading_warnings",
    "remove_stale_temps",
    "restore_backup",
    "write_atomic",
]

BOM: Final = "\ufeff"
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")  # what dotenv counts as a line break

# What precedes a value inside one binding's chunk, as dotenv reads it: the blank lines and spaces before the
# binding (they belong to its chunk), an optional `export `, the key (bare or single-quoted), then `=` and
# the blanks after it. Only used on chunks dotenv parsed successfully, and cross-checked against its result.
_PREFIX: Final = re.compile(
    r"(?P<lead>\s*)(?P<export>export[^\S\r\n]+)?(?:'(?P<qkey>[^']+)'|(?P<key>[^=#\s]+))"
    r"(?P<assign>[^\S\r\n]*=[^\S\r\n]*)?"
)
# Quoted tokens exactly as dotenv matches them (a backslash always escapes the next character).
_QUOTED: Final = {
    '"': re.compile(r'"(?:\\.|[^"\\])*"', re.DOTALL),
    "'": re.compile(r"'(?:\\.|[^'\\])*'", re.DOTALL),
}
# Characters that make an unquoted value unsafe: whitespace (dotenv trims it and ` #` starts a comment), `#`
# (Node's dotenv starts a comment at any `#` in an unquoted value), quotes and backticks (a leading one makes
# the value read as quoted), and backslashes (read literally here but not by every loader).
_NEEDS_QUOTES: Final = re.compile(r"[\s\"'`#\\]")
# Keys we append must be plain: dotenv, Node's dotenv and shells all agree on these.
_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_POSTGRES_URL: Final = re.compile(r"\s*(?:postgres(?:ql)?|prisma\+postgres)://", re.IGNORECASE)
_ANY_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Connection variables by name, for files whose value is not (yet) a Postgres URL: docs/prisma.md.
_CONNECTION_NAMES: Final = frozenset(
    {
        "DATABASE_URL",
        "DIRECT_URL",
        "DATABASE_URL_UNPOOLED",
        "POSTGRES_PRISMA_URL",
        "POSTGRES_URL_NON_POOLING",
        "POSTGRES_URL",
        "SHADOW_DATABASE_URL",
    }
)


class EnvFileError(RecoveryError):
    """An env file cannot be read, rewritten or written safely."""


class EnvFileChangedError(EnvFileError):
    """The file changed since it was read: writing would overwrite someone's edit."""


class EnvFileParseError(EnvFileError):
    """A line python-dotenv cannot parse is one we would have to touch."""


@dataclass(frozen=True)
class Binding:
    """One ``KEY=value`` line (or ``KEY`` alone) and where its value token sits in :attr:`EnvFile.text`."""

    key: str
    value: str = field(repr=False)  # the parsed value: quotes removed, escapes resolved as dotenv does
    value_start: int  # offsets of the raw value token, quotes included; empty span for `KEY=` and `KEY`
    value_end: int
    quote: str  # '"', "'" or ""
    export: bool
    line: int  # 1-based line of the key
    # `KEY` with no `=`: dotenv gives it the value None (and it overrides an earlier `KEY=x`). The span is
    # empty, right after the key, where a rewrite inserts `=value`.
    bare: bool = False


@dataclass(frozen=True)
class Unparsed:
    """A chunk python-dotenv could not parse (or whose value we could not locate): kept byte for byte."""

    line: int
    start: int
    end: int


@dataclass
class EnvFile:
    """An env file as read: its exact text, the digest of its bytes, its mode and its bindings."""

    path: Path
    text: str = field(repr=False)  # exact: CRLF kept, BOM kept; repr hidden because it holds secrets
    digest: str  # sha256 of the bytes read
    mode: int  # st_mode & 0o777
    bindings: list[Binding] = field(repr=False)
    unparsed: list[Unparsed] = field(default_factory=list, repr=False)
    # key -> its last binding, built on first use: `get` is called once per binding by the warnings, and a
    # scan per call made planning quadratic in the file's size (40,000 lines took 20 s).
    _last: dict[str, Binding] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def read(cls, path: Path) -> EnvFile:
        """Read ``path`` (UTF-8, optionally with a BOM) and locate its bindings."""
        path = Path(path)
        data, mode = _read_bytes(path)
        return cls.from_text(path, _decode(data, path), mode=mode, digest=hashlib.sha256(data).hexdigest())

    @classmethod
    def from_text(cls, path: Path, text: str, *, mode: int = 0o600, digest: str | None = None) -> EnvFile:
        """Parse ``text`` as if read from ``path`` (for previews and tests; nothing is read from disk)."""
        if digest is None:
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        bindings, unparsed = _analyse(text)
        return cls(Path(path), text, digest, mode, bindings, unparsed)

    def get(self, key: str) -> str | None:
        """The value apps get for ``key``: the LAST binding wins; a bare ``KEY`` means None (as dotenv)."""
        if self._last is None:
            self._last = {binding.key: binding for binding in self.bindings}  # later bindings overwrite
        binding = self._last.get(key)
        return None if binding is None or binding.bare else binding.value

    def rewritten(self, changes: Mapping[str, str]) -> str:
        """The text with each key of ``changes`` set to its new value, every other byte kept.

        Every binding of a key is changed; a key not present is appended as ``KEY="value"`` on a line of
        its own, in the file's newline style. Writes nothing.
        """
        if not changes:
            return self.text
        self._refuse_unparsed(changes)
        pieces: list[str] = []
        done = 0
        for binding in self.bindings:
            if binding.key in changes:
                token = _token_for(binding, changes[binding.key], self.text)
                pieces += [self.text[done : binding.value_start], token]
                done = binding.value_end
        pieces.append(self.text[done:])
        new_text = "".join(pieces) + self._appended(changes)
        self._verify(new_text, changes)
        return new_text

    def _refuse_unparsed(self, changes: Mapping[str, str]) -> None:
        for chunk in self.unparsed:
            text = self.text[chunk.start : chunk.end]
            for key in changes:
                if re.search(rf"(?<![\w.-]){re.escape(key)}(?![\w.-])", text):
                    raise EnvFileParseError(
                        f"Line {chunk.line} of {self.path} mentions {key} but cannot be read as a .env line, "
                        "so the file was not rewritten.",
                        hint="Fix or remove that line by hand (apps may ignore or misread it), then re-run.",
                    )

    def _appended(self, changes: Mapping[str, str]) -> str:
        present = {b.key for b in self.bindings}
        missing = [key for key in changes if key not in present]
        for key in missing:
            if not _PLAIN_KEY.fullmatch(key):
                raise EnvFileError(
                    f"{key!r} cannot be added to {self.path}: it is not a plain variable name."
                )
        if not missing:
            return ""
        newline = _newline_style(self.text)
        body = self.text.removeprefix(BOM)
        ends_open = bool(body) and not body.endswith(("\n", "\r"))
        lines = [key + "=" + _quoted(changes[key], '"') for key in missing]
        # Keep the file's habit: a file that ended without a newline still does.
        return (newline if ends_open else "") + newline.join(lines) + ("" if ends_open else newline)

    def _verify(self, new_text: str, changes: Mapping[str, str]) -> None:
        old_pairs, old_errors = _readback(self.text)
        expected = [(key, changes.get(key, value)) for key, value in old_pairs]
        present = {key for key, _ in old_pairs}
        expected += [(key, value) for key, value in changes.items() if key not in present]
        if _readback(new_text) != (expected, old_errors):
            raise EnvFileParseError(
                f"Rewriting {', '.join(changes)} in {self.path} would change how other lines of it are read, "
                "so it was not rewritten.",
                hint="Edit the connection strings by hand (a backup is wise), then re-run to verify.",
            )


# --- locating bindings ----------------------------------------------------------------------------------


class _Located(NamedTuple):
    lead: str
    start: int
    end: int
    quote: str
    export: bool


class _Parsed(NamedTuple):
    bindings: tuple[Binding, ...]
    unparsed: tuple[Unparsed, ...]
    pairs: tuple[tuple[str, str | None], ...]  # what dotenv reads, in order (see _readback)
    errors: int  # chunks dotenv rejected
    complete: bool  # the chunks cover the text exactly


def _analyse(text: str) -> tuple[list[Binding], list[Unparsed]]:
    parsed = _parse(text)
    if not parsed.complete:  # the chunks must cover the text exactly, or offsets mean nothing
        raise EnvFileParseError("python-dotenv did not account for every character of the file.")
    return list(parsed.bindings), list(parsed.unparsed)


# One env step parses the same two texts (before, after) for the rewrite's check, the diff and its masking:
# remembering the last few parses makes that one parse per text. (Only in memory, where the texts are.)
@functools.lru_cache(maxsize=8)
def _parse(text: str) -> _Parsed:
    # The BOM is not part of the first key; the parser sees the text without it (newer python-dotenv strips
    # it too), so every offset it implies is shifted by one.
    base = 1 if text.startswith(BOM) else 0
    bindings: list[Binding] = []
    unparsed: list[Unparsed] = []
    pairs: list[tuple[str, str | None]] = []
    errors = 0
    offset = base
    for chunk in parse_stream(io.StringIO(text[base:])):
        original = chunk.original.string
        start = offset
        offset += len(original)
        if chunk.error:
            errors += 1
        elif chunk.key is not None:
            pairs.append((chunk.key, chunk.value))
        if chunk.key is None and not chunk.error:
            continue  # a comment or blank lines
        located = None if chunk.key is None else _locate(original, chunk.key, chunk.value)
        if chunk.key is None or located is None:
            lead = len(original) - len(original.lstrip())
            line = chunk.original.line + len(_NEWLINE.findall(original[:lead]))
            unparsed.append(Unparsed(line, start, offset))
            continue
        bindings.append(
            Binding(
                key=chunk.key,
                value="" if chunk.value is None else chunk.value,
                value_start=start + located.start,
                value_end=start + located.end,
                quote=located.quote,
                export=located.export,
                line=chunk.original.line + len(_NEWLINE.findall(located.lead)),
                bare=chunk.value is None,
            )
        )
    return _Parsed(tuple(bindings), tuple(unparsed), tuple(pairs), errors, offset == len(text))


def _locate(chunk: str, key: str, value: str | None) -> _Located | None:
    """The value token's span inside one binding's chunk, or None if it does not agree with dotenv's parse."""
    match = _PREFIX.match(chunk)
    if match is None or (match["qkey"] or match["key"]) != key:
        return None
    export = match["export"] is not None
    pos = match.end()
    if value is None:  # `KEY` alone
        return None if match["assign"] else _Located(match["lead"], pos, pos, "", export)
    if match["assign"] is None:
        return None
    quote = chunk[pos : pos + 1]
    if quote in _QUOTED:
        token = _QUOTED[quote].match(chunk, pos)
        if token is None or _parse_token(token.group()) != value:
            return None
        return _Located(match["lead"], pos, token.end(), quote, export)
    # Unquoted: dotenv keeps the text as is, minus an inline comment and trailing blanks, so the value is
    # a prefix of what follows `=`. (`KEY= # note` reads as "": an empty span, also a prefix.)
    if not chunk.startswith(value, pos):
        return None
    return _Located(match["lead"], pos, pos + len(value), "", export)


def _parse_token(token: str) -> str | None:
    """What dotenv makes of a value token on its own: dotenv's own unescaping, not a copy of it."""
    return next(parse_stream(io.StringIO(f"K={token}"))).value


def _readback(text: str) -> tuple[list[tuple[str, str | None]], int]:
    """What dotenv reads from ``text``: the (key, value) pairs in order, and how many chunks it rejected."""
    parsed = _parse(text)
    return list(parsed.pairs), parsed.errors


# --- writing values -------------------------------------------------------------------------------------


def _token_for(binding: Binding, value: str, text: str) -> str:
    """The new value token for ``binding``, in its quote style; a bare ``KEY`` gets ``=value``."""
    if binding.quote == "'":
        token = _quoted(value, "'")
    elif binding.quote == "" and _safe_unquoted(value):
        after = text[binding.value_end : binding.value_end + 1]
        # An unquoted value ends at a blank or the end of the line. Where the span sits right before a comment
        # (`KEY= # note`, `KEY#note`), the new value brings the blank that keeps the comment out of it.
        glued = bool(after) and not after.isspace() and bool(value or binding.bare)
        token = value + " " if glued else value
    else:
        token = _quoted(value, '"')
    return "=" + token if binding.bare else token


def _safe_unquoted(value: str) -> bool:
    return value.isprintable() and not _NEEDS_QUOTES.search(value)


def _quoted(value: str, quote: str) -> str:
    return quote + _escape(value, quote) + quote


def _escape(value: str, quote: str) -> str:
    """Escape ``value`` for ``quote`` the way dotenv unescapes it.

    Double quotes: dotenv resolves \\\\, \\", \\n, \\r (and \\t, \\a…); line breaks are written as \\n and
    \\r so a value never adds a line to the file. Single quotes: dotenv resolves only \\\\ and \\'; a line
    break stays raw (dotenv reads single-quoted values across lines).
    """
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    if quote == '"':
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return escaped


def _newline_style(text: str) -> str:
    match = _NEWLINE.search(text)
    return match.group() if match else "\n"


# --- URLs and diffs -------------------------------------------------------------------------------------

# Query parameters that name the connection itself: taking them from the old URL would point the new one
# back at the old server, database or credentials.
_IDENTITY_PARAMS: Final = frozenset(
    {"host", "hostaddr", "port", "user", "password", "dbname", "passfile", "sslpassword", "service"}
)


def merge_url(old: str | None, new: str) -> str:
    """``new``, plus the query parameters of ``old`` that ``new`` lacks, never with weaker TLS than ``old``.

    Keeps what the team tuned (pgbouncer, connect_timeout, schema, pool_timeout, connection_limit,
    application_name, statement_cache_size…) and takes what Neon sets from the new URI. TLS is never
    weakened: every ``ssl*`` and ``channel_binding`` parameter of ``old`` is kept (its value replaces
    ``new``'s: ``sslrootcert``, ``sslcert``…), except that ``sslmode`` and ``channel_binding`` keep the
    stronger of the two values (``verify-full`` over Neon's ``require``; Neon's ``channel_binding=require``
    over an old ``prefer``). ``new`` is not re-encoded: kept parameters are written as they were. Parameters
    that identify the old connection (host, user, password, dbname…, and Neon's ``options=endpoint=…``)
    are dropped.
    """
    if old is None or not _ANY_URL.match(old.strip()) or not _ANY_URL.match(new):
        return new
    head, hash_sign, fragment = new.partition("#")
    base, _, query = head.partition("?")
    old_params = {_param_name(param): param for param in _query_params(old.strip())}
    params = [param for param in query.split("&") if param]
    merged = [_stronger_tls(param, old_params.get(_param_name(param))) for param in params]
    present = {_param_name(param) for param in params}
    keep = [
        param
        for name, param in old_params.items()
        if name not in present and (_is_tls(name) or not _identifies_old(param))
    ]
    if merged == params and not keep:
        return new
    return base + "?" + "&".join(merged + keep) + hash_sign + fragment


# libpq's sslmode and channel_binding values, weakest first. A value not listed (a typo, a driver's own)
# ranks above all: we cannot tell it is weaker, so the old one is kept rather than silently replaced.
_TLS_STRENGTH: Final = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "channel_binding": ("disable", "prefer", "require"),
}


def _is_tls(name: str) -> bool:
    return name.lower().startswith("ssl") or name == "channel_binding"


def _stronger_tls(param: str, old_param: str | None) -> str:
    """``param`` of the new URL, or the old URL's version of it where that keeps TLS as strict as it was."""
    name = _param_name(param)
    if old_param is None or not _is_tls(name):
        return param
    order = _TLS_STRENGTH.get(name)
    if order is None:
        return old_param  # sslrootcert, sslcert, sslkey, sslcrl…: the team's files and choices stay

    def rank(value: str) -> int:
        value = unquote(value).strip().lower()
        return order.index(value) if value in order else len(order)

    return old_param if rank(old_param.partition("=")[2]) > rank(param.partition("=")[2]) else param


def _query_params(url: str) -> list[str]:
    # After the userinfo, however its password is written: a raw '#' or '?' in it must not hide the query.
    query = split_url(url, query_at_signs=True)[2].partition("#")[0].partition("?")[2]
    return [param for param in query.split("&") if param]


def _param_name(param: str) -> str:
    return unquote(param.partition("=")[0])


def _identifies_old(param: str) -> bool:
    name, _, value = param.partition("=")
    name = unquote(name)
    # Neon's workaround for clients without SNI names the endpoint: options=endpoint%3Dep-…
    return name in _IDENTITY_PARAMS or (name == "options" and "endpoint=" in unquote(value))


def masked_diff(
    path: Path | str, old_text: str, new_text: str, *, shown: Collection[str] | None = None
) -> str:
    """A unified diff of the two texts, safe to print: every value on every line it shows is masked.

    The diff is computed on the real text (so a change of password alone still shows as a changed line);
    each line is then printed from a masked copy of its text, built from dotenv's parse of the whole file
    (so a value spanning lines is masked on each of them). Only variable names survive, plus, for the
    variables in ``shown`` (by default: those whose value changes), the parts of a URL that are not secret:
    scheme, user, host, path and query, with the password and any ``password=`` masked however the
    password is written. Every other value (another service's URL, a DSN, a token), every comment and
    every line dotenv cannot read is masked whole: a list of secret-looking names would always miss one.
    """
    old_lines, new_lines = _display_lines(old_text), _display_lines(new_text)
    if shown is None:
        before, after = dict(_readback(old_text)[0]), dict(_readback(new_text)[0])
        shown = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    old_masked, new_masked = _masked_lines(old_text, shown), _masked_lines(new_text, shown)
    out = [redact(f"--- {path} (before)"), redact(f"+++ {path} (after)")]
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for group in matcher.get_grouped_opcodes(3):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in old_masked[i1:i2]]
                continue
            if tag in ("replace", "delete"):
                out += ["-" + line for line in old_masked[i1:i2]]
            if tag in ("replace", "insert"):
                out += ["+" + line for line in new_masked[j1:j2]]
    if len(out) == 2:
        return ""  # no change: no diff at all, as difflib gives
    return "\n".join(redact(line) for line in out)


def _hunk_range(start: int, stop: int) -> str:
    """A unified diff's line range, as difflib writes it."""
    length = stop - start
    beginning = start + 1 if length else start
    return str(beginning) if length == 1 else f"{beginning},{length}"


def _display_lines(text: str) -> list[str]:
    lines = _NEWLINE.split(text.removeprefix(BOM))
    return lines[:-1] if lines and lines[-1] == "" else lines


# What may stay of a comment or an unreadable line: a leading `#` or `//`, `export`, and a name in the
# upper-case style of environment variables followed by `=` (a commented-out `# DATABASE_URL=postgres://…` is
# the most common place for an old password). Anything else in a comment, even a word before a colon, may be
# the secret itself.
_KEEP_OF_LINE: Final = re.compile(
    r"(?P<keep>[^\S\r\n]*(?:(?:#|//)[^\S\r\n]*)*(?:export[^\S\r\n]+)?(?:[A-Z_][A-Z0-9_]*[^\S\r\n]*=[^\S\r\n]*)?)"
)


def _masked_lines(text: str, shown: Collection[str]) -> list[str]:
    """``_display_lines(text)`` with every value masked (see :func:`masked_diff`); one pass, linear."""
    bindings, unparsed = _analyse(text)
    spans = [
        (b.value_start, b.value_end, _masked_value(b, shown, text))
        for b in bindings
        if b.value_end > b.value_start
    ]
    spans += [(c.start, c.end, _mask_parts(text[c.start : c.end], _mask_free_line)) for c in unparsed]
    spans.sort()
    pieces: list[str] = []
    done = 0
    for start, end, replacement in spans:
        # Between values: keys, `=`, blanks and comments. A comment keeps its `#` (and a name), no more.
        pieces += [_mask_parts(text[done:start], _mask_comment), replacement]
        done = end
    pieces.append(_mask_parts(text[done:], _mask_comment))
    masked = _display_lines("".join(pieces))
    if len(masked) != len(_display_lines(text)):  # cannot happen: each mask keeps every line break
        raise EnvFileError("The masked diff could not be built.")
    return masked


def _masked_value(binding: Binding, shown: Collection[str], text: str) -> str:
    """The value token of ``binding`` as the diff shows it: its quotes and line breaks, nothing else of it."""
    if binding.key in shown and _ANY_URL.match(binding.value) and not _NEWLINE.search(binding.value):
        return binding.quote + _public_url(binding.value) + binding.quote
    raw = text[binding.value_start : binding.value_end]
    if binding.quote and len(raw) >= 2:
        return binding.quote + _mask_parts(raw[1:-1], lambda part: MASK) + binding.quote
    return _mask_parts(raw, lambda part: MASK)


# Query parameters of a connection URL whose values are settings, not secrets: shown in the diff. Any other
# parameter's value is masked (Prisma Accelerate's `api_key=`, a driver's `token=`…): deny by default.
_PUBLIC_PARAMS: Final = frozenset(
    {
        "application_name",
        "channel_binding",
        "connect_timeout",
        "connection_limit",
        "gssencmode",
        "keepalives",
        "keepalives_idle",
        "load_balance_hosts",
        "options",
        "pgbouncer",
        "pool_timeout",
        "schema",
        "socket_timeout",
        "ssl",
        "sslaccept",
        "sslcert",
        "sslcrl",
        "sslkey",
        "sslmode",
        "sslnegotiation",
        "sslrootcert",
        "statement_cache_size",
        "target_session_attrs",
    }
)


def _public_url(url: str) -> str:
    """``url`` with its password masked (however it is written) and every query value not known to be public."""
    masked = mask_url(url)
    scheme_end = masked.find("://") + 3
    at = masked.find(f":{MASK}@", scheme_end)
    start = at + len(MASK) + 2 if at >= 0 else scheme_end
    rest, hash_sign, fragment = masked[start:].partition("#")
    base, question, query = rest.partition("?")
    params = [
        param
        if _param_name(param).lower() in _PUBLIC_PARAMS or "=" not in param
        else _param_name(param) + "=" + MASK
        for param in query.split("&")
    ]
    return masked[:start] + base + question + "&".join(params) + hash_sign + (MASK if fragment else "")


def _mask_parts(text: str, mask_line: Callable[[str], str]) -> str:
    """``text`` with each line (between its line breaks, which are kept) passed through ``mask_line``."""
    parts = re.split(r"(\r\n|\r|\n)", text)
    return "".join(
        part if index % 2 or not part.strip() else mask_line(part) for index, part in enumerate(parts)
    )


def _mask_comment(part: str) -> str:
    """The text between two values on one line: keys and `=` stay; from a `#` on, only a name may stay."""
    hash_at = part.find("#")
    if hash_at < 0:
        return part
    return part[:hash_at] + _mask_free_line(part[hash_at:])


def _mask_free_line(part: str) -> str:
    keep = _KEEP_OF_LINE.match(part)
    kept = keep["keep"] if keep else ""
    return kept + MASK if part[len(kept) :].strip() else part


# --- reading, backing up and writing files ---------------------------------------------------------------


def _read_bytes(path: Path) -> tuple[bytes, int]:
    try:
        # Not a FIFO or a device: opening one could block, and it cannot be replaced atomically anyway.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise EnvFileError(
                f"{path} is not a regular file, so recovery-wizard will not read or rewrite it."
            )
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mode & 0o777
    except FileNotFoundError:
        raise EnvFileError(
            f"There is no env file at {path}.", hint="Check the path, or pass the env file your app reads."
        ) from None
    except OSError as exc:
        raise EnvFileError(f"{path} could not be read: {exc.strerror or type(exc).__name__}.") from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # `from None`: the decode error carries the bytes, and so a secret, in its `object`.
        line = data.count(b"\n", 0, exc.start) + 1
        raise EnvFileError(
            f"{path} is not UTF-8 text (line {line}), so recovery-wizard will not rewrite it.",
            hint="Save it as UTF-8 and re-run, or edit the connection strings by hand.",
        ) from None


def _digest_on_disk(path: Path) -> str | None:
    """sha256 of the file's current bytes, or None if it does not exist."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EnvFileError(f"{path} could not be read: {exc.strerror or type(exc).__name__}.") from None


def _changed_error(path: Path) -> EnvFileChangedError:
    return EnvFileChangedError(
        f"{path} changed since recovery-wizard read it, so it was not written. "
        "Re-run this step to start from the current file.",
        hint="Something edited the file meanwhile; re-running reads it again and shows a new diff.",
    )


def _unchanged_bytes(env: EnvFile) -> bytes:
    """The file's bytes now, if they are still the ones ``env`` was read from."""
    try:
        data = env.path.read_bytes()
    except FileNotFoundError:
        raise _changed_error(env.path) from None
    except OSError as exc:
        raise EnvFileError(f"{env.path} could not be read: {exc.strerror or type(exc).__name__}.") from None
    if hashlib.sha256(data).hexdigest() != env.digest:
        raise _changed_error(env.path)
    return data


def backup(env: EnvFile, backup_dir: Path) -> Path:
    """Copy the bytes ``env`` was read from into ``backup_dir`` (0700) as ``<n>-<name>``, mode 0600."""
    backup_dir = Path(backup_dir)
    data = _unchanged_bytes(env)
    _private_dir(backup_dir)
    number = _next_number(backup_dir)
    while True:
        target = backup_dir / f"{number}-{env.path.name}"
        try:
            # Created 0600 and exclusively: never readable by others, never someone else's file or link.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            number += 1  # another backup took this number meanwhile
            continue
        except OSError as exc:
            raise EnvFileError(f"Could not create a backup in {backup_dir}: {exc.strerror}.") from None
        break
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(target)
        if isinstance(exc, OSError):
            raise EnvFileError(f"Could not write the backup {target}: {exc.strerror}.") from None
        raise
    _fsync_dir(backup_dir)
    return target


def _private_dir(directory: Path) -> None:
    if directory.is_dir():
        return  # not ours to chmod (it could be any directory); the files in it are 0600 anyway
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # the umask can only have narrowed it; make sure we can use it
    except FileExistsError:
        pass  # created concurrently, or a file by that name: checked below
    except OSError as exc:
        raise EnvFileError(f"Could not create the backup directory {directory}: {exc.strerror}.") from None
    if not directory.is_dir():
        raise EnvFileError(f"The backup directory {directory} exists but is not a directory.")


def _next_number(directory: Path) -> int:
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := re.match(r"(\d+)-", p.name))]
    return max(numbers, default=0) + 1


def write_atomic(env: EnvFile, new_text: str) -> None:
    """Replace the file ``env`` was read from with ``new_text``, atomically, if nobody changed it since."""
    data = _encode(new_text, env.path)

    def still_unchanged() -> None:
        if _digest_on_disk(env.path) != env.digest:
            raise _changed_error(env.path)

    _replace_atomically(env.path, data, env.mode, still_unchanged)


def restore_backup(backup_path: Path, target: Path, *, expected_digest: str | None) -> None:
    """Put a backup back byte for byte, atomically.

    ``expected_digest`` is the digest of what we wrote: if the target no longer holds it, someone edited
    the file after the run, and restoring would clobber their edit (``EnvFileChangedError``). A missing
    target is recreated (mode 0600, as nothing tells us the original's).
    """
    backup_path, target = Path(backup_path), Path(target)
    try:
        data = backup_path.read_bytes()
    except OSError as exc:
        raise EnvFileError(f"The backup {backup_path} could not be read: {exc.strerror}.") from None

    def not_edited_since() -> None:
        current = _digest_on_disk(target)
        if expected_digest is not None and current is not None and current != expected_digest:
            raise EnvFileChangedError(
                f"{target} was edited after recovery-wizard wrote it, so the backup was not restored over "
                "it.",
                hint=f"Compare it with {backup_path} and merge by hand, or move it aside and undo again.",
            )

    try:
        mode = os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    except OSError as exc:
        raise EnvFileError(f"{target} could not be read: {exc.strerror}.") from None
    _replace_atomically(target, data, mode, not_edited_since)


def _encode(text: str, path: Path) -> bytes:
    try:
        return text.encode("utf-8")  # a BOM, if the file had one, is the text's first character
    except UnicodeEncodeError:
        raise EnvFileError(
            f"The new text for {path} cannot be written as UTF-8; nothing was written."
        ) from None


# The temporary file's name: `<name>.recovery-wizard-<hex>.tmp`, beside the file. It holds the whole new file,
# passwords included, until the rename; a kill in between leaves it behind, so its name must be one the usual
# .gitignore patterns (`.env*`, `.env.*`, `*.tmp`) already ignore, and the next write removes it.
_TEMP_MARK: Final = ".recovery-wizard-"
# Older versions named it `.<name>.<12 hex>.tmp`, which no common pattern ignores: removed the same way.
_LEGACY_TEMP: Final = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")


def _temp_path(target: Path) -> Path:
    return target.parent / f"{target.name}{_TEMP_MARK}{secrets.token_hex(6)}.tmp"


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary copies an interrupted write of ``path`` left beside it; return what was removed.

    A writer holds an exclusive ``flock`` on its temporary file until the rename, and the kernel drops it when
    the writer dies: a temporary file we can lock is one nobody is writing any more.
    """
    target = Path(os.path.realpath(path))
    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    prefix = target.name + _TEMP_MARK
    for name in names:
        legacy = _LEGACY_TEMP.fullmatch(name)
        ours = name.startswith(prefix) and name.endswith(".tmp")
        if not ours and not (legacy and legacy["name"] == target.name):
            continue
        candidate = target.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone meanwhile, or a link someone planted: not ours to touch
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(candidate)
            removed.append(candidate)
        except OSError:
            continue  # locked: a live write (or we may not remove it)
        finally:
            os.close(fd)
    return removed


def _replace_atomically(path: Path, data: bytes, mode: int, precondition: Callable[[], None]) -> None:
    """Write ``data`` to a temporary file beside ``path`` and swap it in; on failure leave ``path`` alone."""
    # Through a symlink (a shared .env) we replace the file it points to, and keep the link.
    target = Path(os.path.realpath(path))
    precondition()
    remove_stale_temps(target)
    temp = _temp_path(target)
    try:
        # Created with the final mode (never wider: the umask only narrows, and fchmod then restores the
        # exact bits), exclusively, and not through a link someone planted.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise EnvFileError(f"Could not write {path}: {exc.strerror}; it was left as it was.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until we close it: tells a later run this one is alive
            os.fchmod(fd, mode)
            _keep_owner(fd, target)
            _copy_xattrs(target, fd, path)
            _write_all(fd, data)
            os.fsync(fd)
            precondition()  # again, right before the swap: the window for a concurrent edit stays tiny
            os.replace(temp, target)
        finally:
            os.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise EnvFileError(f"Could not write {path}: {exc.strerror}; it was left as it was.") from None
        raise
    _fsync_dir(target.parent)


# Extended attributes the kernel and its security modules manage (an SELinux label set by policy on the new
# file, IMA/EVM hashes): copied where allowed, never a reason to refuse the write.
_KERNEL_XATTRS: Final = "security."


def _copy_xattrs(source: Path, fd: int, shown: Path) -> None:
    """Give the new file the extended attributes of the one it replaces, POSIX ACLs included.

    An ACL is the xattr ``system.posix_acl_access``. Losing it is not harmless: the group bits of the mode
    hold the ACL's mask, so without the ACL the owning group would get the mask's rights, and the users the
    ACL named (a deploy user) would lose theirs. So a copy that fails refuses the write; a filesystem
    without xattrs simply has none to copy. (No library: the os module has the calls, and this is all.)
    """
    if not hasattr(os, "listxattr"):
        return  # the os module has these calls on Linux only (macOS keeps xattrs through other APIs)
    try:
        names = os.listxattr(source)
    except FileNotFoundError:
        return  # restoring a file that is gone: nothing to copy from
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            return
        raise
    for name in names:
        try:
            os.setxattr(fd, name, os.getxattr(source, name))
        except OSError as exc:
            if name.startswith(_KERNEL_XATTRS):
                continue
            raise EnvFileError(
                f"Could not carry the extended attribute {name} of {shown} over to the new file "
                f"({exc.strerror}), so it was left as it was.",
                hint="Rewrite the connection strings by hand, or remove that attribute first if it is not needed.",
            ) from None
    # An ACL inherited from the directory's default ACL, which the old file did not have: drop it.
    with contextlib.suppress(OSError):
        if "system.posix_acl_access" not in names and "system.posix_acl_access" in os.listxattr(fd):
            os.removexattr(fd, "system.posix_acl_access")


def _keep_owner(fd: int, target: Path) -> None:
    # Best effort: a replaced file gets our owner; put the original's back where we may (same user, or root).
    try:
        info = os.stat(target)
        if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
            os.fchown(fd, info.st_uid, info.st_gid)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Some filesystems refuse fsync on a directory; by then the new file is
    # in place, so that is not a reason to report a failed write.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- which file matters -----------------------------------------------------------------------------------


def git_tracked(path: Path) -> bool:
    """Whether git tracks ``path`` (False without git, outside a repository, or on any git error)."""
    path = Path(path)
    try:
        result = subprocess.run(
            # The repository is the one around the file, whatever GIT_DIR the user's shell exported.
            git_argv("ls-files", "--error-unmatch", "--", path.name),
            cwd=path.parent,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


# Next.js loads, first value wins: .env.$(NODE_ENV).local, .env.local (not in test), .env.$(NODE_ENV), .env.
_READ_BEFORE: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    ".env": (
        (".env.production.local", " in production"),
        (".env.development.local", " in development"),
        (".env.local", ""),
        (".env.production", " in production"),
        (".env.development", " in development"),
    ),
    ".env.production": ((".env.production.local", ""), (".env.local", "")),
    ".env.development": ((".env.development.local", ""), (".env.local", "")),
    ".env.local": (
        (".env.production.local", " in production"),
        (".env.development.local", " in development"),
    ),
}
_PRISMA_CONFIGS: Final = ("prisma7.config", "prisma.config")
_CONFIG_SUFFIXES: Final = (".ts", ".mts", ".cts", ".js", ".mjs", ".cjs")


def reading_warnings(
    path: Path, project_dir: Path, *, prisma_major: int | None, has_prisma_config: bool
) -> list[str]:
    """Warnings for when rewriting ``path`` may not change what the app or Prisma actually reads.

    Sources: Next.js's load order (a higher-priority file that sets the same variable wins), which files
    Prisma's CLI loads by version (docs/prisma.md), and git (a tracked file puts passwords in the repository).
    Variable names come from the files' contents; messages name variables and files, never values.
    """
    path, project_dir = Path(path), Path(project_dir)
    warnings: list[str] = []
    env = _read_quietly(path, warnings)
    ours = _connection_keys(env) if env else set()
    warnings += _hard_link_warnings(path)
    warnings += _next_warnings(path, project_dir, ours)
    if prisma_major is not None:
        warning = _prisma_warning(path, project_dir, prisma_major, has_prisma_config)
        if warning:
            warnings.append(warning)
    if git_tracked(path):
        warnings.append(
            f"{path} is tracked by git: the new connection strings, passwords included, will show up in "
            "`git diff` and could be committed. Consider `git rm --cached` and adding it to .gitignore."
        )
    return warnings


def _hard_link_warnings(path: Path) -> list[str]:
    # The rewrite swaps a new file in under this name (that is what makes it atomic); another name for the
    # same file (a hard link) keeps pointing at the old contents.
    try:
        links = os.stat(path).st_nlink
    except OSError:
        return []
    if links <= 1:
        return []
    return [
        f"{path} has {links - 1} other hard link(s): the rewrite puts a new file under this name only, so "
        f"the other name(s) keep the old connection strings. Find them with `find / -xdev -samefile {path}` "
        "and update them by hand (or replace them with symlinks to this file)."
    ]


def _read_quietly(path: Path, warnings: list[str]) -> EnvFile | None:
    try:
        return EnvFile.read(path) if path.exists() else None
    except EnvFileError as exc:
        warnings.append(f"Could not check {path}: {exc}")  # already a sentence, and free of values
        return None


def _connection_keys(env: EnvFile) -> set[str]:
    """Keys that hold (or are named like) a Postgres connection string."""
    keys = set()
    for binding in env.bindings:
        value = env.get(binding.key)
        if binding.key in _CONNECTION_NAMES or (value and _POSTGRES_URL.match(value)):
            keys.add(binding.key)
    return keys


def _next_warnings(path: Path, project_dir: Path, ours: set[str]) -> list[str]:
    if not ours or _relative(path, project_dir) != path.name:
        return []  # Next.js reads env files from the project root only
    warnings: list[str] = []
    for name, when in _READ_BEFORE.get(path.name, ()):
        other_path = project_dir / name
        other = _read_quietly(other_path, warnings)
        shared = sorted(ours & {b.key for b in other.bindings}) if other else []
        if shared:
            warnings.append(
                f"{', '.join(shared)} WILL NOT BE REPOINTED{when.upper()}: {other_path} also sets "
                f"{', '.join(shared)}, and Next.js reads {name} before {path.name}{when} (the first value "
                f"wins): the app will keep using the value in {name} unless that file is rewritten too."
            )
    return warnings


def _prisma_warning(path: Path, project_dir: Path, major: int, has_config: bool) -> str | None:
    where = _relative(path, project_dir) or str(path)
    # Prisma 5, and 6 without a config file, load .env or prisma/.env themselves (docs/prisma.md).
    if major <= 5 or (major == 6 and not has_config):
        if where in (".env", "prisma/.env"):
            return None
        return (
            f"Prisma {major}'s CLI reads only .env and prisma/.env, never {where}: `prisma db pull` and "
            "migrations will keep using the old connection strings unless .env is rewritten too."
        )
    # Prisma 7, and 6 with a config file, load no env file themselves: only the config can (docs/prisma.md).
    config = _prisma_config(project_dir)
    if config is None:
        return (
            f"Prisma {major} does not load .env files by itself (only a prisma.config.* that imports "
            f'"dotenv/config" does, and none was found): Prisma CLI commands will not see the values in '
            f"{where}, only variables set in the environment."
        )
    if "dotenv" not in config[1]:
        return (
            f"Prisma {major} does not load .env files by itself, and {config[0].name} does not import "
            f'"dotenv": Prisma CLI commands will not see the values in {where}, only variables set in the '
            "environment."
        )
    if "dotenv/config" not in config[1]:
        return None  # the config loads dotenv its own way (maybe another path): we cannot tell which file
    if where != ".env":
        return (
            f'{config[0].name} loads only .env (through "dotenv/config"), not {where}: Prisma CLI commands '
            "will keep using the old connection strings unless .env is rewritten too."
        )
    return None


def _prisma_config(project_dir: Path) -> tuple[Path, str] | None:
    # Prisma 7.10+ looks for prisma7.config.* first.
    for stem in _PRISMA_CONFIGS:
        for suffix in _CONFIG_SUFFIXES:
            candidate = project_dir / f"{stem}{suffix}"
            with contextlib.suppress(OSError, UnicodeDecodeError):
                return candidate, candidate.read_text(encoding="utf-8")
    return None


def _relative(path: Path, project_dir: Path) -> str | None:
    try:
        return path.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return None
