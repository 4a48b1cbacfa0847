"""The Neon API's base URL: where the API key may be sent, how the URL is shown, whether it looks right.

- **The key goes out only encrypted, or not off this machine.** A bearer key sent over plain ``http://``
  is readable by anyone on the path, so an ``http://`` URL is refused unless its host is loopback
  (127.0.0.0/8, ::1, ``localhost``): the local sandbox. The check runs before a client is built
  (the CLI and the wizard), so nothing, not even the first request, leaves with the key.
- **Shown without credentials.** A URL with ``user:password@`` (a proxy's) is shown and journalled with
  the password masked. Hand-written with ``urllib.parse`` because ``redact.mask_url`` knows the Postgres
  schemes only.
- **Missing ``/api/v2``** is the usual slip when a URL is typed by hand; Neon then answers 404 to every
  path, which reads like a wrong project id. :func:`missing_api_v2` says when to blame the URL instead.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from recovery_wizard.neon.errors import BadAPIURLError
from recovery_wizard.redact import MASK

API_PATH: Final = "/api/v2"


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (also written as an IPv4-mapped IPv6 address)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_api_url(url: str) -> str:
    """``url`` if the API key may be sent to it; otherwise :class:`BadAPIURLError` saying why and what to do."""
    shown = display_url(url)
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise BadAPIURLError(
            f"The API URL {shown!r} is not a valid URL.", hint=f"Use https://console.neon.tech{API_PATH}."
        ) from None
    if parts.scheme not in ("https", "http") or not host:
        raise BadAPIURLError(
            f"The API URL {shown!r} is not an https:// URL.",
            hint=f"Use https://console.neon.tech{API_PATH} (or the http://127.0.0.1:… URL the sandbox prints).",
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise BadAPIURLError(
            f"Refusing to send the API key over plain http:// to {host}: anyone on the way could read it.",
            hint="Use https:// (Neon's API is https://console.neon.tech/api/v2); plain http:// is allowed "
            "only to this machine (localhost, 127.0.0.1, ::1), e.g. the sandbox.",
        )
    return url.strip()


def display_url(url: str) -> str:
    """``url`` with the password of any ``user:password@`` masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK if "@" in url else url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked = f"{user}:{MASK}" if ":" in userinfo else user
    return urlunsplit(parts._replace(netloc=f"{masked}@{hostport}"))


def missing_api_v2(base_url: str) -> bool:
    """True when the base URL's path does not end in ``/api/v2`` (``https://console.neon.tech``, say)."""
    try:
        path = urlsplit(base_url).path
    except ValueError:
        return False
    return not path.rstrip("/").endswith(API_PATH)
