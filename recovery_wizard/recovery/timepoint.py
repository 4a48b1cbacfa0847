"""The moment to restore to: read what a tired person types, say back exactly what it means, and check it
against the project's restore window before anything is sent to Neon.

Design:

- **Deterministic forms first, natural language last.** :func:`parse_moment` tries, in order: an exact
  timestamp with an offset (RFC 3339 / ISO 8601), ``now``, a local date and time, a relative time
  (``90m ago``, ``2 uur geleden``), a bare time of day, and only then dateparser for phrases such as
  ``gisteren 23:59``. The strict forms never go near dateparser, whose leniency is a liability for input
  that looks exact (it reads ``"10"`` as the 10th of some month); a bare number or a bare date is refused
  with a hint rather than guessed.
- **Wall-clock times are ours to place on the time line.** A local time in a zone with daylight saving time
  may not exist (the spring gap) or may exist twice (the autumn fold). Silently picking one would restore
  to the wrong hour, so both are refused with an explanation and the exact alternatives. dateparser's own
  zone handling picks a side silently, so for phrases we take its wall-clock reading and place it ourselves.
- **Relative times are elapsed time.** ``2h ago`` is ``now - 2 hours`` on the UTC time line, which is what
  an engineer counting back from an alert means, also across a DST change. Numeric relative times in
  English, Dutch and Indonesian are read here; anything fancier (``an hour ago``, ``een uur geleden``) goes
  to dateparser.
- **Echo both clocks.** :meth:`Moment.describe` always shows UTC (what Neon and the logs use) and the local
  time in the zone the input was read in (what the person typed), so a wrong guess is visible before the
  restore, not after.
- **``now`` is injected**, so every reading is reproducible in tests and between the plan and its journal.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from recovery_wizard.errors import RecoveryError

log = logging.getLogger("recovery_wizard.recovery.timepoint")


class TimePointError(RecoveryError):
    """A moment or duration could not be read, or lies outside the restore window."""


# --- zones ----------------------------------------------------------------------------------------------

ZONE_EXAMPLES: Final = "Europe/Amsterdam, Asia/Jakarta, America/New_York or UTC"

# Where a Unix system says its zone; module-level so tests can point them elsewhere.
_LOCALTIME: Path = Path("/etc/localtime")
_TIMEZONE_FILE: Path = Path("/etc/timezone")


def _zone_from_key(key: str) -> ZoneInfo | None:
    """A ZoneInfo for an IANA key, or None; never raises (bad keys raise several exception types)."""
    key = key.strip()
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _key_from_path(path: str) -> str | None:
    """``/usr/share/zoneinfo/Europe/Amsterdam`` (or macOS's ``/var/db/timezone/zoneinfo/…``) -> the key."""
    marker = "zoneinfo/"
    index = path.rfind(marker)
    return path[index + len(marker) :] if index >= 0 else None


def _zone_from_tz_env(value: str) -> ZoneInfo | None:
    # POSIX allows a leading ':' ("TZ=:Europe/Amsterdam") and absolute paths to a zone file.
    value = value.strip().removeprefix(":")
    if value.startswith("/"):
        key = _key_from_path(value)
        return _zone_from_key(key) if key else None
    return _zone_from_key(value)


def _tzlocal_name() -> str | None:
    """The OS's zone name via tzlocal (covers Windows and macOS set-ups that have no /etc files)."""
    try:
        import tzlocal

        return tzlocal.get_localzone_name()
    except Exception:  # tzlocal raises a variety of errors on odd systems; any of them means "unknown".
        return None


def _system_zone() -> ZoneInfo | None:
    try:
        if _LOCALTIME.is_symlink():
            key = _key_from_path(os.path.realpath(_LOCALTIME))
            zone = _zone_from_key(key) if key else None
            if zone is not None:
                return zone
    except OSError:
        pass
    try:
        zone = _zone_from_key(_TIMEZONE_FILE.read_text(encoding="utf-8").split("#")[0])
        if zone is not None:
            return zone
    except (OSError, UnicodeDecodeError):
        pass
    name = _tzlocal_name()
    return _zone_from_key(name) if name else None


# Names for "the machine's zone". "localtime" is also a file in the zone database (a copy of some zone, UTC
# in most containers), which ZoneInfo would load without a word: the person meant their own zone.
_LOCAL_NAMES: Final = frozenset({"local", "localtime", "system"})


def resolve_zone(name: str | None) -> tzinfo:
    """The zone to read and echo times in: ``name`` (an IANA key), else the machine's local zone.

    Without a name (or ``local``/``localtime``): ``$TZ`` if it names a zone, else the system zone, else UTC; an unusable ``$TZ`` is
    skipped rather than fatal (a 2 a.m. recovery must not die on a shell setting). An unknown name is an
    error: the person asked for that zone and must not silently get another.
    """
    if name is None or not name.strip() or name.strip().casefold() in _LOCAL_NAMES:
        env = os.environ.get("TZ")
        zone = _zone_from_tz_env(env) if env else None
        if zone is None and env:
            log.debug("ignoring TZ=%r: not an IANA time zone", env)
        zone = zone or _system_zone()
        return zone if zone is not None else ZoneInfo("UTC")
    zone = _zone_from_key(name)
    if zone is not None:
        return zone
    known = available_timezones()
    folded = {key.casefold(): key for key in known}
    if name.strip().casefold() in folded:  # "europe/amsterdam": unambiguous, so accept it.
        return ZoneInfo(folded[name.strip().casefold()])
    close = difflib.get_close_matches(name.strip(), sorted(known), n=1, cutoff=0.75)
    suggestion = f" Did you mean {close[0]}?" if close else ""
    raise TimePointError(
        f"Unknown time zone {_quote(name)}.{suggestion}",
        hint=f"Use an IANA time zone name, for example {ZONE_EXAMPLES}.",
    )


def zone_name(zone: tzinfo) -> str:
    """``Europe/Amsterdam`` for a ZoneInfo, ``UTC`` or ``UTC+01:00`` for a fixed offset."""
    if isinstance(zone, ZoneInfo):
        return zone.key
    return str(zone)


# --- formatting -----------------------------------------------------------------------------------------


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"“{text}”"


def _clock(dt: datetime, *, seconds: bool = True) -> str:
    """``01:29:59`` (``.123`` only when the milliseconds are non-zero), or ``01:29`` without seconds."""
    if not seconds:
        return f"{dt:%H:%M}"
    millis = dt.microsecond // 1000
    return f"{dt:%H:%M:%S}" + (f".{millis:03d}" if millis else "")


def _abbreviation(dt: datetime) -> str:
    return dt.tzname() or zone_name(dt.tzinfo or UTC)


def _distance(moment: datetime, now: datetime) -> str:
    """``35 minutes ago``, ``1 day 2 hours ago``, ``42 s ago``, ``now``, ``in 5 minutes``."""
    delta = now - moment
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"{human_duration(delta)} ago" if delta > timedelta(0) else f"in {human_duration(-delta)}"


def _both_clocks(utc: datetime, zone: tzinfo, *, seconds: bool = True, name_zone: bool = True) -> str:
    """``2026-11-21 01:29:59 UTC (02:29:59 CET, Europe/Amsterdam)``; the local date only when it differs."""
    local = utc.astimezone(zone)
    text = f"{utc:%Y-%m-%d} {_clock(utc, seconds=seconds)} UTC"
    local_date = f"{local:%Y-%m-%d} " if local.date() != utc.date() else ""
    abbreviation = _abbreviation(local)
    name = zone_name(zone)
    label = abbreviation if (abbreviation == name or not name_zone) else f"{abbreviation}, {name}"
    return f"{text} ({local_date}{_clock(local, seconds=seconds)} {label})"


# --- moments --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A point in time as the person gave it: the instant (UTC), their words, and the zone they meant."""

    utc: datetime
    text: str
    zone: tzinfo
    # When the text was read: "35 minutes ago" is said relative to it. None for a moment re-read from a
    # journal, whose reading time is long past.
    read_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.utc.tzinfo is None or self.utc.utcoffset() is None:
            raise ValueError("Moment.utc must be timezone-aware")
        # Normalise, so equality, hashing and formatting never depend on how the instant was spelled.
        object.__setattr__(self, "utc", self.utc.astimezone(UTC))

    @property
    def local(self) -> datetime:
        return self.utc.astimezone(self.zone)

    def describe(self) -> str:
        """``2026-11-21 01:29:59 UTC (02:29:59 CET, Europe/Amsterdam; 35 minutes ago)``.

        Always both clocks, and how long before the reading it is: a misread phrase ("10 minutes before
        10:05" read as 10:05) shows at once as a distance nobody meant.
        """
        both = _both_clocks(self.utc, self.zone)
        if self.read_at is None:
            return both
        return both[:-1] + f"; {_distance(self.utc, self.read_at)})"

    def rfc3339(self) -> str:
        """``2026-11-21T01:29:59Z``; a fraction (ms, or µs when needed) only when non-zero."""
        micro = self.utc.microsecond
        if not micro:
            fraction = ""
        elif micro % 1000 == 0:
            fraction = f".{micro // 1000:03d}"
        else:
            fraction = f".{micro:06d}"
        return f"{self.utc:%Y-%m-%dT%H:%M:%S}{fraction}Z"


ACCEPTED_FORMS: Final = (
    "an exact time with an offset (2026-11-21T01:29:59Z, 2026-11-21 02:29:59+01:00); "
    "a local date and time (2026-11-21 02:29, 2026-11-21T02:29:59); "
    "a time today (01:30); "
    "a relative time (90m ago, 1h30m ago, 35 minutes ago, 2 uur geleden, 35 menit yang lalu); "
    "a phrase (yesterday 23:59, gisteren 23:59, kemarin 23:59, today 01:30); "
    "or now"
)

_FRACTION = r"(?:[.,](?P<fraction>\d{1,9}))?"
# An exact timestamp: the offset (or Z) is what makes it exact. Offsets may carry seconds (Python's
# isoformat writes them for odd historical zones).
_ISO_OFFSET_RE: Final = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d+)?)?)?)$",
    re.IGNORECASE,
)
_LOCAL_RE: Final = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})[T ]+(?P<h>\d{1,2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})" + _FRACTION + r")?$",
    re.IGNORECASE,
)
_TIME_RE: Final = re.compile(r"^(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})" + _FRACTION + r")?$")
_DATE_ONLY_RE: Final = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_NUMBER_RE: Final = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")

_NOW_WORDS: Final = frozenset({"now", "nu", "sekarang"})

# Units of a relative time, in the three languages the runbook speaks. "m" is minutes (never months: the
# restore window is at most 30 days anyway).
_UNIT_SECONDS: Final[dict[str, int]] = {
    name: seconds
    for names, seconds in (
        ("s sec secs second seconds seconde seconden detik", 1),
        ("m min mins minute minutes minuut minuten menit", 60),
        ("h hr hrs hour hours uur uren jam", 3600),
        ("d day days dag dagen hari", 86400),
        ("w wk wks week weeks weken minggu", 604800),
    )
    for name in names.split()
}
_AGO = r"(?:ago|geleden|yang\s+lalu|lalu)"
# "an hour ago", "een uur geleden", "satu jam yang lalu": the word for one, then a space.
_ONE_WORDS: Final = frozenset({"a", "an", "one", "een", "één", "satu"})
_NUMBER = r"(?:\d+(?:[.,]\d+)?|(?:an?|one|een|één|satu)(?=\s))"
_RELATIVE_RE: Final = re.compile(
    r"^(?P<parts>(?:" + _NUMBER + r"\s*[a-z]+[\s,]*(?:(?:and|en|dan)\s+)?)+)" + _AGO + r"$"
)
_PART_RE: Final = re.compile(r"(" + _NUMBER + r")\s*([a-z]+)")
# A clock time inside a phrase ("yesterday 23:59"), checked before dateparser sees it.
_DOT_CLOCK_RE: Final = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{2})(?![\d.])")
_CLOCK_RE: Final = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d])")
# Zone abbreviations people type after a time, as the fixed offsets they stand for: "CET" is +01:00 on any
# date (in summer the same clocks say CEST, +02:00). The seeds' and users' zones (Central Europe,
# Indonesia), UTC/GMT and the US ones.
_ABBREVIATIONS: Final[dict[str, timedelta]] = {
    name: timedelta(minutes=minutes)
    for names, minutes in (
        ("UTC GMT UT", 0),
        ("WET", 0),
        ("WEST CET MET", 60),
        ("CEST MEST EET", 120),
        ("EEST MSK", 180),
        ("WIB", 420),
        ("WITA", 480),
        ("WIT", 540),
        ("EDT", -240),
        ("EST CDT", -300),
        ("MDT", -360),
        ("MST", -420),
        ("PST", -480),
        ("PDT", -420),
        ("AKST", -540),
        ("AKDT", -480),
        ("HST", -600),
    )
    for name in names.split()
}
# Abbreviations that name several zones: refused, naming them, rather than guessed.
_AMBIGUOUS_ABBREVIATIONS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "IST": (("India", "+05:30"), ("Ireland, summer", "+01:00"), ("Israel", "+02:00")),
    "CST": (("US Central", "-06:00"), ("China", "+08:00"), ("Cuba", "-05:00")),
    "BST": (("British Summer Time", "+01:00"), ("Bangladesh", "+06:00")),
    "AST": (("Atlantic", "-04:00"), ("Arabia", "+03:00")),
    "SST": (("Samoa", "-11:00"), ("Singapore", "+08:00")),
    "GST": (("Gulf", "+04:00"), ("South Georgia", "-02:00")),
}
_ZONE_SUFFIX_RE: Final = re.compile(r"^(?P<rest>.*\S)\s+(?P<abbr>[A-Za-z]{2,5})$")

# "-5m ago", "+2h ago": a sign makes "ago" ambiguous.
_SIGNED_RE: Final = re.compile(r"^\s*[-+]\s*\d")


def parse_moment(text: str, *, zone: tzinfo, now: datetime) -> Moment:
    """Read ``text`` as a moment, in ``zone`` where it has no offset of its own, relative to ``now``.

    Raises :class:`TimePointError` (quoting the input) for anything it cannot read unambiguously, every
    word of it used: a word the reading would ignore is refused, never dropped. A trailing zone
    abbreviation (``10:05 CET``) sets the offset the rest is read in; an ambiguous one (``IST``) is
    refused naming what it could mean. It does not check the restore window: see
    :meth:`RestoreWindow.check`.
    """
    if _SIGNED_RE.match(text):
        raise TimePointError(
            f"{_quote(text)} has a signed amount: write how long ago without a sign, e.g. '5m ago'.",
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    cleaned = " ".join(text.split())
    if not cleaned:
        raise TimePointError("No moment was given (the input “” is empty).", hint=f"Type {ACCEPTED_FORMS}.")
    reading_zone = zone
    suffix = _ZONE_SUFFIX_RE.match(cleaned)
    if suffix is not None and suffix.group("abbr").upper() in _AMBIGUOUS_ABBREVIATIONS:
        abbr = suffix.group("abbr").upper()
        meanings = "; ".join(f"{offset} ({what})" for what, offset in _AMBIGUOUS_ABBREVIATIONS[abbr])
        raise TimePointError(
            f"{_quote(text)} ends in {abbr}, which names more than one zone: {meanings}.",
            hint="Leave the abbreviation out and pass --tz with a zone name (Asia/Kolkata, America/Chicago, "
            f"Europe/London …), or give an exact timestamp such as "
            f"2026-11-21T10:05:00{_AMBIGUOUS_ABBREVIATIONS[abbr][0][1]}.",
        )
    if suffix is not None and suffix.group("abbr").upper() in _ABBREVIATIONS:
        abbr = suffix.group("abbr").upper()
        cleaned = suffix.group("rest")
        if _ISO_OFFSET_RE.match(cleaned) or cleaned.lower() in _NOW_WORDS or _relative(cleaned.lower()):
            raise TimePointError(
                f"{_quote(text)} ends in the zone {abbr}, but {_quote(cleaned)} already is an exact moment: "
                "the zone would change nothing.",
                hint=f"Leave out {abbr}, or give a time of day in it, e.g. '10:05 {abbr}'.",
            )
        reading_zone = timezone(_ABBREVIATIONS[abbr], abbr)
    utc = _parse(cleaned, reading_zone, now)
    return Moment(utc, text, zone, read_at=now)


def _parse(text: str, zone: tzinfo, now: datetime) -> datetime:
    """The instant ``text`` (whitespace-normalised, no zone abbreviation) means, read in ``zone``."""
    lowered = text.lower()
    if _ISO_OFFSET_RE.match(text):
        return _parse_iso(text)
    if lowered in _NOW_WORDS:
        return now
    match = _LOCAL_RE.match(text)
    if match:
        wall = _wall_clock(text, match, date=None)
        return _place(wall, zone, text)
    relative = _relative(lowered)
    if relative is not None:
        if relative <= timedelta(0):
            raise TimePointError(f"{_quote(text)} is no time ago at all.", hint=f"Type {ACCEPTED_FORMS}.")
        try:
            return now - relative
        except OverflowError:
            raise TimePointError(
                f"{_quote(text)} is further back than any calendar goes.", hint=f"Type {ACCEPTED_FORMS}."
            ) from None
    match = _TIME_RE.match(text)
    if match:
        return _today_at(text, match, zone, now)
    if _NUMBER_RE.match(text):
        raise TimePointError(
            f"{_quote(text)} is a bare number: minutes, hours or a day of the month?",
            hint="Say which, e.g. '90m ago', '2h ago' or '2026-11-21 01:30'.",
        )
    if _DATE_ONLY_RE.match(text):
        raise TimePointError(
            f"{_quote(text)} is a date without a time of day.",
            hint=f"Add the time, e.g. '{text} 23:59' (read in {zone_name(zone)}).",
        )
    utc = _natural(text, zone, now)
    if utc is None:
        raise TimePointError(
            f"Could not read {_quote(text)} as a moment in time.", hint=f"Type {ACCEPTED_FORMS}."
        )
    return utc


def _parse_iso(text: str) -> datetime:
    # datetime.fromisoformat (3.11) reads every RFC 3339 form except a lowercase 'z'/'t' and ',' fractions.
    normal = text.replace(",", ".")
    normal = normal[:10] + normal[10:].upper() if len(normal) > 10 else normal
    normal = re.sub(r"\s+(?=[+-]\d{2}(:?\d{2})?$|Z$)", "", normal)
    try:
        parsed = datetime.fromisoformat(normal)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise TimePointError(
            f"{_quote(text)} looks like a timestamp but is not a valid date and time ({_why(exc)}).",
            hint="Check the month (01-12), day, hour (00-23) and minutes (00-59), e.g. 2026-11-21T01:29:59Z.",
        ) from None
    # Unreachable given the regex, but a naive datetime must never escape.
    raise TimePointError(f"{_quote(text)} has no offset.", hint=f"Type {ACCEPTED_FORMS}.")


def _why(exc: ValueError | OverflowError) -> str:
    reason = str(exc)
    return reason if not reason.lower().startswith("invalid isoformat") else "not a real calendar time"


def _fraction_micro(fraction: str | None) -> int:
    # Read up to nanoseconds, keep microseconds: truncating (not rounding) never moves past the given time.
    return int((fraction or "").ljust(6, "0")[:6])


def _wall_clock(text: str, match: re.Match[str], *, date: datetime | None) -> datetime:
    """A naive wall-clock datetime from a regex match, or a TimePointError naming what is out of range."""
    groups = match.groupdict()
    try:
        if date is None:
            year, month, day = int(groups["y"]), int(groups["mo"]), int(groups["d"])
        else:
            year, month, day = date.year, date.month, date.day
        return datetime(
            year,
            month,
            day,
            int(groups["h"]),
            int(groups["mi"]),
            int(groups["s"] or 0),
            _fraction_micro(groups.get("fraction")),
        )
    except ValueError as exc:
        raise TimePointError(
            f"{_quote(text)} is not a valid date and time: {exc}.",
            hint="Check the month (01-12), day, hour (00-23) and minutes (00-59), e.g. 2026-11-21 01:29.",
        ) from None


def _offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _place(wall: datetime, zone: tzinfo, text: str) -> datetime:
    """Put a naive wall-clock time of ``zone`` on the UTC time line, refusing DST gaps and folds."""
    early = wall.replace(tzinfo=zone, fold=0)
    late = wall.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        try:
            return early.astimezone(UTC)
        except OverflowError:  # 0001-01-01 00:00 east of UTC is before datetime.min in UTC
            raise TimePointError(
                f"{_quote(text)} is outside the calendar this tool can handle.",
                hint=f"Type {ACCEPTED_FORMS}.",
            ) from None
    name = zone_name(zone)
    stamp = f"{wall:%Y-%m-%d %H:%M}" + (f":{wall:%S}" if wall.second or wall.microsecond else "")
    round_trip = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip == wall:
        # Both readings exist: the clocks went back and this hour happened twice.
        first, second = early.astimezone(UTC), late.astimezone(UTC)
        first_offset, second_offset = _offset(early.utcoffset()), _offset(late.utcoffset())
        raise TimePointError(
            f"{_quote(text)} is ambiguous: in {name} the clocks went back that night, so {stamp} happened "
            f"twice, first at {first:%H:%M:%S} UTC ({early.tzname()}, {first_offset}) and again "
            f"at {second:%H:%M:%S} UTC ({late.tzname()}, {second_offset}).",
            hint=f"Write it with an explicit offset: {wall:%Y-%m-%dT%H:%M}{first_offset} for the first, "
            f"{wall:%Y-%m-%dT%H:%M}{second_offset} for the second (or give it in UTC).",
        )
    # The clocks jumped forward over this time: it never showed on a clock in this zone.
    before = early.utcoffset() or timedelta(0)
    after = late.utcoffset() or timedelta(0)
    jump = abs(before - after)
    raise TimePointError(
        f"{_quote(text)} does not exist in {name}: the clocks jumped forward by {human_duration(jump)} that "
        f"night ({early.tzname()} to {late.tzname()}), so {stamp} never happened there.",
        hint="Give a time just before or after the jump, or write an explicit offset "
        f"(e.g. {wall:%Y-%m-%dT%H:%M}{_offset(before)}), or give it in UTC.",
    )


def _relative(lowered: str) -> timedelta | None:
    """``90m ago``, ``1h30m ago``, ``2 uur geleden``, ``35 menit yang lalu``: None if not this form."""
    match = _RELATIVE_RE.match(lowered)
    if not match:
        return None
    total = Decimal(0)
    # Connectors ("and", "en", "dan") carry no number, so findall skips them.
    for number, unit in _PART_RE.findall(match.group("parts")):
        seconds = _UNIT_SECONDS.get(unit)
        if seconds is None:
            return None  # an unknown unit: perhaps dateparser knows the phrase
        amount = Decimal(1) if number in _ONE_WORDS else Decimal(number.replace(",", "."))
        total += amount * seconds
    try:
        return timedelta(seconds=float(total))
    except OverflowError:
        return timedelta.max


def _today_at(text: str, match: re.Match[str], zone: tzinfo, now: datetime) -> datetime:
    local_now = now.astimezone(zone)
    wall = _wall_clock(text, match, date=local_now)
    utc = _place(wall, zone, text)
    if utc > now:
        # Moving it to yesterday would be a guess; at 2 a.m. "01:30" might mean either night.
        raise TimePointError(
            f"{_quote(text)} means today at {_clock(wall)} in {zone_name(zone)}, which is still in the "
            f"future: it is now {_clock(local_now)} there ({now:%H:%M:%S} UTC).",
            hint=f"For last night, type 'yesterday {text}' or the full date, e.g. "
            f"'{local_now - timedelta(days=1):%Y-%m-%d} {text}'.",
        )
    return utc


_PHRASE_LANGUAGES: Final = ("en", "nl", "id")
# What dateparser's English rendering of a phrase may hold, word by word ("gisteren om 23:59" becomes
# "1 day ago 23:59", "vorige week vrijdag" "1 week ago friday").
_PHRASE_UNITS: Final = frozenset("second minute hour day week month year".split())
_DAY_UNITS: Final = frozenset({"day", "week"})
_PHRASE_DAYS: Final = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december".split()
)
_PHRASE_FILLERS: Final = frozenset({"at", "on", "of", "the", "last", "this", "and", "om", "pukul", "jam"})
_PHRASE_CLOCK_RE: Final = re.compile(r"^\d{1,2}[:.]\d{2}(?:[:.]\d{2})?$")
_PHRASE_NUMBER_RE: Final = re.compile(r"^\d{1,4}(?:[-/.]\d{1,4}){0,2}$")


def _check_phrase(text: str) -> str | None:
    """The language dateparser should read ``text`` in, after checking that every word of it counts.

    dateparser reads what it can and drops the rest without a word: "10 minutes before 10:05" became
    10:05, "yesterday" exactly 24 h ago, "yesterday 23:59 01:00" noon, "90 minutes ago 5 minutes" 11:55.
    So the phrase is first rendered in dateparser's own English (its translation step), and that rendering
    must be one of: a span ago ("2 hours 5 minutes ago"), or a day and ONE time of day ("1 day ago 23:59",
    "friday 14:00", "21 november 2026 02:30"), with no word left over. None when no language reads it.
    """
    from dateparser.conf import settings as default_settings
    from dateparser.languages.loader import default_loader
    from dateparser.timezone_parser import pop_tz_offset_from_string

    stripped, _ = pop_tz_offset_from_string(text)
    for language in _PHRASE_LANGUAGES:
        locale = default_loader.get_locale(language)
        if locale.is_applicable(stripped, strip_timezone=False, settings=default_settings):
            rendering = locale.translate(stripped, keep_formatting=False, settings=default_settings)
            _check_rendering(text, str(rendering).split())
            return language
    return None


def _check_rendering(text: str, words: list[str]) -> None:
    clocks = [i for i, w in enumerate(words) if _PHRASE_CLOCK_RE.match(w)]
    # "11 pm": a number with am/pm is a time of day too.
    clocks += [i for i, w in enumerate(words[:-1]) if w.isdigit() and words[i + 1] in ("am", "pm")]
    for word in words:
        known = (
            word in _PHRASE_UNITS
            or word in _PHRASE_DAYS
            or word in _PHRASE_FILLERS
            or word in ("ago", "in", "am", "pm")
            or _PHRASE_CLOCK_RE.match(word)
            or _PHRASE_NUMBER_RE.match(word)
        )
        if not known:
            raise TimePointError(
                f"{_quote(text)} has a word this tool does not read ({_quote(word)}), and a moment read "
                "without it could be the wrong one.",
                hint=f"Type {ACCEPTED_FORMS}.",
            )
    if words.count("ago") + words.count("in") > 1:
        raise TimePointError(
            f"{_quote(text)} counts back (or forward) more than once: it cannot be read as one moment.",
            hint="Write one span ('1h30m ago') or the moment itself ('yesterday 23:59').",
        )
    if "ago" in words or "in" in words:
        marker = words.index("ago") if "ago" in words else words.index("in")
        span = [w for w in words[: marker if "ago" in words else len(words)] if w in _PHRASE_UNITS]
        after = words[marker + 1 :] if "ago" in words else []
        if not clocks:
            if after:
                raise TimePointError(
                    f"{_quote(text)} goes on after “ago”: only one span can be counted back.",
                    hint="Write the whole span before “ago”, e.g. '1h30m ago', or the moment itself.",
                )
            if span and all(unit in _DAY_UNITS for unit in span):
                # "yesterday", "gisteren", "vorige week": a day, not a span. Numeric day spans ("2 days
                # ago") never get here: they are read as elapsed time before dateparser is asked.
                raise TimePointError(
                    f"{_quote(text)} names a day but no time of day; read alone it would mean this very "
                    "minute of that day, which is rarely what anyone means.",
                    hint=f"Add the time, e.g. '{text} 23:59'.",
                )
            return  # "an hour and a half ago", "2 hours 5 minutes ago": a span ago
        if not span or any(unit not in _DAY_UNITS for unit in span) or _PHRASE_UNITS & set(after):
            raise TimePointError(
                f"{_quote(text)} mixes a span of time with a time of day: it cannot be read as one moment "
                "without arithmetic on clock times, which this tool does not guess at.",
                hint="Write the moment itself, e.g. '09:55' or '2026-11-21 09:55', or only the span "
                "('10 minutes ago').",
            )
    elif _PHRASE_UNITS & set(words):
        raise TimePointError(
            f"{_quote(text)} mixes a span of time with a day or time of day: it cannot be read as one moment.",
            hint="Write the moment itself, e.g. 'yesterday 23:59' or '2026-11-21 09:55', or only the span "
            "('10 minutes ago').",
        )
    if not clocks:
        raise TimePointError(
            f"{_quote(text)} names a day but no time of day; read alone it would mean this very minute "
            "of that day, which is rarely what anyone means.",
            hint=f"Add the time, e.g. '{text} 23:59'.",
        )
    if len(clocks) > 1:
        raise TimePointError(
            f"{_quote(text)} has more than one time of day: which one is the moment?",
            hint="Give one time, e.g. 'yesterday 23:59'.",
        )


def _natural(text: str, zone: tzinfo, now: datetime) -> datetime | None:
    """A phrase via dateparser (English, Dutch, Indonesian), placed in ``zone`` by us; None if unreadable."""
    import dateparser  # imported here: it is slow to import and only phrases need it
    from dateparser.timezone_parser import StaticTzInfo

    name = zone_name(zone)
    settings: dict[str, Any] = {
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "past",
        "RELATIVE_BASE": now.astimezone(zone),
        "TIMEZONE": name,
    }
    # "kemarin pukul 23.59": Indonesian writes clock times with a dot, which dateparser drops (noon).
    text = _DOT_CLOCK_RE.sub(r"\1:\2", text)
    clocks = _CLOCK_RE.findall(text)
    for hour, minute, second in clocks:
        if int(hour) > 23 or int(minute) > 59 or (second and int(second) > 59):
            # dateparser would drop an impossible time and quietly use midnight: a restore to the wrong moment.
            raise TimePointError(
                f"{_quote(text)} has the time {hour}:{minute}{':' + second if second else ''}, which does not exist.",
                hint="Hours run 00–23 and minutes 00–59, e.g. 'yesterday 23:59'.",
            )
    language = _check_phrase(text)
    if language is None:
        return None
    try:
        parsed = dateparser.parse(text, languages=[language], settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input; for us that is "unreadable"
        log.debug("dateparser failed on %r", text, exc_info=True)
        return None
    if parsed is None:
        return None
    if not isinstance(parsed, datetime):  # defensive: the library is untyped
        return None
    if len(clocks) == 1 and (parsed.hour, parsed.minute) != (int(clocks[0][0]), int(clocks[0][1])):
        raise TimePointError(
            f"{_quote(text)} was read as {parsed:%H:%M}, not the {clocks[0][0]}:{clocks[0][1]} it says.",
            hint="Write the moment as a date and time, e.g. '2026-11-20 23:59'.",
        )
    if isinstance(parsed.tzinfo, StaticTzInfo):
        # The phrase carried its own zone or offset ("… 23:59 UTC", "… +0700"): that instant is exact.
        return parsed.astimezone(UTC)
    # Otherwise dateparser returns the wall-clock time in ``zone``: place it ourselves (gaps, folds).
    return _place(parsed.replace(tzinfo=None), zone, text)


# --- the restore window ---------------------------------------------------------------------------------


# How far from the window's old edge a restore point must be: the plan is read and confirmed before the
# request is sent, and the edge moves on meanwhile.
EDGE_SAFETY: Final = timedelta(minutes=10)


@dataclass(frozen=True)
class RestoreWindow:
    """The moments Neon can restore to: from ``now - history_retention_seconds`` up to now."""

    earliest: datetime
    now: datetime
    retention_seconds: int

    @classmethod
    def from_retention(cls, retention_seconds: int | None, now: datetime) -> RestoreWindow:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        seconds = max(int(retention_seconds or 0), 0)
        now = now.astimezone(UTC)
        return cls(earliest=now - timedelta(seconds=seconds), now=now, retention_seconds=seconds)

    @property
    def disabled(self) -> bool:
        return self.retention_seconds <= 0

    @property
    def width(self) -> timedelta:
        return timedelta(seconds=self.retention_seconds)

    def check(self, moment: Moment) -> None:
        """Raise :class:`TimePointError` unless Neon can restore to ``moment``."""
        if self.disabled:
            raise TimePointError(
                "Point-in-time restore is disabled for this project: history_retention_seconds is 0, so Neon "
                "keeps no history to restore from.",
                hint="Restore from a snapshot or an external backup instead. Raising the history retention "
                "now only keeps history from now on; it does not bring back earlier data.",
            )
        if moment.utc >= self.now:
            when = "is right now" if moment.utc == self.now else "is in the future"
            raise TimePointError(
                f"{_quote(moment.text)} {when}: it reads as {moment.describe()}, and it is now "
                f"{_both_clocks(self.now, moment.zone)}.",
                hint="Pick a moment before the incident, e.g. '35 minutes ago' or 'yesterday 23:59'.",
            )
        if moment.utc < self.earliest:
            raise TimePointError(
                f"{_quote(moment.text)} reads as {moment.describe()}, which is before the oldest restorable "
                f"moment: the restore window runs from {_both_clocks(self.earliest, moment.zone)} to now "
                f"({human_duration(self.width)} of history).",
                hint=f"Pick a moment after {self.earliest:%Y-%m-%d %H:%M:%S} UTC, or restore from a snapshot "
                "or an external backup if the data is older than that.",
            )

    def near_old_edge(self, moment: Moment, margin: timedelta = EDGE_SAFETY) -> bool:
        """True when ``moment`` is within ``margin`` of the oldest restorable moment (or already before it).

        The window slides forward every second: a moment this close may have left it by the time the
        restore request reaches Neon.
        """
        return moment.utc - self.earliest < margin

    def check_clear_of_old_edge(self, moment: Moment, margin: timedelta = EDGE_SAFETY) -> None:
        """Refuse a restore point within ``margin`` of the window's old edge, naming the earliest safe one.

        Such a moment is in the window now but may have left it when the request reaches Neon (after the
        plan is read and confirmed); Neon then refuses it, and a resume can never succeed. Refusing before
        any write, with the earliest safe moment, costs nothing.
        """
        if not self.near_old_edge(moment, margin):
            return
        safe = Moment(self.earliest + margin, "", moment.zone)
        raise TimePointError(
            f"{_quote(moment.text)} reads as {moment.describe()}, within {human_duration(margin)} of the "
            f"oldest restorable moment ({_both_clocks(self.earliest, moment.zone)}): the window slides "
            "forward every second, so Neon would likely refuse it by the time the restore is sent.",
            hint=f"The earliest safe moment is {safe.describe()}: use --at {safe.rfc3339()} or later, or "
            "restore from a snapshot or an external backup if the data you need is older.",
        )

    def describe(self, zone: tzinfo) -> str:
        """``from 2026-11-14 02:05 UTC (03:05 CET) to now (7 days)``."""
        if self.disabled:
            return "empty: point-in-time restore is disabled (history_retention_seconds is 0)"
        start = _both_clocks(self.earliest, zone, seconds=False, name_zone=False)
        return f"from {start} to now ({human_duration(self.width)})"

    def fraction(self, moment: datetime) -> float:
        """Where ``moment`` sits in the window, 0 (oldest) to 1 (now), clamped: for drawing a bar."""
        if self.disabled:
            return 1.0
        position = (moment - self.earliest) / (self.now - self.earliest)
        return min(max(position, 0.0), 1.0)


# --- durations ------------------------------------------------------------------------------------------

_DURATION_UNITS: Final[dict[str, Decimal]] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "sec": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "h": Decimal(3600),
    "hr": Decimal(3600),
    "d": Decimal(86400),
}
_DURATION_RE: Final = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|sec|min|hr|s|m|h|d))+\s*$")
_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|hr|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """``1s``, ``500ms``, ``2m``, ``1h``, ``1.5s``, ``1m30s``, or a bare number of seconds (``90``)."""
    cleaned = text.strip().lower()
    total: Decimal | None = None
    try:
        if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
            total = Decimal(cleaned)
        elif _DURATION_RE.match(cleaned):
            total = sum(
                (Decimal(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART_RE.findall(cleaned)), Decimal(0)
            )
    except InvalidOperation:
        total = None
    if total is not None and total > 0:
        try:
            return timedelta(seconds=float(total))
        except OverflowError:
            total = None
    if total is None:
        raise TimePointError(
            f"Could not read {_quote(text)} as a duration.",
            hint="Use a number with a unit, e.g. 500ms, 1s, 1.5s, 2m or 1h (a bare number means seconds).",
        )
    raise TimePointError(
        f"The duration {_quote(text)} must be longer than zero.", hint="For example 1s, 500ms or 2m."
    )


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" + ("" if count == 1 else "s")


def human_duration(delta: timedelta) -> str:
    """``7 days``, ``6 hours``, ``35 minutes``, ``1 day 2 hours``, ``42 s``, ``500 ms``.

    At most the two largest units, truncated (a window of 6 days 23 hours 59 minutes is not "7 days").
    """
    if delta < timedelta(0):
        return "-" + human_duration(-delta)
    seconds = delta.total_seconds()
    if seconds < 1:
        millis = round(seconds * 1000)
        return f"{millis} ms" if millis else "0 s"
    if seconds < 60:
        whole = math.floor(seconds * 10) / 10
        return f"{whole:g} s"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    first = next(i for i, (count, _) in enumerate(parts) if count)
    shown = [_plural(count, unit) for count, unit in parts[first : first + 2] if count]
    return " ".join(shown)
