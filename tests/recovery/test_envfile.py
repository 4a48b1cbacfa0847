"""recovery_wizard.recovery.envfile: surgical .env rewrites, masked diffs, backups, atomic writes, warnings."""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import io
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.envfile import (
    EnvFile,
    EnvFileChangedError,
    EnvFileError,
    EnvFileParseError,
    backup,
    git_tracked,
    masked_diff,
    merge_url,
    reading_warnings,
    restore_backup,
    write_atomic,
)

# Planted in files below: no message, diff or warning may ever contain it.
PASSWORD = "npg_Pl4ntedPassw0rd"
OLD_POOLED = (
    f"postgresql://neondb_owner:{PASSWORD}@ep-old-lake-a1b2c3d4-pooler.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&pgbouncer=true&connect_timeout=15"
)
OLD_DIRECT = (
    f"postgresql://neondb_owner:{PASSWORD}@ep-old-lake-a1b2c3d4.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&connect_timeout=15"
)
NEW_PASSWORD = "npg_N3wRestoredPass"
NEW_POOLED = (
    f"postgresql://neondb_owner:{NEW_PASSWORD}@ep-new-moon-e5f6g7h8-pooler.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)
NEW_DIRECT = (
    f"postgresql://neondb_owner:{NEW_PASSWORD}@ep-new-moon-e5f6g7h8.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


def env_of(text: str, name: str = ".env") -> EnvFile:
    return EnvFile.from_text(Path(name), text)


def write(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


def all_text(error: BaseException) -> str:
    """Everything a person or a log could see of an error: message, repr, hint, the plain traceback."""
    return "\n".join(
        [str(error), repr(error), getattr(error, "hint", ""), "".join(traceback.format_exception(error))]
    )


def parsed_pairs(text: str) -> list[tuple[str, str | None]]:
    """(key, value) of every binding python-dotenv reads, in order (duplicates included)."""
    return [(b.key, b.value) for b in parse_stream(io.StringIO(text)) if b.key is not None]


def values(text: str) -> dict[str, str | None]:
    return dict(dotenv_values(stream=io.StringIO(text), interpolate=False))


# --- round trips ------------------------------------------------------------------------------------------

SHAPES = {
    "comments and blanks": "# top comment\n\n   # indented comment\nA=1\n\n\nB=2 # trailing\n",
    "export": "export FOO=bar\nexport  SPACED=x\nexported=1\n",
    "quotes": "S='single value'\nD=\"double value\"\nU=unquoted\n",
    "hash equals spaces": 'H=abc#def\nE==start=end\nSP=a b  c   # comment\nQ="x # y"\n',
    "escaped quotes": 'D="say \\"hi\\" \\\\ there"\nS=\'it\\\'s\'\nN="line\\nbreak"\n',
    "multiline": 'CERT="-----BEGIN-----\nMIIBabc\n-----END-----"\nAFTER=1\n',
    "multiline single": "M='one\ntwo'\n",
    "crlf": "# c\r\nA=1\r\nB=\"two\"\r\n\r\nC='three'\r\n",
    "crlf multiline": 'M="a\r\nb"\r\nX=1\r\n',
    "cr only": "A=1\rB=2\r",
    "no trailing newline": "A=1\nB=2",
    "no trailing newline comment": "A=1\n# end",
    "bom": "\ufeffA=1\nB=2\n",
    "bom crlf": "\ufeff# c\r\nA=1\r\n",
    "duplicates": "A=1\nB=2\nA=3\n",
    "empty values": "E=\nF= \nG=   # note\nH=''\nI=\"\"\n",
    "bare keys": "FOO\nBAR # comment\nBAZ#c\n",
    "spaces around equals": "A = 1\nB= 2\nC =3\n",
    "single-quoted key": "'QK'=v\n",
    "unparseable lines": "A=1\nthis line is not valid\nB='unterminated\nC=3\n",
    "unicode": 'NAME=Zoë\nEMOJI="🚀 launch"\n',
    "tabs": "A=\tvalue\t# c\n\tB=2\n",
    "empty": "",
    "only blanks": "\n\n  \n",
    "neon": f"DATABASE_URL={OLD_POOLED}\nDIRECT_URL='{OLD_DIRECT}'\n",
}


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_rewriting_nothing_returns_the_text_unchanged(text: str) -> None:
    env = env_of(text)
    assert env.rewritten({}) == text


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_rewriting_a_key_to_its_own_value_reads_back_the_same(text: str) -> None:
    env = env_of(text)
    for binding in env.bindings:
        if binding.bare:
            continue
        new = env.rewritten({binding.key: env.get(binding.key) or ""})
        assert values(new) == values(text)


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_bindings_agree_with_python_dotenv(text: str) -> None:
    env = env_of(text)
    expected = values(text)
    assert {b.key for b in env.bindings} == set(expected)
    for key, value in expected.items():
        assert env.get(key) == value


def test_binding_spans_lines_quotes_and_export() -> None:
    text = '\ufeff# c\r\n\r\nexport A=1 # note\r\nB=\'two\'\r\nC="x\\"y"\r\nD= # empty\r\nE\r\n'
    env = env_of(text)
    by_key = {b.key: b for b in env.bindings}
    spans = {k: text[b.value_start : b.value_end] for k, b in by_key.items()}
    assert spans == {"A": "1", "B": "'two'", "C": '"x\\"y"', "D": "", "E": ""}
    assert [(b.key, b.line, b.quote, b.export, b.bare) for b in env.bindings] == [
        ("A", 3, "", True, False),
        ("B", 4, "'", False, False),
        ("C", 5, '"', False, False),
        ("D", 6, "", False, False),
        ("E", 7, "", False, True),
    ]
    assert by_key["C"].value == 'x"y'


def test_get_returns_the_last_binding_and_none_for_bare_or_missing_keys() -> None:
    env = env_of("A=1\nB=2\nA=3\nC=x\nC\n")
    assert env.get("A") == "3"
    assert env.get("B") == "2"
    assert env.get("C") is None  # a later bare `C` wins, as in python-dotenv
    assert env.get("MISSING") is None


# --- rewrites -----------------------------------------------------------------------------------------------

NEXT_ENV = f"""\
# Environment variables declared in this file are automatically made available to Prisma.
# See https://pris.ly/d/prisma-schema#accessing-environment-variables-from-the-schema

# Pooled connection for the app (Neon)
DATABASE_URL="{OLD_POOLED}"
# Direct connection for migrations
DIRECT_URL="{OLD_DIRECT}" # used by prisma migrate

NEXTAUTH_URL=http://localhost:3000
NEXTAUTH_SECRET='s3cr3t-next-auth-value'  # rotate me
export STRIPE_SECRET_KEY=sk_test_51Hplanted
"""


def test_rewrite_changes_only_the_connection_strings_of_a_next_prisma_env() -> None:
    env = env_of(NEXT_ENV)
    changes = {
        "DATABASE_URL": merge_url(env.get("DATABASE_URL"), NEW_POOLED),
        "DIRECT_URL": merge_url(env.get("DIRECT_URL"), NEW_DIRECT),
    }
    new_pooled = (
        f"postgresql://neondb_owner:{NEW_PASSWORD}@ep-new-moon-e5f6g7h8-pooler.eu-central-1.aws.neon.tech"
        "/neondb?sslmode=require&channel_binding=require&pgbouncer=true&connect_timeout=15"
    )
    new_direct = (
        f"postgresql://neondb_owner:{NEW_PASSWORD}@ep-new-moon-e5f6g7h8.eu-central-1.aws.neon.tech"
        "/neondb?sslmode=require&channel_binding=require&connect_timeout=15"
    )
    assert changes == {"DATABASE_URL": new_pooled, "DIRECT_URL": new_direct}
    expected = f"""\
# Environment variables declared in this file are automatically made available to Prisma.
# See https://pris.ly/d/prisma-schema#accessing-environment-variables-from-the-schema

# Pooled connection for the app (Neon)
DATABASE_URL="{new_pooled}"
# Direct connection for migrations
DIRECT_URL="{new_direct}" # used by prisma migrate

NEXTAUTH_URL=http://localhost:3000
NEXTAUTH_SECRET='s3cr3t-next-auth-value'  # rotate me
export STRIPE_SECRET_KEY=sk_test_51Hplanted
"""
    assert env.rewritten(changes) == expected


def test_rewrite_keeps_crlf_bom_export_and_unquoted_style() -> None:
    text = f"\ufeff# app\r\nexport DATABASE_URL={OLD_POOLED}\r\nDIRECT_URL='{OLD_DIRECT}'"
    new = env_of(text).rewritten({"DATABASE_URL": NEW_POOLED, "DIRECT_URL": NEW_DIRECT})
    assert new == f"\ufeff# app\r\nexport DATABASE_URL={NEW_POOLED}\r\nDIRECT_URL='{NEW_DIRECT}'"


def test_every_binding_of_a_duplicated_key_is_rewritten() -> None:
    new = env_of("A=1\nB=2\nA='3'\n").rewritten({"A": "x"})
    assert new == "A=x\nB=2\nA='x'\n"


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("A=old\n", "has space", 'A="has space"\n'),
        ("A=old\n", "a#b", 'A="a#b"\n'),
        ("A=old\n", 'q"uote', 'A="q\\"uote"\n'),
        ("A=old\n", "back\\slash", 'A="back\\\\slash"\n'),
        ("A=old\n", "two\nlines", 'A="two\\nlines"\n'),
        ("A=old\n", "", "A=\n"),
        ("A=old # c\n", "new", "A=new # c\n"),
        ('A="old"\n', 'q"\\', 'A="q\\"\\\\"\n'),
        ("A='old'\n", "it's \\", "A='it\\'s \\\\'\n"),
        ("A= # note\n", "v", "A= v # note\n"),
        ("A= # note\n", "v w", 'A= "v w"# note\n'),
        ("A\n", "v", "A=v\n"),
        ("A # c\n", "v", "A=v # c\n"),
        ("A#c\n", "v", "A=v #c\n"),
        ("A#c\n", "", "A= #c\n"),
        ("A= # note\n", "", "A= # note\n"),
        ("A\n", "v w", 'A="v w"\n'),
        ("A=\n", "v", "A=v\n"),
        ("A=", "v", "A=v"),
    ],
)
def test_values_are_quoted_and_escaped_for_their_style(text: str, value: str, expected: str) -> None:
    new = env_of(text).rewritten({"A": value})
    assert new == expected
    assert values(new)["A"] == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\n", 'A=1\nNEW="v 1"\n'),
        ("A=1", 'A=1\nNEW="v 1"'),
        ("A=1\r\n", 'A=1\r\nNEW="v 1"\r\n'),
        ("A=1\r\nB=2", 'A=1\r\nB=2\r\nNEW="v 1"'),
        ("", 'NEW="v 1"\n'),
        ("\ufeff", '\ufeffNEW="v 1"\n'),
        ("# only a comment", '# only a comment\nNEW="v 1"'),
    ],
)
def test_a_missing_key_is_appended_in_the_files_newline_style(text: str, expected: str) -> None:
    assert env_of(text).rewritten({"NEW": "v 1"}) == expected


def test_appending_a_key_that_is_not_a_plain_name_is_refused() -> None:
    with pytest.raises(EnvFileError, match="not a plain variable name"):
        env_of("A=1\n").rewritten({"BAD KEY": "v"})


def test_an_unparseable_line_is_kept_unless_it_mentions_a_changed_key() -> None:
    text = f'A=1\nDATABASE_URL "{OLD_POOLED}"\nthis is junk\n'
    env = env_of(text)
    assert env.rewritten({"A": "2"}) == text.replace("A=1", "A=2")
    with pytest.raises(EnvFileParseError, match=r"Line 2 of \.env mentions DATABASE_URL") as info:
        env.rewritten({"DATABASE_URL": NEW_POOLED})
    assert PASSWORD not in all_text(info.value)


def test_a_rewrite_that_would_change_how_other_lines_read_is_refused() -> None:
    # The last line opens a double quote it never closes: appending a line after it would let that quote
    # swallow the new line.
    env = env_of(f'DIRECT_URL={OLD_DIRECT}\nX="{PASSWORD}')
    with pytest.raises(EnvFileParseError, match="would change how other lines") as info:
        env.rewritten({"DATABASE_URL": NEW_POOLED})
    assert PASSWORD not in all_text(info.value)
    assert NEW_PASSWORD not in all_text(info.value)


# --- the property ---------------------------------------------------------------------------------------

KEYS = ["A", "B", "DATABASE_URL", "DIRECT_URL", "x.y", "K-1"]
NOT_IN_FILES = "NEW_KEY"
# No whitespace at all (categories Cc and Z hold every character str.isspace accepts), no surrogates.
_word_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z"))
_line_chars = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n")


@dataclass
class GenLine:
    prefix: str
    token: str
    suffix: str
    key: str | None = None
    value: str | None = None  # what the token means (None for a bare key)


def _unquoted_tokens() -> st.SearchStrategy[tuple[str, str]]:
    word = st.text(_word_chars, min_size=1, max_size=6).filter(lambda w: not w.startswith("#"))
    first = word.filter(lambda w: w[0] not in "'\"")
    tokens = st.builds(lambda a, rest: " ".join([a, *rest]), first, st.lists(word, max_size=2))
    return st.one_of(st.just(""), tokens).map(lambda t: (t, t))


def _quoted_tokens(quote: str, newline: str) -> st.SearchStrategy[tuple[str, str]]:
    # (raw piece, what python-dotenv makes of it)
    plain = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters=f"\r\n\\{quote}")
    tricky = st.sampled_from([c for c in " #='\"$`\t" if c != quote])
    pieces: list[st.SearchStrategy[tuple[str, str]]] = [
        plain.map(lambda c: (c, c)),
        tricky.map(lambda c: (c, c)),
        st.just(("\\\\", "\\")),
        st.just(("\\" + quote, quote)),
        st.just((newline, newline)),
    ]
    if quote == '"':
        pieces += [st.just(("\\n", "\n")), st.just(("\\t", "\t"))]
    return st.lists(st.one_of(*pieces), max_size=8).map(
        lambda ps: (quote + "".join(p[0] for p in ps) + quote, "".join(p[1] for p in ps))
    )


@st.composite
def gen_line(draw: st.DrawFn, newline: str) -> GenLine:
    kind = draw(st.sampled_from(["blank", "comment", "binding", "binding", "binding", "bare", "junk"]))
    if kind == "blank":
        return GenLine(draw(st.sampled_from(["", "  ", "\t"])), "", "")
    if kind == "comment":
        return GenLine(
            draw(st.sampled_from(["", "  "])) + "#" + draw(st.text(_line_chars, max_size=12)), "", ""
        )
    if kind == "junk":
        return GenLine("this line is not valid", "", "")
    key = draw(st.sampled_from(KEYS))
    indent = draw(st.sampled_from(["", "  "]))
    comment = draw(st.sampled_from(["", "  ", " # a note", "\t# another"]))
    if kind == "bare":
        return GenLine(indent + key, "", draw(st.sampled_from([comment, "#glued"])), key, None)
    export = draw(st.sampled_from(["", "export "]))
    written_key = draw(st.sampled_from([key, key, f"'{key}'"]))
    equals = draw(st.sampled_from(["=", " = ", "= ", " ="]))
    style = draw(st.sampled_from(["", "'", '"']))
    token, value = draw(_unquoted_tokens() if style == "" else _quoted_tokens(style, newline))
    if style == "" and token == "":
        # dotenv's `=` takes the blanks after it when no value follows: keep them in the prefix so the
        # generated span is exactly where python-dotenv (and envfile) see the empty value.
        blanks = comment[: len(comment) - len(comment.lstrip(" \t"))]
        equals, comment = equals + blanks, comment[len(blanks) :]
    elif style != "" and draw(st.booleans()):
        comment = comment.lstrip(" \t")  # `KEY="v"# note` is fine after a quote
    return GenLine(indent + export + written_key + equals, token, comment, key, value)


@dataclass
class GenFile:
    text: str
    spans: list[tuple[str, int, int]]  # (key, start, end) of each binding's value token
    intended: dict[str, str | None]


@st.composite
def gen_file(draw: st.DrawFn) -> GenFile:
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = draw(st.lists(gen_line(newline), max_size=10))
    text = "\ufeff" if draw(st.booleans()) else ""
    spans: list[tuple[str, int, int]] = []
    intended: dict[str, str | None] = {}
    for number, line in enumerate(lines):
        if number:
            text += newline
        text += line.prefix
        if line.key is not None:
            spans.append((line.key, len(text), len(text) + len(line.token)))
            intended[line.key] = line.value
        text += line.token + line.suffix
    trailing_newline = draw(st.booleans())
    if lines and trailing_newline:
        text += newline
    return GenFile(text, spans, intended)


# New values: URL-like ones (the real use), and ones full of what needs quoting or escaping.
_URL_CHARS = "abcXYZ019:/@?&=%._-+~"
_TRICKY = " \t\n\r\"'\\#=$`\x00\x0b\x85\u2028é🚀"
_new_values = st.one_of(
    st.text(_URL_CHARS, max_size=16),
    st.text(
        st.one_of(st.sampled_from(_TRICKY), st.sampled_from(_URL_CHARS), st.characters(codec="utf-8")),
        max_size=12,
    ),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gen_file(), st.dictionaries(st.sampled_from([*KEYS, NOT_IN_FILES]), _new_values, max_size=4))
def test_property_only_the_chosen_values_change(generated: GenFile, changes: dict[str, str]) -> None:
    text = generated.text
    # The generator means what python-dotenv reads, and envfile locates exactly the generated tokens.
    assert values(text) == generated.intended
    env = env_of(text)
    assert [(b.key, b.value_start, b.value_end) for b in env.bindings] == generated.spans

    new_text = env.rewritten(changes)

    # (1) dotenv reads the new values for the chosen keys, in every binding, and the old ones for the rest.
    old_pairs = parsed_pairs(text)
    expected_pairs = [(k, changes.get(k, v)) for k, v in old_pairs]
    expected_pairs += [(k, v) for k, v in changes.items() if k not in generated.intended]
    assert parsed_pairs(new_text) == expected_pairs
    assert values(new_text) == {**generated.intended, **changes}

    # (2) Outside the replaced value tokens every byte is the same, in the same order.
    cut = [(start, end) for key, start, end in generated.spans if key in changes]
    pieces, done = [], 0
    for start, end in cut:
        pieces.append(text[done:start])
        done = end
    pieces.append(text[done:])
    pattern = "(.*?)".join(re.escape(piece) for piece in pieces)
    if any(key not in generated.intended for key in changes):
        pattern += "(.*)"  # the appended lines
    assert re.fullmatch(pattern, new_text, re.DOTALL), (text, new_text)


# --- merge_url ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "merged"),
    [
        (OLD_POOLED, NEW_POOLED, NEW_POOLED + "&pgbouncer=true&connect_timeout=15"),
        (
            "postgresql://u:p@old/db?schema=app&sslmode=prefer&pool_timeout=20&connection_limit=5",
            "postgresql://u:q@new/db?sslmode=require",
            "postgresql://u:q@new/db?sslmode=require&schema=app&pool_timeout=20&connection_limit=5",
        ),
        (
            "postgres://u:p@old/db?application_name=web&statement_cache_size=0",
            "postgresql://u:q@new/db",
            "postgresql://u:q@new/db?application_name=web&statement_cache_size=0",
        ),
        ("postgres://u:p@old/db?a=1", "postgresql://u:q@new/db?", "postgresql://u:q@new/db?a=1"),
        ("postgres://u:p@old/db?a=1", "postgresql://u:q@new/db?b=2&", "postgresql://u:q@new/db?b=2&a=1"),
        (
            "postgres://u:p@old/db?a=1#frag",
            "postgresql://u:q@new/db?b=2#top",
            "postgresql://u:q@new/db?b=2&a=1#top",
        ),
        ("postgres://u:p@old/db?sslmode=disable", "postgresql://u:q@new/db?sslmode=require", None),
        ("postgres://u:p@old/db", "postgresql://u:q@new/db?sslmode=require", None),
        (None, NEW_POOLED, None),
        ("", NEW_POOLED, None),
        ("not a url", NEW_POOLED, None),
        ("host=old user=u password=p", NEW_POOLED, None),
        ("postgres://u:p@old/db?pgbouncer=true", "not a url either", None),
    ],
)
def test_merge_url(old: str | None, new: str, merged: str | None) -> None:
    assert merge_url(old, new) == (new if merged is None else merged)


def test_merge_url_drops_parameters_that_name_the_old_connection() -> None:
    old = (
        "postgres://u:p@old/db?options=endpoint%3Dep-old-123&password=hunter22&host=old&user=u&dbname=x"
        "&port=5433&connect_timeout=10"
    )
    assert merge_url(old, "postgresql://u:q@new/db") == "postgresql://u:q@new/db?connect_timeout=10"


def test_merge_url_does_not_re_encode_the_new_uri() -> None:
    new = "postgresql://u:p%40ss%2Fw@new/db?sslmode=require&options=-c%20search_path%3Dapp"
    assert merge_url("postgres://u:x@old/db?pgbouncer=true", new) == new + "&pgbouncer=true"


# --- masked_diff ----------------------------------------------------------------------------------------


def test_masked_diff_shows_the_change_but_no_password() -> None:
    old = (
        "NEXTAUTH_SECRET=next-auth-planted-secret\nPGPASSWORD=pgpass-planted\n"
        f"DATABASE_URL={OLD_POOLED}\nOTHER=1\n"
        'PRIVATE_KEY="-----BEGIN KEY-----\nMIIEplantedkeymaterial\n-----END KEY-----"\n'
    )
    new = env_of(old).rewritten({"DATABASE_URL": NEW_POOLED})
    diff = masked_diff(Path("app/.env"), old, new)
    for secret in (
        PASSWORD,
        NEW_PASSWORD,
        "next-auth-planted-secret",
        "pgpass-planted",
        "plantedkeymaterial",
    ):
        assert secret not in diff
    assert diff.startswith("--- app/.env (before)\n+++ app/.env (after)\n")
    assert "-DATABASE_URL=postgresql://neondb_owner:****@ep-old-lake-a1b2c3d4-pooler." in diff
    assert "+DATABASE_URL=postgresql://neondb_owner:****@ep-new-moon-e5f6g7h8-pooler." in diff
    assert " NEXTAUTH_SECRET=****" in diff
    assert " OTHER=****" in diff  # every value is masked, not only those whose name looks secret


def test_masked_diff_shows_a_change_of_password_alone() -> None:
    old = f"DATABASE_URL={OLD_POOLED}\n"
    new = old.replace(PASSWORD, NEW_PASSWORD)
    diff = masked_diff(".env", old, new)
    assert PASSWORD not in diff and NEW_PASSWORD not in diff
    assert "\n-DATABASE_URL=" in diff and "\n+DATABASE_URL=" in diff


def test_masked_diff_of_identical_texts_is_empty_and_crlf_is_not_shown() -> None:
    assert masked_diff(".env", "A=1\r\n", "A=1\r\n") == ""
    diff = masked_diff(".env", "A=1\r\nB=2\r\n", "A=1\r\nB=3\r\n")
    assert "\r" not in diff and "-B=****" in diff and "+B=****" in diff


# --- files: read, backup, write, restore ------------------------------------------------------------------


def test_read_keeps_the_exact_text_digest_and_mode(tmp_path: Path) -> None:
    raw = f"\ufeff# c\r\nDATABASE_URL={OLD_POOLED}\r\nA=1".encode()
    path = write(tmp_path / ".env", raw, 0o640)
    env = EnvFile.read(path)
    assert env.text.encode() == raw
    assert env.text.startswith("\ufeff") and "\r\n" in env.text
    assert env.mode == 0o640
    assert env.get("DATABASE_URL") == OLD_POOLED
    assert env.digest == hashlib.sha256(raw).hexdigest()
    assert PASSWORD not in repr(env) + repr(env.bindings[0])


def test_read_missing_not_utf8_and_directory_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="There is no env file at"):
        EnvFile.read(tmp_path / ".env")
    bad = write(tmp_path / ".env.bad", f"A=1\nDATABASE_URL={OLD_POOLED}\xff\n".encode("latin-1"))
    with pytest.raises(EnvFileError, match=r"not UTF-8 text \(line 2\)") as info:
        EnvFile.read(bad)
    assert PASSWORD not in all_text(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(EnvFileError, match="not a regular file"):
        EnvFile.read(tmp_path)


def test_backup_is_private_identical_and_uniquely_named(tmp_path: Path) -> None:
    raw = f"\ufeffDATABASE_URL={OLD_POOLED}\r\n".encode()
    (tmp_path / "app" / "prisma").mkdir(parents=True)
    first = EnvFile.read(write(tmp_path / "app" / ".env", raw, 0o644))
    second = EnvFile.read(write(tmp_path / "app" / ".env.local", b"A=1\n"))
    third = EnvFile.read(write(tmp_path / "app" / "prisma" / ".env", b"B=2\n"))
    backups = tmp_path / "run" / "backups"
    paths = [backup(first, backups), backup(second, backups), backup(third, backups)]
    assert [p.name for p in paths] == ["1-.env", "2-.env.local", "3-.env"]
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert paths[0].read_bytes() == raw
    assert backup(first, backups).name == "4-.env"


def test_backup_creates_the_file_0600_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = EnvFile.read(write(tmp_path / ".env", b"A=1\n", 0o644))
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    created = backup(env, tmp_path / "b")
    creating = [c for c in calls if c[0] == str(created)]
    assert creating and all(c[1] & os.O_EXCL and c[1] & os.O_CREAT and c[2] == 0o600 for c in creating)


def test_backup_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    env = EnvFile.read(path)
    path.write_text(f"DATABASE_URL={OLD_POOLED}\nEDITED=1\n")
    with pytest.raises(EnvFileChangedError, match="changed since") as info:
        backup(env, tmp_path / "backups")
    assert PASSWORD not in all_text(info.value)
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())


def test_backup_into_a_path_that_is_a_file_fails_clearly(tmp_path: Path) -> None:
    env = EnvFile.read(write(tmp_path / ".env", "A=1\n"))
    with pytest.raises(EnvFileError, match="is not a directory"):
        backup(env, write(tmp_path / "not-a-dir", "x"))


def test_write_atomic_keeps_mode_and_writes_exactly(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"\ufeffDATABASE_URL={OLD_POOLED}\r\n", 0o640)
    env = EnvFile.read(path)
    new_text = env.rewritten({"DATABASE_URL": NEW_POOLED})
    write_atomic(env, new_text)
    assert path.read_bytes() == f"\ufeffDATABASE_URL={NEW_POOLED}\r\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_write_atomic_creates_the_temp_file_with_the_final_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = EnvFile.read(write(tmp_path / ".env", b"A=1\n", 0o600))
    modes: list[int] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            modes.append(mode)
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    monkeypatch.setattr(os, "chmod", _forbidden)  # no widening chmod afterwards either
    write_atomic(env, "A=2\n")
    assert modes == [0o600]


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("chmod must not be needed")


def test_write_atomic_restores_the_exact_mode_under_a_narrow_umask(tmp_path: Path) -> None:
    env = EnvFile.read(write(tmp_path / ".env", b"A=1\n", 0o664))
    previous = os.umask(0o077)
    try:
        write_atomic(env, "A=2\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o664


def test_write_atomic_refuses_when_the_file_changed_meanwhile(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    env = EnvFile.read(path)
    path.write_text("EDITED=1\n")
    with pytest.raises(EnvFileChangedError) as info:
        write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    message = str(info.value)
    assert str(path) in message and "Re-run" in message
    assert PASSWORD not in all_text(info.value) and NEW_PASSWORD not in all_text(info.value)
    assert path.read_text() == "EDITED=1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_write_atomic_refuses_when_the_file_was_deleted_meanwhile(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", "A=1\n")
    env = EnvFile.read(path)
    path.unlink()
    with pytest.raises(EnvFileChangedError):
        write_atomic(env, "A=2\n")
    assert not path.exists()


def test_write_atomic_removes_the_temp_file_when_the_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = f"DATABASE_URL={OLD_POOLED}\n".encode()
    path = write(tmp_path / ".env", original)
    env = EnvFile.read(path)

    def broken_replace(src: Any, dst: Any) -> None:
        assert Path(src).exists() and Path(src).read_bytes() == f"DATABASE_URL={NEW_POOLED}\n".encode()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(EnvFileError, match="No space left on device") as info:
        write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert NEW_PASSWORD not in all_text(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]
    assert path.read_bytes() == original


def test_write_atomic_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    shared = write(tmp_path / "shared.env", "A=1\n")
    (tmp_path / "app").mkdir()
    link = tmp_path / "app" / ".env"
    link.symlink_to(shared)
    env = EnvFile.read(link)
    write_atomic(env, env.rewritten({"A": "2"}))
    assert link.is_symlink() and shared.read_text() == "A=2\n"


def test_write_atomic_refuses_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", "A=1\n")
    with pytest.raises(EnvFileError, match="cannot be written as UTF-8"):
        write_atomic(EnvFile.read(path), "A=\ud800\n")
    assert path.read_text() == "A=1\n"


def test_restore_backup_puts_the_original_back_byte_for_byte(tmp_path: Path) -> None:
    raw = f"\ufeff# c\r\nDATABASE_URL={OLD_POOLED}".encode()
    path = write(tmp_path / ".env", raw, 0o640)
    env = EnvFile.read(path)
    saved = backup(env, tmp_path / "backups")
    new_text = env.rewritten({"DATABASE_URL": NEW_POOLED})
    write_atomic(env, new_text)
    written = EnvFile.read(path).digest
    restore_backup(saved, path, expected_digest=written)
    assert path.read_bytes() == raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "backups"]


def test_restore_backup_refuses_to_clobber_an_edit_made_after_the_run(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    env = EnvFile.read(path)
    saved = backup(env, tmp_path / "backups")
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    written = EnvFile.read(path).digest
    path.write_text(f"DATABASE_URL={NEW_POOLED}\nADDED_BY_HAND=1\n")
    with pytest.raises(EnvFileChangedError, match="edited after") as info:
        restore_backup(saved, path, expected_digest=written)
    assert PASSWORD not in all_text(info.value) and NEW_PASSWORD not in all_text(info.value)
    assert path.read_text().endswith("ADDED_BY_HAND=1\n")


def test_restore_backup_recreates_a_deleted_target_privately(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", "A=1\n", 0o644)
    saved = backup(EnvFile.read(path), tmp_path / "backups")
    path.unlink()
    restore_backup(saved, path, expected_digest="0" * 64)
    assert path.read_text() == "A=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_restore_backup_without_an_expected_digest_overwrites(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", "A=1\n")
    saved = backup(EnvFile.read(path), tmp_path / "backups")
    path.write_text("A=whatever\n")
    restore_backup(saved, path, expected_digest=None)
    assert path.read_text() == "A=1\n"


def test_restore_backup_of_a_missing_backup_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="could not be read"):
        restore_backup(tmp_path / "nope", tmp_path / ".env", expected_digest=None)


# --- git and reading warnings ---------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


@needs_git
def test_git_tracked(repo: Path, tmp_path: Path) -> None:
    tracked = write(repo / ".env", "A=1\n")
    untracked = write(repo / ".env.local", "A=2\n")
    git(repo, "add", ".env")
    (repo / "sub").mkdir()
    nested = write(repo / "sub" / ".env", "A=3\n")
    assert git_tracked(tracked)
    assert not git_tracked(untracked)
    assert not git_tracked(nested)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert not git_tracked(write(outside / ".env", "A=1\n"))
    assert not git_tracked(tmp_path / "missing-dir" / ".env")


def test_git_tracked_without_git_is_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not git_tracked(write(tmp_path / ".env", "A=1\n"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    write(root / ".env", f"DATABASE_URL={OLD_POOLED}\nDIRECT_URL={OLD_DIRECT}\nNEXT_PUBLIC_X=1\n")
    return root


def warnings_for(
    path: Path, project: Path, prisma_major: int | None = None, config: bool = False
) -> list[str]:
    found = reading_warnings(path, project, prisma_major=prisma_major, has_prisma_config=config)
    for warning in found:
        assert PASSWORD not in warning and "npg_" not in warning
    return found


def test_no_warnings_for_a_plain_env(project: Path) -> None:
    assert warnings_for(project / ".env", project) == []
    assert warnings_for(project / ".env", project, prisma_major=5) == []


def test_env_local_that_sets_the_same_variable_is_named(project: Path) -> None:
    write(project / ".env.local", f"DATABASE_URL={OLD_POOLED}\nNEXT_PUBLIC_X=2\nOTHER=1\n")
    [warning] = warnings_for(project / ".env", project)
    assert warning.startswith("DATABASE_URL WILL NOT BE REPOINTED: ")  # loud: the app keeps the old value
    assert ".env.local also sets DATABASE_URL," in warning
    assert "Next.js reads .env.local before .env" in warning
    assert "NEXT_PUBLIC_X" not in warning  # not a connection string


def test_mode_specific_files_say_when_they_win(project: Path) -> None:
    write(project / ".env.production.local", f"DIRECT_URL={OLD_DIRECT}\n")
    [warning] = warnings_for(project / ".env", project)
    assert "DIRECT_URL" in warning and "in production" in warning


def test_env_local_without_the_variables_is_not_a_concern(project: Path) -> None:
    write(project / ".env.local", "NEXT_PUBLIC_X=2\n")
    assert warnings_for(project / ".env", project) == []


def test_rewriting_env_local_with_prisma_6_warns_that_prisma_reads_env(project: Path) -> None:
    local = write(project / ".env.local", f"DATABASE_URL={OLD_POOLED}\n")
    [warning] = warnings_for(local, project, prisma_major=6)
    assert "Prisma 6's CLI reads only .env and prisma/.env, never .env.local" in warning
    assert not [w for w in warnings_for(project / ".env", project, prisma_major=6) if "Prisma" in w]
    # Prisma 5 has no config file: a flag saying otherwise does not change what it reads.
    assert "Prisma 5's CLI" in warnings_for(local, project, prisma_major=5, config=True)[0]
    (project / "prisma").mkdir()
    assert warnings_for(write(project / "prisma" / ".env", "DATABASE_URL=x\n"), project, prisma_major=5) == []


@pytest.mark.parametrize("major", [7, 6])
def test_prisma_with_a_config_loads_env_only_through_dotenv_config(project: Path, major: int) -> None:
    local = write(project / ".env.local", "OTHER=1\n")
    [warning] = warnings_for(project / ".env", project, prisma_major=major, config=True)
    assert f"Prisma {major} does not load .env files by itself" in warning and "none was found" in warning

    config = project / "prisma.config.ts"
    config.write_text(
        'import { defineConfig, env } from "prisma/config";\nexport default defineConfig({});\n'
    )
    [warning] = warnings_for(project / ".env", project, prisma_major=major, config=True)
    assert 'prisma.config.ts does not import "dotenv"' in warning

    config.write_text('import "dotenv/config";\n' + config.read_text())
    assert warnings_for(project / ".env", project, prisma_major=major, config=True) == []
    [warning] = warnings_for(local, project, prisma_major=major, config=True)
    assert 'prisma.config.ts loads only .env (through "dotenv/config"), not .env.local' in warning

    config.write_text('import { config } from "dotenv";\nconfig({ path: ".env.local" });\n')
    assert warnings_for(local, project, prisma_major=major, config=True) == []


@needs_git
def test_a_tracked_env_file_is_a_warning(repo: Path) -> None:
    path = write(repo / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    git(repo, "add", ".env")
    [warning] = warnings_for(path, repo)
    assert "is tracked by git" in warning


def test_an_unreadable_sibling_is_reported_not_fatal(project: Path) -> None:
    write(project / ".env.local", b"DATABASE_URL=\xff\n")
    [warning] = warnings_for(project / ".env", project)
    assert warning.startswith(f"Could not check {project / '.env.local'}:")


# --- secrets never leak -----------------------------------------------------------------------------------


def _failures(tmp_path: Path) -> Iterator[Callable[[], object]]:
    bad_line = write(tmp_path / "bad.env", f'DATABASE_URL "{OLD_POOLED}"\n')
    yield lambda: EnvFile.read(bad_line).rewritten({"DATABASE_URL": NEW_POOLED})
    latin = write(tmp_path / "latin.env", f"DATABASE_URL={OLD_POOLED}\xe9\n".encode("latin-1"))
    yield lambda: EnvFile.read(latin)
    swallow = write(tmp_path / "swallow.env", f'A=1\nX="{PASSWORD}')
    yield lambda: EnvFile.read(swallow).rewritten({"DATABASE_URL": NEW_POOLED})
    changed = write(tmp_path / "changed.env", f"DATABASE_URL={OLD_POOLED}\n")
    env = EnvFile.read(changed)
    changed.write_text(f"DATABASE_URL={OLD_POOLED}#\n")
    yield lambda: write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    yield lambda: backup(env, tmp_path / "b")


def test_no_error_message_holds_a_secret(tmp_path: Path) -> None:
    for attempt in _failures(tmp_path):
        with pytest.raises(EnvFileError) as info:
            attempt()
        text = all_text(info.value)
        assert PASSWORD not in text and NEW_PASSWORD not in text, text


def test_reprs_hold_no_secret() -> None:
    env = env_of(f"DATABASE_URL={OLD_POOLED}\nthis {PASSWORD} is junk\n")
    shown = repr(env) + repr(env.bindings) + repr(env.unparsed) + str(env.bindings[0])
    assert PASSWORD not in shown


def test_module_api_is_complete() -> None:
    for name in envfile.__all__:
        assert hasattr(envfile, name)


# --- the masked diff shows names and the changed URLs' public parts, nothing else ---------------------------

NEIGHBOURS = {
    "REDIS_URL": "redis://:redis-planted-pw@redis.internal:6379",
    "MONGODB_URI": "'mongodb+srv://app:mongo-planted-pw@cluster0.x.mongodb.net/db'",
    "SENTRY_DSN": "https://sentryplantedkey@o123.ingest.sentry.io/42",
    "AMQP_URL": "amqp://app:amqp-planted-pw@rabbit:5672  # amqp-planted-comment",
    "STRIPE": "sk_live_planted0123456789",
}


def test_masked_diff_masks_every_neighbouring_value_comment_and_unreadable_line() -> None:
    n = NEIGHBOURS
    old = (
        "# old: DATABASE_URL=postgresql://u:comment-planted-pw@old-host/db\n"
        f"REDIS_URL={n['REDIS_URL']}\nMONGODB_URI={n['MONGODB_URI']}\n"
        f"DATABASE_URL={OLD_POOLED}\n"
        f"SENTRY_DSN={n['SENTRY_DSN']}\nAMQP_URL={n['AMQP_URL']}\n"
        "// OLD_DSN=postgresql://u:unparsed-planted-pw@h/db\n"
        f"DIRECT_URL={OLD_DIRECT}\n"
        f"STRIPE={n['STRIPE']}\n"
        'CERT="-----BEGIN-----\nmultiline-planted-line\n-----END-----"\n'
    )
    new = env_of(old).rewritten({"DATABASE_URL": NEW_POOLED, "DIRECT_URL": NEW_DIRECT})
    diff = masked_diff(".env", old, new)
    planted = [*re.findall(r"[\w-]*planted[\w-]*", old), PASSWORD, NEW_PASSWORD]
    assert len(planted) == 11
    assert [secret for secret in planted if secret in diff] == []
    for key in NEIGHBOURS:  # the names stay, so the person can tell which lines are shown
        assert f"\n {key}=" in diff
    assert "+DATABASE_URL=postgresql://neondb_owner:****@ep-new-moon-e5f6g7h8-pooler." in diff
    assert "+DIRECT_URL=postgresql://neondb_owner:****@ep-new-moon-e5f6g7h8.eu-central-1" in diff
    assert "\n # ****\n" in diff and "\n // OLD_DSN=****" in diff and "\n AMQP_URL=****  # ****" in diff
    assert diff.endswith('\n CERT="****\n ****')  # each line of a multi-line value


@pytest.mark.parametrize(
    "raw", ["pa/ss-planted", "pa#ss-planted", "pa'ss-planted", "p@ss?planted", "pa ss planted"]
)
def test_masked_diff_masks_an_old_password_that_is_not_percent_encoded(raw: str) -> None:
    old_url = f"postgresql://neondb_owner:{raw}@ep-old-lake.neon.tech/neondb?sslmode=require"
    old = env_of("DATABASE_URL=x\n").rewritten({"DATABASE_URL": old_url})
    assert env_of(old).get("DATABASE_URL") == old_url
    new = env_of(old).rewritten({"DATABASE_URL": NEW_POOLED})
    diff = masked_diff(".env", old, new)
    assert "planted" not in diff and "pa" not in diff.replace("pass", "")
    assert re.search(
        r'\n-DATABASE_URL="?postgresql://neondb_owner:\*\*\*\*@ep-old-lake\.neon\.tech/neondb\?sslmode=require"?\n',
        diff,
    )


def test_masked_diff_shows_only_public_query_values_of_the_changed_urls() -> None:
    old = "DATABASE_URL=prisma+postgres://accelerate.prisma-data.net/?api_key=eyJplanted\n"
    new_url = f"{NEW_POOLED}&token=tok-planted&application_name=shop#frag-planted"
    diff = masked_diff(".env", old, env_of(old).rewritten({"DATABASE_URL": new_url}))
    assert "planted" not in diff
    assert "-DATABASE_URL=prisma+postgres://accelerate.prisma-data.net/?api_key=****" in diff
    assert "?sslmode=require&channel_binding=require&token=****&application_name=shop#****" in diff


_value_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=24)
_line_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n"),
    min_size=1,
    max_size=24,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=_line_text,
    neighbours=st.lists(_value_text, min_size=1, max_size=4),
    comment=_line_text,
    quote=st.sampled_from(['"', "'", ""]),
)
def test_masked_diff_never_shows_a_password_or_a_neighbouring_value(
    password: str, neighbours: list[str], comment: str, quote: str
) -> None:
    # Each planted value carries a marker no key, host or mask contains; the file is written by EnvFile
    # itself, so it is one dotenv reads back exactly, whatever the characters (line breaks included).
    values = {f"SERVICE_{i}": "Qz7" + value for i, value in enumerate(neighbours)}
    old_url = f"postgresql://app:Qz7{password}@ep-old.neon.tech/neondb?sslmode=require"
    template = f"# Qz7{comment}\n" + "".join(f"{key}={quote}x{quote}\n" for key in [*values, "DATABASE_URL"])
    old = env_of(template).rewritten({**values, "DATABASE_URL": old_url})
    new = env_of(old).rewritten({"DATABASE_URL": merge_url(env_of(old).get("DATABASE_URL"), NEW_POOLED)})
    diff = masked_diff(".env", old, new)
    assert "Qz7" not in diff and NEW_PASSWORD not in diff
    assert "+DATABASE_URL=" in diff and "@ep-new-moon-e5f6g7h8-pooler." in diff


# --- never weaker TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old_query", "new_query", "merged_query"),
    [
        # The team's verify-full and CA file stay; Neon's channel_binding is added.
        (
            "sslmode=verify-full&sslrootcert=/etc/ssl/neon-ca.pem",
            "sslmode=require&channel_binding=require",
            "sslmode=verify-full&channel_binding=require&sslrootcert=/etc/ssl/neon-ca.pem",
        ),
        ("sslmode=verify-ca", "sslmode=require", "sslmode=verify-ca"),
        # A weaker old setting does not weaken Neon's.
        (
            "sslmode=prefer&channel_binding=prefer",
            "sslmode=require&channel_binding=require",
            "sslmode=require&channel_binding=require",
        ),
        ("sslmode=disable", "sslmode=require", "sslmode=require"),
        # Client certificates and other ssl* settings come along, old values win.
        (
            "sslcert=/c.pem&sslkey=/k.pem&sslnegotiation=direct&ssl_min_protocol_version=TLSv1.3",
            "sslmode=require",
            "sslmode=require&sslcert=/c.pem&sslkey=/k.pem&sslnegotiation=direct"
            "&ssl_min_protocol_version=TLSv1.3",
        ),
        (
            "channel_binding=require",
            "sslmode=require&channel_binding=prefer",
            "sslmode=require&channel_binding=require",
        ),
        ("sslmode=VERIFY-FULL", "sslmode=require", "sslmode=VERIFY-FULL"),
    ],
)
def test_merge_url_never_weakens_tls(old_query: str, new_query: str, merged_query: str) -> None:
    old = f"postgresql://u:{PASSWORD}@ep-old.neon.tech/neondb?{old_query}"
    new = f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?{new_query}"
    assert merge_url(old, new) == f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?{merged_query}"


def test_merge_url_keeps_tls_when_a_query_value_holds_an_at_sign() -> None:
    old = "postgresql://u:pw@ep-old.neon.tech/neondb?sslmode=verify-full&application_name=ops@corp"
    new = f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?sslmode=require"
    assert merge_url(old, new) == (
        f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?sslmode=verify-full&application_name=ops@corp"
    )


def test_merge_url_reads_the_old_query_past_a_raw_hash_in_the_password() -> None:
    old = "postgresql://u:pa#ss@ep-old.neon.tech/neondb?sslmode=verify-full&connect_timeout=15"
    new = f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?sslmode=require"
    assert merge_url(old, new) == (
        f"postgresql://u:{NEW_PASSWORD}@ep-new.neon.tech/neondb?sslmode=verify-full&connect_timeout=15"
    )


# --- extended attributes, ACLs and hard links -------------------------------------------------------------


def _xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.rw-probe", b"1")
        os.removexattr(path, "user.rw-probe")
    except OSError:
        return False
    return True


def test_write_atomic_and_restore_backup_keep_extended_attributes(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    if not _xattrs_supported(path):
        pytest.skip("this filesystem does not support user extended attributes")
    os.setxattr(path, "user.owner-team", b"payments")
    env = EnvFile.read(path)
    saved = backup(env, tmp_path / "backups")
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert os.getxattr(path, "user.owner-team") == b"payments"
    restore_backup(saved, path, expected_digest=hashlib.sha256(path.read_bytes()).hexdigest())
    assert os.getxattr(path, "user.owner-team") == b"payments"


def test_write_atomic_keeps_a_posix_acl(tmp_path: Path) -> None:
    if shutil.which("setfacl") is None or shutil.which("getfacl") is None:
        pytest.skip("setfacl/getfacl are not installed (apt-get install acl)")
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n", 0o600)
    # A named user's read access: what a deploy user or a container user often gets on a shared .env.
    grant = subprocess.run(["setfacl", "-m", "u:nobody:r", str(path)], capture_output=True, text=True)
    if grant.returncode != 0:
        pytest.skip(f"this filesystem does not support POSIX ACLs: {grant.stderr.strip()}")

    def acl() -> str:
        return subprocess.run(
            ["getfacl", "--omit-header", "--absolute-names", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    before, mode = acl(), stat.S_IMODE(path.stat().st_mode)
    assert "user:nobody:r--" in before
    env = EnvFile.read(path)
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert acl() == before and stat.S_IMODE(path.stat().st_mode) == mode


def test_write_atomic_refuses_when_an_extended_attribute_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    original = path.read_bytes()
    monkeypatch.setattr(os, "listxattr", lambda *a, **k: ["system.posix_acl_access"])
    monkeypatch.setattr(os, "getxattr", lambda *a, **k: b"\x02\x00\x00\x00")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setxattr", refuse)
    env = EnvFile.read(path)
    with pytest.raises(EnvFileError, match=r"system\.posix_acl_access.*left as it was"):
        write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_reading_warnings_name_a_hard_linked_env_file(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    assert not [
        w
        for w in reading_warnings(path, tmp_path, prisma_major=None, has_prisma_config=False)
        if "hard link" in w
    ]
    os.link(path, tmp_path / "twin.env")
    warnings = reading_warnings(path, tmp_path, prisma_major=None, has_prisma_config=False)
    linked = [w for w in warnings if "hard link" in w]
    assert len(linked) == 1 and "1 other hard link" in linked[0] and str(path) in linked[0]
    assert PASSWORD not in " ".join(warnings)


# --- the temporary file: a name .gitignore patterns already cover, removed after a kill ----------------------

_KILL_DURING_WRITE = """
import os, signal, sys
from pathlib import Path
from recovery_wizard.recovery.envfile import EnvFile, write_atomic
os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # die after the temp file is complete
env = EnvFile.read(Path(sys.argv[1]))
write_atomic(env, env.rewritten({"DATABASE_URL": sys.argv[2]}))
"""


def test_a_sigkill_during_the_write_leaves_an_ignored_temp_file_that_the_next_write_removes(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    original = path.read_bytes()
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_WRITE, str(path), NEW_POOLED], capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert path.read_bytes() == original
    left = [p for p in tmp_path.iterdir() if p.name != ".env"]
    assert len(left) == 1 and NEW_PASSWORD in left[0].read_text()  # the whole new file, as the issue saw
    # Ignored by the patterns projects use for env files.
    assert fnmatch.fnmatch(left[0].name, ".env*") and fnmatch.fnmatch(left[0].name, ".env.*")
    assert fnmatch.fnmatch(left[0].name, "*.tmp")
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        (tmp_path / ".gitignore").write_text(".env*\n!.gitignore\n")
        ignored = subprocess.run(
            ["git", "-C", str(tmp_path), "check-ignore", "-q", left[0].name], check=False
        )
        assert ignored.returncode == 0
    env = EnvFile.read(path)
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert not left[0].exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".env")] == [".env"]


def test_stale_temp_removal_spares_a_temp_file_being_written(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", "A=1\n")
    live = write(tmp_path / ".env.recovery-wizard-0123456789ab.tmp", "A=2\n")
    legacy = write(tmp_path / "..env.0123456789ab.tmp", "A=3\n")  # the name older versions used
    other = write(tmp_path / ".env.local.recovery-wizard-0123456789ab.tmp", "A=4\n")  # another file's
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer that is still alive holds this
        assert envfile.remove_stale_temps(path) == [legacy]
        assert live.exists() and other.exists()
    finally:
        os.close(fd)
    assert envfile.remove_stale_temps(path) == [live]
    assert other.exists()


# --- planning is linear in the file's size --------------------------------------------------------------


def _big_env(path: Path, lines: int) -> Path:
    body = [f"DATABASE_URL={OLD_POOLED}", f"DIRECT_URL={OLD_DIRECT}"]
    body += [f"VAR_{i}=value-{i}" for i in range(lines)]
    return write(path, "\n".join(body) + "\n")


def _planning_work(tmp_path: Path, lines: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(parser calls, Python lines executed) for the env part of planning a restore over a file."""
    from recovery_wizard.recovery import plan as plan_module

    app = tmp_path / f"app{lines}"
    app.mkdir()
    _big_env(app / ".env", lines)
    parses = 0
    real_parse = parse_stream

    def counting(stream: Any) -> Any:
        nonlocal parses
        parses += 1
        return real_parse(stream)

    monkeypatch.setattr("recovery_wizard.recovery.envfile.parse_stream", counting)
    executed = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal executed
        if event == "line":
            executed += 1
        return tracer

    options = plan_module.RunOptions(command="restore", workdir=app)
    sys.settrace(tracer)
    try:
        targets = plan_module.env_targets(options, None)
        env = EnvFile.read(targets[0].path)
        env.rewritten({"DATABASE_URL": NEW_POOLED})
    finally:
        sys.settrace(None)
    return parses, executed


def test_planning_does_not_reparse_or_rescan_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_parses, small_work = _planning_work(tmp_path, 300, monkeypatch)
    big_parses, big_work = _planning_work(tmp_path, 1200, monkeypatch)
    assert big_parses == small_parses  # a fixed number of whole-file parses, whatever the size
    # Four times the lines, about four times the work: a scan per line would make it about sixteen.
    assert big_work < 5 * small_work, (small_work, big_work)


def test_write_atomic_does_not_refuse_over_a_security_label_it_may_not_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    monkeypatch.setattr(os, "listxattr", lambda *a, **k: ["security.selinux", "security.ima"])
    monkeypatch.setattr(os, "getxattr", lambda *a, **k: b"label")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setxattr", refuse)
    env = EnvFile.read(path)
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))  # the kernel labels the new file itself
    assert EnvFile.read(path).get("DATABASE_URL") == NEW_POOLED


def test_write_atomic_works_where_the_os_module_has_no_xattr_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / ".env", f"DATABASE_URL={OLD_POOLED}\n")
    for name in ("listxattr", "getxattr", "setxattr", "removexattr"):
        monkeypatch.delattr(os, name, raising=False)  # as on macOS
    env = EnvFile.read(path)
    write_atomic(env, env.rewritten({"DATABASE_URL": NEW_POOLED}))
    assert EnvFile.read(path).get("DATABASE_URL") == NEW_POOLED
