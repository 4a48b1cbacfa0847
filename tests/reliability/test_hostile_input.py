"""Part 4: hostile input. Fuzzed env files, malformed API answers of every model, bad times in every
accepted format, canaries that write: each is a clear, typed error, and nothing gets written.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_wizard.neon import NeonClient, RetryPolicy
from recovery_wizard.neon import models as m
from recovery_wizard.neon.errors import BadResponseError
from recovery_wizard.neon.transport import Transport
from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import list_runs
from recovery_wizard.recovery.timepoint import TimePointError, parse_moment
from recovery_wizard.recovery.verify import is_read_only_sql
from recovery_wizard.redact import Secret
from tests.conftest import FIXTURES
from tests.reliability.conftest import Shared, count

NEW_POOLED = "postgresql://neondb_owner:npg_NEWpw0rd42@ep-new-pooler.example/neondb?sslmode=require"
NEW_DIRECT = "postgresql://neondb_owner:npg_NEWpw0rd42@ep-new.example/neondb?sslmode=require"
FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# --- env files ---------------------------------------------------------------------------------------------

_keys = st.sampled_from(["DATABASE_URL", "DIRECT_URL", "NEXTAUTH_SECRET", "A", "export DATABASE_URL", "X.Y"])
_values = st.one_of(
    st.sampled_from(
        [
            "postgresql://u:p@h/db?sslmode=require&pgbouncer=true",
            "postgres://u:p%40ss@h:5432/db",
            "${OTHER}",
            "",
            "a b # not a comment",
            "multi\nline",
        ]
    ),
    st.text(max_size=30),
)


@st.composite
def env_texts(draw: st.DrawFn) -> str:
    """Lines the way people (and tools) write them, plus noise: quotes, comments, CRLF, BOM, garbage."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["plain", "double", "single", "comment", "blank", "junk", "bare"]))
        key, value = draw(_keys), draw(_values)
        if kind == "plain":
            lines.append(f"{key}={value}")
        elif kind == "double":
            lines.append(f'{key}="{value}"')
        elif kind == "single":
            lines.append(f"{key}='{value}'")
        elif kind == "comment":
            lines.append(f"# {value}")
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
        elif kind == "bare":
            lines.append(key)
        else:
            lines.append(draw(st.text(max_size=20)))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return draw(st.sampled_from(["", "\ufeff"])) + text


@FUZZ
@given(text=env_texts())
def test_env_rewrite_is_exact_or_refused(text: str) -> None:
    """A rewrite changes exactly the two URLs (as dotenv reads them) or refuses with an EnvFileError."""
    count("hostile_input:env files fuzzed")
    try:
        env = envfile.EnvFile.from_text(Path("/app/.env"), text)
        changes = {"DATABASE_URL": envfile.merge_url(env.get("DATABASE_URL"), NEW_POOLED)}
        changes["DIRECT_URL"] = envfile.merge_url(env.get("DIRECT_URL"), NEW_DIRECT)
        new_text = env.rewritten(changes)
    except envfile.EnvFileError:
        return  # a clear refusal; rewritten() writes nothing by construction
    after = envfile.EnvFile.from_text(Path("/app/.env"), new_text)
    for key, value in changes.items():
        assert after.get(key) == value
    untouched = {b.key for b in env.bindings} - set(changes)
    for key in untouched:
        assert after.get(key) == env.get(key), key
    diff = envfile.masked_diff("/app/.env", text, new_text)
    assert "npg_NEWpw0rd42" not in diff


@FUZZ
@given(
    old=st.one_of(
        st.none(), st.text(max_size=60), st.sampled_from(["postgresql://a:b@c/d?x=1&&y", "postgres://?"])
    )
)
def test_merge_url_never_crashes_and_keeps_the_new_target(old: str | None) -> None:
    count("hostile_input:merge_url inputs fuzzed")
    merged = envfile.merge_url(old, NEW_DIRECT)
    assert merged.startswith(NEW_DIRECT.split("?")[0])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(text=env_texts())
def test_env_write_is_atomic_and_exact(text: str) -> None:
    """Through the disk: the bytes written are the rewritten text; the backup is the original bytes."""
    count("hostile_input:env files written to disk")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".env"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        original = path.read_bytes()
        try:
            env = envfile.EnvFile.read(path)
            new_text = env.rewritten({"DATABASE_URL": NEW_POOLED})
        except envfile.EnvFileError:
            assert path.read_bytes() == original  # refused: nothing written
            return
        backup = envfile.backup(env, Path(tmp) / "backups")
        envfile.write_atomic(env, new_text)
        assert backup.read_bytes() == original
        assert envfile.EnvFile.read(path).get("DATABASE_URL") == NEW_POOLED


# --- malformed API answers ---------------------------------------------------------------------------------

MODELS: dict[str, type[Any]] = {
    "project": m.ProjectEnvelope,
    "projects": m.ProjectsPage,
    "branch": m.BranchEnvelope,
    "branches": m.BranchesPage,
    "created_branch": m.CreatedBranch,
    "operation": m.OperationEnvelope,
    "operations": m.OperationsPage,
    "endpoints": m.EndpointsEnvelope,
    "endpoint_operations": m.EndpointOperations,
    "databases": m.DatabasesEnvelope,
    "roles": m.RolesEnvelope,
    "connection_uri": m.UriEnvelope,
    "reveal_password": m.PasswordEnvelope,
    "organizations": m.OrganizationsEnvelope,
    "auth": m.AuthDetails,
    "delete_branch": m.BranchOperations,
    "restore_branch": m.BranchOperations,
    "update_branch": m.BranchOperations,
    "snapshots": m.SnapshotsEnvelope,
    "branch_schema": m.BranchSchema,
    "compare_schema": m.SchemaDiff,
}


def _struct_of(info: msgspec.inspect.Type) -> msgspec.inspect.StructType | None:
    """The struct a field holds (directly, in a list, or optionally)."""
    if isinstance(info, msgspec.inspect.StructType):
        return info
    if isinstance(info, msgspec.inspect.ListType):
        return _struct_of(info.item_type)
    if isinstance(info, msgspec.inspect.UnionType):
        structs = [s for t in info.types if (s := _struct_of(t)) is not None]
        return structs[0] if structs else None
    return None


def _accepts(info: msgspec.inspect.Type, value: Any) -> bool:
    """Whether a field of type ``info`` could decode ``value`` (so a retype is no error)."""
    if isinstance(info, msgspec.inspect.AnyType):
        return True
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_accepts(t, value) for t in info.types)
    kinds: dict[type[Any], tuple[type[Any], ...]] = {
        msgspec.inspect.StrType: (str,),
        msgspec.inspect.IntType: (int,),
        msgspec.inspect.FloatType: (int, float),
        msgspec.inspect.BoolType: (bool,),
        msgspec.inspect.NoneType: (type(None),),
        msgspec.inspect.ListType: (list,),
        msgspec.inspect.DictType: (dict,),
        msgspec.inspect.StructType: (dict,),
        msgspec.inspect.DateTimeType: (str,),
    }
    for kind, accepted in kinds.items():
        if isinstance(info, kind):
            if isinstance(value, bool) and bool not in accepted:
                return False
            return isinstance(value, accepted) and not isinstance(info, msgspec.inspect.DateTimeType)
    return True  # enums, literals, others: do not guess


def mutations(
    body: Any, info: msgspec.inspect.StructType, where: str = ""
) -> Iterator[tuple[str, Any, bool]]:
    """(label, mutated body, must fail) for every modelled field: removed, nulled, retyped; recursively."""
    if not isinstance(body, dict):
        return
    for field in info.fields:
        if field.encode_name not in body:
            continue
        label = f"{where}.{field.encode_name}"
        removed = {k: v for k, v in body.items() if k != field.encode_name}
        yield f"{label} removed", removed, field.required
        nulled = {**body, field.encode_name: None}
        yield f"{label} null", nulled, not _accepts(field.type, None)
        for wrong in ({"unexpected": [1]}, ["x"], "not-the-type", 12345, True):
            if not _accepts(field.type, wrong):
                yield f"{label} as {type(wrong).__name__}", {**body, field.encode_name: wrong}, True
                break
        inner = _struct_of(field.type)
        value = body[field.encode_name]
        if inner is not None:
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for sub, mutated, fails in mutations(value[0], inner, label + "[0]"):
                    yield sub, {**body, field.encode_name: [mutated, *value[1:]]}, fails
            elif isinstance(value, dict):
                for sub, mutated, fails in mutations(value, inner, label):
                    yield sub, {**body, field.encode_name: mutated}, fails


def _transport(body: bytes) -> Transport:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return Transport(
        http, Secret("napi_fuzz"), base_url="https://neon.test/api/v2", retry=RetryPolicy(max_attempts=1)
    )


@pytest.mark.parametrize("fixture", sorted(MODELS))
async def test_malformed_answers_are_bad_response_errors(fixture: str) -> None:
    model = MODELS[fixture]
    body = json.loads((FIXTURES / f"{fixture}.json").read_text())
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    bodies: list[tuple[str, bytes, bool]] = [
        (label, json.dumps(mutated).encode(), fails)
        for label, mutated, fails in mutations(copy.deepcopy(body), info)
    ]
    raw = json.dumps(body)
    bodies += [
        ("truncated", raw[: len(raw) // 2].encode(), True),
        ("a list", b"[]", True),
        ("a string", b'"ok"', True),
        ("null", b"null", True),
        ("not UTF-8", b"\xff\xfe{", True),
        ("HTML", b"<html>502 Bad Gateway</html>", True),
    ]
    assert len(bodies) > 6, "the fixture has modelled fields to mutate"
    for label, content, must_fail in bodies:
        transport = _transport(content)
        error: BadResponseError | None = None
        decoded: Any = None
        try:
            decoded = await transport.request("GET", "/x", model)
        except BadResponseError as exc:
            error = exc
        finally:
            await transport.http.aclose()
        if error is not None:
            assert "/x" in str(error), label  # names the request
        else:
            assert not must_fail, f"{fixture}: {label} was accepted"
            assert isinstance(decoded, model)
    count("hostile_input:malformed API answers decoded", len(bodies))


async def test_an_empty_answer_is_a_bad_response_error() -> None:
    count("hostile_input:empty answers")
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"")))
    client = NeonClient(http, "napi_fuzz", base_url="https://neon.test/api/v2")
    try:
        with pytest.raises(BadResponseError):
            await client.project("p")
    finally:
        await http.aclose()


# --- bad times ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
AMS = ZoneInfo("Europe/Amsterdam")
BAD_TIMES: list[Any] = [
    # RFC 3339
    "2026-13-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-11-21T24:00:01Z",
    "2026-11-21T10:61:00Z",
    "2026-11-21T10:00:00+25:00",
    "9999-12-31T23:59:59-23:59x",
    # local time in --tz
    "2026-11-32 10:00",
    "2026-11-21 25:00",
    "2026-11-21 10:60",
    "2026-03-29 02:30",  # does not exist in Amsterdam (clocks jump 02:00 → 03:00)
    "2026-10-25 02:30",  # happens twice in Amsterdam
    # relative
    "0m ago",
    "-5m ago",
    "99999999999999999999 hours ago",
    "ninety minutes ago please",
    # phrases: dateparser drops an impossible time of day and answers midnight (a restore to the wrong
    # moment, silently); see the report
    "yesterday 25:00",
    "gisteren 24:61",
    "kemarin 99:99",
    # words dateparser would drop without a word: each became a different moment than the one typed
    "10 minutes before 10:05",
    "yesterday",
    "gisteren",
    "yesterday 23:59 01:00",
    "90 minutes ago 5 minutes",
    "3h ago 1h",
    "yesterday 23:59 ago",
    # zone abbreviations that name several zones
    "10:05 IST",
    "10:05 CST",
    # nothing usable
    "",
    "   ",
    "90",
    "2026-11-21",
    "\x00",
    "drop table users",
    "🕐",
    "a" * 5000,
]


@pytest.mark.parametrize("text", BAD_TIMES, ids=lambda t: repr(t)[:30])
def test_bad_times_are_refused_clearly(text: str) -> None:
    count("hostile_input:bad times")
    with pytest.raises(TimePointError) as refused:
        parse_moment(text, zone=AMS, now=NOW)
    assert str(refused.value)  # a message, quoting what was typed


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=st.text(max_size=40))
def test_any_text_is_a_moment_or_a_time_point_error(text: str) -> None:
    count("hostile_input:fuzzed --at strings")
    try:
        moment = parse_moment(text, zone=AMS, now=NOW)
    except TimePointError:
        return
    assert moment.utc.tzinfo is not None


# --- canaries that write -----------------------------------------------------------------------------------

WRITES = [
    'DELETE FROM "User"',
    'UPDATE "User" SET email = NULL',
    'INSERT INTO "User" DEFAULT VALUES',
    'SELECT 1; DELETE FROM "User"',
    'WITH gone AS (DELETE FROM "User" RETURNING 1) SELECT count(*) > 0 FROM gone',
    'SELECT * INTO copy_of_users FROM "User"',
    'SELECT count(*) > 0 FROM "User" FOR UPDATE',
    'SELECT count(*) > 0 FROM "User" FOR SHARE',
    'EXPLAIN ANALYZE DELETE FROM "User"',
    'TRUNCATE "User"',
    'DROP TABLE "User"',
    'MERGE INTO "User" u USING "User" v ON false WHEN NOT MATCHED THEN DO NOTHING',
    "CREATE TABLE t AS SELECT 1",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "CALL do_something()",
    "SELECT 1 /* ; */ ; DELETE FROM x",
    "",
    ";",
    # Read-only to PostgreSQL, harmful all the same: signals, locks, settings, waits, files, remote SQL.
    "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity",
    "SELECT pg_cancel_backend(1)",
    "SELECT pg_advisory_lock(1) IS NULL",
    "SELECT set_config('statement_timeout', '0', false) = '0'",
    "SELECT pg_sleep(3600) IS NULL",
    "SELECT length(pg_read_file('/etc/passwd')) > 0",
    "SELECT count(*) > 0 FROM dblink('host=elsewhere', 'DELETE FROM t') AS r(a int)",
    "SELECT pg_notify('app', 'x') IS NULL",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writing_canaries_are_not_read_only(sql: str) -> None:
    count("hostile_input:writing canaries (static)")
    assert not is_read_only_sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        'DELETE FROM "User"',
        'WITH d AS (DELETE FROM "User" RETURNING 1) SELECT true FROM d',
        "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity",
    ],
)
async def test_find_moment_refuses_a_writing_canary(shared: Shared, tmp_path: Path, sql: str) -> None:
    count("hostile_input:writing canaries (find-moment CLI)")
    app = shared.make_app(tmp_path)
    env_before = (app / ".env").read_bytes()
    before = await shared.branch_names()
    result = await shared.cli(app, "find-moment", "--yes", "--check", sql)
    assert result.code == 2, (result.stdout, result.stderr)
    assert "read-only" in result.stderr
    assert await shared.branch_names() == before
    assert (app / ".env").read_bytes() == env_before
    assert list_runs(app) == []
