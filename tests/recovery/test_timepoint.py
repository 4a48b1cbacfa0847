"""Reading restore moments: every accepted form, in three zones and three languages, DST, the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recovery_wizard.recovery import timepoint
from recovery_wizard.recovery.timepoint import (
    Moment,
    RestoreWindow,
    TimePointError,
    human_duration,
    parse_duration,
    parse_moment,
    resolve_zone,
)

NOW = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)  # 03:10 CET in Amsterdam, 09:10 WIB in Jakarta
AMS = ZoneInfo("Europe/Amsterdam")
JKT = ZoneInfo("Asia/Jakarta")
ZONES = {"UTC": ZoneInfo("UTC"), "Europe/Amsterdam": AMS, "Asia/Jakarta": JKT}
# The offset of each zone on 2026-11-20/21 (winter in Amsterdam).
OFFSET = {"UTC": timedelta(0), "Europe/Amsterdam": timedelta(hours=1), "Asia/Jakarta": timedelta(hours=7)}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def parse(text: str, zone: tzinfo = UTC, now: datetime = NOW) -> Moment:
    moment = parse_moment(text, zone=zone, now=now)
    # Invariants of every reading: aware, in UTC, the words and zone kept.
    assert moment.utc.tzinfo is UTC
    assert moment.text == text
    assert moment.zone is zone
    return moment


def refused(text: str, zone: tzinfo = UTC, now: datetime = NOW) -> TimePointError:
    with pytest.raises(TimePointError) as info:
        parse_moment(text, zone=zone, now=now)
    return info.value


# --- exact and relative forms: the same instant whatever the zone -----------------------------------------

EXACT = [
    ("2026-11-21T01:29:59Z", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21T01:29:59.250Z", utc(2026, 11, 21, 1, 29, 59) + timedelta(milliseconds=250)),
    ("2026-11-21 01:29:59Z", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21t01:29:59z", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21T02:29:59+01:00", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21 02:29:59.5+01:00", utc(2026, 11, 21, 1, 29, 59) + timedelta(milliseconds=500)),
    ("2026-11-21T08:29+0700", utc(2026, 11, 21, 1, 29)),
    ("2026-11-21 02:29:59 +01:00", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21T01:29:59,5Z", utc(2026, 11, 21, 1, 29, 59) + timedelta(milliseconds=500)),
    ("2026-11-20T20:29:59-05:00", utc(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21T01:29:59.123456789Z", utc(2026, 11, 21, 1, 29, 59) + timedelta(microseconds=123456)),
    ("now", NOW),
    ("NOW", NOW),
    ("90m ago", NOW - timedelta(minutes=90)),
    ("2h ago", NOW - timedelta(hours=2)),
    ("1h30m ago", NOW - timedelta(minutes=90)),
    ("45s ago", NOW - timedelta(seconds=45)),
    ("3d ago", NOW - timedelta(days=3)),
    ("90 minutes ago", NOW - timedelta(minutes=90)),
    ("2 hours ago", NOW - timedelta(hours=2)),
    ("35 minutes ago", NOW - timedelta(minutes=35)),
    ("1 hour and 30 minutes ago", NOW - timedelta(minutes=90)),
    ("an hour ago", NOW - timedelta(hours=1)),
    ("35 minuten geleden", NOW - timedelta(minutes=35)),
    ("2 uur geleden", NOW - timedelta(hours=2)),
    ("een uur geleden", NOW - timedelta(hours=1)),
    ("35 menit yang lalu", NOW - timedelta(minutes=35)),
    ("2 jam yang lalu", NOW - timedelta(hours=2)),
    ("1 jam 30 menit yang lalu", NOW - timedelta(minutes=90)),
]


@pytest.mark.parametrize("zone_name", list(ZONES))
@pytest.mark.parametrize(("text", "expected"), EXACT)
def test_exact_and_relative_forms(zone_name: str, text: str, expected: datetime) -> None:
    assert parse(text, ZONES[zone_name]).utc == expected


# --- wall-clock forms: read in the zone --------------------------------------------------------------------

# (text, local wall-clock time in the zone); every zone here is past that time at NOW.
LOCAL = [
    ("2026-11-21 01:29", datetime(2026, 11, 21, 1, 29)),
    ("2026-11-21 01:29:59", datetime(2026, 11, 21, 1, 29, 59)),
    ("2026-11-21 01:29:59.250", datetime(2026, 11, 21, 1, 29, 59, 250000)),
    ("2026-11-21T01:29", datetime(2026, 11, 21, 1, 29)),
    ("2026-11-21T01:29:59", datetime(2026, 11, 21, 1, 29, 59)),
    ("yesterday 23:59", datetime(2026, 11, 20, 23, 59)),
    ("gisteren 23:59", datetime(2026, 11, 20, 23, 59)),
    ("kemarin 23:59", datetime(2026, 11, 20, 23, 59)),
    ("today 01:30", datetime(2026, 11, 21, 1, 30)),
    ("vandaag 01:30", datetime(2026, 11, 21, 1, 30)),
    ("hari ini 01:30", datetime(2026, 11, 21, 1, 30)),
    ("01:30", datetime(2026, 11, 21, 1, 30)),
    ("01:30:15", datetime(2026, 11, 21, 1, 30, 15)),
]


@pytest.mark.parametrize("zone_name", list(ZONES))
@pytest.mark.parametrize(("text", "wall"), LOCAL)
def test_local_forms_are_read_in_the_zone(zone_name: str, text: str, wall: datetime) -> None:
    moment = parse(text, ZONES[zone_name])
    assert moment.utc == wall.replace(tzinfo=UTC) - OFFSET[zone_name]
    assert moment.local.replace(tzinfo=None) == wall


def test_a_phrase_with_its_own_zone_keeps_it() -> None:
    assert parse("yesterday 23:59 UTC", AMS).utc == utc(2026, 11, 20, 23, 59)


def test_a_fixed_offset_zone_works_too() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse("2026-11-21 03:00", plus_two).utc == utc(2026, 11, 21, 1, 0)
    assert parse("yesterday 23:59", plus_two).utc == utc(2026, 11, 20, 21, 59)


def test_a_bare_time_in_the_future_is_refused_not_moved_to_yesterday() -> None:
    # 03:10 CET now: 03:30 today has not happened yet.
    error = refused("03:30", AMS)
    assert "“03:30”" in str(error) and "future" in str(error)
    assert "03:10" in str(error)
    assert "yesterday 03:30" in error.hint and "2026-11-20 03:30" in error.hint
    # The same time is fine in UTC... no: 03:30 UTC is after 02:10 UTC too; 02:00 is not.
    assert parse("02:00", UTC).utc == utc(2026, 11, 21, 2, 0)


def test_relative_times_are_elapsed_time_across_a_dst_change() -> None:
    # 2026-03-29 04:00 CEST; two hours earlier was 01:00 CET (the clocks skipped 02:00-03:00).
    now = utc(2026, 3, 29, 2, 0)
    moment = parse("2h ago", AMS, now)
    assert moment.utc == utc(2026, 3, 29, 0, 0)
    assert moment.local.replace(tzinfo=None) == datetime(2026, 3, 29, 1, 0)


# --- daylight saving time in Europe/Amsterdam -----------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-03-29 02:30", "2026-03-29T02:30:00"])
def test_a_time_in_the_spring_gap_does_not_exist(text: str) -> None:
    error = refused(text, AMS)
    message = str(error)
    assert f"“{text}”" in message
    assert "does not exist in Europe/Amsterdam" in message and "jumped forward by 1 hour" in message
    assert "CET to CEST" in message
    assert "offset" in error.hint


def test_a_time_in_the_autumn_fold_is_ambiguous_and_both_candidates_are_named() -> None:
    error = refused("2026-10-25 02:30", AMS)
    message = str(error)
    assert "“2026-10-25 02:30”" in message and "ambiguous" in message
    assert "00:30:00 UTC" in message and "01:30:00 UTC" in message
    assert "2026-10-25T02:30+02:00" in error.hint and "2026-10-25T02:30+01:00" in error.hint


def test_the_fold_is_caught_in_phrases_and_bare_times_too() -> None:
    now = utc(2026, 10, 25, 3, 0)  # 04:00 CET, after the fold
    for text in ("02:30", "today 02:30", "vandaag 02:30"):
        assert "ambiguous" in str(refused(text, AMS, now))


def test_an_explicit_offset_resolves_the_fold() -> None:
    assert parse("2026-10-25T02:30+02:00", AMS).utc == utc(2026, 10, 25, 0, 30)
    assert parse("2026-10-25T02:30+01:00", AMS).utc == utc(2026, 10, 25, 1, 30)


def test_dst_dates_are_unremarkable_elsewhere() -> None:
    assert parse("2026-03-29 02:30", UTC).utc == utc(2026, 3, 29, 2, 30)
    assert parse("2026-10-25 02:30", JKT).utc == utc(2026, 10, 24, 19, 30)


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow-ish",
        "25:99",
        "2026-13-01 10:00",
        "2026-02-30 10:00",
        "2026-11-21T25:00:00Z",
        "2026-13-01T10:00:00+01:00",
        "90",
        "2026-11-20",
        "banana o'clock",
    ],
)
@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Amsterdam"])
def test_bad_input_is_refused_quoting_it(text: str, zone_name: str) -> None:
    error = refused(text, ZONES[zone_name])
    assert f"“{text}”" in str(error)
    assert error.hint


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_input_is_refused(text: str) -> None:
    error = refused(text)
    assert "“”" in str(error) and "empty" in str(error)


def test_the_generic_refusal_lists_the_accepted_forms_with_examples() -> None:
    error = refused("tomorrow-ish")
    assert str(error) == "Could not read “tomorrow-ish” as a moment in time."
    for example in ("2026-11-21T01:29:59Z", "2026-11-21 02:29", "01:30", "90m ago", "2 uur geleden"):
        assert example in error.hint
    for example in ("35 menit yang lalu", "yesterday 23:59", "gisteren 23:59", "kemarin 23:59", "now"):
        assert example in error.hint


def test_out_of_range_fields_say_which() -> None:
    assert "month must be in 1..12" in str(refused("2026-13-01 10:00"))
    assert "hour must be in 0..23" in str(refused("25:99"))


def test_next_week_reads_but_the_window_refuses_it() -> None:
    assert "no time of day" in str(refused("next week", AMS))  # a day without a time
    moment = parse("in 2 hours", AMS)
    assert moment.utc > NOW
    window = RestoreWindow.from_retention(7 * 86400, NOW)
    with pytest.raises(TimePointError, match="is in the future"):
        window.check(moment)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_moment("now", zone=UTC, now=datetime(2026, 11, 21, 2, 10))


# --- Moment ---------------------------------------------------------------------------------------------


def test_describe_shows_utc_and_local_time() -> None:
    moment = Moment(utc(2026, 11, 21, 1, 29, 59), "x", AMS)
    assert moment.describe() == "2026-11-21 01:29:59 UTC (02:29:59 CET, Europe/Amsterdam)"
    assert moment.rfc3339() == "2026-11-21T01:29:59Z"


@pytest.mark.parametrize("zone_name", list(ZONES))
def test_describe_always_has_both_clocks(zone_name: str) -> None:
    moment = parse("90m ago", ZONES[zone_name])
    text = moment.describe()
    assert text.startswith("2026-11-21 00:40:00 UTC (")
    assert f"{moment.local:%H:%M:%S} {moment.local.tzname()}" in text


def test_describe_gives_the_local_date_when_it_differs() -> None:
    moment = Moment(utc(2026, 11, 20, 20, 0), "x", JKT)
    assert moment.describe() == "2026-11-20 20:00:00 UTC (2026-11-21 03:00:00 WIB, Asia/Jakarta)"


def test_milliseconds_only_when_non_zero() -> None:
    base = utc(2026, 11, 21, 1, 29, 59)
    assert "59.250 UTC" in Moment(base + timedelta(milliseconds=250), "x", UTC).describe()
    assert Moment(base + timedelta(milliseconds=250), "x", UTC).rfc3339() == "2026-11-21T01:29:59.250Z"
    assert Moment(base + timedelta(microseconds=5), "x", UTC).rfc3339() == "2026-11-21T01:29:59.000005Z"
    assert ".000" not in Moment(base, "x", UTC).describe()


def test_a_moment_is_normalised_to_utc_and_must_be_aware() -> None:
    moment = Moment(datetime(2026, 11, 21, 2, 29, 59, tzinfo=AMS), "x", AMS)
    assert moment.utc.tzinfo is UTC and moment.utc == utc(2026, 11, 21, 1, 29, 59)
    with pytest.raises(ValueError, match="aware"):
        Moment(datetime(2026, 11, 21), "x", UTC)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.one_of(
            st.just(UTC),
            st.timezones(),
            st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
        ),
        allow_imaginary=False,
    )
)
def test_isoformat_round_trips(d: datetime) -> None:
    moment = parse_moment(d.isoformat(), zone=AMS, now=NOW)
    # Compare in UTC: Python never calls a datetime in a fold equal to one in another zone (PEP 495).
    assert moment.utc == d.astimezone(UTC)
    assert parse_moment(moment.rfc3339(), zone=AMS, now=NOW).utc == moment.utc


# --- the restore window ---------------------------------------------------------------------------------

WEEK = 7 * 86400


def test_the_window_spans_the_retention() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    assert window.earliest == utc(2026, 11, 14, 2, 10) and window.now == NOW
    assert window.describe(AMS) == "from 2026-11-14 02:10 UTC (03:10 CET) to now (7 days)"
    assert window.describe(JKT) == "from 2026-11-14 02:10 UTC (09:10 WIB) to now (7 days)"
    assert window.describe(UTC) == "from 2026-11-14 02:10 UTC (02:10 UTC) to now (7 days)"
    window.check(parse("35 minutes ago", AMS))
    window.check(parse("6d ago", AMS))


@pytest.mark.parametrize("retention", [0, None])
def test_a_disabled_window_refuses_everything(retention: int | None) -> None:
    window = RestoreWindow.from_retention(retention, NOW)
    assert window.retention_seconds == 0
    with pytest.raises(TimePointError) as info:
        window.check(parse("5 minutes ago"))
    assert "point-in-time restore is disabled" in str(info.value).lower()
    assert "history_retention_seconds is 0" in str(info.value)
    assert "disabled" in window.describe(UTC)


def test_a_future_moment_is_refused_showing_both_times() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    with pytest.raises(TimePointError) as info:
        window.check(Moment(NOW + timedelta(hours=1), "in an hour", AMS))
    message = str(info.value)
    assert "“in an hour” is in the future" in message
    assert "2026-11-21 03:10:00 UTC (04:10:00 CET" in message
    assert "it is now 2026-11-21 02:10:00 UTC (03:10:00 CET" in message


def test_now_itself_is_not_restorable() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    with pytest.raises(TimePointError, match="is right now"):
        window.check(parse("now"))


def test_a_moment_older_than_the_window_names_the_window() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    with pytest.raises(TimePointError) as info:
        window.check(parse("8 days ago", JKT))
    message = str(info.value)
    assert "“8 days ago”" in message and "before the oldest restorable moment" in message
    assert "2026-11-14 02:10:00 UTC (09:10:00 WIB, Asia/Jakarta)" in message
    assert "7 days of history" in message
    assert "2026-11-14 02:10:00 UTC" in info.value.hint


def test_near_the_old_edge() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    assert window.near_old_edge(Moment(window.earliest + timedelta(minutes=5), "x", UTC))
    assert not window.near_old_edge(Moment(window.earliest + timedelta(minutes=15), "x", UTC))
    assert window.near_old_edge(Moment(window.earliest + timedelta(minutes=15), "x", UTC), timedelta(hours=1))
    assert not window.near_old_edge(parse("35 minutes ago"))


def test_fraction_places_a_moment_in_the_window() -> None:
    window = RestoreWindow.from_retention(WEEK, NOW)
    assert window.fraction(window.earliest) == 0.0
    assert window.fraction(NOW) == 1.0
    assert window.fraction(NOW - timedelta(days=3.5)) == pytest.approx(0.5)
    assert window.fraction(NOW - timedelta(days=30)) == 0.0
    assert window.fraction(NOW + timedelta(days=1)) == 1.0
    assert RestoreWindow.from_retention(0, NOW).fraction(NOW) == 1.0


# --- zones ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Amsterdam", "Asia/Jakarta", "UTC", " America/New_York "])
def test_named_zones(name: str) -> None:
    zone = resolve_zone(name)
    assert isinstance(zone, ZoneInfo) and zone.key == name.strip()


def test_zone_names_are_matched_without_case() -> None:
    assert resolve_zone("europe/amsterdam") == AMS


@pytest.mark.parametrize(
    "name", ["Europe/Amsterdm", "Mars/Olympus_Mons", "Europe", "../etc/passwd", "/etc/x", "WIB"]
)
def test_an_unknown_zone_is_refused_with_examples(name: str) -> None:
    with pytest.raises(TimePointError) as info:
        resolve_zone(name)
    assert f"“{name}”" in str(info.value)
    assert "Europe/Amsterdam" in info.value.hint and "Asia/Jakarta" in info.value.hint


def test_a_near_miss_gets_a_suggestion() -> None:
    with pytest.raises(TimePointError, match="Did you mean Europe/Amsterdam"):
        resolve_zone("Europe/Amsterdm")


@pytest.fixture
def no_system_zone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine with no zone configured anywhere (tests then add what they need)."""
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(timepoint, "_LOCALTIME", tmp_path / "localtime")
    monkeypatch.setattr(timepoint, "_TIMEZONE_FILE", tmp_path / "timezone")
    monkeypatch.setattr(timepoint, "_tzlocal_name", lambda: None)
    return tmp_path


@pytest.mark.parametrize(
    "value", ["Asia/Jakarta", ":Asia/Jakarta", "/usr/share/zoneinfo/Asia/Jakarta", " Asia/Jakarta "]
)
def test_tz_is_honoured(no_system_zone: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TZ", value)
    assert resolve_zone(None) == JKT
    assert resolve_zone("") == JKT


def test_an_explicit_name_beats_tz(no_system_zone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Jakarta")
    assert resolve_zone("Europe/Amsterdam") == AMS


def _link_localtime(tmp_path: Path, key: str) -> None:
    target = tmp_path / "zoneinfo" / key
    target.parent.mkdir(parents=True)
    target.write_bytes(b"TZif")
    (tmp_path / "localtime").symlink_to(target)


def test_without_tz_the_system_zone_is_used(no_system_zone: Path) -> None:
    _link_localtime(no_system_zone, "Europe/Amsterdam")
    assert resolve_zone(None) == AMS


def test_a_bad_tz_falls_back_to_the_system_zone(
    no_system_zone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _link_localtime(no_system_zone, "Europe/Amsterdam")
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # a POSIX rule, not an IANA name
    assert resolve_zone(None) == AMS


def test_etc_timezone_is_read(no_system_zone: Path) -> None:
    (no_system_zone / "timezone").write_text("Asia/Jakarta\n")
    assert resolve_zone(None) == JKT


def test_tzlocal_is_the_last_source_before_utc(no_system_zone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timepoint, "_tzlocal_name", lambda: "Asia/Jakarta")
    assert resolve_zone(None) == JKT


def test_utc_as_the_last_resort(no_system_zone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Nowhere/Special")
    assert resolve_zone(None) == ZoneInfo("UTC")


def test_the_real_local_zone_never_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    assert isinstance(resolve_zone(None), tzinfo)


# --- durations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", timedelta(seconds=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("1.5s", timedelta(seconds=1.5)),
        ("90", timedelta(seconds=90)),
        ("0.25", timedelta(milliseconds=250)),
        ("1m30s", timedelta(seconds=90)),
        (" 2 min ", timedelta(minutes=2)),
        ("1D", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "junk", "1x", "-1s", "s", "1.s", "nan", "inf", "99999999999999d"])
def test_parse_duration_refuses_junk(text: str) -> None:
    with pytest.raises(TimePointError, match="Could not read") as info:
        parse_duration(text)
    assert f"“{text.strip()}”" in str(info.value) or text == ""
    assert "500ms" in info.value.hint


@pytest.mark.parametrize("text", ["0", "0s", "0ms", "0.0"])
def test_parse_duration_refuses_zero(text: str) -> None:
    with pytest.raises(TimePointError, match="longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(hours=6), "6 hours"),
        (timedelta(minutes=35), "35 minutes"),
        (timedelta(days=1, hours=2), "1 day 2 hours"),
        (timedelta(days=1, hours=2, minutes=3), "1 day 2 hours"),
        (timedelta(days=6, hours=23, minutes=59), "6 days 23 hours"),
        (timedelta(hours=1, minutes=1), "1 hour 1 minute"),
        (timedelta(days=2, minutes=5), "2 days"),
        (timedelta(seconds=42), "42 s"),
        (timedelta(seconds=1.5), "1.5 s"),
        (timedelta(milliseconds=500), "500 ms"),
        (timedelta(0), "0 s"),
        (timedelta(minutes=-5), "-5 minutes"),
    ],
)
def test_human_duration(delta: timedelta, expected: str) -> None:
    assert human_duration(delta) == expected


# --- every word counts (issue: words dropped without a word) ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("10 minutes before 10:05", "mixes a span of time with a time of day"),
        ("10 minutes after 01:00", "mixes a span of time with a time of day"),
        ("yesterday", "no time of day"),
        ("gisteren", "no time of day"),
        ("kemarin", "no time of day"),
        ("last friday", "no time of day"),
        ("yesterday 23:59 01:00", "more than one time of day"),
        ("gisteren 23:59 01:00", "more than one time of day"),
        ("90 minutes ago 5 minutes", "goes on after “ago”"),
        ("3h ago 1h", "goes on after “ago”"),
        ("2 hours ago and 5", "goes on after “ago”"),
    ],
)
def test_words_the_reading_would_drop_are_refused(text: str, said: str) -> None:
    error = refused(text, AMS)
    assert said in str(error)
    assert text in str(error)
    assert error.hint


WHOLE_PHRASES = [
    "yesterday 23:59",
    "gisteren 23:59",
    "kemarin 23:59",
    "yesterday at 11pm",
    "2 hours 5 minutes ago",
]


@given(
    phrase=st.sampled_from(WHOLE_PHRASES),
    extra=st.sampled_from(["01:00", "5 minutes", "10:05", "ago", "banana", "2 hours ago", "23:59"]),
    before=st.booleans(),
)
def test_a_phrase_with_a_word_too_many_is_refused(phrase: str, extra: str, before: bool) -> None:
    # "5 minutes 2 hours 5 minutes ago" uses every word: one span, summed.
    assume(not (before and extra == "5 minutes" and phrase.endswith("ago")))
    text = f"{extra} {phrase}" if before else f"{phrase} {extra}"
    with pytest.raises(TimePointError):
        parse_moment(text, zone=AMS, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kemarin pukul 23.59", utc(2026, 11, 20, 16, 59)),  # the dot is Indonesian for ':'
        ("kemarin 23.59", utc(2026, 11, 20, 16, 59)),
        ("yesterday at 11pm", utc(2026, 11, 20, 16, 0)),
        ("gisteren om 23:59", utc(2026, 11, 20, 16, 59)),
    ],
)
def test_whole_phrases_still_read(text: str, expected: datetime) -> None:
    assert parse(text, JKT).utc == expected


# --- zone abbreviations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01:05 CET", utc(2026, 11, 21, 0, 5)),
        ("01:05 cet", utc(2026, 11, 21, 0, 5)),
        ("02:05 CEST", utc(2026, 11, 21, 0, 5)),
        ("08:05 WIB", utc(2026, 11, 21, 1, 5)),
        ("09:05 WITA", utc(2026, 11, 21, 1, 5)),
        ("10:05 WIT", utc(2026, 11, 21, 1, 5)),
        ("01:05 UTC", utc(2026, 11, 21, 1, 5)),
        ("01:05 GMT", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 20:05 EST", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 21:05 EDT", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 17:05 PST", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 18:05 PDT", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 18:05 MST", utc(2026, 11, 21, 1, 5)),
        ("2026-11-20 20:05 CDT", utc(2026, 11, 21, 1, 5)),
        ("yesterday 23:59 CET", utc(2026, 11, 20, 22, 59)),
    ],
)
@pytest.mark.parametrize("zone_name", sorted(ZONES))
def test_zone_abbreviations_set_the_offset_whatever_the_zone(
    text: str, expected: datetime, zone_name: str
) -> None:
    moment = parse(text, ZONES[zone_name])
    assert moment.utc == expected
    assert moment.zone is ZONES[zone_name]  # echoed in the person's own zone


@pytest.mark.parametrize(
    ("abbr", "offsets"),
    [("IST", ["+05:30", "+01:00", "+02:00"]), ("CST", ["-06:00", "+08:00"]), ("BST", ["+01:00", "+06:00"])],
)
def test_ambiguous_abbreviations_are_refused_naming_what_they_could_mean(
    abbr: str, offsets: list[str]
) -> None:
    error = refused(f"01:05 {abbr}", AMS)
    assert abbr in str(error)
    for offset in offsets:
        assert offset in str(error)
    assert "--tz" in error.hint


def test_a_zone_after_a_relative_time_is_refused() -> None:
    assert "would change nothing" in str(refused("90m ago UTC", AMS))


# --- local zone names and the echo --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["localtime", "local", "LocalTime", "system"])
def test_localtime_means_the_machines_zone(
    no_system_zone: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("TZ", "Asia/Jakarta")
    assert resolve_zone(name) == JKT


def test_the_echo_says_utc_local_and_how_long_ago() -> None:
    assert parse("35 minutes ago", AMS).describe() == (
        "2026-11-21 01:35:00 UTC (02:35:00 CET, Europe/Amsterdam; 35 minutes ago)"
    )
    assert parse("yesterday 23:59", JKT).describe() == (
        "2026-11-20 16:59:00 UTC (23:59:00 WIB, Asia/Jakarta; 9 hours 11 minutes ago)"
    )
    assert parse("now", AMS).describe().endswith("; now)")


def test_a_moment_inside_the_edge_margin_is_refused_naming_the_earliest_safe_moment() -> None:
    window = RestoreWindow.from_retention(7 * 86400, NOW)
    moment = parse("7 days ago", AMS)
    window.check(moment)  # inside the window, just
    with pytest.raises(TimePointError) as info:
        window.check_clear_of_old_edge(moment)
    safe = window.earliest + timepoint.EDGE_SAFETY
    assert "earliest safe moment" in info.value.hint
    assert f"{safe:%Y-%m-%dT%H:%M:%S}Z" in info.value.hint
    window.check_clear_of_old_edge(Moment(safe, "x", AMS))
    window.check_clear_of_old_edge(parse("6 days ago", AMS))
