"""The one helper that keeps secrets out of output.

Every printer, logger, journal, report and exception message in the project goes through here:

- :class:`Secret` wraps an API key, a password or a connection URI so that ``str``, ``repr``, f-strings,
  logging and tracebacks with locals show a mask; only :meth:`Secret.reveal` hands out the value, and only
  code that must send it (an HTTP header, a libpq connection) calls it.
- :func:`mask_url` masks the password in a connection URL (however the password is written) or a libpq
  key/value string; :func:`split_url` is the one way the project splits a URL's userinfo from the rest.
- :func:`redact` scrubs free text: the password of every URL in it (Postgres, Redis, MongoDB, AMQP, HTTP…),
  plus every value ever wrapped in a ``Secret``.
- :class:`RedactingFilter` applies :func:`redact` to log records.

Why a registry of live secret values: a secret can leak through a path that does not know it holds one
(an error message from a library that echoes a connection string, a user's SQL). Scrubbing the known values
from everything we print closes those paths too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Final

MASK: Final = "****"

# Secrets shorter than this are not scrubbed from free text: replacing "a" or "12" everywhere would mangle
# output while protecting nothing (such a value is not a credential worth the name).
_MIN_SCRUB_LEN: Final = 6

_registry_lock = threading.Lock()
_registry: set[str] = set()

# scheme://[user[:password]@]host...  Passwords in hand-written .env files are not always percent-encoded: a raw
# '@', '/', '#', "'" or '?' is seen in practice, so in free text a URL's userinfo ends at the LAST '@' before a
# blank, a double quote, a backslash or a backtick (hosts, paths and ports hold none of these; where a path or
# query holds an '@', we mask too much, never too little). Those four end it because they are how text around
# a URL is quoted or escaped: the JSON we print (where a line break is `\n`) must stay valid JSON.
_USERINFO: Final = r"(?P<userinfo>[^\s\"\\`]*@)?"
_PG_SCHEME: Final = r"(?:postgres(?:ql)?|postgresql\+\w+|prisma\+postgres)://"
_URL_RE: Final = re.compile(rf"(?P<scheme>\b{_PG_SCHEME}){_USERINFO}(?P<rest>[^\s'\"`]*)", re.IGNORECASE)
# Any other scheme (redis://, mongodb+srv://, amqp://, https://), masked the same way.
_OTHER_URL_RE: Final = re.compile(rf"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://){_USERINFO}(?P<rest>[^\s'\"`]*)")
_SCHEME_RE: Final = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")
# password=... inside a URL query string or a libpq key/value DSN ("host=x password='a b'").
_KV_PASSWORD_RE: Final = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&'\"]+)",
    re.IGNORECASE,
)


def register_secret(value: str) -> None:
    """Remember a secret value so that :func:`redact` scrubs it from any text."""
    if len(value) >= _MIN_SCRUB_LEN:
        with _registry_lock:
            _registry.add(value)


def _mask_userinfo(userinfo: str) -> str:
    # userinfo is "user:password@" or "user@" (or ":password@").
    body = userinfo[:-1]
    if ":" not in body:
        return userinfo
    user = body.split(":", 1)[0]
    return f"{user}:{MASK}@"


def _mask_kv(text: str) -> str:
    return _KV_PASSWORD_RE.sub(lambda m: m.group("key") + MASK, text)


def _mask_url_match(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    return (
        match.group("scheme") + (_mask_userinfo(userinfo) if userinfo else "") + _mask_kv(match.group("rest"))
    )


# `?name=` or `&name=`: the start of a query parameter.
_QUERY_PARAM_RE: Final = re.compile(r"[?&][A-Za-z_][\w.-]*=")


def split_url(url: str, *, query_at_signs: bool = False) -> tuple[str, str | None, str]:
    """(scheme and anything before it, userinfo without its '@' or None, the rest) of ONE URL.

    The userinfo ends at the last '@' whatever the password holds (blanks, '/', '#', '?', '@', quotes): how
    well formed the password is must not decide whether it is shown. That is what masking uses.

    ``query_at_signs``: for reading a URL's parts rather than masking it, an '@' that follows ``?name=``
    after an earlier '@' is taken as the query's (``application_name=me@corp``), not the userinfo's. (A
    password holding ``@x?name=`` would then be split wrongly: masking never takes that chance.)
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        return "", None, url
    after = url[match.end() :]
    at = len(after)
    while (at := after.rfind("@", 0, at)) >= 0:
        query = _QUERY_PARAM_RE.search(after, 0, at) if query_at_signs else None
        if query is None or "@" not in after[: query.start()]:
            userinfo = after[:at]
            if query_at_signs and ":" not in userinfo and any(c in userinfo for c in "/?#"):
                break  # a user name alone never holds these: the '@' is in the path or query
            return url[: match.end()], userinfo, after[at + 1 :]
    return url[: match.end()], None, after


def mask_url(url: str) -> str:
    """Mask the password of a connection URL (or libpq ``key=value`` string); keep the rest.

    A text that starts with a URL is taken as that one URL (its password may hold anything); in other text,
    every URL in it is masked as :func:`redact` does.

    >>> mask_url("postgresql://alex:s3cret@ep-x.neon.tech/neondb?sslmode=require")
    'postgresql://alex:****@ep-x.neon.tech/neondb?sslmode=require'
    >>> mask_url("postgresql://alex:a/b#c'd e@ep-x.neon.tech/neondb")
    'postgresql://alex:****@ep-x.neon.tech/neondb'
    """
    if _SCHEME_RE.match(url):
        head, userinfo, rest = split_url(url)
        if userinfo is None or ":" not in userinfo:
            return _mask_kv(url)
        return head + userinfo.split(":", 1)[0] + ":" + MASK + "@" + _mask_kv(rest)
    return _mask_text(url)


def _mask_text(text: str) -> str:
    """Every URL's password in free text, and every ``password=…`` outside URLs."""
    masked, count = _URL_RE.subn(_mask_url_match, text)
    masked, other = _OTHER_URL_RE.subn(_mask_url_match, masked)
    if count or other:
        return masked
    return _mask_kv(text)


def url_password(url: str) -> str | None:
    """The password of one connection URL, however it is written (for scrubbing it where it shows alone)."""
    if not _SCHEME_RE.match(url):
        return None
    userinfo = split_url(url)[1]
    return userinfo.split(":", 1)[1] if userinfo and ":" in userinfo else None


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Scrub ``text`` of URL passwords, every registered secret and ``extra`` values."""
    text = _mask_text(text)
    with _registry_lock:
        values = set(_registry)
    values.update(v for v in extra if len(v) >= _MIN_SCRUB_LEN)
    # Longest first, so a secret that contains another is replaced whole.
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class Secret:
    """A value that must never be shown: an API key, a password, a connection URI.

    ``str()``/``repr()``/``format()`` give a mask (for a Postgres URL: the URL with its password masked,
    because the host and database are what a person needs to see). ``reveal()`` is the only way out.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value
        register_secret(value)
        # A URL's password is a secret of its own: scrub it even where it shows up alone.
        password = url_password(value)
        if password:
            register_secret(password)

    def reveal(self) -> str:
        """The real value, for the one call that must send it."""
        return self._value

    @property
    def masked(self) -> str:
        return mask_url(self._value) if _URL_RE.match(self._value) else MASK

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value somewhere we do not control (a cache, a crash dump).
        raise TypeError("a Secret cannot be pickled")


class RedactingFilter(logging.Filter):
    """A logging filter that formats the record's message and scrubs it with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, scrubbed, so no handler formats the raw exception later.
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Scrub every record that reaches ``logger``'s handlers (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
